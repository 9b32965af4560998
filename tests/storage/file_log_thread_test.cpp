// file_log with its flush work off the node's thread: on a hand-driven executor (the shape of
// the simulator, deterministic) and on a real I/O thread (run under ThreadSanitizer).

#include <doctest/doctest.h>

#include "storage/file_log_fixtures.hpp"
#include "storage/log_store_conformance.hpp"

#include <synod/storage/io_worker.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace synod;
using storage::file_op;
using test::conformance::make_entries;
using test::conformance::read_all;

TEST_CASE("file_log with deferred flush work: the callback waits for the work and the posted "
          "completion, and writes made meanwhile ride on the next flush") {
    test::deferred_file_log_fixture f;
    auto& log = f.log();
    REQUIRE_FALSE(log.append(make_entries(1, 5, 1)));
    std::vector<int> done;
    log.flush([&](std::error_code ec) {
        CHECK_FALSE(ec);
        done.push_back(1);
    });
    CHECK(f.jobs.size() == 1);
    CHECK(done.empty());
    // Appends continue while the flush is in flight; two more flushes wait for it.
    REQUIRE_FALSE(log.append(make_entries(6, 8, 1)));
    log.flush([&](std::error_code) { done.push_back(2); });
    REQUIRE_FALSE(log.append(make_entries(9, 9, 1)));
    log.flush([&](std::error_code) { done.push_back(3); });
    CHECK(f.jobs.size() == 1); // the first flush creates the segment: the others wait for it
    f.disk.clear_trace();
    f.run_jobs();
    CHECK(done.empty()); // the work is done, the completion not yet run
    CHECK(f.posted.size() == 1);
    f.run_posted();
    CHECK(done == std::vector<int>{1});
    CHECK(log.durable_last_index() == log_index{5});
    CHECK(f.jobs.size() == 1); // the next flush covers both waiting callbacks
    f.settle();
    CHECK(done == std::vector<int>{1, 2, 3});
    CHECK(log.durable_last_index() == log_index{9});
    CHECK(f.disk.count(file_op::sync) == 2); // one fdatasync per flush, not per callback
}

TEST_CASE("file_log with deferred flush work: records appended while a flush is in flight land "
          "after the bytes it writes, and read back from disk intact") {
    storage::recording_files disk;
    std::deque<unique_function<void()>> queue; // flush work and completions, in order
    storage::file_log_options o = test::small_log_options("/log");
    o.cache_bytes = 0; // every durable entry is read back from disk
    o.io_executor = [&](unique_function<void()> job) { queue.push_back(std::move(job)); };
    o.post = [&](unique_function<void()> fn) { queue.push_back(std::move(fn)); };
    storage::basic_file_log<storage::recording_files> log(std::move(o), disk);
    REQUIRE_FALSE(log.recover());
    std::vector<log_entry> all;
    std::size_t flushed = 0;
    for (std::uint64_t i = 1; i <= 60; ++i) {
        const auto e = make_entries(i, i, 1, 10 + (i * 13) % 150);
        REQUIRE_FALSE(log.append(e));
        all.push_back(e[0]);
        REQUIRE_FALSE(log.save_hard_state({term{1}, node_id{1}, log_index{i / 2}}));
        log.flush([&](std::error_code ec) {
            CHECK_FALSE(ec);
            ++flushed;
        });
        if (i % 3 == 0 && !queue.empty()) { // let the disk make progress now and then
            auto job = std::move(queue.front());
            queue.pop_front();
            job();
        }
    }
    while (!queue.empty()) {
        auto job = std::move(queue.front());
        queue.pop_front();
        job();
    }
    CHECK(flushed == 60);
    CHECK(log.cached_entries() == 0);
    CHECK(read_all(log, log_index{1}, log_index{61}) == all);
}

TEST_CASE("file_log with deferred flush work: truncate_suffix runs a queued flush itself, never "
          "runs callbacks inside itself, and the late job does nothing") {
    test::deferred_file_log_fixture f;
    auto& log = f.log();
    REQUIRE_FALSE(log.append(make_entries(1, 10, 1)));
    bool flushed = false;
    log.flush([&](std::error_code ec) {
        CHECK_FALSE(ec);
        flushed = true;
    });
    REQUIRE(f.jobs.size() == 1);
    // The executor has not run the job (it would, later, on this very thread): waiting for it
    // must not deadlock.
    REQUIRE_FALSE(log.truncate_suffix(log_index{6}));
    CHECK_FALSE(flushed);
    CHECK(log.last_index() == log_index{5});
    f.settle();
    CHECK(flushed);
    auto crashed = f.disk.crash_image();
    storage::basic_file_log<storage::recording_files> reopened(test::small_log_options("/log"),
                                                               crashed);
    REQUIRE_FALSE(reopened.recover());
    CHECK(reopened.last_index() == log_index{5});
}

