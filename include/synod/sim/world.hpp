#pragma once

/// \file
/// The simulator's world: virtual time and one queue of events for every simulated node.
/// Nothing happens unless the world runs an event, events at the same instant run in the
/// order they were scheduled, and time jumps straight to the next event, so a run is a pure
/// function of its seed and inputs, and a minute of cluster time takes milliseconds.
///
/// Each event belongs to an *owner* (a simulated process). Crashing a process bumps its
/// incarnation, and events of an older incarnation are discarded unrun, exactly as a real
/// crash discards a process's pending timers and callbacks.

#include <synod/core/assert.hpp>
#include <synod/core/unique_function.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <unordered_set>
#include <vector>

namespace synod::sim {

using duration = std::chrono::nanoseconds;
/// Virtual time shares std::chrono::steady_clock's time_point type so that nodes run by the
/// simulator and by the Asio runtime are the same C++ type instantiations.
using time_point = std::chrono::steady_clock::time_point;

/// Owner of events that belong to no process (network deliveries are owned by the receiver).
inline constexpr std::uint32_t world_owner = 0;

class world {
public:
    /// Virtual time starts at an arbitrary non-zero instant, so code that treats a
    /// default-constructed time_point as "never" is not fooled.
    world()
        : now_(time_point(std::chrono::hours(1))) {}

    world(const world&) = delete;
    world& operator=(const world&) = delete;

    [[nodiscard]] time_point now() const noexcept { return now_; }

    /// Schedules `fn` at `at` (never earlier than now) for `owner`. Returns an id, which
    /// `cancel` accepts if the event was scheduled `cancellable`.
    std::uint64_t schedule(time_point at, std::uint32_t owner, unique_function<void()> fn,
                           bool cancellable = false) {
        const std::uint64_t seq = ++next_seq_;
        if (cancellable) {
            cancellable_.insert(seq);
        }
        queue_.push_back(event{std::max(at, now_), seq, owner, incarnation(owner), std::move(fn)});
        std::push_heap(queue_.begin(), queue_.end(), later);
        return seq;
    }

    /// Stops a scheduled event from running; false if it already ran, was cancelled, or never
    /// existed.
    bool cancel(std::uint64_t id) {
        if (cancellable_.erase(id) == 0) {
            return false;
        }
        cancelled_.insert(id);
        return true;
    }

    /// A new owner id for a simulated process.
    std::uint32_t add_owner() {
        incarnations_.push_back(0);
        return static_cast<std::uint32_t>(incarnations_.size() - 1);
    }
    /// Discards every pending event of `owner` (its process crashed).
    void kill(std::uint32_t owner) { ++incarnations_.at(owner); }

    /// Freezes `owner` until `until`: its events due earlier wait until then, as a process
    /// stopped by the OS (or a long GC pause) would.
    void pause(std::uint32_t owner, time_point until) {
        if (paused_until_.size() < incarnations_.size()) {
            paused_until_.resize(incarnations_.size());
        }
        paused_until_.at(owner) = std::max(paused_until_.at(owner), until);
    }

    /// Ends a pause of `owner` now; its deferred events run at the current time.
    void resume(std::uint32_t owner) {
        if (owner < paused_until_.size() && paused_until_[owner] > now_) {
            paused_until_[owner] = now_;
            // Deferred events already carry the old pause end; bring them forward.
            for (auto& e : queue_) {
                if (e.owner == owner && e.at > now_ && e.deferred) {
                    e.at = now_;
                }
            }
            std::make_heap(queue_.begin(), queue_.end(), later);
        }
    }

    /// Runs the next event due no later than `limit`, advancing time to it. False when none
    /// is. (Cancelled, killed and paused events are skipped without counting as the step.)
    bool step(time_point limit = time_point::max()) {
        while (!queue_.empty() && queue_.front().at <= limit) {
            std::pop_heap(queue_.begin(), queue_.end(), later);
            event e = std::move(queue_.back());
            queue_.pop_back();
            if (!cancelled_.empty() && cancelled_.erase(e.seq) > 0) {
                continue;
            }
            if (e.incarnation != incarnation(e.owner)) {
                cancellable_.erase(e.seq);
                continue;
            }
            if (e.owner < paused_until_.size() && paused_until_[e.owner] > e.at) {
                // Keeps its id, so a pending cancel still finds it.
                e.at = paused_until_[e.owner];
                e.deferred = true;
                queue_.push_back(std::move(e));
                std::push_heap(queue_.begin(), queue_.end(), later);
                continue;
            }
            cancellable_.erase(e.seq);
            now_ = e.at;
            ++events_run_;
            e.fn();
            if (after_event_) {
                after_event_();
            }
            return true;
        }
        return false;
    }

    /// Runs every event up to and including `until`, then sets the time to `until`.
    void run_until(time_point until) {
        while (step(until)) {
        }
        now_ = std::max(now_, until);
    }
    void run_for(duration d) { run_until(now_ + d); }

    /// Runs until `done()` holds (checked after every event) or `limit` of virtual time
    /// passes. Returns whether `done()` held.
    template <class Done>
    bool run_until(Done&& done, duration limit) {
        const time_point deadline = now_ + limit;
        while (!done()) {
            if (!step(deadline)) {
                now_ = std::max(now_, deadline);
                return done();
            }
        }
        return true;
    }

    /// Runs after every event (the simulator's invariant checker hooks in here).
    void set_after_event(unique_function<void()> hook) { after_event_ = std::move(hook); }

    [[nodiscard]] std::uint64_t events_run() const noexcept { return events_run_; }
    [[nodiscard]] std::size_t pending_events() const noexcept { return queue_.size(); }

private:
    struct event {
        time_point at;
        std::uint64_t seq;
        std::uint32_t owner;
        std::uint32_t incarnation;
        unique_function<void()> fn;
        /// Moved to the end of a pause (so a resume may bring it back).
        bool deferred = false;
    };

    /// Heap order: earliest time first, then scheduling order.
    static bool later(const event& a, const event& b) noexcept {
        return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }

    [[nodiscard]] std::uint32_t incarnation(std::uint32_t owner) const {
        return incarnations_.at(owner);
    }

    time_point now_;
    std::uint64_t next_seq_ = 0;
    std::uint64_t events_run_ = 0;
    std::vector<event> queue_;
    std::unordered_set<std::uint64_t> cancelled_;
    /// Events `cancel` may still stop: scheduled cancellable, not yet run or cancelled.
    std::unordered_set<std::uint64_t> cancellable_;
    std::vector<std::uint32_t> incarnations_{0};
    std::vector<time_point> paused_until_;
    unique_function<void()> after_event_;
};

} // namespace synod::sim
