#include "support/random_messages.hpp"

#include <doctest/doctest.h>

#include <synod/wire/codec.hpp>
#include <synod/wire/frame.hpp>

#include <cstdlib>
#include <string>

namespace {

using namespace synod;
using synod::test::message_generator;

/// Seeds for the property tests: SYNOD_SEEDS overrides the default count.
std::uint64_t property_iterations(std::uint64_t fallback) {
    if (const char* env = std::getenv("SYNOD_SEEDS")) {
        return std::strtoull(env, nullptr, 10);
    }
    return fallback;
}

TEST_CASE("wire: decode(encode(m)) == m for 10,000 random values of every message type") {
    const std::uint64_t per_type = property_iterations(10'000);
    message_generator gen(20261122);
    std::array<std::uint64_t, std::variant_size_v<message>> seen{};
    while (*std::min_element(seen.begin(), seen.end()) < per_type) {
        message m = gen.any();
        ++seen[m.index()];
        auto frame = wire::encode_frame(m);
        auto decoded = wire::decode_frame(frame);
        REQUIRE_MESSAGE(decoded.has_value(),
                        "type " << m.index() << ": " << decoded.error().message());
        REQUIRE(*decoded == m);
        auto size = wire::frame_size(frame);
        REQUIRE(size.has_value());
        CHECK(*size == frame.size());
    }
}

TEST_CASE("wire: every strict prefix of a valid frame is rejected") {
    message_generator gen(11, {.max_entries = 3, .max_payload = 24});
    for (int i = 0; i < 200; ++i) {
        auto frame = wire::encode_frame(gen.any());
        for (std::size_t n = 0; n < frame.size(); ++n) {
            auto decoded = wire::decode_frame(byte_span(frame).first(n));
            REQUIRE_FALSE(decoded.has_value());
            CHECK(decoded.error() == errc::truncated_input);
        }
    }
}

TEST_CASE("wire: every single-bit flip of a valid frame is rejected") {
    message_generator gen(12, {.max_entries = 3, .max_payload = 24});
    for (int i = 0; i < 100; ++i) {
        auto frame = wire::encode_frame(gen.any());
        for (std::size_t bit = 0; bit < frame.size() * 8; ++bit) {
            auto damaged = frame;
            damaged[bit / 8] ^= static_cast<std::byte>(1U << (bit % 8));
            auto decoded = wire::decode_frame(damaged);
            REQUIRE_MESSAGE(!decoded.has_value(), "bit " << bit << " flipped went unnoticed");
        }
    }
}

/// Builds a frame around an arbitrary body with a correct checksum, so that tests reach the
/// body decoder's own checks rather than stopping at the CRC.
byte_vector frame_around(wire::message_type type, const byte_vector& body,
                         std::uint8_t version = wire::format_version) {
    byte_vector out(wire::frame_header_size);
    wire::byte_writer w(out);
    w.patch(0, static_cast<std::uint32_t>(body.size()));
    w.patch(4, version);
    w.patch(5, static_cast<std::uint8_t>(type));
    w.put_bytes(body);
    w.patch(8, wire::crc32c(byte_span(out).subspan(12), wire::crc32c(byte_span(out).first(8))));
    return out;
}

byte_vector body_of(const message& m) {
    auto frame = wire::encode_frame(m);
    return {frame.begin() + wire::frame_header_size, frame.end()};
}

TEST_CASE("wire: each malformed input gets its own errc") {
    append_request valid{node_id{1}, node_id{2},   term{3}, log_index{4},
                         term{2},    log_index{4}, 9,       {}};
    valid.entries.push_back(
        log_entry{term{3}, log_index{5}, entry_kind::normal, shared_bytes("abc")});
    const auto body = body_of(valid);

    SUBCASE("bad CRC") {
        auto frame = wire::encode_frame(valid);
        frame[8] ^= std::byte{1};
        CHECK(wire::decode_frame(frame).error() == errc::bad_crc);
    }
    SUBCASE("unknown version") {
        auto frame = frame_around(wire::message_type::append_request, body, 2);
        CHECK(wire::decode_frame(frame).error() == errc::unknown_version);
    }
    SUBCASE("unknown message type") {
        CHECK(wire::decode_frame(frame_around(static_cast<wire::message_type>(0), body)).error() ==
              errc::unknown_message_type);
        const auto past_last = static_cast<wire::message_type>(wire::max_message_type + 1);
        CHECK(wire::decode_frame(frame_around(past_last, body)).error() ==
              errc::unknown_message_type);
    }
    SUBCASE("frame larger than max_frame_size is refused from its header alone") {
        auto frame = wire::encode_frame(valid);
        wire::frame_limits small{.max_frame_size = frame.size() - 1};
        CHECK(wire::decode_frame(frame, small).error() == errc::frame_too_large);
        CHECK(wire::frame_size(byte_span(frame).first(12), small).error() == errc::frame_too_large);
        // A header that claims 4 GiB is refused before anything is allocated.
        byte_vector huge(frame.begin(), frame.begin() + 12);
        wire::byte_writer(huge).patch(0, std::uint32_t{0xffffffffU});
        CHECK(wire::frame_size(huge).error() == errc::frame_too_large);
    }
    SUBCASE("trailing bytes after a frame: lengths disagree") {
        auto frame = wire::encode_frame(valid);
        frame.push_back(std::byte{0});
        CHECK(wire::decode_frame(frame).error() == errc::length_mismatch);
    }
    SUBCASE("trailing bytes inside a body: lengths disagree") {
        auto longer = body;
        longer.push_back(std::byte{0});
        CHECK(
            wire::decode_frame(frame_around(wire::message_type::append_request, longer)).error() ==
            errc::length_mismatch);
    }
    SUBCASE("a payload length beyond the body: lengths disagree") {
        auto damaged = body;
        // The payload length of the single entry sits 3 bytes before its 3 payload bytes,
        // which end the body: offset size - 3 - 4.
        wire::byte_writer(damaged).patch(damaged.size() - 7, std::uint32_t{1000});
        CHECK(
            wire::decode_frame(frame_around(wire::message_type::append_request, damaged)).error() ==
            errc::length_mismatch);
    }
    SUBCASE("an entry count that cannot fit the body: lengths disagree, nothing reserved") {
        append_request empty = valid;
        empty.entries.clear();
        auto damaged = body_of(empty);
        wire::byte_writer(damaged).patch(damaged.size() - 4, std::uint32_t{0x7fffffffU});
        CHECK(
            wire::decode_frame(frame_around(wire::message_type::append_request, damaged)).error() ==
            errc::length_mismatch);
    }
    SUBCASE("values out of range") {
        auto bad_bool = body_of(vote_response{node_id{1}, node_id{2}, term{1}, true, false});
        bad_bool[24] = std::byte{2}; // `granted` after from, to, term
        CHECK(
            wire::decode_frame(frame_around(wire::message_type::vote_response, bad_bool)).error() ==
            errc::value_out_of_range);

        auto bad_kind = body;
        bad_kind[bad_kind.size() - 8] = std::byte{7}; // the entry's kind byte
        CHECK(wire::decode_frame(frame_around(wire::message_type::append_request, bad_kind))
                  .error() == errc::value_out_of_range);

        append_request gap = valid;
        gap.entries[0].index = log_index{6}; // not prev_log_index + 1
        CHECK(wire::decode_frame(wire::encode_frame(gap)).error() == errc::value_out_of_range);

        append_request future = valid;
        future.entries[0].term = term{4}; // entry newer than the leader's term
        CHECK(wire::decode_frame(wire::encode_frame(future)).error() == errc::value_out_of_range);

        timeout_now anonymous{no_node, node_id{2}, term{1}};
        CHECK(wire::decode_frame(wire::encode_frame(anonymous)).error() ==
              errc::value_out_of_range);

        auto reserved = wire::encode_frame(valid);
        reserved[6] = std::byte{1};
        CHECK(wire::decode_frame(reserved).error() == errc::value_out_of_range);
    }
}

TEST_CASE("wire: entries and memberships round-trip on their own, as storage uses them") {
    message_generator gen(5);
    for (int i = 0; i < 1000; ++i) {
        auto req = gen.append();
        for (const auto& e : req.entries) {
            byte_vector out;
            wire::encode_entry(e, out);
            auto back = wire::decode_entry(out);
            REQUIRE(back.has_value());
            CHECK(*back == e);
            // A cut inside the fixed fields is truncation; a cut inside the payload leaves
            // its declared length disagreeing with the bytes present.
            auto cut = wire::decode_entry(byte_span(out).first(out.size() - 1)).error();
            CHECK((cut == errc::truncated_input || cut == errc::length_mismatch));
        }
        auto config = gen.config();
        auto encoded = wire::encode_membership(config);
        auto decoded = wire::decode_membership(encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == config);
    }
    CHECK(wire::decode_membership(wire::encode_membership(membership{})).error() ==
          errc::value_out_of_range);
}

} // namespace
