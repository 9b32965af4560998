#pragma once

/// \file
/// The on-disk format of `file_log` (format version 1): segment files of records, the
/// `hard_state` file and the `snapshot` file. Pure functions over bytes, so the format is
/// tested on its own and recovery code reads as the rules it applies. docs/storage.md draws
/// the layouts; all integers are little-endian.
///
/// A record is a 16-byte header and a body: one CRC32C covers the header's fields, the body and
/// the padding, so verifying a record costs one pass over its bytes.
///
/// Records are built so that recovery can tell a write cut short by a crash from damage to
/// data that was written and synced:
/// - a header holds a non-zero magic byte, so it is never all zeros, and its length twice
///   (the second copy complemented), so no single flipped bit makes a wrong length look
///   right: the length is trusted, to judge damage, before the CRC is checked;
/// - records are 16-byte aligned, so a header never straddles a 512-byte sector;
/// - the body is XOR-masked with a byte chosen so that, in every sector after the record's
///   first, the record's bytes hold at least two set bits. A sector the crash lost reads as
///   zeros; a single flipped bit can never make one of ours read as zeros.
/// `looks_torn` applies exactly that test.

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/hard_state.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/membership.hpp>
#include <synod/core/result.hpp>
#include <synod/core/snapshot.hpp>
#include <synod/wire/byte_io.hpp>
#include <synod/wire/codec.hpp>
#include <synod/wire/crc32c.hpp>

#include <boost/endian/conversion.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace synod::storage::wal {

inline constexpr std::uint32_t format_version = 1;
/// The unit a disk writes atomically, and so the unit a crash tears writes at.
inline constexpr std::uint64_t sector_size = 512;
inline constexpr std::size_t record_alignment = 16;
inline constexpr std::size_t record_header_size = 16;
inline constexpr std::size_t segment_header_size = 32;
inline constexpr std::uint8_t record_magic = 0xA7;
/// An entry body is `wire::encode_entry`: term, index, kind, payload length, payload.
inline constexpr std::size_t entry_body_prefix = wire::min_encoded_entry_size;
/// A hard-state body: sequence number, term, vote, commit.
inline constexpr std::size_t hard_state_body_size = 32;
inline constexpr std::size_t state_file_size = 68;

inline constexpr std::string_view segment_magic = "SYNODWAL";
inline constexpr std::string_view state_magic = "SYNODHST";
inline constexpr std::string_view snapshot_magic = "SYNODSNP";

enum class record_type : std::uint8_t {
    entry = 1,      ///< one log entry
    hard_state = 2, ///< a saved hard state; the highest sequence number wins at recovery
};

/// Bytes a record with a `body_length`-byte body occupies, padding included.
[[nodiscard]] constexpr std::uint64_t record_size(std::uint64_t body_length) noexcept {
    return (record_header_size + body_length + record_alignment - 1) / record_alignment *
           record_alignment;
}

