#pragma once

// Fixtures for file_log tests: a temporary directory on the real disk, and file logs over
// the real disk, the recording file layer, a hand-driven executor and a real I/O thread, in
// the shape the conformance suite expects (see log_store_conformance.hpp).

#include <doctest/doctest.h>

#include <synod/storage/file_log.hpp>
#include <synod/storage/recording_files.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

namespace synod::test {

/// A fresh directory under the system's temporary directory, removed with its contents.
class temp_directory {
public:
    temp_directory() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "synod-log-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    temp_directory(const temp_directory&) = delete;
    temp_directory& operator=(const temp_directory&) = delete;
    ~temp_directory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

/// Small segments and a small cache, so that a few dozen entries roll segments and are read
/// back from disk.
inline storage::file_log_options small_log_options(std::string directory) {
    storage::file_log_options o;
    o.directory = std::move(directory);
    o.segment_bytes = 4096;
    o.cache_bytes = 2048;
    return o;
}

/// file_log on the real disk, flushing inline.
struct file_log_fixture {
    temp_directory dir;
    std::unique_ptr<storage::file_log> current;

    file_log_fixture() { open(); }
    storage::file_log& log() { return *current; }
    void reopen() {
        current.reset();
        open();
    }
    void settle() {}
    void open() {
        current = std::make_unique<storage::file_log>(small_log_options(dir.path()));
        REQUIRE_FALSE(current->recover());
    }
};

/// file_log on the recording file layer; a reopen is a crash that loses everything unsynced.
struct recording_file_log_fixture {
    using log_type = storage::basic_file_log<storage::recording_files>;
    storage::recording_files disk;
    std::unique_ptr<log_type> current;

    recording_file_log_fixture() { open(); }
    log_type& log() { return *current; }
    void reopen() {
        current.reset();
        disk = disk.crash_image();
        open();
    }
    void settle() {}
    void open() {
        current = std::make_unique<log_type>(small_log_options("/log"), disk);
        REQUIRE_FALSE(current->recover());
    }
};

/// file_log whose flush work and completions wait in queues until the test runs them — the
/// shape of a simulator that models disk latency.
struct deferred_file_log_fixture {
    using log_type = storage::basic_file_log<storage::recording_files>;
    storage::recording_files disk;
    std::deque<unique_function<void()>> jobs;
    std::deque<unique_function<void()>> posted;
    std::unique_ptr<log_type> current;
    std::size_t max_flushes_in_flight;
    std::uint64_t preallocate_bytes;

    explicit deferred_file_log_fixture(
        std::size_t max_flushes = storage::file_log_options{}.max_flushes_in_flight,
        std::uint64_t preallocate = storage::file_log_options{}.preallocate_bytes)
        : max_flushes_in_flight(max_flushes)
        , preallocate_bytes(preallocate) {
        open();
    }
    log_type& log() { return *current; }
    void reopen() {
        current.reset();
        jobs.clear();
        posted.clear();
        disk = disk.crash_image();
        open();
    }
    /// Runs queued flush work, then posted completions, until both queues are empty.
    void settle() {
        while (!jobs.empty() || !posted.empty()) {
            run_jobs();
            run_posted();
        }
    }
    void run_jobs() {
        while (!jobs.empty()) {
            auto job = std::move(jobs.front());
            jobs.pop_front();
            job();
        }
    }
    void run_posted() {
        while (!posted.empty()) {
            auto fn = std::move(posted.front());
            posted.pop_front();
            fn();
        }
    }
    void open() {
        storage::file_log_options o = small_log_options("/log");
        o.max_flushes_in_flight = max_flushes_in_flight;
        o.preallocate_bytes = preallocate_bytes;
        o.io_executor = [this](unique_function<void()> job) { jobs.push_back(std::move(job)); };
        o.post = [this](unique_function<void()> fn) { posted.push_back(std::move(fn)); };
        current = std::make_unique<log_type>(std::move(o), disk);
        REQUIRE_FALSE(current->recover());
    }
};

/// file_log on the real disk with its own I/O thread; completions are posted to a queue this
/// (the node's) thread drains.
struct threaded_file_log_fixture {
    temp_directory dir;
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<unique_function<void()>> posted; // guarded by mutex
    std::unique_ptr<storage::file_log> current;

    threaded_file_log_fixture() { open(); }
    ~threaded_file_log_fixture() { current.reset(); }
    storage::file_log& log() { return *current; }
    void reopen() {
        current.reset();
        {
            std::lock_guard lock(mutex);
            posted.clear();
        }
        open();
    }
    /// Waits briefly for completions and runs them on this thread.
    void settle() {
        std::deque<unique_function<void()>> ready;
        {
            std::unique_lock lock(mutex);
            wake.wait_for(lock, std::chrono::milliseconds(20), [&] { return !posted.empty(); });
            ready.swap(posted);
        }
        for (auto& fn : ready) {
            fn();
        }
    }
    void open() {
        storage::file_log_options o = small_log_options(dir.path());
        o.own_io_thread = true;
        o.post = [this](unique_function<void()> fn) {
            {
                std::lock_guard lock(mutex);
                posted.push_back(std::move(fn));
            }
            wake.notify_one();
        };
        current = std::make_unique<storage::file_log>(std::move(o));
        REQUIRE_FALSE(current->recover());
    }
};

} // namespace synod::test

TYPE_TO_STRING_AS("file_log on disk", synod::test::file_log_fixture);
TYPE_TO_STRING_AS("file_log on recording_files", synod::test::recording_file_log_fixture);
TYPE_TO_STRING_AS("file_log with deferred flush work", synod::test::deferred_file_log_fixture);
TYPE_TO_STRING_AS("file_log with an I/O thread", synod::test::threaded_file_log_fixture);
