#pragma once

/// \file
/// `net::steady_clock`: the `clock` policy for real processes, `std::chrono::steady_clock`.
/// Raft needs a clock only for timeouts, and a monotonic one is the only kind that cannot make
/// an election timer fire early when the wall clock is set back (or late when set forward).

#include <synod/core/concepts/clock.hpp>

#include <chrono>

namespace synod::net {

class steady_clock {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    [[nodiscard]] time_point now() const noexcept { return std::chrono::steady_clock::now(); }
};

static_assert(clock<steady_clock>);

} // namespace synod::net
