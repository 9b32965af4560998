#pragma once

/// \file
/// What a node reports about itself: its role and positions, each follower's progress (on a
/// leader), and counters that only grow, so an operator can tell why a node did what it did.

#include <synod/core/ids.hpp>
#include <synod/core/membership.hpp>
#include <synod/raft/progress.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <vector>

namespace synod::raft {

enum class role : std::uint8_t { follower, pre_candidate, candidate, leader };

[[nodiscard]] constexpr std::string_view to_string(role r) noexcept {
    switch (r) {
    case role::follower:
        return "follower";
    case role::pre_candidate:
        return "pre_candidate";
    case role::candidate:
        return "candidate";
    case role::leader:
        return "leader";
    }
    return "?";
}

/// Why a proposal was refused before it was appended.
enum class rejection : std::uint8_t {
    not_leader,
    uncommitted_limit,
    too_large,
    disk_full,
    stopped,
    transfer_in_progress, ///< leadership is being handed to another node
    count_
};

/// Why an inbound message was dropped without effect.
enum class drop_reason : std::uint8_t {
    unknown_sender,     ///< sender is not a member of the configuration
    wrong_recipient,    ///< addressed to another node, or sent by this node to itself
    stale_term,         ///< a response from an older term
    leader_lease,       ///< a vote request while a leader is heard from (thesis §4.2.3)
    unexpected,         ///< a response this node's role did not ask for
    index_out_of_range, ///< an index the sender could not legitimately have sent
    unsupported,        ///< a message kind this build does not handle yet
    stopped,            ///< the node has stopped after a storage failure
    count_
};

[[nodiscard]] constexpr std::string_view to_string(drop_reason r) noexcept {
    switch (r) {
    case drop_reason::unknown_sender:
        return "unknown_sender";
    case drop_reason::wrong_recipient:
        return "wrong_recipient";
    case drop_reason::stale_term:
        return "stale_term";
    case drop_reason::leader_lease:
        return "leader_lease";
    case drop_reason::unexpected:
        return "unexpected";
    case drop_reason::index_out_of_range:
        return "index_out_of_range";
    case drop_reason::unsupported:
        return "unsupported";
    case drop_reason::stopped:
        return "stopped";
    case drop_reason::count_:
        break;
    }
    return "?";
}

struct counters {
    std::uint64_t pre_votes_started = 0;
    std::uint64_t elections_started = 0;
    std::uint64_t elections_won = 0;
    /// Times this node saw the leader it knows change (including to "unknown").
    std::uint64_t leader_changes = 0;
    std::uint64_t check_quorum_step_downs = 0;
    std::array<std::uint64_t, static_cast<std::size_t>(rejection::count_)> proposals_rejected{};
    std::array<std::uint64_t, static_cast<std::size_t>(drop_reason::count_)> messages_dropped{};
    std::uint64_t messages_sent = 0;
    /// Sum of `entry_cost` of the entries this node sent in AppendEntries.
    std::uint64_t entry_bytes_sent = 0;
    std::uint64_t flushes = 0;
    std::uint64_t flush_failures = 0;
    std::uint64_t entries_applied = 0;
    /// AppendEntries whose entries this follower could not write for lack of space.
    std::uint64_t appends_refused_disk_full = 0;

    /// Reads (thesis §6.4): confirmation rounds a leader ran (one per turn's batch of reads),
    /// lease reads served without a round, reads served, and reads failed.
    std::uint64_t read_index_rounds = 0;
    std::uint64_t lease_reads = 0;
    std::uint64_t reads_served = 0;
    std::uint64_t reads_failed = 0;

    /// Configuration entries this node appended as leader, and leadership transfers it
    /// started, saw completed (it stepped down) and saw time out.
    std::uint64_t membership_changes = 0;
    std::uint64_t transfers_started = 0;
    std::uint64_t transfers_completed = 0;
    std::uint64_t transfers_failed = 0;

    /// Proposals this follower forwarded to its leader (`config::forward_proposals`).
    std::uint64_t proposals_forwarded = 0;

    /// Snapshots this node took of its own state machine.
    std::uint64_t snapshots_taken = 0;
    /// Entries removed from the front of the log by compaction.
    std::uint64_t entries_compacted = 0;
    /// On a leader: transfers started, chunks and bytes sent (resends included).
    std::uint64_t snapshot_transfers_started = 0;
    std::uint64_t snapshot_chunks_sent = 0;
    std::uint64_t snapshot_bytes_sent = 0;
    /// On a follower: snapshots received whole, verified and restored.
    std::uint64_t snapshots_installed = 0;
    /// On a follower: chunks refused because their checksum did not match (`bad_crc`), and
    /// assembled snapshots refused because the whole did not verify or the state machine
    /// could not restore it (`corrupt_snapshot`). Each is retried by the leader.
    std::uint64_t snapshot_chunks_corrupt = 0;
    std::uint64_t snapshots_rejected = 0;

    [[nodiscard]] std::uint64_t rejected(rejection r) const noexcept {
        return proposals_rejected[static_cast<std::size_t>(r)];
    }
    [[nodiscard]] std::uint64_t dropped(drop_reason r) const noexcept {
        return messages_dropped[static_cast<std::size_t>(r)];
    }
};

struct follower_status {
    node_id id;
    log_index match;
    log_index next;
    replication_state state;
    std::size_t inflight;
    /// In snapshot state: the snapshot's last index, its size and the bytes acknowledged.
    log_index snapshot_index;
    std::uint64_t snapshot_bytes = 0;
    std::uint64_t snapshot_acked = 0;
};

struct status {
    node_id id;
    raft::role role = role::follower;
    term current_term;
    node_id voted_for;
    node_id leader;
    log_index first_index;
    log_index last_index;
    /// Highest index whose flush has completed on this node.
    log_index durable_index;
    log_index commit_index;
    log_index applied_index;
    membership config;
    /// True once a storage failure has stopped the node.
    bool stopped = false;
    /// On a leader: a membership change it started is in flight (until C_new commits), and
    /// the node it is handing leadership to (`no_node`: none).
    bool membership_change_in_flight = false;
    node_id transfer_target;
    /// Last index covered by the log's latest snapshot (0: none).
    log_index snapshot_index;
    /// On a follower receiving a snapshot: its last index and the bytes assembled so far.
    log_index incoming_snapshot_index;
    std::uint64_t incoming_snapshot_bytes = 0;
    /// Why the last snapshot chunk or snapshot was refused (`bad_crc`, `corrupt_snapshot`), or
    /// empty.
    std::error_code last_snapshot_rejection;
    /// On a leader: every other member, in id order.
    std::vector<follower_status> followers;
    raft::counters counters;
};

} // namespace synod::raft
