#include <doctest/doctest.h>

#include "storage/file_log_fixtures.hpp"
#include "storage/log_store_conformance.hpp"

#include <synod/storage/file_log.hpp>
#include <synod/storage/recording_files.hpp>
#include <synod/storage/wal_format.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>

SYNOD_LOG_STORE_CONFORMANCE(synod::test::file_log_fixture, synod::test::recording_file_log_fixture,
                            synod::test::deferred_file_log_fixture,
                            synod::test::threaded_file_log_fixture);

namespace {

using namespace synod;
using storage::file_op;
using storage::recording_files;
using test::conformance::make_entries;
using test::conformance::make_snapshot;
using test::conformance::read_all;
using recorded_log = storage::basic_file_log<recording_files>;

const std::string seg1 = "/log/" + storage::wal::segment_file_name(1);
const std::string seg2 = "/log/" + storage::wal::segment_file_name(2);

/// Files that grow with every flush (no preallocation) unless asked: most tests here check
/// file sizes and the calls the log makes; the preallocation tests ask for it.
storage::file_log_options options(std::uint64_t segment_bytes = std::uint64_t{1} << 16,
                                  std::size_t cache_bytes = std::size_t{1} << 20,
                                  std::uint64_t preallocate_bytes = 0) {
    storage::file_log_options o;
    o.directory = "/log";
    o.segment_bytes = segment_bytes;
    o.cache_bytes = cache_bytes;
    o.preallocate_bytes = preallocate_bytes;
    return o;
}

std::unique_ptr<recorded_log> open_log(const recording_files& disk,
                                       storage::file_log_options o = options()) {
    auto log = std::make_unique<recorded_log>(std::move(o), disk);
    const std::error_code ec = log->recover();
    REQUIRE_MESSAGE(!ec, log->last_error_detail());
    return log;
}

/// Recovers a log on `disk` that is expected to refuse; returns the error and its detail.
std::pair<std::error_code, std::string> refused(const recording_files& disk,
                                                storage::file_log_options o = options()) {
    recorded_log log(std::move(o), disk);
    const std::error_code ec = log.recover();
    return {ec, log.last_error_detail()};
}

std::error_code flush(recorded_log& log) {
    std::optional<std::error_code> result;
    log.flush([&](std::error_code ec) { result = ec; });
    REQUIRE(result.has_value()); // inline mode: the callback runs inside flush
    return *result;
}

std::string file_name(const std::string& path) {
    return path.substr(path.find_last_of('/') + 1);
}

/// Record size of an entry made by make_entries with a `payload`-byte payload.
constexpr std::uint64_t entry_record(std::size_t payload) {
    return storage::wal::record_size(storage::wal::entry_body_prefix + payload);
}

TEST_CASE("file_log: segments are named by number and roll at segment_bytes; compaction adds "
          "the hard_state and snapshot files and removes covered segments") {
    recording_files disk;
    auto log = open_log(disk, options(1024));
    REQUIRE_FALSE(log->append(make_entries(1, 20, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    // 6 records of 144 bytes fit behind the 32-byte header of a 1 KiB segment.
    CHECK(log->segment_count() == 4);
    CHECK(disk.files() == std::vector<std::string>{"/log/00000000000000000001.log",
                                                   "/log/00000000000000000002.log",
                                                   "/log/00000000000000000003.log",
                                                   "/log/00000000000000000004.log", "/log/LOCK"});
    CHECK(disk.contents(seg1)->size() == 32 + 6 * entry_record(100));
    REQUIRE_FALSE(log->save_snapshot(make_snapshot(13, 1)));
    REQUIRE_FALSE(log->compact_prefix(log_index{13}));
    REQUIRE_FALSE(flush(*log));
    // Segments 1 and 2 (entries 1-12) are gone; segment 3 (13-18) holds 14-18 still.
    CHECK(disk.files() == std::vector<std::string>{"/log/00000000000000000003.log",
                                                   "/log/00000000000000000004.log", "/log/LOCK",
                                                   "/log/hard_state", "/log/snapshot"});
    log.reset();
    log = open_log(disk.crash_image(), options(1024));
    CHECK(log->first_index() == log_index{14});
    CHECK(read_all(*log, log_index{14}, log_index{21}) == make_entries(14, 20, 1, 100));
}

TEST_CASE("file_log: group commit — one fdatasync covers every entry and hard state written "
          "before the flush") {
    recording_files disk;
    auto log = open_log(disk);
    disk.clear_trace();
    for (std::uint64_t i = 1; i <= 100; ++i) {
        REQUIRE_FALSE(log->append(make_entries(i, i, 1)));
    }
    REQUIRE_FALSE(log->save_hard_state({term{1}, node_id{1}, log_index{50}}));
    CHECK(disk.trace().empty()); // appends only buffer
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.count(file_op::write) == 1);
    CHECK(disk.count(file_op::sync) == 1);
    CHECK(disk.count(file_op::sync_directory) == 1); // the new segment's name
    disk.clear_trace();
    REQUIRE_FALSE(log->append(make_entries(101, 150, 1)));
    REQUIRE_FALSE(log->save_hard_state({term{1}, node_id{1}, log_index{120}}));
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.count(file_op::write) == 1);
    CHECK(disk.count(file_op::sync) == 1);
    CHECK(disk.count(file_op::sync_directory) == 0);
    disk.clear_trace();
    REQUIRE_FALSE(log->save_hard_state({term{1}, node_id{1}, log_index{120}})); // unchanged
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.trace().empty()); // nothing new: no I/O at all
    CHECK(log->durable_last_index() == log_index{150});
    CHECK(log->flushes_completed() == 3);
}

TEST_CASE("file_log: preallocate_bytes extends the last segment with zeros ahead of its "
          "records, so most flushes write in place without changing the file's size; a "
          "closed segment is cut back to its records before the next one is created") {
    recording_files disk;
    // Records of 144 bytes: a 2000-byte segment takes 13 behind its 32-byte header.
    auto log = open_log(disk, options(2000, std::size_t{1} << 20, 1024));
    REQUIRE_FALSE(log->append(make_entries(1, 2, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    const std::uint64_t header = storage::wal::segment_header_size;
    CHECK(disk.contents(seg1)->size() == header + 2 * entry_record(100) + 1024);
    // The next flushes land in the zeros: one write, one fdatasync, the size unchanged.
    for (std::uint64_t i = 3; i <= 9; ++i) {
        disk.clear_trace();
        REQUIRE_FALSE(log->append(make_entries(i, i, 1, 100)));
        REQUIRE_FALSE(flush(*log));
        CHECK(disk.count(file_op::write) == 1);
        CHECK(disk.count(file_op::truncate) == 0);
        CHECK(disk.count(file_op::sync) == 1);
        CHECK(disk.contents(seg1)->size() == header + 2 * entry_record(100) + 1024);
    }
    // Crossing the zeros extends again, up to segment_bytes at most.
    REQUIRE_FALSE(log->append(make_entries(10, 10, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.contents(seg1)->size() == 2000);
    // 13 records fill the segment; the 14th opens segment 2, and segment 1 is cut back to
    // its records, durably, before segment 2's file exists.
    REQUIRE_FALSE(log->append(make_entries(11, 14, 1, 100)));
    disk.clear_trace();
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.contents(seg1)->size() == header + 13 * entry_record(100));
    CHECK(disk.contents(seg2)->size() == header + entry_record(100) + 1024);
    std::vector<std::string> calls;
    for (const storage::file_event& e : disk.trace()) {
        calls.push_back(std::string(to_string(e.op)) + " " + file_name(e.path));
    }
    const auto at = [&](const std::string& call) {
        return std::find(calls.begin(), calls.end(), call) - calls.begin();
    };
    const std::string name1 = storage::wal::segment_file_name(1);
    const std::string name2 = storage::wal::segment_file_name(2);
    CHECK(at("truncate " + name1) < at("sync " + name1));
    CHECK(at("sync " + name1) < at("open " + name2));
    // Recovery reads the zeros as the end of the records, cuts them off, and continues there.
    log.reset();
    const recording_files image = disk.crash_image();
    log = open_log(image, options(2000, std::size_t{1} << 20, 1024));
    CHECK(log->last_index() == log_index{14});
    CHECK(image.contents(seg2)->size() == header + entry_record(100));
    CHECK(read_all(*log, log_index{1}, log_index{15}) == make_entries(1, 14, 1, 100));
    REQUIRE_FALSE(log->append(make_entries(15, 16, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    log.reset();
    log = open_log(image.crash_image());
    CHECK(read_all(*log, log_index{1}, log_index{17}) == make_entries(1, 16, 1, 100));
}

TEST_CASE("file_log: a flipped bit in the zeros past the last record is no damage — nothing was "
          "ever stored there — and recovery keeps every entry; one in a record still is") {
    recording_files disk;
    {
        auto log = open_log(disk, options(1 << 16, std::size_t{1} << 20, 4096));
        REQUIRE_FALSE(log->append(make_entries(1, 5, 1, 100)));
        REQUIRE_FALSE(flush(*log));
    }
    const std::uint64_t end = storage::wal::segment_header_size + 5 * entry_record(100);
    REQUIRE(disk.contents(seg1)->size() == end + 4096);
    for (const std::uint64_t offset : {end, end + 1, end + 15, end + 511, end + 2000, end + 4095}) {
        for (const unsigned bit : {0U, 7U}) {
            INFO("bit " << bit << " at offset " << offset);
            recording_files image = disk.crash_image();
            image.flip_bit(seg1, offset, bit);
            auto log = open_log(image);
            CHECK(log->last_index() == log_index{5});
            CHECK(read_all(*log, log_index{1}, log_index{6}) == make_entries(1, 5, 1, 100));
            CHECK(image.contents(seg1)->size() == end);
        }
    }
    recording_files image = disk.crash_image();
    image.flip_bit(seg1, end - 20, 3);
    const auto [ec, detail] = refused(image);
    CHECK(ec == errc::corrupt_storage);
    CHECK(detail.find(storage::wal::segment_file_name(1) + " offset ") != std::string::npos);
}

TEST_CASE("file_log: zeros a full disk half-accepted and that cannot be cut off still leave "
          "the segment cut back to its records when it closes, so it recovers") {
    recording_files disk;
    auto log = open_log(disk, options(2000, std::size_t{1} << 20, 1024));
    REQUIRE_FALSE(log->append(make_entries(1, 2, 1, 100)));
    const std::uint64_t end = storage::wal::segment_header_size + 2 * entry_record(100);
    disk.set_capacity(end + 300); // the records and 300 bytes of zeros fit, not 1,024
    disk.set_fault([](const storage::file_event& e) -> std::error_code {
        return e.op == file_op::truncate ? std::make_error_code(std::errc::io_error)
                                         : std::error_code{};
    });
    REQUIRE_FALSE(flush(*log));
    disk.set_fault(nullptr);
    disk.set_capacity(std::nullopt);
    CHECK(disk.contents(seg1)->size() == end + 300); // the zeros that landed stay
    // A record too large for what is left opens segment 2: segment 1, holding 2 records and
    // stray zeros after them, is cut back to the records.
    REQUIRE_FALSE(log->append(make_entries(3, 3, 1, 1800)));
    REQUIRE_FALSE(flush(*log));
    CHECK(log->segment_count() == 2);
    CHECK(disk.contents(seg1)->size() == end);
    log.reset();
    log = open_log(disk.crash_image());
    CHECK(read_all(*log, log_index{1}, log_index{3}) == make_entries(1, 2, 1, 100));
    CHECK(log->last_index() == log_index{3});
}

TEST_CASE("file_log: a flush that brings preallocate_bytes of records itself grows the file "
          "without zeros (they would only write every byte twice)") {
    recording_files disk;
    auto log = open_log(disk, options(1 << 16, std::size_t{1} << 20, 1024));
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1, 100))); // 1,440 bytes of records
    REQUIRE_FALSE(flush(*log));
    const std::uint64_t end = storage::wal::segment_header_size + 10 * entry_record(100);
    CHECK(disk.contents(seg1)->size() == end);
    REQUIRE_FALSE(log->append(make_entries(11, 11, 1, 100))); // a small one: zeros again
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.contents(seg1)->size() == end + entry_record(100) + 1024);
}

TEST_CASE("file_log: two set bits in the zeros right after the last record are refused as "
          "corrupt_storage — more than one flip can explain") {
    recording_files disk;
    {
        auto log = open_log(disk, options(1 << 16, std::size_t{1} << 20, 4096));
        REQUIRE_FALSE(log->append(make_entries(1, 5, 1, 100)));
        REQUIRE_FALSE(flush(*log));
    }
    const std::uint64_t end = storage::wal::segment_header_size + 5 * entry_record(100);
    recording_files image = disk.crash_image();
    image.flip_bit(seg1, end + 2, 1);
    image.flip_bit(seg1, end + 9, 4);
    const auto [ec, detail] = refused(image);
    CHECK(ec == errc::corrupt_storage);
    CHECK(detail.find(std::to_string(end)) != std::string::npos);
}

TEST_CASE("file_log: with no room for the zeros ahead of the records, the flush still "
          "succeeds and the file holds just the records") {
    recording_files disk;
    auto log = open_log(disk, options(1 << 16, std::size_t{1} << 20, 1 << 20));
    REQUIRE_FALSE(log->append(make_entries(1, 3, 1, 100)));
    const std::uint64_t end = storage::wal::segment_header_size + 3 * entry_record(100);
    disk.set_capacity(end + 4096); // the records fit, a MiB of zeros does not
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.contents(seg1)->size() == end);
    // Once refused, the segment stops asking: retrying would fill the disk at every flush.
    disk.set_capacity(std::nullopt);
    disk.clear_trace();
    REQUIRE_FALSE(log->append(make_entries(4, 4, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.count(file_op::write) == 1);
    CHECK(disk.contents(seg1)->size() == end + entry_record(100));
    log.reset();
    log = open_log(disk.crash_image());
    CHECK(read_all(*log, log_index{1}, log_index{5}) == make_entries(1, 4, 1, 100));
}

TEST_CASE("file_log: truncate_suffix is durable before it returns, across segments, and keeps "
          "a hard state whose record it cuts") {
    recording_files disk;
    auto log = open_log(disk, options(1024));
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1, 100)));
    REQUIRE_FALSE(log->save_hard_state({term{4}, node_id{2}, log_index{3}}));
    REQUIRE_FALSE(flush(*log));
    CHECK(disk.exists(seg2));
    REQUIRE_FALSE(log->truncate_suffix(log_index{5}));
    // No flush: a crash now must still see the cut, and the hard state.
    auto crashed = disk.crash_image();
    CHECK_FALSE(crashed.exists(seg2));
    CHECK(crashed.exists("/log/hard_state"));
    log.reset();
    log = open_log(crashed, options(1024));
    CHECK(log->last_index() == log_index{4});
    CHECK(log->saved_hard_state() == hard_state{term{4}, node_id{2}, log_index{3}});
    REQUIRE_FALSE(log->append(make_entries(5, 6, 2, 100)));
    REQUIRE_FALSE(flush(*log));
    log.reset();
    log = open_log(crashed.crash_image(), options(1024));
    CHECK(log->term_at(log_index{6}) == term{2});
}

TEST_CASE("file_log: compaction removes segments only after the snapshot and the new start of "
          "the log are durable") {
    recording_files disk;
    auto log = open_log(disk, options(1024));
    REQUIRE_FALSE(log->append(make_entries(1, 20, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    REQUIRE_FALSE(log->save_snapshot(make_snapshot(20, 1)));
    REQUIRE_FALSE(log->compact_prefix(log_index{20}));
    disk.clear_trace();
    REQUIRE_FALSE(flush(*log));
    const auto trace = disk.trace();
    auto position = [&](file_op op, std::string_view path_part) {
        auto it = std::find_if(trace.begin(), trace.end(), [&](const storage::file_event& e) {
            return e.op == op && (e.path.find(path_part) != std::string::npos ||
                                  e.target.find(path_part) != std::string::npos);
        });
        REQUIRE(it != trace.end());
        return it - trace.begin();
    };
    const auto snapshot_in_place = position(file_op::rename, "/log/snapshot");
    const auto start_in_place = position(file_op::rename, "/log/hard_state");
    const auto first_removal = position(file_op::remove, ".log");
    CHECK(snapshot_in_place < start_in_place);
    CHECK(start_in_place < first_removal);
    CHECK(disk.count(file_op::remove) == 4);
    CHECK(log->segment_count() == 0);
    // Appending after compaction past the end starts a new segment at the snapshot's end.
    REQUIRE_FALSE(log->append(make_entries(21, 21, 2)));
    REQUIRE_FALSE(flush(*log));
    log.reset();
    log = open_log(disk.crash_image(), options(1024));
    CHECK(log->first_index() == log_index{21});
    CHECK(log->term_at(log_index{20}) == term{1});
    CHECK(log->term_at(log_index{21}) == term{2});
}

TEST_CASE("file_log: a failed fdatasync fails the log for good (storage_failure); what was "
          "flushed before survives") {
    recording_files disk;
    std::string reported;
    storage::file_log_options o = options();
    o.on_error = [&](std::error_code ec, std::string_view detail) {
        CHECK(ec == errc::storage_failure);
        reported = detail;
    };
    auto log = open_log(disk, std::move(o));
    REQUIRE_FALSE(log->append(make_entries(1, 3, 1)));
    REQUIRE_FALSE(flush(*log));
    REQUIRE_FALSE(log->append(make_entries(4, 6, 1)));
    disk.fail_next(file_op::sync, std::make_error_code(std::errc::io_error));
    CHECK(flush(*log) == errc::storage_failure);
    CHECK(log->last_error_detail() ==
          "fdatasync segment 00000000000000000001.log: Input/output error");
    CHECK(reported == log->last_error_detail());
    CHECK(log->failure() == errc::storage_failure);
    // After a failed fsync the page cache is unknown: nothing more is written.
    CHECK(log->append(make_entries(7, 7, 1)) == errc::storage_failure);
    CHECK(log->truncate_suffix(log_index{2}) == errc::storage_failure);
    CHECK(log->save_hard_state({term{2}, no_node, log_index{0}}) == errc::storage_failure);
    CHECK(log->save_snapshot(make_snapshot(3, 1)) == errc::storage_failure);
    CHECK(log->compact_prefix(log_index{1}) == errc::storage_failure);
    CHECK(flush(*log) == errc::storage_failure);
    CHECK(log->durable_last_index() == log_index{3});
    // Reads still work.
    CHECK(read_all(*log, log_index{1}, log_index{7}).size() == 6);
    log.reset();
    log = open_log(disk.crash_image());
    CHECK(log->last_index() == log_index{3});
}

TEST_CASE("file_log: a failed write is storage_failure, and the partial write is taken back") {
    recording_files disk;
    auto log = open_log(disk);
    REQUIRE_FALSE(log->append(make_entries(1, 3, 1)));
    REQUIRE_FALSE(flush(*log));
    const auto size_before = disk.contents(seg1)->size();
    REQUIRE_FALSE(log->append(make_entries(4, 6, 1)));
    disk.fail_next(file_op::write, std::make_error_code(std::errc::io_error));
    CHECK(flush(*log) == errc::storage_failure);
    CHECK(log->last_error_detail().starts_with("write segment 00000000000000000001.log offset "));
    CHECK(disk.contents(seg1)->size() == size_before);
    CHECK(log->append(make_entries(7, 7, 1)) == errc::storage_failure);
}

TEST_CASE("file_log: a full disk fails the flush with disk_full, corrupts nothing, and the log "
          "reopens once space is freed") {
    recording_files disk;
    auto log = open_log(disk);
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1, 200)));
    REQUIRE_FALSE(flush(*log));
    const auto size_before = disk.contents(seg1)->size();
    disk.set_capacity(size_before + 300); // room for one more record, not three
    REQUIRE_FALSE(log->append(make_entries(11, 13, 1, 200)));
    std::error_code first;
    std::error_code second;
    log->flush([&](std::error_code ec) { first = ec; });
    log->flush([&](std::error_code ec) { second = ec; });
    CHECK(first == errc::disk_full);
    CHECK(second == errc::disk_full);
    CHECK(log->last_error_detail().find("No space left on device") != std::string::npos);
    CHECK(disk.contents(seg1)->size() == size_before); // the partial write was taken back
    CHECK(log->append(make_entries(14, 14, 1)) == errc::storage_failure);
    log.reset();
    disk.set_capacity(std::nullopt);
    log = open_log(disk.crash_image());
    CHECK(log->last_index() == log_index{10});
    CHECK(read_all(*log, log_index{1}, log_index{11}) == make_entries(1, 10, 1, 200));
    REQUIRE_FALSE(log->append(make_entries(11, 13, 1, 200)));
    REQUIRE_FALSE(flush(*log));
}

TEST_CASE("file_log: a full disk while replacing the snapshot is disk_full; the old snapshot "
          "stays and no temp file is left") {
    recording_files disk;
    auto log = open_log(disk);
    REQUIRE_FALSE(log->append(make_entries(1, 4, 1)));
    REQUIRE_FALSE(log->save_snapshot(make_snapshot(2, 1, "old")));
    REQUIRE_FALSE(flush(*log));
    disk.set_capacity(disk.contents(seg1)->size() + 200);
    REQUIRE_FALSE(log->save_snapshot(make_snapshot(4, 1, std::string(5000, 'n'))));
    CHECK(flush(*log) == errc::disk_full);
    CHECK(log->last_error_detail().starts_with("write snapshot.tmp offset "));
    CHECK_FALSE(disk.exists("/log/snapshot.tmp"));
    log.reset();
    disk.set_capacity(std::nullopt);
    log = open_log(disk.crash_image());
    CHECK(log->latest_snapshot() == make_snapshot(2, 1, "old"));
}

TEST_CASE("file_log: a failed truncation fails the log (storage_failure)") {
    recording_files disk;
    auto log = open_log(disk);
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1)));
    REQUIRE_FALSE(flush(*log));
    disk.fail_next(file_op::truncate, std::make_error_code(std::errc::io_error));
    CHECK(log->truncate_suffix(log_index{5}) == errc::storage_failure);
    CHECK(log->last_error_detail() == "truncate segment 00000000000000000001.log to " +
                                          std::to_string(32 + 4 * entry_record(8)) +
                                          ": Input/output error");
    CHECK(log->append(make_entries(11, 11, 1)) == errc::storage_failure);
    CHECK(flush(*log) == errc::storage_failure);
}

