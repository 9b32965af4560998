#pragma once

/// \file
/// Every knob of a `raft::node`, with its default. docs/raft.md explains each.

#include <synod/core/errc.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/membership.hpp>
#include <synod/raft/log_sink.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <system_error>

namespace synod::raft {

struct config {
    /// This node. Must be a member of `initial_membership` (or of the membership in the log).
    node_id id;
    /// Membership used when the log holds none (a fresh cluster). Every node of a new cluster
    /// must be given the same one.
    membership initial_membership;

    /// Election timeouts are drawn uniformly from [min, max) on every role or term change
    /// (paper §5.2); hearing from the leader restarts the current draw.
    std::chrono::milliseconds election_timeout_min{150};
    std::chrono::milliseconds election_timeout_max{300};
    /// How often a leader sends AppendEntries to each follower when it has nothing new.
    std::chrono::milliseconds heartbeat_interval{50};

    /// Seed of the node's only randomness (election timeouts). Same seed + same inputs = same
    /// behaviour.
    std::uint64_t random_seed = 0;

    /// Pre-vote round before each election (thesis §9.6).
    bool pre_vote = true;
    /// Leader steps down if it has not heard from a quorum within an election timeout, and
    /// followers that hear from a leader ignore vote requests (thesis §6.2, §4.2.3).
    bool check_quorum = true;

    /// Flow control, per follower.
    std::size_t max_entries_per_append = 256;
    std::size_t max_bytes_per_append = std::size_t{1} << 20;
    std::size_t max_inflight_appends = 64;
    std::size_t max_inflight_bytes = std::size_t{32} << 20;

    /// Log flushes the node keeps under way at once. With more than one, writes made while a
    /// flush is running start their own at once instead of waiting for it to end; a log that
    /// runs flushes one after another (`memory_log`, a `file_log` with one flush at a time)
    /// just queues them. Each completion counts for the writes made before its own `flush`
    /// call, whatever order the log completes them in. At least 1.
    std::size_t max_flushes_in_flight = 2;

    /// Proposals are refused with `errc::uncommitted_limit` once the leader holds this many
    /// bytes (`entry_cost`) of uncommitted entries.
    std::size_t max_uncommitted_bytes = std::size_t{64} << 20;
    /// A single proposal larger than this is refused with `errc::proposal_too_large`.
    std::size_t max_proposal_bytes = std::size_t{8} << 20;

    /// Entries applied per batch before the node yields to other work on its scheduler.
    std::size_t max_apply_batch = 1024;

    /// Log compaction (paper §7, thesis chapter 5): the node snapshots its state machine once
    /// this many entries, or entries of this many bytes (`entry_cost`), have been applied since
    /// its last snapshot; zero disables that trigger. With both zero the node never snapshots
    /// on its own (it still installs snapshots its leader sends).
    std::uint64_t snapshot_after_entries = 10'000;
    std::uint64_t snapshot_after_bytes = std::uint64_t{64} << 20;
    /// Entries kept in the log behind a snapshot, so a follower that lags only a little is
    /// served from the log rather than by a whole snapshot.
    std::uint64_t snapshot_keep_entries = 1'000;
    /// InstallSnapshot chunk size. Chunks share a follower's inflight window with entries.
    std::size_t snapshot_chunk_bytes = std::size_t{1} << 20;

    /// A learner is promoted to voter only when its log is within this many entries of the
    /// leader's (thesis §4.2.1: a new server catches up before it counts).
    std::uint64_t promotion_max_lag = 64;

    /// Lease reads (`node::read_under_lease`, thesis §6.4.1) assume clocks drift apart by less
    /// than this per election timeout; the lease is shorter than `election_timeout_min` by it.
    std::chrono::milliseconds lease_clock_drift{20};

    /// A follower that knows the leader forwards proposals to it instead of refusing them with
    /// `not_leader`; the completion then runs when the follower itself applies the entry, with
    /// its own state machine's result (etcd calls this proposal forwarding).
    bool forward_proposals = false;

    /// Observers, called on the node's context as things happen (empty: none). They must not
    /// call into the node; post to the scheduler for that.
    /// - `on_leader_change(leader, term)`: the leader this node knows changed (`no_node`:
    ///   none); `leader == id` when this node took office.
    /// - `on_applied(index)`: entries through `index` are applied (also after a snapshot was
    ///   installed).
    std::function<void(node_id leader, term t)> on_leader_change;
    std::function<void(log_index applied)> on_applied;

    /// Diagnostics; silent when empty.
    log_sink sink;

    /// Why this configuration cannot run, or success.
    [[nodiscard]] std::error_code validate() const {
        if (id == no_node || election_timeout_min.count() <= 0 ||
            election_timeout_max <= election_timeout_min || heartbeat_interval.count() <= 0 ||
            heartbeat_interval >= election_timeout_min || max_entries_per_append == 0 ||
            max_bytes_per_append == 0 || max_inflight_appends == 0 || max_inflight_bytes == 0 ||
            max_flushes_in_flight == 0 || max_uncommitted_bytes == 0 || max_proposal_bytes == 0 ||
            max_apply_batch == 0 || snapshot_chunk_bytes == 0 || lease_clock_drift.count() < 0 ||
            lease_clock_drift >= election_timeout_min) {
            return errc::invalid_argument;
        }
        if (!initial_membership.voters().empty() && !initial_membership.valid()) {
            return errc::invalid_argument;
        }
        return {};
    }
};

} // namespace synod::raft
