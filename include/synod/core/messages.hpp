#pragma once

/// \file
/// The messages Raft servers exchange: one struct per message, and `message`, a variant over
/// them. Every message names its sender, its receiver and the sender's term (paper §5.1: "if
/// one server's current term is smaller than the other's, then it updates its current term").

#include <synod/core/bytes.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/membership.hpp>

#include <cstdint>
#include <variant>
#include <vector>

namespace synod {

/// RequestVote (paper §5.2), and the pre-vote round that precedes it (thesis §9.6). A pre-vote
/// carries the term the candidate *would* use and changes no state at the receiver.
struct vote_request {
    node_id from;
    node_id to;
    synod::term term;
    log_index last_log_index;
    synod::term last_log_term;
    bool pre_vote = false;
    /// Sent by the target of a leadership transfer (thesis §3.10): receivers grant it even
    /// though they still hear from the current leader.
    bool leadership_transfer = false;

    friend bool operator==(const vote_request&, const vote_request&) = default;
};

struct vote_response {
    node_id from;
    node_id to;
    synod::term term;
    bool granted = false;
    bool pre_vote = false;

    friend bool operator==(const vote_response&, const vote_response&) = default;
};

/// AppendEntries (paper §5.3); with no entries it is a heartbeat.
struct append_request {
    node_id from;
    node_id to;
    synod::term term;
    log_index prev_log_index;
    synod::term prev_log_term;
    log_index leader_commit;
    /// Heartbeat round, echoed in the response; the leader uses it to confirm leadership for
    /// ReadIndex (thesis §6.4) without confusing old replies with new ones.
    std::uint64_t round = 0;
    /// \invariant entries[i].index == prev_log_index + 1 + i.
    std::vector<log_entry> entries;

    friend bool operator==(const append_request&, const append_request&) = default;
};

struct append_response {
    node_id from;
    node_id to;
    synod::term term;
    bool success = false;
    /// On success: the follower's log matches the leader's through this index and is durable
    /// there. On rejection: the follower's last log index.
    log_index match_index;
    /// On rejection: the term of the follower's entry at the leader's prev_log_index (0 if the
    /// follower has no entry there) and the first index the follower holds of that term, so the
    /// leader skips a whole term per round trip (paper §5.3, "optimization").
    synod::term conflict_term;
    log_index conflict_index;
    std::uint64_t round = 0;

    friend bool operator==(const append_response&, const append_response&) = default;
};

/// One chunk of InstallSnapshot (paper §7), with its own checksum.
struct snapshot_chunk_request {
    node_id from;
    node_id to;
    synod::term term;
    log_index last_included_index;
    synod::term last_included_term;
    membership config;
    std::uint64_t offset = 0;
    std::uint64_t total_size = 0;
    /// CRC32C of `data`.
    std::uint32_t chunk_crc = 0;
    /// CRC32C of the whole snapshot (`total_size` bytes): the follower verifies the assembled
    /// snapshot against it before restoring anything.
    std::uint32_t snapshot_crc = 0;
    bool done = false;
    shared_bytes data;

    friend bool operator==(const snapshot_chunk_request&, const snapshot_chunk_request&) = default;
};

struct snapshot_chunk_response {
    node_id from;
    node_id to;
    synod::term term;
    log_index last_included_index;
    /// Bytes of the snapshot the follower holds in order; the leader resumes from here.
    std::uint64_t next_offset = 0;
    bool rejected = false;
    bool done = false;

    friend bool operator==(const snapshot_chunk_response&,
                           const snapshot_chunk_response&) = default;
};

/// Tells the target of a leadership transfer to start an election at once (thesis §3.10).
struct timeout_now {
    node_id from;
    node_id to;
    synod::term term;

    friend bool operator==(const timeout_now&, const timeout_now&) = default;
};

/// A follower asks the leader for a read index (thesis §6.4).
struct read_index_request {
    node_id from;
    node_id to;
    synod::term term;
    std::uint64_t request_id = 0;

    friend bool operator==(const read_index_request&, const read_index_request&) = default;
};

struct read_index_response {
    node_id from;
    node_id to;
    synod::term term;
    std::uint64_t request_id = 0;
    /// Valid only when `success`: the read may be served once this index is applied.
    log_index read_index;
    bool success = false;

    friend bool operator==(const read_index_response&, const read_index_response&) = default;
};

/// A follower hands a client's proposal to the leader (`config::forward_proposals`).
struct proposal_forward {
    node_id from;
    node_id to;
    synod::term term;
    std::uint64_t request_id = 0;
    shared_bytes payload;

    friend bool operator==(const proposal_forward&, const proposal_forward&) = default;
};

/// The leader's answer: the proposal was appended at `index` in the leader's `term` (`error`
/// 0), or refused with `error`, a `synod::errc` value. The follower learns the outcome by
/// applying that index itself.
struct proposal_forward_response {
    node_id from;
    node_id to;
    synod::term term;
    std::uint64_t request_id = 0;
    log_index index;
    std::uint32_t error = 0;

    friend bool operator==(const proposal_forward_response&,
                           const proposal_forward_response&) = default;
};

using message =
    std::variant<vote_request, vote_response, append_request, append_response,
                 snapshot_chunk_request, snapshot_chunk_response, timeout_now, read_index_request,
                 read_index_response, proposal_forward, proposal_forward_response>;

/// Header fields common to every message.
[[nodiscard]] inline node_id message_from(const message& m) noexcept {
    return std::visit([](const auto& x) { return x.from; }, m);
}
[[nodiscard]] inline node_id message_to(const message& m) noexcept {
    return std::visit([](const auto& x) { return x.to; }, m);
}
[[nodiscard]] inline term message_term(const message& m) noexcept {
    return std::visit([](const auto& x) { return x.term; }, m);
}

} // namespace synod