TEST_CASE("file_log: a truncation that cannot remove a later segment fails the log "
          "(storage_failure)") {
    recording_files disk;
    auto log = open_log(disk, options(1024));
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1, 100)));
    REQUIRE_FALSE(flush(*log));
    disk.fail_next(file_op::remove, std::make_error_code(std::errc::permission_denied));
    CHECK(log->truncate_suffix(log_index{3}) == errc::storage_failure);
    CHECK(log->last_error_detail() == "remove segment 00000000000000000002.log: Permission denied");
    CHECK(log->append(make_entries(11, 11, 1)) == errc::storage_failure);
    log.reset();
    log = open_log(disk.crash_image(), options(1024)); // nothing was cut: all still there
    CHECK(log->last_index() == log_index{10});
}

TEST_CASE("file_log: recovery refuses a damaged record with corrupt_storage naming the file and "
          "offset; the refused log takes no writes") {
    recording_files disk;
    {
        auto log = open_log(disk);
        REQUIRE_FALSE(log->append(make_entries(1, 5, 1, 100)));
        REQUIRE_FALSE(flush(*log));
    }
    const std::uint64_t third = 32 + 2 * entry_record(100);
    disk.flip_bit(seg1, third + 60, 3);
    std::string reported;
    storage::file_log_options o = options();
    o.on_error = [&](std::error_code ec, std::string_view detail) {
        CHECK(ec == errc::corrupt_storage);
        reported = detail;
    };
    recorded_log log(std::move(o), disk);
    CHECK(log.recover() == errc::corrupt_storage);
    CHECK(log.last_error_detail() ==
          "segment 00000000000000000001.log offset " + std::to_string(third) + ": bad CRC");
    CHECK(reported == log.last_error_detail());
    CHECK(log.append(make_entries(1, 1, 1)) == errc::storage_failure);
    std::error_code flushed;
    log.flush([&](std::error_code ec) { flushed = ec; });
    CHECK(flushed == errc::corrupt_storage);
    // The damage stays on disk for an operator: recovery changed nothing.
    CHECK(disk.contents(seg1)->size() == 32 + 5 * entry_record(100));
}

