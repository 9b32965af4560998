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

/// Runs one simulated process's work on the world's queue, under its owner id, so a crash of
/// the process discards its pending work.
class process_scheduler {
public:
    using time_point = sim::time_point;
    struct timer_handle {
        std::uint64_t id = 0;
    };

    process_scheduler(world& w, std::uint32_t owner) noexcept
        : world_(&w)
        , owner_(owner) {}

    template <class F>
    void post(F&& f) {
        world_->schedule(world_->now(), owner_, unique_function<void()>(std::forward<F>(f)));
    }

    template <class F>
    timer_handle schedule_at(time_point at, F&& f) {
        return {world_->schedule(at, owner_, unique_function<void()>(std::forward<F>(f)), true)};
    }

    bool cancel(timer_handle h) { return world_->cancel(h.id); }

    [[nodiscard]] std::uint32_t owner() const noexcept { return owner_; }

private:
    world* world_;
    std::uint32_t owner_;
};

static_assert(scheduler<process_scheduler>);

} // namespace synod::sim
