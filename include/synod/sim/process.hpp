#pragma once

/// \file
/// The clock and scheduler a simulated node sees: models of the `clock` and `scheduler`
/// concepts backed by the world's virtual time and event queue.

#include <synod/core/concepts/clock.hpp>
#include <synod/core/concepts/scheduler.hpp>
#include <synod/sim/world.hpp>

#include <cstdint>
#include <utility>

namespace synod::sim {

class virtual_clock {
public:
    using time_point = sim::time_point;
    using duration = sim::duration;

    explicit virtual_clock(const world& w) noexcept
        : world_(&w) {}
    [[nodiscard]] time_point now() const noexcept { return world_->now(); }

private:
    const world* world_;
};

static_assert(clock<virtual_clock>);

/// A process's own view of time: the world's time, possibly jumped forward and running fast
/// or slow (clock drift), yet always monotonic — what a steady clock on a real machine may do.
class process_time {
public:
    explicit process_time(const world& w) noexcept
        : world_(&w)
        , base_world_(w.now())
        , base_local_(w.now()) {}

    [[nodiscard]] time_point local(time_point world_time) const noexcept {
        const auto elapsed = static_cast<double>((world_time - base_world_).count());
        return base_local_ + duration(static_cast<duration::rep>(elapsed * rate_));
    }
    /// The world time at which this process's clock reads `local_time`.
    [[nodiscard]] time_point world_at(time_point local_time) const noexcept {
        if (local_time <= base_local_) {
            return base_world_;
        }
        const auto ahead = static_cast<double>((local_time - base_local_).count());
        // Round up, so a timer never fires before the local clock reaches its time.
        return base_world_ + duration(static_cast<duration::rep>(ahead / rate_) + 1);
    }
    [[nodiscard]] time_point now() const noexcept { return local(world_->now()); }

    /// The clock leaps forward by `d` (a VM resumed, a host clock source corrected).
    void jump(duration d) noexcept {
        rebase();
        base_local_ += d;
    }
    /// The clock runs at `rate` times real time from now on (0.5 to 2 are sensible).
    void set_rate(double rate) noexcept {
        rebase();
        rate_ = rate;
    }
    [[nodiscard]] double rate() const noexcept { return rate_; }

private:
    void rebase() noexcept {
        base_local_ = now();
        base_world_ = world_->now();
    }

    const world* world_;
    time_point base_world_;
    time_point base_local_;
    double rate_ = 1.0;
};

/// A process's clock, reading its `process_time`.
class process_clock {
public:
    using time_point = sim::time_point;
    using duration = sim::duration;

    explicit process_clock(const process_time& t) noexcept
        : time_(&t) {}
    [[nodiscard]] time_point now() const noexcept { return time_->now(); }

private:
    const process_time* time_;
};

static_assert(clock<process_clock>);

/// Runs one simulated process's work on the world's queue, under its owner id, so a crash of
/// the process discards its pending work. Timers are set in the process's own time when it
/// has a `process_time`.
class process_scheduler {
public:
    using time_point = sim::time_point;
    struct timer_handle {
        std::uint64_t id = 0;
    };

    process_scheduler(world& w, std::uint32_t owner, const process_time* time = nullptr) noexcept
        : world_(&w)
        , owner_(owner)
        , time_(time) {}

    template <class F>
    void post(F&& f) {
        world_->schedule(world_->now(), owner_, unique_function<void()>(std::forward<F>(f)));
    }

    template <class F>
    timer_handle schedule_at(time_point at, F&& f) {
        const time_point when = time_ != nullptr ? time_->world_at(at) : at;
        return {world_->schedule(when, owner_, unique_function<void()>(std::forward<F>(f)), true)};
    }

    bool cancel(timer_handle h) { return world_->cancel(h.id); }

    [[nodiscard]] std::uint32_t owner() const noexcept { return owner_; }

private:
    world* world_;
    std::uint32_t owner_;
    const process_time* time_;
};

static_assert(scheduler<process_scheduler>);

} // namespace synod::sim