TEST_CASE("file_log: recovery refuses a damaged segment header, a missing segment, damaged "
          "hard_state and snapshot files, and a log start no snapshot covers (corrupt_storage)") {
    recording_files pristine;
    {
        auto log = open_log(pristine, options(1024));
        REQUIRE_FALSE(log->append(make_entries(1, 20, 1, 100)));
        REQUIRE_FALSE(log->save_snapshot(make_snapshot(3, 1)));
        REQUIRE_FALSE(log->compact_prefix(log_index{3}));
        REQUIRE_FALSE(flush(*log));
    }
    SUBCASE("segment header") {
        auto disk = pristine.crash_image();
        disk.flip_bit(seg2, 20, 0);
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail == "segment 00000000000000000002.log offset 0: bad segment header");
    }
    SUBCASE("a segment in the middle is missing") {
        auto disk = pristine.crash_image();
        REQUIRE_FALSE(disk.remove(seg2));
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail == "segment 00000000000000000003.log offset 16: starts at 13, expected 7: "
                        "a segment is missing");
    }
    SUBCASE("the hard_state file") {
        auto disk = pristine.crash_image();
        disk.flip_bit("/log/hard_state", 30, 1);
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail == "hard_state offset 64: bad CRC");
    }
    SUBCASE("the snapshot file") {
        auto disk = pristine.crash_image();
        disk.flip_bit("/log/snapshot", 3, 1);
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail.starts_with("snapshot offset "));
        CHECK(detail.ends_with(": bad CRC"));
    }
    SUBCASE("compacted entries with no snapshot") {
        auto disk = pristine.crash_image();
        REQUIRE_FALSE(disk.remove("/log/snapshot"));
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail == "hard_state offset 48: the log starts at 4 but no snapshot covers the "
                        "entries before it");
    }
    SUBCASE("the first segment starts after the log does") {
        auto disk = pristine.crash_image();
        REQUIRE_FALSE(disk.remove(seg1));
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail == "segment 00000000000000000002.log offset 16: starts at 7 but the log "
                        "starts at 4: entries are missing");
    }
    SUBCASE("a damaged record in a segment that is not the last, even if it looks torn") {
        auto disk = pristine.crash_image();
        auto bytes = *disk.contents(seg1);
        std::fill(bytes.begin() + 512, bytes.end(), std::byte{0}); // a lost sector
        disk.put_durable(seg1, bytes);
        auto [ec, detail] = refused(disk, options(1024));
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail.starts_with("segment 00000000000000000001.log offset "));
    }
}

