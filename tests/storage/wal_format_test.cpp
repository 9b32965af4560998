#include <doctest/doctest.h>

#include <synod/storage/wal_format.hpp>

#include <bit>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using namespace synod;
namespace wal = storage::wal;

log_entry entry(std::uint64_t index, std::uint64_t t, std::string payload) {
    return log_entry{term{t}, log_index{index}, entry_kind::config, shared_bytes(payload)};
}

/// Parses the record at `at` of `bytes` (whose first byte is at file offset `base`) fully.
log_entry read_entry(const byte_vector& bytes, std::size_t at) {
    auto h = wal::parse_record_header(byte_span(bytes).subspan(at, wal::record_header_size));
    REQUIRE(h.has_value());
    REQUIRE(h->type == wal::record_type::entry);
    REQUIRE(wal::record_intact(*h, byte_span(bytes).subspan(at, h->size())));
    const byte_span body = byte_span(bytes).subspan(at + wal::record_header_size, h->body_length);
    auto e = wal::decode_entry_body(body, h->mask);
    REQUIRE(e.has_value());
    return e.value();
}

TEST_CASE("wal_format: an entry record round-trips, is 16-byte aligned, and its position reads "
          "without decoding the payload") {
    byte_vector out;
    const log_entry e = entry(42, 7, "hello");
    wal::append_entry_record(out, 32, e);
    CHECK(out.size() % wal::record_alignment == 0);
    CHECK(out.size() == wal::record_size(wal::entry_body_prefix + 5));
    CHECK(read_entry(out, 0) == e);
    auto h = wal::parse_record_header(out);
    REQUIRE(h.has_value());
    const auto pos = wal::peek_entry(byte_span(out).subspan(wal::record_header_size), h->mask);
    CHECK(pos.index == log_index{42});
    CHECK(pos.term == term{7});
}

TEST_CASE("wal_format: a hard-state record round-trips with its sequence number") {
    byte_vector out;
    const hard_state hs{term{9}, node_id{2}, log_index{77}};
    wal::append_hard_state_record(out, 4000, 123, hs);
    auto h = wal::parse_record_header(out);
    REQUIRE(h.has_value());
    CHECK(h->type == wal::record_type::hard_state);
    auto r = wal::decode_hard_state_body(
        byte_span(out).subspan(wal::record_header_size, h->body_length), h->mask);
    REQUIRE(r.has_value());
    CHECK(r->sequence == 123);
    CHECK(r->state == hs);
}

TEST_CASE("wal_format: a zero-filled payload is masked so that no sector of the record after its "
          "first holds fewer than two set bits") {
    for (std::uint64_t at : {32U, 496U, 500U + 12U, 1008U}) {
        byte_vector out;
        const log_entry e = entry(1, 1, std::string(2000, '\0'));
        wal::append_entry_record(out, at, e);
        auto h = wal::parse_record_header(out);
        REQUIRE(h.has_value());
        CHECK(h->mask != 0);
        for (std::uint64_t s = (at / wal::sector_size + 1) * wal::sector_size; s < at + out.size();
             s += wal::sector_size) {
            int bits = 0;
            for (std::uint64_t i = s; i < std::min(s + wal::sector_size, at + out.size()); ++i) {
                bits += std::popcount(std::to_integer<unsigned>(out[i - at]));
            }
            CHECK(bits >= 2);
        }
        CHECK(read_entry(out, 0) == e); // and it decodes back to zeros
    }
    byte_vector plain;
    wal::append_entry_record(plain, 32, entry(1, 1, std::string(2000, 'x')));
    CHECK(wal::parse_record_header(plain)->mask == 0); // ordinary data is stored as is
}

TEST_CASE("wal_format: every single-bit flip in a record is rejected, and one in the length "
          "already by the header check") {
    byte_vector out;
    wal::append_entry_record(out, 32, entry(5, 2, "abc"));
    for (std::size_t byte = 0; byte < out.size(); ++byte) {
        for (unsigned bit = 0; bit < 8; ++bit) {
            byte_vector damaged = out;
            damaged[byte] ^= static_cast<std::byte>(1U << bit);
            auto h = wal::parse_record_header(damaged);
            if (byte >= 8 && byte < 16) {
                CHECK_FALSE(h.has_value()); // the length is never trusted wrong
            }
            CHECK((!h || !wal::record_intact(*h, damaged)));
        }
    }
}

