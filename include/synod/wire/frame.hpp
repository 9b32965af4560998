#pragma once

/// \file
/// Message frames: the unit a transport sends.
///
/// | offset | size | field                                                         |
/// |--------|------|---------------------------------------------------------------|
/// | 0      | 4    | body length in bytes (little-endian)                          |
/// | 4      | 1    | format version (`format_version`)                             |
/// | 5      | 1    | message type (`message_type`)                                 |
/// | 6      | 2    | reserved, zero                                                |
/// | 8      | 4    | CRC32C of bytes [0, 8) followed by the body                   |
/// | 12     | n    | body (codec.hpp)                                              |
///
/// The checksum covers the length and type too, so a damaged header is caught as surely as a
/// damaged body. A reader of a byte stream calls `frame_size` on what it has so far: it learns
/// how many bytes the frame needs (after the length is checked against `max_frame_size`,
/// before anything is allocated), then hands exactly that many to `decode_frame`.

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/messages.hpp>
#include <synod/core/result.hpp>
#include <synod/wire/byte_io.hpp>
#include <synod/wire/codec.hpp>
#include <synod/wire/crc32c.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <variant>

namespace synod::wire {

inline constexpr std::size_t frame_header_size = 12;
inline constexpr std::size_t default_max_frame_size = std::size_t{64} << 20;

struct frame_limits {
    /// Largest whole frame (header + body) accepted. Bigger frames are refused before any
    /// allocation, so a hostile length cannot exhaust memory.
    std::size_t max_frame_size = default_max_frame_size;
};

/// The type byte of a frame: the message's position in `synod::message`, plus one (0 is never
/// a valid type, so a zeroed header is rejected).
enum class message_type : std::uint8_t {
    vote_request = 1,
    vote_response,
    append_request,
    append_response,
    snapshot_chunk_request,
    snapshot_chunk_response,
    timeout_now,
    read_index_request,
    read_index_response,
    proposal_forward,
    proposal_forward_response,
};

inline constexpr std::uint8_t max_message_type = std::variant_size_v<message>;

[[nodiscard]] inline message_type type_of(const message& m) noexcept {
    return static_cast<message_type>(m.index() + 1);
}

/// Appends one frame holding `m` to `out`.
inline void encode_frame(const message& m, byte_vector& out) {
    const std::size_t start = out.size();
    out.resize(start + frame_header_size);
    std::visit([&](const auto& body) { encode_body(body, out); }, m);
    const std::size_t body_size = out.size() - start - frame_header_size;
    SYNOD_ASSERT(body_size <= UINT32_MAX, "message body does not fit a frame");

    byte_writer w(out);
    w.patch(start, static_cast<std::uint32_t>(body_size));
    w.patch(start + 4, format_version);
    w.patch(start + 5, static_cast<std::uint8_t>(type_of(m)));
    w.patch(start + 6, std::uint16_t{0});
    byte_span bytes(out.data() + start, out.size() - start);
    std::uint32_t crc = crc32c(bytes.subspan(frame_header_size), crc32c(bytes.first(8)));
    w.patch(start + 8, crc);
}

[[nodiscard]] inline byte_vector encode_frame(const message& m) {
    byte_vector out;
    encode_frame(m, out);
    return out;
}

/// Total size of the frame that starts `prefix`, once its header is complete; checks version,
/// type and size limit on the way. `truncated_input` means "read more bytes".
[[nodiscard]] inline result<std::size_t> frame_size(byte_span prefix,
                                                    const frame_limits& limits = {}) {
    byte_reader r(prefix);
    auto body_size = r.get<std::uint32_t>();
    auto version = r.get<std::uint8_t>();
    auto type = r.get<std::uint8_t>();
    auto reserved = r.get<std::uint16_t>();
    if (!r.ok()) {
        return r.error();
    }
    if (version != format_version) {
        return errc::unknown_version;
    }
    if (type == 0 || type > max_message_type) {
        return errc::unknown_message_type;
    }
    if (reserved != 0) {
        return errc::value_out_of_range;
    }
    std::size_t total = frame_header_size + std::size_t{body_size};
    if (total > limits.max_frame_size) {
        return errc::frame_too_large;
    }
    return total;
}

namespace frame_detail {

template <std::size_t I = 0>
result<message> decode_as(std::size_t type_index, byte_span body) {
    if constexpr (I < std::variant_size_v<message>) {
        if (type_index == I) {
            using M = std::variant_alternative_t<I, message>;
            auto decoded = decode_body<M>(body);
            if (!decoded) {
                return decoded.error();
            }
            return message(std::in_place_index<I>, std::move(decoded).value());
        }
        return decode_as<I + 1>(type_index, body);
    } else {
        return errc::unknown_message_type;
    }
}

} // namespace frame_detail

/// Decodes a buffer that must hold exactly one frame.
[[nodiscard]] inline result<message> decode_frame(byte_span frame,
                                                  const frame_limits& limits = {}) {
    auto size = frame_size(frame, limits);
    if (!size) {
        return size.error();
    }
    if (*size > frame.size()) {
        return errc::truncated_input;
    }
    if (*size < frame.size()) {
        return errc::length_mismatch;
    }
    byte_reader r(frame.subspan(8, 4));
    auto stored_crc = r.get<std::uint32_t>();
    byte_span body = frame.subspan(frame_header_size);
    if (crc32c(body, crc32c(frame.first(8))) != stored_crc) {
        return errc::bad_crc;
    }
    return frame_detail::decode_as(static_cast<std::size_t>(frame[5]) - 1, body);
}

} // namespace synod::wire