TEST_CASE("file_log: a segment of a newer format is unknown_version") {
    recording_files disk;
    {
        auto log = open_log(disk);
        REQUIRE_FALSE(log->append(make_entries(1, 2, 1)));
        REQUIRE_FALSE(flush(*log));
    }
    auto bytes = *disk.contents(seg1);
    storage::wal::format_detail::store<std::uint32_t>(bytes.data() + 8, 2);
    storage::wal::format_detail::store<std::uint32_t>(bytes.data() + 28,
                                                      wire::crc32c(byte_span(bytes).first(28)));
    disk.put_durable(seg1, bytes);
    auto [ec, detail] = refused(disk);
    CHECK(ec == errc::unknown_version);
    CHECK(detail == "segment 00000000000000000001.log offset 8: format version is not supported");
}

TEST_CASE("file_log: a torn tail at the end of the last segment is cut off at recovery, and the "
          "log continues there") {
    recording_files pristine;
    {
        auto log = open_log(pristine);
        REQUIRE_FALSE(log->append(make_entries(1, 6, 1, 300)));
        REQUIRE_FALSE(flush(*log));
    }
    const byte_vector good = *pristine.contents(seg1);
    byte_vector tail; // what the next, interrupted flush was writing
    storage::wal::append_entry_record(tail, good.size(), make_entries(7, 7, 1, 900)[0]);
    auto check_recovers_to_6 = [&](const byte_vector& damaged) {
        auto disk = pristine.crash_image();
        disk.put_durable(seg1, damaged);
        auto log = open_log(disk);
        CHECK(log->last_index() == log_index{6});
        CHECK(log->last_error_detail().empty());
        CHECK(disk.contents(seg1)->size() == good.size()); // cut off, durably
        REQUIRE_FALSE(log->append(make_entries(7, 8, 2)));
        REQUIRE_FALSE(flush(*log));
        log.reset();
        log = open_log(disk.crash_image());
        CHECK(log->term_at(log_index{8}) == term{2});
    };
    SUBCASE("the size reached disk, the data did not: zeros") {
        byte_vector damaged = good;
        damaged.resize(good.size() + tail.size());
        check_recovers_to_6(damaged);
    }
    SUBCASE("the record's first sectors reached disk, the file ends inside it") {
        byte_vector damaged = good;
        damaged.insert(damaged.end(), tail.begin(), tail.begin() + 400);
        check_recovers_to_6(damaged);
    }
    SUBCASE("a later sector of the record was lost") {
        byte_vector damaged = good;
        damaged.insert(damaged.end(), tail.begin(), tail.end());
        const std::size_t lost = (good.size() / 512 + 1) * 512;
        std::fill(damaged.begin() + static_cast<std::ptrdiff_t>(lost),
                  damaged.begin() + static_cast<std::ptrdiff_t>(lost + 512), std::byte{0});
        check_recovers_to_6(damaged);
    }
    SUBCASE("fewer bytes than a record header") {
        byte_vector damaged = good;
        damaged.insert(damaged.end(), tail.begin(), tail.begin() + 9);
        check_recovers_to_6(damaged);
    }
    SUBCASE("a segment whose header never reached disk") {
        auto disk = pristine.crash_image();
        disk.put_durable(seg2, byte_vector(32, std::byte{0}));
        auto log = open_log(disk);
        CHECK(log->last_index() == log_index{6});
        CHECK_FALSE(disk.exists(seg2));
    }
}