TEST_CASE("wal_format: verify_records takes intact records in order, three or more at a time, "
          "and stops at the first damaged one") {
    // Records of different sizes (so the three interleaved checksums differ in length), a
    // hard-state record among them, and payloads long enough to need masks.
    byte_vector bytes;
    std::vector<std::size_t> starts;
    for (std::uint64_t i = 1; i <= 40; ++i) {
        starts.push_back(bytes.size());
        if (i % 7 == 0) {
            wal::append_hard_state_record(bytes, bytes.size(), i,
                                          hard_state{term{i}, node_id{2}, log_index{i}});
        } else {
            wal::append_entry_record(bytes, bytes.size(),
                                     entry(i, 3, std::string(i * 37 % 1500, char('a' + i % 26))));
        }
    }
    auto run = [&](const byte_vector& b, std::size_t from, std::size_t refuse_at) {
        std::vector<std::size_t> taken;
        const std::size_t stop = wal::verify_records(
            b, from, [&](std::size_t at, const wal::record_header& h, byte_span body) {
                CHECK(body.data() == b.data() + at + wal::record_header_size);
                CHECK(body.size() == h.body_length);
                if (at == refuse_at) {
                    return false;
                }
                taken.push_back(at);
                return true;
            });
        return std::pair(stop, taken);
    };
    // Intact: taken three at a time, until fewer than three records are left.
    auto [stop, taken] = run(bytes, 0, SIZE_MAX);
    CHECK(stop == starts[39]);
    CHECK(taken == std::vector<std::size_t>(starts.begin(), starts.begin() + 39));
    // A refusal stops the run at that record.
    std::tie(stop, taken) = run(bytes, starts[3], starts[10]);
    CHECK(stop == starts[10]);
    CHECK(taken.size() == 7);
    // A flipped bit in any of the three records of a group stops the run at that record.
    for (std::size_t k : {std::size_t{12}, std::size_t{13}, std::size_t{14}, std::size_t{20}}) {
        byte_vector damaged = bytes;
        damaged[starts[k] + wal::record_header_size + 3] ^= std::byte{0x10};
        std::tie(stop, taken) = run(damaged, 0, SIZE_MAX);
        CHECK(stop == starts[k]);
        CHECK(taken.size() == k);
    }
    // Past the end, or a damaged header: nothing is taken.
    CHECK(run(bytes, bytes.size(), SIZE_MAX).first == bytes.size());
    byte_vector header_damaged = bytes;
    header_damaged[starts[0] + 9] ^= std::byte{1};
    CHECK(run(header_damaged, 0, SIZE_MAX).first == 0);
}

TEST_CASE("wal_format: looks_torn accepts lost sectors and a cut-off file, and rejects a flipped "
          "bit") {
    byte_vector file(wal::segment_header_size, std::byte{1});
    for (std::uint64_t i = 1; i <= 6; ++i) {
        wal::append_entry_record(file, file.size(), entry(i, 1, std::string(300, 'p')));
    }
    const std::uint64_t second =
        wal::segment_header_size + wal::record_size(wal::entry_body_prefix + 300);
    const std::uint64_t end_of_second = second + wal::record_size(wal::entry_body_prefix + 300);
    // A flip inside the second record, anywhere: not torn.
    for (std::uint64_t at = second; at < end_of_second; at += 37) {
        byte_vector damaged = file;
        damaged[at] ^= std::byte{0x10};
        CHECK_FALSE(wal::looks_torn(damaged, second, end_of_second));
    }
    // The sector after the one the record starts in was lost.
    byte_vector lost = file;
    const std::uint64_t next_sector = (second / wal::sector_size + 1) * wal::sector_size;
    std::fill(lost.begin() + static_cast<std::ptrdiff_t>(next_sector),
              lost.begin() + static_cast<std::ptrdiff_t>(next_sector + wal::sector_size),
              std::byte{0});
    CHECK(wal::looks_torn(lost, second, end_of_second));
    // The record's first sector was lost (its header reads as zeros).
    byte_vector zero_head = file;
    std::fill(zero_head.begin() + static_cast<std::ptrdiff_t>(second),
              zero_head.begin() + static_cast<std::ptrdiff_t>(next_sector), std::byte{0});
    CHECK(wal::looks_torn(zero_head, second, std::nullopt));
    // The file ends inside the record.
    byte_vector cut(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(end_of_second - 10));
    CHECK(wal::looks_torn(cut, second, end_of_second));
    byte_vector short_header(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(second + 7));
    CHECK(wal::looks_torn(short_header, second, std::nullopt));
}

