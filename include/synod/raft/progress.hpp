#pragma once

/// \file
/// What a leader knows about one follower's log, and how it sends to it.
///
/// - **probe**: the leader does not know where the follower's log diverges. It sends one
///   AppendEntries at a time and waits for the answer (or the next heartbeat) before sending
///   another, moving `next` back by whole terms on each rejection (paper §5.3).
/// - **replicate**: the follower is known to match through `match`; the leader streams entries
///   optimistically, advancing `next` as it sends, bounded by the inflight window.
/// - **snapshot**: the follower needs entries the leader has compacted away; the leader streams
///   its snapshot in chunks (paper §7), bounded by the same window, and returns to probing
///   after the follower has installed it.

#include <synod/core/ids.hpp>
#include <synod/core/snapshot.hpp>
#include <synod/raft/inflights.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

namespace synod::raft {

enum class replication_state : std::uint8_t { probe, replicate, snapshot };

[[nodiscard]] constexpr std::string_view to_string(replication_state s) noexcept {
    switch (s) {
    case replication_state::probe:
        return "probe";
    case replication_state::replicate:
        return "replicate";
    case replication_state::snapshot:
        return "snapshot";
    }
    return "?";
}

/// A snapshot on its way to one follower. The leader keeps its own reference to the bytes, so
/// a newer snapshot taken meanwhile does not disturb the transfer.
struct snapshot_transfer {
    synod::snapshot image;
    /// CRC32C of all of `image.data`, sent with every chunk so the follower verifies the whole.
    std::uint32_t crc = 0;
    /// Bytes the follower has confirmed holding, in order. \invariant acked <= sent.
    std::uint64_t acked = 0;
    /// Bytes sent so far; rewound to `acked` when chunks seem lost.
    std::uint64_t sent = 0;
    /// The last chunk has been sent (since the last rewind).
    bool all_sent = false;
    /// The follower refused the whole or dropped its partial copy: the stall check resends
    /// from the start, not from `acked`.
    bool restart_on_stall = false;
    /// The offset the last rewind went back to: further rejections asking for it are echoes
    /// of the same gap, not new losses.
    std::uint64_t rewound_to = 0;
    /// `acked` at the previous heartbeat, to detect a stalled transfer.
    std::uint64_t acked_at_heartbeat = 0;
};

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
    /// Highest `round` this follower has answered in this term: it followed this leader when
    /// that message was sent (ReadIndex confirmation and leases, thesis §6.4).
    std::uint64_t acked_round = 0;
    /// `match` at the previous heartbeat, and how many heartbeats in a row found the window
    /// non-empty without `match` moving: messages in flight have probably been lost.
    log_index match_at_heartbeat;
    int stalled_heartbeats = 0;
    inflights window;

    /// In snapshot state: the transfer in progress (one per follower at a time).
    std::optional<snapshot_transfer> transfer;

    void become_probe() noexcept {
        state = replication_state::probe;
        transfer.reset();
        probe_sent = false;
        stalled_heartbeats = 0;
        next = match + 1;
        window.reset();
    }
    void become_replicate() noexcept {
        state = replication_state::replicate;
        transfer.reset();
        probe_sent = false;
        next = match + 1;
        window.reset();
    }

    void become_snapshot(synod::snapshot image, std::uint32_t crc) {
        state = replication_state::snapshot;
        probe_sent = false;
        stalled_heartbeats = 0;
        window.reset();
        transfer.emplace(snapshot_transfer{std::move(image), crc});
    }

    /// After the follower installed the snapshot: it matches through the snapshot's index.
    void snapshot_installed(log_index last_included) noexcept {
        match = std::max(match, last_included);
        become_probe();
    }

    /// Whether the leader may send entries (or, in snapshot state, a chunk) now.
    [[nodiscard]] bool can_send() const noexcept {
        switch (state) {
        case replication_state::probe:
            return !probe_sent;
        case replication_state::replicate:
            return !window.full();
        case replication_state::snapshot:
            return !transfer->all_sent && !window.full();
        }
        return false;
    }
};

} // namespace synod::raft