TEST_CASE("file_log with deferred flush work: a failed fsync completes the flush in flight and "
          "every later one with the error") {
    test::deferred_file_log_fixture f;
    auto& log = f.log();
    REQUIRE_FALSE(log.append(make_entries(1, 2, 1)));
    std::vector<std::error_code> results;
    log.flush([&](std::error_code ec) { results.push_back(ec); });
    REQUIRE_FALSE(log.append(make_entries(3, 3, 1)));
    log.flush([&](std::error_code ec) { results.push_back(ec); });
    f.disk.fail_next(file_op::sync, std::make_error_code(std::errc::io_error));
    f.settle();
    REQUIRE(results.size() == 2);
    CHECK(results[0] == errc::storage_failure);
    CHECK(results[1] == errc::storage_failure);
    CHECK(log.append(make_entries(4, 4, 1)) == errc::storage_failure);
    log.flush([&](std::error_code ec) { results.push_back(ec); });
    f.settle();
    CHECK(results.back() == errc::storage_failure);
}

TEST_CASE("file_log with deferred flush work: destroying the log with a flush queued finishes "
          "the work; the job and completion that run later do nothing") {
    test::deferred_file_log_fixture f;
    REQUIRE_FALSE(f.log().append(make_entries(1, 3, 1)));
    bool called = false;
    f.log().flush([&](std::error_code) { called = true; });
    REQUIRE(f.jobs.size() == 1);
    f.current.reset();
    f.settle();          // the stale job, then nothing
    CHECK_FALSE(called); // the node it belonged to is gone
    storage::basic_file_log<storage::recording_files> reopened(test::small_log_options("/log"),
                                                               f.disk.crash_image());
    REQUIRE_FALSE(reopened.recover());
    CHECK(reopened.last_index() == log_index{3}); // the work itself was done durably
}

TEST_CASE("file_log with an I/O thread: appends, flushes, truncations and reads of evicted "
          "entries race the flush thread safely, and everything flushed is there after a "
          "reopen") {
    test::threaded_file_log_fixture f;
    std::uint64_t next = 1;
    std::size_t requested = 0;
    std::atomic<std::size_t> completed{0};
    for (int round = 0; round < 60; ++round) {
        REQUIRE_FALSE(f.log().append(make_entries(next, next + 19, 1 + round / 20, 64)));
        next += 20;
        ++requested;
        f.log().flush([&](std::error_code ec) {
            CHECK_FALSE(ec);
            ++completed;
        });
        if (round % 7 == 6) {
            REQUIRE_FALSE(f.log().truncate_suffix(log_index{next - 5}));
            next -= 5;
        }
        // Old entries come back from disk while the thread writes new ones.
        const auto back = read_all(f.log(), log_index{1}, log_index{11});
        CHECK(back.size() == 10);
        f.settle();
    }
    while (completed < requested) {
        f.settle();
    }
    const log_index last = f.log().last_index();
    CHECK(last == log_index{next - 1});
    const auto before = read_all(f.log(), log_index{1}, last + 1);
    f.reopen();
    CHECK(read_all(f.log(), log_index{1}, last + 1) == before);
}

/// Offsets of the segment writes in `disk`'s trace, in the order they ran.
std::vector<std::uint64_t> write_offsets(const storage::recording_files& disk) {
    std::vector<std::uint64_t> out;
    for (const storage::file_event& e : disk.trace()) {
        if (e.op == file_op::write && e.path.ends_with(".log")) {
            out.push_back(e.offset);
        }
    }
    return out;
}

/// Makes entries 1..3 durable, so the segment exists with zeros ahead of its records.
void prime_segment(test::deferred_file_log_fixture& f) {
    REQUIRE_FALSE(f.log().append(make_entries(1, 3, 1)));
    f.log().flush([](std::error_code ec) { CHECK_FALSE(ec); });
    f.settle();
}

