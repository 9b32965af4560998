#pragma once

/// \file
/// Encoding pieces shared by the replicated machines: length-prefixed strings, item counts
/// that a corrupt input cannot turn into a huge allocation, and the CRC32C seal on snapshots.
/// Internal to machines/; the formats they produce are documented in docs/machines.md.

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/wire/byte_io.hpp>
#include <synod/wire/crc32c.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace synod::machines::detail {

/// A string as a u32 byte length and the bytes.
inline void put_string(wire::byte_writer& w, std::string_view s) {
    w.put(static_cast<std::uint32_t>(s.size()));
    w.put_bytes(as_bytes(s));
}

/// Reads what `put_string` wrote. A length beyond the input records `truncated_input` before
/// anything is allocated.
[[nodiscard]] inline std::string get_string(wire::byte_reader& r) {
    const auto size = r.get<std::uint32_t>();
    const byte_span bytes = r.get_bytes(size);
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// Reads a u32 item count. Every item takes at least `min_item_bytes`, so a count the rest of
/// the input cannot hold is `length_mismatch`; callers may then reserve `count` safely.
[[nodiscard]] inline std::uint32_t get_count(wire::byte_reader& r, std::size_t min_item_bytes) {
    const auto count = r.get<std::uint32_t>();
    if (r.ok() && count > r.remaining() / min_item_bytes) {
        r.fail(errc::length_mismatch);
        return 0;
    }
    return count;
}

/// Appends the CRC32C of everything in `out` and freezes it: a snapshot whose every byte is
/// covered, so a flipped bit is caught before any field is trusted.
[[nodiscard]] inline shared_bytes seal(byte_vector& out) {
    const std::uint32_t crc = wire::crc32c(byte_span(out));
    wire::byte_writer(out).put(crc);
    return shared_bytes(byte_span(out));
}

inline constexpr std::size_t seal_bytes = sizeof(std::uint32_t);

/// The body of a sealed snapshot, or nothing when it is too short or its CRC does not match.
[[nodiscard]] inline std::optional<byte_span> unseal(byte_span sealed) noexcept {
    if (sealed.size() < seal_bytes) {
        return std::nullopt;
    }
    const byte_span body = sealed.first(sealed.size() - seal_bytes);
    wire::byte_reader trailer(sealed.last(seal_bytes));
    if (trailer.get<std::uint32_t>() != wire::crc32c(body)) {
        return std::nullopt;
    }
    return body;
}

} // namespace synod::machines::detail