namespace format_detail {

template <class U>
void store(std::byte* p, U value) noexcept {
    const U le = boost::endian::native_to_little(value);
    std::memcpy(p, &le, sizeof(U));
}

template <class U>
[[nodiscard]] U load(const std::byte* p) noexcept {
    U le;
    std::memcpy(&le, p, sizeof(U));
    return boost::endian::little_to_native(le);
}

/// Loads a little-endian integer from masked bytes.
template <class U>
[[nodiscard]] U load_masked(const std::byte* p, std::uint8_t mask) noexcept {
    // The mask is the same in every byte, so it can be removed after the load.
    return static_cast<U>(load<U>(p) ^ static_cast<U>(U(-1) / 0xff * mask));
}

[[nodiscard]] inline bool all_zero(byte_span bytes) noexcept {
    return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

/// Whether `bytes`, each XORed with `mask`, hold fewer than two set bits.
[[nodiscard]] inline bool weak_under(byte_span bytes, std::uint8_t mask) noexcept {
    int bits = 0;
    for (std::byte b : bytes) {
        bits += std::popcount(static_cast<std::uint8_t>(std::to_integer<std::uint8_t>(b) ^ mask));
        if (bits >= 2) {
            return false;
        }
    }
    return true;
}

inline void put_magic(byte_vector& out, std::string_view magic) {
    const auto* p = reinterpret_cast<const std::byte*>(magic.data());
    out.insert(out.end(), p, p + magic.size());
}

[[nodiscard]] inline bool has_magic(byte_span bytes, std::string_view magic) noexcept {
    return bytes.size() >= magic.size() &&
           std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
}

template <class U>
void put(byte_vector& out, U value) {
    wire::byte_writer(out).put(value);
}

} // namespace format_detail

/// The mask byte for a record's stored body (`stored`, padding included, at file offset
/// `stored_at`) in a record that starts at file offset `record_at`: the first byte value
/// under which every sector portion after the record's first sector keeps two set bits.
/// Such a byte exists unless a record spans 256 sectors that are near-constant in 256
/// different values; then 0 is returned and such a record's protection is as etcd's (the
/// checksum still catches the damage, only the torn/damaged verdict can err).
[[nodiscard]] inline std::uint8_t choose_mask(byte_span stored, std::uint64_t stored_at,
                                              std::uint64_t record_at) noexcept {
    const std::uint64_t end = stored_at + stored.size();
    const std::uint64_t first_boundary = (record_at / sector_size + 1) * sector_size;
    if (first_boundary >= end) {
        return 0; // the whole record is in its first sector, whose header is never zero
    }
    auto weak = [&](std::uint8_t mask) {
        for (std::uint64_t at = first_boundary; at < end; at += sector_size) {
            const std::uint64_t hi = std::min(at + sector_size, end);
            if (format_detail::weak_under(stored.subspan(at - stored_at, hi - at), mask)) {
                return true;
            }
        }
        return false;
    };
    for (unsigned mask = 0; mask < 256; ++mask) {
        if (!weak(static_cast<std::uint8_t>(mask))) {
            return static_cast<std::uint8_t>(mask);
        }
    }
    return 0;
}

/// Appends one record to `out`, to be written at file offset `at`; `write_body(out)` appends
/// the unmasked body. Header: CRC32C of bytes 4.. of the record (u32), magic, type, mask,
/// reserved zero (u8 each), body length (u32), its complement (u32).
template <class WriteBody>
void append_record(byte_vector& out, std::uint64_t at, record_type type, WriteBody&& write_body) {
    using namespace format_detail;
    const std::size_t start = out.size();
    out.resize(start + record_header_size);
    write_body(out);
    const std::size_t body_length = out.size() - start - record_header_size;
    SYNOD_ASSERT(body_length <= UINT32_MAX, "a record body longer than 4 GiB");
    out.resize(start + record_size(body_length)); // zero padding
    std::span<std::byte> stored(out.data() + start + record_header_size,
                                out.size() - start - record_header_size);
    const std::uint8_t mask = choose_mask(stored, at + record_header_size, at);
    if (mask != 0) {
        for (std::byte& b : stored) {
            b ^= std::byte{mask};
        }
    }
    std::byte* h = out.data() + start;
    h[4] = std::byte{record_magic};
    h[5] = static_cast<std::byte>(type);
    h[6] = std::byte{mask};
    h[7] = std::byte{0};
    store<std::uint32_t>(h + 8, static_cast<std::uint32_t>(body_length));
    store<std::uint32_t>(h + 12, ~static_cast<std::uint32_t>(body_length));
    store<std::uint32_t>(h, wire::crc32c(byte_span(h + 4, out.size() - start - 4)));
}

inline void append_entry_record(byte_vector& out, std::uint64_t at, const log_entry& e) {
    append_record(out, at, record_type::entry,
                  [&](byte_vector& body) { wire::encode_entry(e, body); });
}

inline void append_hard_state_record(byte_vector& out, std::uint64_t at, std::uint64_t sequence,
                                     const hard_state& hs) {
    append_record(out, at, record_type::hard_state, [&](byte_vector& body) {
        wire::byte_writer w(body);
        w.put(sequence);
        w.put(hs.current_term.value());
        w.put(hs.voted_for.value());
        w.put(hs.commit.value());
    });
}

struct record_header {
    record_type type{};
    std::uint8_t mask = 0;
    std::uint32_t body_length = 0;
    std::uint32_t crc = 0;