/// After `prime_segment`: two flushes under way at once (entries 4 and 5), their results
/// collected in `results`.
void start_two_flushes(test::deferred_file_log_fixture& f, std::vector<std::error_code>& results) {
    for (std::uint64_t i = 4; i <= 5; ++i) {
        REQUIRE_FALSE(f.log().append(make_entries(i, i, 1)));
        f.log().flush([&results](std::error_code ec) { results.push_back(ec); });
    }
    REQUIRE(f.jobs.size() == 2);
    f.disk.clear_trace();
}

TEST_CASE("file_log with deferred flush work: a flush whose records fit in the zeros ahead of "
          "the last segment's starts beside the one in flight; run first, it runs the earlier "
          "one's writes before its own, and the completions keep their order") {
    test::deferred_file_log_fixture f(2); // two flushes may overlap
    auto& log = f.log();
    prime_segment(f);
    std::vector<int> done;
    REQUIRE_FALSE(log.append(make_entries(4, 5, 1)));
    log.flush([&](std::error_code ec) {
        CHECK_FALSE(ec);
        done.push_back(1);
    });
    REQUIRE_FALSE(log.append(make_entries(6, 6, 1)));
    REQUIRE_FALSE(log.save_hard_state({term{1}, node_id{2}, log_index{5}}));
    log.flush([&](std::error_code ec) {
        CHECK_FALSE(ec);
        done.push_back(2);
    });
    CHECK(f.jobs.size() == 2); // started at once, not after the first
    CHECK(log.flushes_overlapped() == 1);
    REQUIRE_FALSE(log.append(make_entries(7, 7, 1)));
    log.flush([&](std::error_code ec) {
        CHECK_FALSE(ec);
        done.push_back(3);
    });
    CHECK(f.jobs.size() == 2); // max_flushes_in_flight (2): the third waits

    f.disk.clear_trace();
    auto second = std::move(f.jobs.back());
    f.jobs.pop_back();
    second(); // claims the first flight, which has not started, and runs it first
    const auto offsets = write_offsets(f.disk);
    REQUIRE(offsets.size() == 2);
    CHECK(offsets[0] < offsets[1]);
    CHECK(f.disk.count(file_op::sync) == 2);
    CHECK(f.disk.count(file_op::truncate) == 0); // overwrites in place: no size change
    f.run_jobs();                                // the first flight's own job finds its work done
    CHECK(f.disk.count(file_op::sync) == 2);
    f.run_posted();
    CHECK(done == std::vector<int>{1, 2});
    CHECK(log.durable_last_index() == log_index{6});
    f.settle();
    CHECK(done == std::vector<int>{1, 2, 3});
    CHECK(log.durable_last_index() == log_index{7});

    const auto before = read_all(log, log_index{1}, log_index{8});
    f.reopen(); // a crash: everything synced is there, in order
    CHECK(read_all(f.log(), log_index{1}, log_index{8}) == before);
    CHECK(f.log().saved_hard_state() == hard_state{term{1}, node_id{2}, log_index{5}});
}