TEST_CASE("file_log: recovery on two threads (parallel_recovery_bytes) loads the same log, "
          "reports the same first damage or read error with its file and offset, and cuts the "
          "same torn tail") {
    recording_files pristine;
    {
        auto log = open_log(pristine, options(1024));
        for (std::uint64_t i = 1; i <= 120; i += 10) {
            REQUIRE_FALSE(log->append(make_entries(i, i + 9, 1 + i / 40, 37 + i)));
            REQUIRE_FALSE(
                log->save_hard_state({term{1 + i / 40}, node_id{1 + i % 3}, log_index{i}}));
            REQUIRE_FALSE(flush(*log));
        }
    }
    const auto names = pristine.files();
    const auto segment_count = static_cast<std::size_t>(std::count_if(
        names.begin(), names.end(), [](const std::string& n) { return n.ends_with(".log"); }));
    REQUIRE(segment_count > 10);
    const std::string last_segment = "/log/" + storage::wal::segment_file_name(segment_count);
    auto parallel = [] {
        storage::file_log_options o = options(1024);
        o.parallel_recovery_bytes = 0;
        return o;
    };
    auto sequential = [] {
        storage::file_log_options o = options(1024);
        o.parallel_recovery_bytes = UINT64_MAX;
        return o;
    };
    // The same outcome both ways, whatever `damage` did to the disk.
    auto both_ways = [&](auto&& damage) {
        std::pair<std::error_code, std::string> outcome[2];
        std::string logs[2];
        for (int k = 0; k < 2; ++k) {
            auto disk = pristine.crash_image();
            damage(disk);
            recorded_log log(k == 0 ? sequential() : parallel(), disk);
            outcome[k] = {log.recover(), log.last_error_detail()};
            if (!outcome[k].first) {
                std::vector<log_entry> all;
                REQUIRE_FALSE(log.entries(log.first_index(), log.last_index() + 1, SIZE_MAX, all));
                std::ostringstream view;
                view << log.first_index() << ".." << log.last_index() << " "
                     << log.saved_hard_state().current_term << "/"
                     << log.saved_hard_state().voted_for << "/" << log.saved_hard_state().commit
                     << " " << disk.contents(last_segment)->size();
                for (const log_entry& e : all) {
                    view << " " << e.term << ":" << e.payload.size();
                }
                logs[k] = view.str();
            }
        }
        CHECK(outcome[1].first == outcome[0].first);
        CHECK(outcome[1].second == outcome[0].second);
        CHECK(logs[1] == logs[0]);
        return outcome[1];
    };
    SUBCASE("intact") {
        const auto [ec, detail] = both_ways([](recording_files&) {});
        CHECK_FALSE(ec);
        auto log = open_log(pristine.crash_image(), parallel());
        CHECK(log->last_index() == log_index{120});
        CHECK(log->saved_hard_state() == hard_state{term{3}, node_id{1}, log_index{111}});
    }
    SUBCASE("damage in two segments: the first is reported") {
        const auto [ec, detail] = both_ways([&](recording_files& disk) {
            disk.flip_bit("/log/" + storage::wal::segment_file_name(3), 100, 2);
            disk.flip_bit(last_segment, 70, 5);
        });
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail.starts_with("segment " + storage::wal::segment_file_name(3) + " offset "));
    }
    SUBCASE("damage in the last segment only, verified by the helper") {
        const auto [ec, detail] =
            both_ways([&](recording_files& disk) { disk.flip_bit(last_segment, 70, 5); });
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail ==
              "segment " + storage::wal::segment_file_name(segment_count) + " offset 32: bad CRC");
    }
    SUBCASE("a read error in the last segment, verified by the helper") {
        const auto [ec, detail] = both_ways([&](recording_files& disk) {
            // Skips the read of its header while the segments are opened.
            disk.fail_next(file_op::read, std::make_error_code(std::errc::io_error),
                           storage::wal::segment_file_name(segment_count), 1);
        });
        CHECK(ec == errc::storage_failure);
        CHECK(detail == "read segment " + storage::wal::segment_file_name(segment_count) +
                            " offset 0: Input/output error");
    }
    SUBCASE("a read error in the first segment, and damage after it") {
        const auto [ec, detail] = both_ways([&](recording_files& disk) {
            disk.flip_bit(last_segment, 70, 5);
            disk.fail_next(file_op::read, std::make_error_code(std::errc::io_error),
                           storage::wal::segment_file_name(1), 1);
        });
        CHECK(ec == errc::storage_failure);
        CHECK(detail == "read segment " + storage::wal::segment_file_name(1) +
                            " offset 0: Input/output error");
    }
    SUBCASE("a segment missing in the middle") {
        const auto [ec, detail] = both_ways([&](recording_files& disk) {
            disk.remove("/log/" + storage::wal::segment_file_name(5));
        });
        CHECK(ec == errc::corrupt_storage);
        CHECK(detail.find("a segment is missing") != std::string::npos);
    }
    SUBCASE("a torn tail in the last segment is cut off") {
        const byte_vector good = *pristine.contents(last_segment);
        const auto [ec, detail] = both_ways([&](recording_files& disk) {
            byte_vector torn = good;
            torn.resize(good.size() + 700); // the size reached disk, the data did not
            disk.put_durable(last_segment, torn);
        });
        CHECK_FALSE(ec);
    }
}