    [[nodiscard]] std::uint64_t size() const noexcept { return record_size(body_length); }
};

/// Reads the header at `p` (`record_header_size` bytes) into `out` if it is well-formed —
/// magic, reserved byte, known type, and the two copies of the length agree — so that its
/// length can be trusted. The record's CRC is checked by `record_intact`.
///
/// Two 8-byte loads and each field stored on its own: recovery calls this once per record, and
/// building the header byte by byte in memory and reading it back whole stalls the CPU (the
/// narrow stores cannot be forwarded to the wide load).
[[nodiscard]] inline bool read_record_header(const std::byte* p, record_header& out) noexcept {
    using namespace format_detail;
    const auto w0 = load<std::uint64_t>(p);     // crc, magic, type, mask, reserved
    const auto w1 = load<std::uint64_t>(p + 8); // length, ~length
    const auto length = static_cast<std::uint32_t>(w1);
    const auto type = static_cast<std::uint8_t>(w0 >> 40);
    if (static_cast<std::uint8_t>(w0 >> 32) != record_magic ||
        static_cast<std::uint8_t>(w0 >> 56) != 0 ||
        static_cast<std::uint32_t>(w1 >> 32) != ~length ||
        (type != static_cast<std::uint8_t>(record_type::entry) &&
         type != static_cast<std::uint8_t>(record_type::hard_state))) {
        return false;
    }
    out.type = static_cast<record_type>(type);
    out.mask = static_cast<std::uint8_t>(w0 >> 48);
    out.body_length = length;
    out.crc = static_cast<std::uint32_t>(w0);
    return true;
}

/// The header at the start of `bytes` if it is well-formed (see `read_record_header`).
/// `bytes` must hold `record_header_size` bytes.
[[nodiscard]] inline std::optional<record_header> parse_record_header(byte_span bytes) noexcept {
    record_header h;
    if (!read_record_header(bytes.data(), h)) {
        return std::nullopt;
    }
    return h;
}

/// Whether a whole record (`record`: header, body, padding) matches its CRC.
[[nodiscard]] inline bool record_intact(const record_header& h, byte_span record) noexcept {
    return wire::crc32c(record.subspan(4)) == h.crc;
}

namespace format_detail {

/// Up to three records back to back, their headers read and trusted (see `verify_records`).
struct record_group {
    std::size_t begin = 0; ///< where the first record starts
    std::size_t end = 0;   ///< where the record after the last starts
    std::size_t n = 0;
    std::size_t at[3]{};
    record_header h[3];
};

inline void read_group(const std::byte* base, std::size_t from, std::size_t size,
                       record_group& g) noexcept {
    g.begin = from;
    g.n = 0;
    for (; g.n < 3; ++g.n) {
        record_header& h = g.h[g.n];
        if (size - from < record_header_size || !read_record_header(base + from, h) ||
            h.size() > size - from) {
            break;
        }
        g.at[g.n] = from;
        from += h.size();
    }
    g.end = from;
}

#if SYNOD_CRC32C_HAVE_SSE42
/// Finishes a record's CRC register `c` over bytes [i, n) of `p`, where n is 8m + 4.
[[gnu::target("sse4.2")]] inline std::uint32_t crc_finish(std::uint64_t c, const std::byte* p,
                                                          std::size_t i, std::size_t n) noexcept {
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        c = _mm_crc32_u64(c, w);
    }
    std::uint32_t w;
    std::memcpy(&w, p + i, 4);
    return ~_mm_crc32_u32(static_cast<std::uint32_t>(c), w);
}

/// `verify_records` with the CRC32 instruction. The checksums are inlined with the caller's
/// `take`, and the headers of the next three records are read before the checksums of these
/// are computed: each header's length locates the next, and that chain of loads then runs
/// beside the CRC instructions (which keep one execution port busy) instead of after them.
template <class Take>
[[gnu::target("sse4.2")]] std::size_t verify_records_hardware(byte_span bytes, std::size_t from,
                                                              Take& take) {
    const std::byte* base = bytes.data();
    record_group groups[2];
    std::size_t now = 0;
    read_group(base, from, bytes.size(), groups[0]);
    while (groups[now].n == 3) {
        const record_group& g = groups[now];
        read_group(base, g.end, bytes.size(), groups[1 - now]);
        const std::byte* p0 = base + g.at[0] + 4;
        const std::byte* p1 = base + g.at[1] + 4;
        const std::byte* p2 = base + g.at[2] + 4;
        // Bytes 4.. of each record; a record's size is a multiple of 16, so each is 8n + 4.
        const std::size_t n0 = g.h[0].size() - 4;
        const std::size_t n1 = g.h[1].size() - 4;
        const std::size_t n2 = g.h[2].size() - 4;
        const std::size_t words = std::min({n0, n1, n2}) & ~std::size_t{7};
        std::uint64_t c0 = 0xffffffffU;
        std::uint64_t c1 = 0xffffffffU;
        std::uint64_t c2 = 0xffffffffU;
        for (std::size_t i = 0; i < words; i += 8) {
            std::uint64_t w0;
            std::uint64_t w1;
            std::uint64_t w2;
            std::memcpy(&w0, p0 + i, 8);
            std::memcpy(&w1, p1 + i, 8);
            std::memcpy(&w2, p2 + i, 8);
            c0 = _mm_crc32_u64(c0, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
        }
        const std::uint32_t crcs[3] = {crc_finish(c0, p0, words, n0), crc_finish(c1, p1, words, n1),
                                       crc_finish(c2, p2, words, n2)};
        for (std::size_t k = 0; k < 3; ++k) {
            if (crcs[k] != g.h[k].crc ||
                !take(g.at[k], g.h[k],
                      bytes.subspan(g.at[k] + record_header_size, g.h[k].body_length))) {
                return g.at[k];
            }
        }
        now = 1 - now;
    }
    return groups[now].begin;
}
#endif

} // namespace format_detail

/// Verifies the records that lie back to back in `bytes` from offset `from`, three at a time,
/// and hands each intact one, in order, to `take(offset, header, body) -> bool` (false stops
/// the run). Returns the offset of the first record not taken: one that fails its header or
/// CRC, that `take` refused, or the first of fewer than three whole, well-formed records
/// left, which the caller judges itself. Recovery's fast path: the careful path decides,
/// record by record, what a failure means.
template <class Take>
std::size_t verify_records(byte_span bytes, std::size_t from, Take&& take) {
    if (from >= bytes.size()) {
        return from;
    }
#if SYNOD_CRC32C_HAVE_SSE42
    if (wire::crc32c_uses_hardware()) {
        return format_detail::verify_records_hardware(bytes, from, take);
    }
#endif
    format_detail::record_group g;
    for (;;) {
        format_detail::read_group(bytes.data(), from, bytes.size(), g);
        if (g.n < 3) {
            return from;
        }
        for (std::size_t k = 0; k < 3; ++k) {
            const byte_span record = bytes.subspan(g.at[k], g.h[k].size());
            if (!record_intact(g.h[k], record) ||
                !take(g.at[k], g.h[k], record.subspan(record_header_size, g.h[k].body_length))) {
                return g.at[k];
            }
        }
        from = g.end;
    }
}

/// Term and index of an entry record, read from its (masked) stored body without decoding
/// the payload. `stored` must hold at least `entry_body_prefix` bytes.
struct entry_position {
    synod::term term;
    log_index index;
};
[[nodiscard]] inline entry_position peek_entry(byte_span stored, std::uint8_t mask) noexcept {
    using format_detail::load_masked;
    return {term{load_masked<std::uint64_t>(stored.data(), mask)},
            log_index{load_masked<std::uint64_t>(stored.data() + 8, mask)}};
}

/// Decodes an entry record's body (`stored`: the body without padding, still masked).
[[nodiscard]] inline result<log_entry> decode_entry_body(byte_span stored, std::uint8_t mask) {
    if (mask == 0) {
        return wire::decode_entry(stored);
    }
    byte_vector plain(stored.begin(), stored.end());
    for (std::byte& b : plain) {
        b ^= std::byte{mask};
    }
    return wire::decode_entry(plain);
}

struct hard_state_record {
    std::uint64_t sequence = 0;
    hard_state state;
};

[[nodiscard]] inline std::optional<hard_state_record> decode_hard_state_body(byte_span stored,
                                                                             std::uint8_t mask) {
    using format_detail::load_masked;
    if (stored.size() != hard_state_body_size) {
        return std::nullopt;
    }
    return hard_state_record{load_masked<std::uint64_t>(stored.data(), mask),
                             {term{load_masked<std::uint64_t>(stored.data() + 8, mask)},
                              node_id{load_masked<std::uint64_t>(stored.data() + 16, mask)},
                              log_index{load_masked<std::uint64_t>(stored.data() + 24, mask)}}};
}

/// Whether a record that failed verification at `pos` of a segment's bytes `file` looks like
/// a write a crash cut short — then it and everything after it were never synced — rather
/// than damage to synced data. `record_end` is the end the record's (intact) header claims,
/// or `nullopt` when the header itself failed. Evidence of a torn write is any of:
/// - the record's bytes in its first sector are all zero (that sector never reached disk);
/// - the file ends inside the record (the size was updated, the data was not);
/// - a later sector the record covers is all zero (a sector of the write was lost).
/// A flipped bit in synced data gives none of these (see the file comment).
[[nodiscard]] inline bool looks_torn(byte_span file, std::uint64_t pos,
                                     std::optional<std::uint64_t> record_end) noexcept {
    using format_detail::all_zero;
    const std::uint64_t size = file.size();
    const std::uint64_t first_sector_end = std::min((pos / sector_size + 1) * sector_size, size);
    if (all_zero(file.subspan(pos, first_sector_end - pos))) {
        return true;
    }
    if (!record_end) {
        return size - pos < record_header_size;
    }
    if (*record_end > size) {
        return true;
    }
    for (std::uint64_t at = first_sector_end; at < *record_end; at += sector_size) {
        if (all_zero(file.subspan(at, std::min(at + sector_size, size) - at))) {
            return true;
        }
    }
    return false;
}

// --- segment header -----------------------------------------------------------------------

inline void append_segment_header(byte_vector& out, log_index first) {
    using namespace format_detail;
    const std::size_t start = out.size();
    put_magic(out, segment_magic);
    put<std::uint32_t>(out, format_version);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(segment_header_size));
    put<std::uint64_t>(out, first.value());
    put<std::uint32_t>(out, 0);
    put<std::uint32_t>(out, wire::crc32c(byte_span(out.data() + start, 28)));
}

