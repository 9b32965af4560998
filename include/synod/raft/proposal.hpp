#pragma once

/// \file
/// The outcome of `node::propose`, delivered exactly once to the proposal's completion.
///
/// | `error` | meaning |
/// |---|---|
/// | none | committed and applied at `index`; `value` holds the result |
/// | `errc::not_leader` | refused, never appended; retry at `leader_hint` |
/// | `errc::leader_unknown` | refused, never appended; no leader known yet |
/// | `errc::uncommitted_limit` | refused, never appended; the leader is saturated: back off |
/// | `errc::proposal_too_large` | refused, never appended |
/// | `errc::disk_full` | refused, never appended: the leader's disk is full |
/// | `errc::outcome_unknown` | appended at `index`, then leadership was lost: it may still commit. Retry only with an idempotency key |
/// | `errc::storage_failure` | the node stopped on a storage failure; if `index` is set the entry may still commit elsewhere |
///
/// synod never reports "not applied" for an entry that may yet commit.

#include <synod/core/ids.hpp>

#include <optional>
#include <system_error>

namespace synod::raft {

template <class Result>
struct proposal_result {
    std::error_code error;
    /// Where the entry was appended; 0 if it never was.
    log_index index;
    /// With `not_leader`: the leader this node knows of.
    node_id leader_hint;
    /// The state machine's result; present exactly when `error` is empty.
    std::optional<Result> value;
};

} // namespace synod::raft
