#pragma once

/// \file
/// `storage::io_worker`: one thread that runs blocking jobs (writes and fsyncs) in the order
/// they were submitted, so a node's thread never waits for the disk. A `file_log` started with
/// `own_io_thread` owns one; a host may also share one among several logs through
/// `executor()`.

#include <synod/core/unique_function.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace synod::storage {

class io_worker {
public:
    /// Receives a blocking job and runs it somewhere, some time.
    using executor_type = unique_function<void(unique_function<void()>)>;

    io_worker()
        : thread_([this] { run(); }) {}

    io_worker(const io_worker&) = delete;
    io_worker& operator=(const io_worker&) = delete;

    /// Runs the jobs already submitted, then stops the thread.
    ~io_worker() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }

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
    std::thread thread_; // last: started once everything it uses exists
};

} // namespace synod::storage