enum class header_status : std::uint8_t { ok, damaged, unsupported_version };

/// Checks a segment header (`bytes`: at least `segment_header_size` bytes) and yields the
/// segment's first index.
[[nodiscard]] inline header_status parse_segment_header(byte_span bytes,
                                                        log_index& first) noexcept {
    using namespace format_detail;
    const std::byte* h = bytes.data();
    if (!has_magic(bytes, segment_magic) ||
        load<std::uint32_t>(h + 28) != wire::crc32c(byte_span(h, 28))) {
        return header_status::damaged;
    }
    if (load<std::uint32_t>(h + 8) != format_version) {
        return header_status::unsupported_version;
    }
    if (load<std::uint32_t>(h + 12) != segment_header_size || load<std::uint32_t>(h + 24) != 0) {
        return header_status::damaged;
    }
    first = log_index{load<std::uint64_t>(h + 16)};
    return header_status::ok;
}

/// "00000000000000000042.log" for segment number 42: names sort in segment order.
[[nodiscard]] inline std::string segment_file_name(std::uint64_t number) {
    std::string digits = std::to_string(number);
    return std::string(20 - std::min<std::size_t>(20, digits.size()), '0') + digits + ".log";
}

[[nodiscard]] inline std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
    if (name.size() != 24 || name.substr(20) != ".log") {
        return std::nullopt;
    }
    std::uint64_t number = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + 20, number);
    if (ec != std::errc{} || end != name.data() + 20) {
        return std::nullopt;
    }
    return number;
}

