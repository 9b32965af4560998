#pragma once

/// \file
/// What a leader knows about one follower's log, and how it sends to it.
///
/// - **probe**: the leader does not know where the follower's log diverges. It sends one
///   AppendEntries at a time and waits for the answer (or the next heartbeat) before sending
///   another, moving `next` back by whole terms on each rejection (paper §5.3).
/// - **replicate**: the follower is known to match through `match`; the leader streams entries
///   optimistically, advancing `next` as it sends, bounded by the inflight window.

#include <synod/core/ids.hpp>
#include <synod/raft/inflights.hpp>

#include <cstdint>
#include <string_view>

namespace synod::raft {

enum class replication_state : std::uint8_t { probe, replicate };

[[nodiscard]] constexpr std::string_view to_string(replication_state s) noexcept {
    return s == replication_state::probe ? "probe" : "replicate";
}

struct progress {
    progress(log_index last_leader_index, std::size_t max_inflight, std::size_t max_bytes)
        : next(last_leader_index + 1)
        , window(max_inflight, max_bytes) {}

    /// Highest index known to be on the follower's durable log and to match the leader's.
    /// \invariant never decreases while this leader leads.
    log_index match;
    /// Next index to send. \invariant match < next.
    log_index next;
    replication_state state = replication_state::probe;
    /// In probe state: an AppendEntries is outstanding; send no other until it is answered or
    /// a heartbeat interval passes.
    bool probe_sent = false;
    /// Round of the outstanding probe; only its answer unblocks the next probe.
    std::uint64_t probe_round = 0;
    /// Heard from since the last check-quorum round.
    bool recently_active = false;
    /// `match` at the previous heartbeat, and how many heartbeats in a row found the window
    /// non-empty without `match` moving: messages in flight have probably been lost.
    log_index match_at_heartbeat;
    int stalled_heartbeats = 0;
    inflights window;

    void become_probe() noexcept {
        state = replication_state::probe;
        probe_sent = false;
        stalled_heartbeats = 0;
        next = match + 1;
        window.reset();
    }
    void become_replicate() noexcept {
        state = replication_state::replicate;
        probe_sent = false;
        next = match + 1;
        window.reset();
    }

    /// Whether the leader may send entries now.
    [[nodiscard]] bool can_send() const noexcept {
        return state == replication_state::probe ? !probe_sent : !window.full();
    }
};

} // namespace synod::raft
