#pragma once

/// \file
/// A state machine snapshot and the log position it replaces (paper §7).

#include <synod/core/bytes.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/membership.hpp>

namespace synod {

struct snapshot_meta {
    /// Index of the last entry the snapshot covers; 0 means "no snapshot".
    log_index last_index;
    term last_term;
    /// Membership in force at `last_index`.
    membership config;

    friend bool operator==(const snapshot_meta&, const snapshot_meta&) = default;
};

struct snapshot {
    snapshot_meta meta;
    shared_bytes data;

    friend bool operator==(const snapshot&, const snapshot&) = default;
};

} // namespace synod