// --- the hard_state file -------------------------------------------------------------------

/// The `hard_state` file: the latest hard state at the time it was written, and where the log
/// starts after compaction. Rewritten atomically (temp file, fsync, rename, directory fsync)
/// when compaction or truncation is about to remove the records that held the hard state.
struct state_file {
    /// Sequence number of `state`; hard-state records with a higher one supersede it.
    std::uint64_t sequence = 0;
    hard_state state;
    /// First index the log holds: entries below it are compacted into the snapshot.
    log_index first_index{1};
    /// Term of entry `first_index - 1` (0 when that is index 0).
    term first_index_prior_term;

    friend bool operator==(const state_file&, const state_file&) = default;
};

[[nodiscard]] inline byte_vector encode_state_file(const state_file& s) {
    using namespace format_detail;
    byte_vector out;
    out.reserve(state_file_size);
    put_magic(out, state_magic);
    put<std::uint32_t>(out, format_version);
    put<std::uint32_t>(out, 0);
    put<std::uint64_t>(out, s.sequence);
    put<std::uint64_t>(out, s.state.current_term.value());
    put<std::uint64_t>(out, s.state.voted_for.value());
    put<std::uint64_t>(out, s.state.commit.value());
    put<std::uint64_t>(out, s.first_index.value());
    put<std::uint64_t>(out, s.first_index_prior_term.value());
    put<std::uint32_t>(out, wire::crc32c(out));
    return out;
}