TEST_CASE("file_log with deferred flush work: a flush that creates or grows a file, cuts a "
          "closed segment back, or writes the snapshot or hard_state file waits for the "
          "flushes in flight; so does every flush at max_flushes_in_flight 1") {
    auto primed = [](test::deferred_file_log_fixture& f) {
        prime_segment(f);
        REQUIRE_FALSE(f.log().append(make_entries(4, 4, 1)));
        f.log().flush([](std::error_code ec) { CHECK_FALSE(ec); });
        REQUIRE(f.jobs.size() == 1);
    };
    SUBCASE("records past the zeros (the file grows)") {
        test::deferred_file_log_fixture f(2, 1024);
        primed(f);
        REQUIRE_FALSE(f.log().append(make_entries(5, 5, 1, 1500)));
        f.log().flush([](std::error_code ec) { CHECK_FALSE(ec); });
        CHECK(f.jobs.size() == 1);
        f.settle();
        CHECK(f.log().flushes_overlapped() == 0);
        CHECK(f.log().durable_last_index() == log_index{5});
    }
    SUBCASE("a new segment (its creation, and cutting the closed one back)") {
        test::deferred_file_log_fixture f(2);
        primed(f);
        for (std::uint64_t i = 5; i < 40; ++i) {
            REQUIRE_FALSE(f.log().append(make_entries(i, i, 1, 200)));
        }
        REQUIRE(f.log().segment_count() > 1);
        f.log().flush([](std::error_code ec) { CHECK_FALSE(ec); });
        CHECK(f.jobs.size() == 1);
        f.settle();
        CHECK(f.log().flushes_overlapped() == 0);
        CHECK(f.log().durable_last_index() == log_index{39});
    }
    SUBCASE("a snapshot and compaction") {
        test::deferred_file_log_fixture f(2);
        primed(f);
        REQUIRE_FALSE(f.log().save_snapshot(test::conformance::make_snapshot(2, 1)));
        REQUIRE_FALSE(f.log().compact_prefix(log_index{2}));
        REQUIRE_FALSE(f.log().append(make_entries(5, 5, 1)));
        f.log().flush([](std::error_code ec) { CHECK_FALSE(ec); });
        CHECK(f.jobs.size() == 1);
        f.settle();
        CHECK(f.log().flushes_overlapped() == 0);
    }
    SUBCASE("max_flushes_in_flight 1") {
        test::deferred_file_log_fixture f(1);
        primed(f);
        REQUIRE_FALSE(f.log().append(make_entries(5, 5, 1)));
        f.log().flush([](std::error_code ec) { CHECK_FALSE(ec); });
        CHECK(f.jobs.size() == 1);
        f.settle();
        CHECK(f.log().flushes_overlapped() == 0);
        CHECK(f.log().durable_last_index() == log_index{5});
    }
}

TEST_CASE("file_log with deferred flush work: when the earlier of two overlapping flushes fails "
          "before its writes are issued, the later one writes nothing (its records would sit "
          "past a hole) and both complete with the error") {
    test::deferred_file_log_fixture f(2);
    auto& log = f.log();
    prime_segment(f);
    std::vector<std::error_code> results;
    start_two_flushes(f, results);
    f.disk.fail_next(file_op::write, std::make_error_code(std::errc::io_error));
    f.settle();
    REQUIRE(results.size() == 2);
    CHECK(results[0] == errc::storage_failure);
    CHECK(results[1] == errc::storage_failure);
    CHECK(write_offsets(f.disk).size() == 1); // the failed one; the later flush wrote nothing
    CHECK(log.durable_last_index() == log_index{3});
    CHECK(log.append(make_entries(6, 6, 1)) == errc::storage_failure);
    f.reopen();
    CHECK(f.log().last_index() == log_index{3});
}

TEST_CASE("file_log with deferred flush work: when the earlier of two overlapping flushes fails "
          "its fdatasync after its writes, the later one, synced fine, completes with the error "
          "too; each synced through its own descriptor, so neither could take the other's "
          "error") {
    test::deferred_file_log_fixture f(2);
    auto& log = f.log();
    prime_segment(f);
    std::vector<std::error_code> results;
    start_two_flushes(f, results);
    // While the first flight's fdatasync is under way (its writes issued), the later flight
    // runs whole and syncs fine; then the first's sync fails.
    bool later_ran = false;
    f.disk.set_fault([&](const storage::file_event& e) -> std::error_code {
        if (e.op != file_op::sync || later_ran) {
            return {};
        }
        later_ran = true;
        auto later = std::move(f.jobs.back());
        f.jobs.pop_back();
        later();
        return std::make_error_code(std::errc::io_error);
    });
    auto first = std::move(f.jobs.front());
    f.jobs.pop_front();
    first();
    f.disk.set_fault(nullptr);
    REQUIRE(later_ran);
    f.settle();
    REQUIRE(results.size() == 2);
    CHECK(results[0] == errc::storage_failure);
    CHECK(results[1] == errc::storage_failure); // its own sync succeeded
    CHECK(f.disk.count(file_op::sync) == 2);
    CHECK(write_offsets(f.disk).size() == 2);
    // The later flight opened the segment for itself, and closed it again.
    CHECK(f.disk.count(file_op::open) == 1);
    CHECK(f.disk.count(file_op::close) == 1);
    CHECK(log.durable_last_index() == log_index{3});
    CHECK(log.failure() == errc::storage_failure);
}