TEST_CASE("file_log: entries evicted from the cache are read back from disk; damage there is "
          "corrupt_storage, an I/O error storage_failure, and term_at never reads") {
    recording_files disk;
    auto log = open_log(disk, options(std::uint64_t{1} << 16, 0));
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1, 50)));
    CHECK(log->cached_entries() == 10); // not durable yet: only in memory
    REQUIRE_FALSE(flush(*log));
    CHECK(log->cached_entries() == 0);
    disk.clear_trace();
    for (std::uint64_t i = 0; i <= 10; ++i) {
        CHECK(log->term_at(log_index{i}) == term{i == 0 ? 0U : 1U});
    }
    CHECK(disk.trace().empty());
    CHECK(read_all(*log, log_index{3}, log_index{9}) == make_entries(3, 8, 1, 50));
    CHECK(disk.count(file_op::read) == 1); // one read for the whole range

    disk.fail_next(file_op::read, std::make_error_code(std::errc::io_error));
    std::vector<log_entry> out;
    CHECK(log->entries(log_index{1}, log_index{3}, SIZE_MAX, out) == errc::storage_failure);
    CHECK(log->last_error_detail() ==
          "read segment 00000000000000000001.log offset 32: Input/output error");

    const std::uint64_t fifth = 32 + 4 * entry_record(50);
    disk.flip_bit(seg1, fifth + 40, 5);
    out.clear();
    CHECK(log->entries(log_index{4}, log_index{7}, SIZE_MAX, out) == errc::corrupt_storage);
    CHECK(log->last_error_detail() ==
          "segment 00000000000000000001.log offset " + std::to_string(fifth) + ": bad CRC");
    disk.flip_bit(seg1, fifth + 40, 5);
    out.clear();
    CHECK_FALSE(log->entries(log_index{4}, log_index{7}, SIZE_MAX, out));
    CHECK(out.size() == 3);
}

