#pragma once

/// \file
/// One slot of the replicated log.

#include <synod/core/bytes.hpp>
#include <synod/core/ids.hpp>

#include <cstdint>

namespace synod {

enum class entry_kind : std::uint8_t {
    normal = 0, ///< a command for the state machine
    config = 1, ///< a membership change (payload: encoded `membership`)
    noop = 2,   ///< appended by a new leader to commit its term (paper §5.4.2, §8)
};

inline constexpr std::uint8_t max_entry_kind = 2;

struct log_entry {
    synod::term term;
    log_index index;
    entry_kind kind = entry_kind::normal;
    shared_bytes payload;

    friend bool operator==(const log_entry&, const log_entry&) = default;
};

/// Bytes an entry counts for in byte budgets (batching, flow control, uncommitted caps): its
/// payload plus a fixed per-entry overhead, so that empty entries are not free.
[[nodiscard]] inline std::size_t entry_cost(const log_entry& e) noexcept {
    constexpr std::size_t per_entry_overhead = 32;
    return e.payload.size() + per_entry_overhead;
}

} // namespace synod
