#pragma once

/// \file
/// CRC32C (Castagnoli), the checksum on every frame and stored record. Uses the SSE4.2 `crc32`
/// instruction when the CPU has it — three interleaved streams, combined with precomputed
/// shift tables, so the instruction's latency is hidden — and a portable slicing-by-8 table
/// otherwise. Both paths give the same answers; tests pin them to the published check values.

#include <synod/core/bytes.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define SYNOD_CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#else
#define SYNOD_CRC32C_HAVE_SSE42 0
#endif

namespace synod::wire {

namespace crc32c_detail {

/// Reflected Castagnoli polynomial.
inline constexpr std::uint32_t polynomial = 0x82f63b78U;

using table_t = std::array<std::array<std::uint32_t, 256>, 8>;

consteval table_t make_slicing_table() {
    table_t t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
        std::uint32_t c = n;
        for (int k = 0; k < 8; ++k) {
            c = (c & 1U) != 0 ? (c >> 1) ^ polynomial : c >> 1;
        }
        t[0][n] = c;
    }
    for (std::uint32_t n = 0; n < 256; ++n) {
        for (std::size_t k = 1; k < 8; ++k) {
            t[k][n] = (t[k - 1][n] >> 8) ^ t[0][t[k - 1][n] & 0xffU];
        }
    }
    return t;
}

inline constexpr table_t slicing_table = make_slicing_table();

inline std::uint64_t load_le64(const unsigned char* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}

/// Advances a raw (not inverted) CRC register over `data`.
inline std::uint32_t portable_update(std::uint32_t reg, const unsigned char* p,
                                     std::size_t n) noexcept {
    const auto& t = slicing_table;
    while (n >= 8) {
        std::uint64_t w = load_le64(p) ^ reg;
        reg = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^
              t[4][(w >> 24) & 0xff] ^ t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^
              t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) {
        reg = (reg >> 8) ^ t[0][(reg ^ *p++) & 0xffU];
    }
    return reg;
}

/// The linear map "append `zero_bytes` zero bytes to the message" on a CRC register, as four
/// byte-indexed tables. Lets independent streams be combined:
/// reg(r, A||B) = shift_|B|(reg(r, A)) ^ reg(0, B).
struct shift_table {
    std::array<std::array<std::uint32_t, 256>, 4> t{};

    explicit shift_table(std::size_t zero_bytes) noexcept {
        std::array<std::uint32_t, 32> column{};
        static constexpr unsigned char zeros[64] = {};
        for (int bit = 0; bit < 32; ++bit) {
            std::uint32_t reg = 1U << bit;
            for (std::size_t left = zero_bytes; left > 0;) {
                std::size_t step = left < sizeof zeros ? left : sizeof zeros;
                reg = portable_update(reg, zeros, step);
                left -= step;
            }
            column[static_cast<std::size_t>(bit)] = reg;
        }
        for (std::size_t byte = 0; byte < 4; ++byte) {
            for (std::uint32_t v = 0; v < 256; ++v) {
                std::uint32_t out = 0;
                for (std::size_t b = 0; b < 8; ++b) {
                    if ((v >> b & 1U) != 0) {
                        out ^= column[byte * 8 + b];
                    }
                }
                t[byte][v] = out;
            }
        }
    }

