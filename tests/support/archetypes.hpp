#pragma once

// Models of each policy concept with exactly the operations the concept requires. Each is a
// template over the one operation to leave out (`op::none` leaves out nothing), so a test can
// show that the concept rejects a type missing any single operation.

#include <synod/core/concepts.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

namespace synod::test {

enum class clock_op { none, now, time_point };

template <clock_op Missing = clock_op::none>
struct clock_archetype {
    using duration = std::chrono::nanoseconds;
    using time_point = std::conditional_t<Missing == clock_op::time_point, void,
                                          std::chrono::steady_clock::time_point>;
    [[nodiscard]] std::chrono::steady_clock::time_point now() const
        requires(Missing != clock_op::now) {
        return {};
    }
};

enum class scheduler_op { none, post, schedule_at, cancel, timer_handle };

template <scheduler_op Missing = scheduler_op::none>
struct scheduler_archetype {
    using time_point = std::chrono::steady_clock::time_point;
    struct handle {
        int id = 0;
    };
    using timer_handle = std::conditional_t<Missing == scheduler_op::timer_handle, void, handle>;

    template <class F>
    requires(Missing != scheduler_op::post) void post(F&&) {}
    template <class F>
    requires(Missing != scheduler_op::schedule_at) handle schedule_at(time_point, F&&) {
        return {};
    }
    bool cancel(handle) requires(Missing != scheduler_op::cancel) { return false; }
};

enum class transport_op { none, send };

template <transport_op Missing = transport_op::none>
struct transport_archetype {
    void send(node_id, message) requires(Missing != transport_op::send) {}
};

enum class log_op {
    none,
    recover,
    first_index,
    last_index,
    term_at,
    entries,
    append,
    truncate_suffix,
    compact_prefix,
    save_hard_state,
    saved_hard_state,
    save_snapshot,
    latest_snapshot,
    flush,
};

template <log_op Missing = log_op::none>
struct log_store_archetype {
    std::error_code recover() requires(Missing != log_op::recover) { return {}; }
    [[nodiscard]] log_index first_index() const requires(Missing != log_op::first_index) {
        return log_index{1};
    }
    [[nodiscard]] log_index last_index() const requires(Missing != log_op::last_index) {
        return log_index{0};
    }
    [[nodiscard]] std::optional<term> term_at(log_index) const
        requires(Missing != log_op::term_at) {
        return std::nullopt;
    }
    std::error_code entries(log_index, log_index, std::size_t, std::vector<log_entry>&) const
        requires(Missing != log_op::entries) {
        return {};
    }
    std::error_code append(std::span<const log_entry>) requires(Missing != log_op::append) {
        return {};
    }
    std::error_code truncate_suffix(log_index) requires(Missing != log_op::truncate_suffix) {
        return {};
    }
    std::error_code compact_prefix(log_index) requires(Missing != log_op::compact_prefix) {
        return {};
    }
    std::error_code save_hard_state(const hard_state&) requires(Missing !=
                                                                log_op::save_hard_state) {
        return {};
    }
    [[nodiscard]] hard_state saved_hard_state() const
        requires(Missing != log_op::saved_hard_state) {
        return {};
    }
    std::error_code save_snapshot(const snapshot&) requires(Missing != log_op::save_snapshot) {
        return {};
    }
    [[nodiscard]] std::optional<snapshot> latest_snapshot() const
        requires(Missing != log_op::latest_snapshot) {
        return std::nullopt;
    }
    template <class F>
    requires(Missing != log_op::flush) void flush(F&&) {}
};

enum class machine_op { none, apply, snapshot, restore, result_type };

template <machine_op Missing = machine_op::none>
struct state_machine_archetype {
    struct result {
        int value = 0;
    };
    using result_type = std::conditional_t<Missing == machine_op::result_type, void, result>;

    result apply(const log_entry&) requires(Missing != machine_op::apply) { return {}; }
    [[nodiscard]] shared_bytes snapshot() const requires(Missing != machine_op::snapshot) {
        return {};
    }
    std::error_code restore(byte_span) requires(Missing != machine_op::restore) { return {}; }
};

} // namespace synod::test
