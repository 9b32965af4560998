#include <doctest/doctest.h>

#include <synod/wire/crc32c.hpp>

#include <random>
#include <vector>

namespace {

using namespace synod;
using synod::wire::crc32c;
using synod::wire::crc32c_portable;

// Published check values: RFC 3720 (iSCSI) appendix B.4 and the CRC catalogue's "check" value.
TEST_CASE("crc32c: published check values, hardware and portable paths") {
    CHECK(crc32c(as_bytes("123456789")) == 0xE3069283U);
    CHECK(crc32c_portable(as_bytes("123456789")) == 0xE3069283U);
    CHECK(crc32c(byte_span{}) == 0U);

    std::vector<std::byte> zeros(32, std::byte{0});
    std::vector<std::byte> ones(32, std::byte{0xff});
    std::vector<std::byte> ascending(32);
    std::vector<std::byte> descending(32);
    for (std::size_t i = 0; i < 32; ++i) {
        ascending[i] = static_cast<std::byte>(i);
        descending[i] = static_cast<std::byte>(31 - i);
    }
    for (auto* f : {&crc32c, &crc32c_portable}) {
        CHECK(f(zeros, 0) == 0x8A9136AAU);
        CHECK(f(ones, 0) == 0x62A8AB43U);
        CHECK(f(ascending, 0) == 0x46DD794EU);
        CHECK(f(descending, 0) == 0x113FDB5CU);
    }
    MESSAGE("crc32c uses hardware: " << wire::crc32c_uses_hardware());
}

TEST_CASE("crc32c: hardware (three-stream) and portable paths agree on every length and "
          "alignment, and extension equals concatenation") {
    std::mt19937_64 rng(7);
    std::vector<std::byte> data(3 * 8192 * 2 + 3 * 256 + 77);
    for (auto& b : data) {
        b = static_cast<std::byte>(rng());
    }
    for (std::size_t len : {0UL, 1UL, 7UL, 8UL, 9UL, 255UL, 767UL, 768UL, 769UL, 4096UL,
                            3UL * 8192 - 1, 3UL * 8192, 3UL * 8192 + 1, data.size() - 3}) {
        for (std::size_t offset = 0; offset < 3; ++offset) {
            byte_span s(data.data() + offset, len);
            REQUIRE(crc32c(s) == crc32c_portable(s));
        }
    }
    for (std::size_t split : {0UL, 1UL, 100UL, 30000UL, data.size()}) {
        byte_span all(data);
        CHECK(crc32c(all.subspan(split), crc32c(all.first(split))) == crc32c(all));
    }
}

} // namespace