/// Decodes the `hard_state` file; on failure, `why` says where and what.
[[nodiscard]] inline std::error_code decode_state_file(byte_span bytes, state_file& out,
                                                       std::string& why) {
    using namespace format_detail;
    if (bytes.size() != state_file_size) {
        why = "offset 0: size " + std::to_string(bytes.size()) + ", expected " +
              std::to_string(state_file_size);
        return errc::corrupt_storage;
    }
    const std::byte* p = bytes.data();
    if (load<std::uint32_t>(p + 64) != wire::crc32c(bytes.first(64))) {
        why = "offset 64: bad CRC";
        return errc::corrupt_storage;
    }
    if (!has_magic(bytes, state_magic) || load<std::uint32_t>(p + 12) != 0) {
        why = "offset 0: bad magic";
        return errc::corrupt_storage;
    }
    if (load<std::uint32_t>(p + 8) != format_version) {
        why = "offset 8: format version " + std::to_string(load<std::uint32_t>(p + 8)) +
              " is not supported";
        return errc::unknown_version;
    }
    out.sequence = load<std::uint64_t>(p + 16);
    out.state = hard_state{term{load<std::uint64_t>(p + 24)}, node_id{load<std::uint64_t>(p + 32)},
                           log_index{load<std::uint64_t>(p + 40)}};
    out.first_index = log_index{load<std::uint64_t>(p + 48)};
    out.first_index_prior_term = term{load<std::uint64_t>(p + 56)};
    if (out.first_index == log_index{0}) {
        why = "offset 48: first index 0";
        return errc::corrupt_storage;
    }
    return {};
}