TEST_CASE("file_log: hard-state records between entries do not disturb reading entries back "
          "from disk") {
    recording_files disk;
    auto log = open_log(disk, options(std::uint64_t{1} << 16, 0));
    std::vector<log_entry> all;
    for (std::uint64_t i = 1; i <= 12; ++i) {
        const auto e = make_entries(i, i, 1, 30 * i);
        REQUIRE_FALSE(log->append(e));
        all.push_back(e[0]);
        REQUIRE_FALSE(log->save_hard_state({term{1}, node_id{1}, log_index{i}}));
    }
    REQUIRE_FALSE(flush(*log));
    CHECK(log->cached_entries() == 0);
    CHECK(read_all(*log, log_index{1}, log_index{13}) == all);
    log.reset();
    log = open_log(disk.crash_image(), options(std::uint64_t{1} << 16, 0));
    CHECK(read_all(*log, log_index{1}, log_index{13}) == all);
    CHECK(log->saved_hard_state().commit == log_index{12});
}

TEST_CASE("file_log: invalid options are invalid_argument; a log not recovered refuses writes "
          "(storage_failure)") {
    recording_files disk;
    {
        storage::file_log_options o = options();
        o.directory = "";
        auto [ec, detail] = refused(disk, std::move(o));
        CHECK(ec == errc::invalid_argument);
        CHECK(detail == "options.directory is empty");
    }
    {
        auto [ec, detail] = refused(disk, options(100));
        CHECK(ec == errc::invalid_argument);
        CHECK(detail == "options.segment_bytes must be between 512 and 4294967295, is 100");
    }
    {
        storage::file_log_options o = options();
        o.own_io_thread = true;
        auto [ec, detail] = refused(disk, std::move(o));
        CHECK(ec == errc::invalid_argument);
        CHECK(detail == "options.post is required when flush work runs off the node's thread");
    }
    for (std::size_t flushes : {std::size_t{0}, std::size_t{65}}) {
        storage::file_log_options o = options();
        o.max_flushes_in_flight = flushes;
        auto [ec, detail] = refused(disk, std::move(o));
        CHECK(ec == errc::invalid_argument);
        CHECK(detail == "options.max_flushes_in_flight must be between 1 and 64, is " +
                            std::to_string(flushes));
    }
    recorded_log never_recovered(options(), disk);
    CHECK(never_recovered.append(make_entries(1, 1, 1)) == errc::storage_failure);
    std::error_code flushed;
    never_recovered.flush([&](std::error_code ec) { flushed = ec; });
    CHECK(flushed == errc::storage_failure);
}

TEST_CASE("file_log: a snapshot older than the compacted prefix is invalid_argument") {
    recording_files disk;
    auto log = open_log(disk);
    REQUIRE_FALSE(log->append(make_entries(1, 10, 1)));
    REQUIRE_FALSE(log->save_snapshot(make_snapshot(6, 1)));
    REQUIRE_FALSE(log->compact_prefix(log_index{6}));
    CHECK(log->save_snapshot(make_snapshot(4, 1)) == errc::invalid_argument);
    CHECK(log->save_snapshot(make_snapshot(5, 1)) == errc::invalid_argument);
    CHECK_FALSE(log->save_snapshot(make_snapshot(6, 1))); // still covers the start
    CHECK(log->latest_snapshot() == make_snapshot(6, 1));
}

TEST_CASE("file_log: I/O errors while opening are storage_failure; temp files of an interrupted "
          "replacement are removed") {
    recording_files disk;
    {
        auto log = open_log(disk);
        REQUIRE_FALSE(log->append(make_entries(1, 2, 1)));
        REQUIRE_FALSE(flush(*log));
    }
    disk.put_durable("/log/snapshot.tmp", as_bytes("half a snapshot"));
    disk.put_durable("/log/notes.txt", as_bytes("not ours"));
    disk.fail_next(file_op::list, std::make_error_code(std::errc::io_error));
    auto [ec, detail] = refused(disk);
    CHECK(ec == errc::storage_failure);
    CHECK(detail == "list /log: Input/output error");
    disk.fail_next(file_op::read, std::make_error_code(std::errc::io_error), ".log", 1);
    std::tie(ec, detail) = refused(disk);
    CHECK(ec == errc::storage_failure);
    CHECK(detail == "read segment 00000000000000000001.log offset 0: Input/output error");
    auto log = open_log(disk);
    CHECK_FALSE(disk.exists("/log/snapshot.tmp"));
    CHECK(disk.exists("/log/notes.txt")); // files the log does not know are left alone
    CHECK(log->last_index() == log_index{2});
}