    [[nodiscard]] std::uint32_t apply(std::uint32_t reg) const noexcept {
        return t[0][reg & 0xff] ^ t[1][(reg >> 8) & 0xff] ^ t[2][(reg >> 16) & 0xff] ^
               t[3][reg >> 24];
    }
};

#if SYNOD_CRC32C_HAVE_SSE42

/// Block sizes for the three-stream loop, largest first: big buffers use long blocks (few
/// folds), and the smaller sizes keep most of a short buffer's tail in three streams too.
inline constexpr std::array<std::size_t, 4> block_sizes{8192, 1024, 256, 64};

inline const shift_table& block_shift(std::size_t i) {
    static const std::array<shift_table, 4> tables{
        shift_table(block_sizes[0]), shift_table(block_sizes[1]), shift_table(block_sizes[2]),
        shift_table(block_sizes[3])};
    return tables[i];
}

[[gnu::target("sse4.2")]] inline std::uint64_t hw_stream(std::uint64_t reg, const unsigned char* p,
                                                         std::size_t n) noexcept {
    for (const unsigned char* end = p + n; p < end; p += 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        reg = _mm_crc32_u64(reg, w);
    }
    return reg;
}

/// Three streams of `block` bytes each, advanced together so that three `crc32` instructions
/// are in flight at once, then folded into one register.
[[gnu::target("sse4.2")]] inline std::uint32_t hw_triple(std::uint32_t reg, const unsigned char* p,
                                                         std::size_t block,
                                                         const shift_table& shift) noexcept {
    std::uint64_t c0 = reg;
    std::uint64_t c1 = 0;
    std::uint64_t c2 = 0;
    const unsigned char* end = p + block;
    for (; p < end; p += 8) {
        std::uint64_t w0;
        std::uint64_t w1;
        std::uint64_t w2;
        std::memcpy(&w0, p, 8);
        std::memcpy(&w1, p + block, 8);
        std::memcpy(&w2, p + 2 * block, 8);
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
    }
    auto folded = shift.apply(static_cast<std::uint32_t>(c0)) ^ static_cast<std::uint32_t>(c1);
    return shift.apply(folded) ^ static_cast<std::uint32_t>(c2);
}

[[gnu::target("sse4.2")]] inline std::uint32_t
hardware_update(std::uint32_t reg, const unsigned char* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < block_sizes.size(); ++i) {
        const std::size_t block = block_sizes[i];
        while (n >= 3 * block) {
            reg = hw_triple(reg, p, block, block_shift(i));
            p += 3 * block;
            n -= 3 * block;
        }
    }
    std::size_t words = n & ~std::size_t{7};
    reg = static_cast<std::uint32_t>(hw_stream(reg, p, words));
    p += words;
    n -= words;
    for (; n > 0; --n, ++p) {
        reg = _mm_crc32_u8(reg, *p);
    }
    return reg;
}

inline bool hardware_available() noexcept {
    static const bool available = __builtin_cpu_supports("sse4.2") != 0;
    return available;
}

#else

inline bool hardware_available() noexcept {
    return false;
}
inline std::uint32_t hardware_update(std::uint32_t reg, const unsigned char* p,
                                     std::size_t n) noexcept {
    return portable_update(reg, p, n);
}

#endif

inline const unsigned char* bytes_of(byte_span data) noexcept {
    return reinterpret_cast<const unsigned char*>(data.data());
}

} // namespace crc32c_detail

/// CRC32C of `data`, continuing from `crc` (the CRC of the bytes before `data`):
/// `crc32c(b, crc32c(a)) == crc32c(a ++ b)`.
[[nodiscard]] inline std::uint32_t crc32c(byte_span data, std::uint32_t crc = 0) noexcept {
    using namespace crc32c_detail;
    std::uint32_t reg = ~crc;
    reg = hardware_available() ? hardware_update(reg, bytes_of(data), data.size())
                               : portable_update(reg, bytes_of(data), data.size());
    return ~reg;
}

/// The portable path alone, for tests and for comparing speeds.
[[nodiscard]] inline std::uint32_t crc32c_portable(byte_span data, std::uint32_t crc = 0) noexcept {
    return ~crc32c_detail::portable_update(~crc, crc32c_detail::bytes_of(data), data.size());
}

/// Whether `crc32c` uses the CPU's CRC32 instruction on this machine.
[[nodiscard]] inline bool crc32c_uses_hardware() noexcept {
    return crc32c_detail::hardware_available();
}

} // namespace synod::wire
