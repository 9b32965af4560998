#pragma once

/// \file
/// `storage::io_worker`: threads that run blocking jobs (writes and fsyncs), started in the
/// order they were submitted, so a node's thread never waits for the disk. With one thread the
/// jobs also end in that order; with more, a job may start while earlier ones still block (a
/// `file_log` overlaps its flushes' `fdatasync`s that way). A `file_log` started with
/// `own_io_thread` owns one; a host may also share one among several logs through
/// `executor()`.

#include <synod/core/unique_function.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace synod::storage {

class io_worker {
public:
    /// Receives a blocking job and runs it somewhere, some time.
    using executor_type = unique_function<void(unique_function<void()>)>;

    /// Starts `threads` threads (at least one).
    explicit io_worker(std::size_t threads = 1) {
        threads_.reserve(std::max<std::size_t>(threads, 1));
        try {
            for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
                threads_.emplace_back([this] { run(); });
            }
        } catch (...) {
            stop(); // the threads already started must not outlive a failed constructor
            throw;
        }
    }

    io_worker(const io_worker&) = delete;
    io_worker& operator=(const io_worker&) = delete;

    /// Runs the jobs already submitted, then stops the threads.
    ~io_worker() { stop(); }

    /// Queues `job`; safe from any thread.
    void submit(unique_function<void()> job) {
        {
            std::lock_guard lock(mutex_);
            jobs_.push_back(std::move(job));
        }
        wake_.notify_one();
    }

    /// An executor that submits to this worker; the worker must outlive its users.
    [[nodiscard]] executor_type executor() {
        return [this](unique_function<void()> job) { submit(std::move(job)); };
    }

private:
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (std::thread& t : threads_) {
            t.join();
        }
    }

    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) {
                return; // stopping, and nothing left to run
            }
            unique_function<void()> job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    /// \invariant only touched with mutex_ held.
    std::deque<unique_function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_; // last: started once everything they use exists
};

} // namespace synod::storage