// --- the snapshot file ---------------------------------------------------------------------

/// The `snapshot` file: magic, version, reserved, last index, last term, membership (wire
/// encoding, length-prefixed), data (length-prefixed), then a CRC32C of everything before it.
/// Built in three parts so the data — possibly large — is written from where it is, never
/// copied.
struct snapshot_file {
    byte_vector head;
    byte_span data;
    std::array<std::byte, 4> trailer{};

    explicit snapshot_file(const snapshot& s)
        : data(s.data.span()) {
        using namespace format_detail;
        put_magic(head, snapshot_magic);
        put<std::uint32_t>(head, format_version);
        put<std::uint32_t>(head, 0);
        put<std::uint64_t>(head, s.meta.last_index.value());
        put<std::uint64_t>(head, s.meta.last_term.value());
        byte_vector config;
        wire::encoder(config).put(s.meta.config);
        put<std::uint32_t>(head, static_cast<std::uint32_t>(config.size()));
        head.insert(head.end(), config.begin(), config.end());
        put<std::uint64_t>(head, data.size());
        store<std::uint32_t>(trailer.data(), wire::crc32c(data, wire::crc32c(head)));
    }

    /// The whole file in one buffer (for tests and small snapshots).
    [[nodiscard]] byte_vector bytes() const {
        byte_vector out = head;
        out.insert(out.end(), data.begin(), data.end());
        out.insert(out.end(), trailer.begin(), trailer.end());
        return out;
    }
};

[[nodiscard]] inline std::error_code decode_snapshot_file(byte_span bytes, snapshot& out,
                                                          std::string& why) {
    using namespace format_detail;
    constexpr std::size_t fixed = 8 + 4 + 4 + 8 + 8 + 4;
    if (bytes.size() < fixed + 8 + 4) {
        why = "offset 0: size " + std::to_string(bytes.size()) + " is too small";
        return errc::corrupt_storage;
    }
    const std::size_t crc_at = bytes.size() - 4;
    if (load<std::uint32_t>(bytes.data() + crc_at) != wire::crc32c(bytes.first(crc_at))) {
        why = "offset " + std::to_string(crc_at) + ": bad CRC";
        return errc::corrupt_storage;
    }
    if (!has_magic(bytes, snapshot_magic) || load<std::uint32_t>(bytes.data() + 12) != 0) {
        why = "offset 0: bad magic";
        return errc::corrupt_storage;
    }
    if (load<std::uint32_t>(bytes.data() + 8) != format_version) {
        why = "offset 8: format version " + std::to_string(load<std::uint32_t>(bytes.data() + 8)) +
              " is not supported";
        return errc::unknown_version;
    }
    wire::byte_reader r(bytes.first(crc_at).subspan(16));
    const log_index last_index{r.get<std::uint64_t>()};
    const term last_term{r.get<std::uint64_t>()};
    const auto config_size = r.get<std::uint32_t>();
    const byte_span config_bytes = r.get_bytes(config_size);
    const auto data_size = r.get<std::uint64_t>();
    const byte_span data =
        r.ok() && data_size == r.remaining() ? r.get_bytes(data_size) : byte_span{};
    if (!r.ok() || data_size != data.size() || r.remaining() != 0) {
        why = "offset 40: lengths disagree with the file size";
        return errc::corrupt_storage;
    }
    membership config;
    wire::decoder dec(config_bytes);
    dec.get(config);
    if (dec.finish()) {
        why = "offset 44: undecodable membership";
        return errc::corrupt_storage;
    }
    out = snapshot{{last_index, last_term, std::move(config)}, shared_bytes(data)};
    return {};
}

} // namespace synod::storage::wal