TEST_CASE("wal_format: a segment header round-trips; damage and unknown versions are told apart") {
    byte_vector h;
    wal::append_segment_header(h, log_index{1234});
    REQUIRE(h.size() == wal::segment_header_size);
    log_index first;
    CHECK(wal::parse_segment_header(h, first) == wal::header_status::ok);
    CHECK(first == log_index{1234});
    byte_vector damaged = h;
    damaged[17] ^= std::byte{4};
    CHECK(wal::parse_segment_header(damaged, first) == wal::header_status::damaged);
    byte_vector newer;
    wal::format_detail::put_magic(newer, wal::segment_magic);
    wal::format_detail::put<std::uint32_t>(newer, 2);
    wal::format_detail::put<std::uint32_t>(newer, 32);
    wal::format_detail::put<std::uint64_t>(newer, 1);
    wal::format_detail::put<std::uint32_t>(newer, 0);
    wal::format_detail::put<std::uint32_t>(newer, wire::crc32c(newer));
    CHECK(wal::parse_segment_header(newer, first) == wal::header_status::unsupported_version);
}

TEST_CASE("wal_format: segment file names sort in segment order and parse back") {
    CHECK(wal::segment_file_name(1) == "00000000000000000001.log");
    CHECK(wal::segment_file_name(42) < wal::segment_file_name(100));
    CHECK(wal::parse_segment_file_name("00000000000000000042.log") == 42U);
    CHECK_FALSE(wal::parse_segment_file_name("0000000000000000042.log").has_value());
    CHECK_FALSE(wal::parse_segment_file_name("0000000000000000004x.log").has_value());
    CHECK_FALSE(wal::parse_segment_file_name("00000000000000000042.tmp").has_value());
}

TEST_CASE("wal_format: the hard_state file round-trips; damage is corrupt_storage, a newer "
          "version unknown_version") {
    const wal::state_file s{7, {term{3}, node_id{1}, log_index{20}}, log_index{11}, term{2}};
    const byte_vector bytes = wal::encode_state_file(s);
    CHECK(bytes.size() == wal::state_file_size);
    wal::state_file back;
    std::string why;
    REQUIRE_FALSE(wal::decode_state_file(bytes, back, why));
    CHECK(back == s);
    for (std::size_t byte = 0; byte < bytes.size(); ++byte) {
        byte_vector damaged = bytes;
        damaged[byte] ^= std::byte{1};
        CHECK(wal::decode_state_file(damaged, back, why) == errc::corrupt_storage);
    }
    byte_vector short_file(bytes.begin(), bytes.end() - 1);
    CHECK(wal::decode_state_file(short_file, back, why) == errc::corrupt_storage);
    CHECK(why.find("size") != std::string::npos);
    byte_vector newer = bytes;
    wal::format_detail::store<std::uint32_t>(newer.data() + 8, 2);
    wal::format_detail::store<std::uint32_t>(newer.data() + 64,
                                             wire::crc32c(byte_span(newer).first(64)));
    CHECK(wal::decode_state_file(newer, back, why) == errc::unknown_version);
    byte_vector zero_start = bytes;
    wal::format_detail::store<std::uint64_t>(zero_start.data() + 48, 0);
    wal::format_detail::store<std::uint32_t>(zero_start.data() + 64,
                                             wire::crc32c(byte_span(zero_start).first(64)));
    CHECK(wal::decode_state_file(zero_start, back, why) == errc::corrupt_storage);
}

TEST_CASE("wal_format: the snapshot file round-trips; damage is corrupt_storage") {
    const snapshot s{{log_index{10}, term{4}, membership({node_id{1}, node_id{2}}, {node_id{5}})},
                     shared_bytes("machine state")};
    const byte_vector bytes = wal::snapshot_file(s).bytes();
    snapshot back;
    std::string why;
    REQUIRE_FALSE(wal::decode_snapshot_file(bytes, back, why));
    CHECK(back == s);
    for (std::size_t byte = 0; byte < bytes.size(); ++byte) {
        byte_vector damaged = bytes;
        damaged[byte] ^= std::byte{0x80};
        CHECK(wal::decode_snapshot_file(damaged, back, why) == errc::corrupt_storage);
    }
    CHECK(wal::decode_snapshot_file(byte_span(bytes).first(20), back, why) ==
          errc::corrupt_storage);
    const snapshot empty{{log_index{1}, term{1}, membership{}}, shared_bytes{}};
    REQUIRE_FALSE(wal::decode_snapshot_file(wal::snapshot_file(empty).bytes(), back, why));
    CHECK(back == empty);
}

} // namespace