TEST_CASE("file_log: two logs cannot hold one directory (log_locked), in one process or from "
          "another") {
    test::temp_directory dir;
    storage::file_log_options o;
    o.directory = dir.path() + "/nested/log/";
    storage::file_log first(std::move(o));
    REQUIRE_FALSE(first.recover());
    {
        storage::file_log_options again;
        again.directory = dir.path() + "/nested/log";
        storage::file_log second(std::move(again));
        CHECK(second.recover() == errc::log_locked);
        CHECK(second.last_error_detail().starts_with("lock " + dir.path() + "/nested/log/LOCK: "));
        CHECK(second.append(make_entries(1, 1, 1)) == errc::storage_failure);
    }
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        storage::file_log_options theirs;
        theirs.directory = dir.path() + "/nested/log";
        storage::file_log other(std::move(theirs));
        ::_exit(other.recover() == errc::log_locked ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

} // namespace

namespace {

/// The workload of the error sweeps: appends across segments, hard states, a snapshot and a
/// compaction, a truncation across a segment boundary, more appends. Stops at the first error
/// and returns it (from a call, or a flush callback); `durable` is the last entry a completed
/// flush covered.
std::error_code error_sweep_workload(recorded_log& log, log_index& durable) {
    auto step = [&](std::error_code ec) { return ec; };
    auto flush_now = [&]() -> std::error_code {
        std::optional<std::error_code> result;
        const log_index last = log.last_index();
        log.flush([&](std::error_code ec) { result = ec; });
        REQUIRE(result.has_value());
        if (!*result) {
            durable = last;
        }
        return *result;
    };
    if (auto ec = step(log.append(make_entries(1, 8, 1, 100)))) {
        return ec;
    }
    if (auto ec = step(log.save_hard_state({term{1}, node_id{1}, log_index{4}}))) {
        return ec;
    }
    if (auto ec = flush_now()) {
        return ec;
    }
    if (auto ec = step(log.save_snapshot(make_snapshot(5, 1)))) {
        return ec;
    }
    if (auto ec = step(log.compact_prefix(log_index{5}))) {
        return ec;
    }
    if (auto ec = step(log.append(make_entries(9, 14, 1, 100)))) {
        return ec;
    }
    if (auto ec = flush_now()) {
        return ec;
    }
    durable = std::min(durable, log_index{11}); // the cut may be durable even if it fails
    if (auto ec = step(log.truncate_suffix(log_index{12}))) {
        return ec;
    }
    if (auto ec = step(log.append(make_entries(12, 13, 2, 100)))) {
        return ec;
    }
    if (auto ec = step(log.save_hard_state({term{2}, node_id{1}, log_index{9}}))) {
        return ec;
    }
    return flush_now();
}

TEST_CASE("file_log: an I/O error at any file-system call of a workload fails the log with "
          "storage_failure (disk_full for ENOSPC) and leaves a disk that recovers everything "
          "flushed before it") {
    std::size_t failed_runs = 0;
    std::size_t zeros_skipped = 0;
    std::size_t all_calls = 0;
    // Growing files, and files extended with zeros (which adds writes and truncations).
    for (const std::uint64_t preallocate : {std::uint64_t{0}, std::uint64_t{300}}) {
        std::size_t calls = 0;
        {
            recording_files disk;
            auto log = open_log(disk, options(1024, std::size_t{1} << 20, preallocate));
            disk.clear_trace();
            log_index durable;
            REQUIRE_FALSE(error_sweep_workload(*log, durable));
            calls = disk.trace().size();
        }
        REQUIRE(calls > 30);
        all_calls += calls;
        for (const bool full_disk : {false, true}) {
            for (std::size_t k = 0; k < calls; ++k) {
                INFO("fault at call " << k
                                      << std::string(full_disk ? " (ENOSPC on writes)" : " (EIO)")
                                      << ", preallocate_bytes " << preallocate);
                recording_files disk;
                auto log = open_log(disk, options(1024, std::size_t{1} << 20, preallocate));
                std::size_t seen = 0;
                bool hit = false;
                file_op hit_op{};
                disk.set_fault([&](const storage::file_event& e) -> std::error_code {
                    if (seen++ != k || (full_disk && e.op != file_op::write)) {
                        return {};
                    }
                    hit = true;
                    hit_op = e.op;
                    return std::make_error_code(full_disk ? std::errc::no_space_on_device
                                                          : std::errc::io_error);
                });
                log_index durable{0};
                const std::error_code ec = error_sweep_workload(*log, durable);
                disk.set_fault(nullptr);
                if (!hit || hit_op == file_op::close) {
                    CHECK_FALSE(ec); // no fault, or one on a call whose failure changes nothing
                    continue;
                }
                if (!ec && full_disk && preallocate != 0) {
                    // No room for the zeros ahead of the records: the log went on without them.
                    ++zeros_skipped;
                    auto after = open_log(disk.crash_image(), options(1024));
                    CHECK(after->last_index() == log->last_index());
                    continue;
                }
                ++failed_runs;
                CHECK(ec == (full_disk ? errc::disk_full : errc::storage_failure));
                CHECK_FALSE(log->last_error_detail().empty());
                CHECK(log->append(make_entries(log->last_index().value() + 1,
                                               log->last_index().value() + 1, 3)) ==
                      errc::storage_failure);
                log.reset();
                auto after = open_log(disk.crash_image(), options(1024));
                CHECK(after->last_index() >= durable);
            }
        }
    }
    CHECK(failed_runs > all_calls);
    CHECK(zeros_skipped > 0);
}

TEST_CASE("file_log: an I/O error at any file-system call of a recovery that must repair "
          "(leftover temp file, leftover compacted segment, torn tail) is storage_failure, and "
          "a later recovery still succeeds") {
    recording_files pristine;
    byte_vector old_first_segment;
    {
        auto log = open_log(pristine, options(1024));
        REQUIRE_FALSE(log->append(make_entries(1, 20, 1, 100)));
        REQUIRE_FALSE(flush(*log));
        old_first_segment = *pristine.contents(seg1);
        REQUIRE_FALSE(log->save_snapshot(make_snapshot(13, 1)));
        REQUIRE_FALSE(log->compact_prefix(log_index{13}));
        REQUIRE_FALSE(flush(*log));
    }
    // A compaction whose removal a crash undid, a replacement interrupted before its rename,
    // and a flush cut short at the end of the last segment.
    pristine.put_durable(seg1, old_first_segment);
    pristine.put_durable("/log/snapshot.tmp", as_bytes("partial"));
    const std::string last = "/log/" + storage::wal::segment_file_name(4);
    byte_vector torn = *pristine.contents(last);
    torn.resize(torn.size() + 700);
    pristine.put_durable(last, torn);

    std::size_t calls = 0;
    {
        auto disk = pristine.crash_image();
        auto log = open_log(disk, options(1024));
        CHECK(log->first_index() == log_index{14});
        CHECK(log->last_index() == log_index{20});
        calls = disk.trace().size();
        CHECK(disk.count(file_op::remove) == 2);
        CHECK(disk.count(file_op::truncate) == 1);
    }
    for (std::size_t k = 0; k < calls; ++k) {
        INFO("fault at call " << k);
        auto disk = pristine.crash_image();
        std::size_t seen = 0;
        file_op hit_op{};
        disk.set_fault([&](const storage::file_event& e) -> std::error_code {
            if (seen++ != k) {
                return {};
            }
            hit_op = e.op;
            return std::make_error_code(std::errc::io_error);
        });
        {
            recorded_log log(options(1024), disk);
            const std::error_code ec = log.recover();
            if (hit_op == file_op::close || hit_op == file_op::unlock) {
                CHECK_FALSE(ec);
            } else {
                CHECK(ec == errc::storage_failure);
                CHECK_FALSE(log.last_error_detail().empty());
            }
        }
        disk.set_fault(nullptr);
        auto again = open_log(disk.crash_image(), options(1024));
        CHECK(again->first_index() == log_index{14});
        CHECK(again->last_index() == log_index{20});
    }
}

} // namespace