TEST_CASE("file_log with deferred flush work: truncate_suffix finishes every flush in flight, "
          "oldest first, before it cuts") {
    test::deferred_file_log_fixture f(2);
    auto& log = f.log();
    prime_segment(f);
    std::vector<int> done;
    REQUIRE_FALSE(log.append(make_entries(4, 5, 1)));
    log.flush([&](std::error_code) { done.push_back(1); });
    REQUIRE_FALSE(log.append(make_entries(6, 7, 1)));
    log.flush([&](std::error_code) { done.push_back(2); });
    REQUIRE(f.jobs.size() == 2);
    f.disk.clear_trace();
    REQUIRE_FALSE(log.truncate_suffix(log_index{5}));
    const auto offsets = write_offsets(f.disk);
    REQUIRE(offsets.size() == 2);
    CHECK(offsets[0] < offsets[1]);
    CHECK(done.empty()); // callbacks still come from the posted completions
    f.settle();
    CHECK(done == std::vector<int>{1, 2});
    CHECK(log.last_index() == log_index{4});
    f.reopen();
    CHECK(f.log().last_index() == log_index{4});
}

TEST_CASE("file_log with two I/O threads: many small flushes overlap safely (ThreadSanitizer), "
          "complete in order, and everything flushed is there after a reopen") {
    test::temp_directory dir;
    std::mutex mutex;
    std::deque<unique_function<void()>> posted;
    storage::file_log_options o = test::small_log_options(dir.path());
    o.segment_bytes = std::uint64_t{1} << 20;
    o.own_io_thread = true;
    o.max_flushes_in_flight = 2; // and so two I/O threads
    o.post = [&](unique_function<void()> fn) {
        std::lock_guard lock(mutex);
        posted.push_back(std::move(fn));
    };
    auto drain = [&] {
        std::deque<unique_function<void()>> ready;
        {
            std::lock_guard lock(mutex);
            ready.swap(posted);
        }
        for (auto& fn : ready) {
            fn();
        }
    };
    std::vector<std::uint64_t> completed; // the last index each completion covered
    {
        storage::file_log log(std::move(o));
        REQUIRE_FALSE(log.recover());
        auto wait_for = [&](std::size_t n) {
            while (completed.size() < n) {
                drain();
                std::this_thread::yield();
            }
        };
        for (std::uint64_t i = 1; i <= 400; ++i) {
            REQUIRE_FALSE(log.append(make_entries(i, i, 1, 100)));
            log.flush([&, i](std::error_code ec) {
                CHECK_FALSE(ec);
                completed.push_back(i);
            });
            // The first flush creates the segment; after that, each flush starts while the
            // one before it may still be syncing.
            wait_for(i == 1 ? 1 : i - 1);
        }
        wait_for(400);
        CHECK(std::is_sorted(completed.begin(), completed.end()));
        CHECK(log.durable_last_index() == log_index{400});
        MESSAGE(log.flushes_overlapped() << " of 400 flushes started beside another");
    }
    storage::file_log reopened(test::small_log_options(dir.path()));
    REQUIRE_FALSE(reopened.recover());
    CHECK(reopened.last_index() == log_index{400});
    CHECK(read_all(reopened, log_index{1}, log_index{401}) == make_entries(1, 400, 1, 100));
}

TEST_CASE("io_worker: with several threads, a job starts while an earlier one still blocks") {
    std::mutex mutex;
    std::condition_variable cv;
    bool second_ran = false;
    bool first_saw_second = false;
    {
        storage::io_worker worker(2);
        auto run = worker.executor();
        run([&] {
            std::unique_lock lock(mutex);
            first_saw_second =
                cv.wait_for(lock, std::chrono::seconds(10), [&] { return second_ran; });
        });
        run([&] {
            std::lock_guard lock(mutex);
            second_ran = true;
            cv.notify_all();
        });
    }
    CHECK(first_saw_second);
}

TEST_CASE("io_worker: runs jobs in order on its thread and finishes them before it stops") {
    std::vector<int> order;
    std::atomic<bool> other_thread{true};
    const auto main_thread = std::this_thread::get_id();
    {
        storage::io_worker worker;
        auto run = worker.executor();
        for (int i = 0; i < 50; ++i) {
            run([&, i] {
                order.push_back(i);
                if (std::this_thread::get_id() == main_thread) {
                    other_thread = false;
                }
            });
        }
    }
    CHECK(other_thread);
    REQUIRE(order.size() == 50);
    CHECK(std::is_sorted(order.begin(), order.end()));
}

} // namespace
