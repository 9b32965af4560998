#pragma once

/// \file
/// The simulator's fault classes and their hit counters. A sweep that never hit a class has
/// not tested it, so the sweep driver fails when any enabled class stays at zero.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace synod::sim {

enum class fault : std::uint8_t {
    // network
    drop,
    duplicate,
    reorder,
    delay,
    replay,
    clog,
    partition_symmetric,
    partition_one_way,
    partition_bridge,
    heal,
    // process
    crash,
    restart,
    pause,
    clock_jump,
    clock_drift,
    // storage
    lost_unflushed,
    torn_write,
    bit_flip,
    flush_failure,
    disk_full,
    count_
};

inline constexpr std::size_t fault_count = static_cast<std::size_t>(fault::count_);

[[nodiscard]] constexpr std::string_view to_string(fault f) noexcept {
    constexpr std::array<std::string_view, fault_count> names{"drop",
                                                              "duplicate",
                                                              "reorder",
                                                              "delay",
                                                              "replay",
                                                              "clog",
                                                              "partition_symmetric",
                                                              "partition_one_way",
                                                              "partition_bridge",
                                                              "heal",
                                                              "crash",
                                                              "restart",
                                                              "pause",
                                                              "clock_jump",
                                                              "clock_drift",
                                                              "lost_unflushed",
                                                              "torn_write",
                                                              "bit_flip",
                                                              "flush_failure",
                                                              "disk_full"};
    return names[static_cast<std::size_t>(f)];
}

struct fault_hits {
    std::array<std::uint64_t, fault_count> hits{};

    void hit(fault f, std::uint64_t n = 1) noexcept { hits[static_cast<std::size_t>(f)] += n; }
    [[nodiscard]] std::uint64_t operator[](fault f) const noexcept {
        return hits[static_cast<std::size_t>(f)];
    }
    fault_hits& operator+=(const fault_hits& other) noexcept {
        for (std::size_t i = 0; i < fault_count; ++i) {
            hits[i] += other.hits[i];
        }
        return *this;
    }
};

} // namespace synod::sim
