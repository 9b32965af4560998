#pragma once

/// \file
/// `synod::errc`: every expected failure in synod, as a `std::error_code` whose message tells
/// the user what to do next. Values are stable: they appear in logs and on the wire.

#include <string>
#include <system_error>

namespace synod {

enum class errc : int {
    // Leadership and proposals.
    not_leader = 1,           ///< this node is not the leader; retry at the leader hint
    leader_unknown = 2,       ///< no leader is known yet; retry after an election
    outcome_unknown = 3,      ///< leadership lost after append; the entry may still commit
    proposal_too_large = 4,   ///< a single proposal exceeds the configured limit
    uncommitted_limit = 5,    ///< too many uncommitted bytes at the leader; back off
    transfer_in_progress = 6, ///< leadership transfer under way; proposals paused
    change_in_progress = 7,   ///< one membership change at a time
    shutting_down = 8,        ///< the node is stopping
    timeout = 9,              ///< the operation did not finish in time
    stale_read = 10,          ///< leadership could not be confirmed for a read
    proposal_dropped = 11,    ///< another entry committed at the proposal's index: never applies

    // Decoding (wire/).
    truncated_input = 20, ///< fewer bytes than the encoding needs
    bad_crc = 21,         ///< checksum mismatch: the bytes were damaged
    unknown_version = 22, ///< encoding version this build does not speak
    unknown_message_type = 23,
    length_mismatch = 24,    ///< declared lengths disagree with the bytes present
    value_out_of_range = 25, ///< a decoded field holds a value that is not allowed
    frame_too_large = 26,    ///< frame exceeds max_frame_size

    // Storage.
    storage_failure = 40,    ///< an fsync or write failed; the log is unusable
    corrupt_storage = 41,    ///< stored data failed verification
    disk_full = 42,          ///< no space left; nothing was written
    index_out_of_range = 43, ///< the requested log index is compacted or beyond the end
    log_locked = 44,         ///< another process holds the log directory

    // Requests from users and peers.
    invalid_argument = 60, ///< a request field is malformed or out of range
    unknown_node = 61,     ///< the sender or target is not a member of this cluster
    queue_full = 62,       ///< a bounded queue is full; retry later
    user_limit = 63,       ///< a per-user cap is reached
    not_found = 64,
    already_exists = 65,
    corrupt_snapshot = 66, ///< a snapshot failed verification and was not restored

    // Replicated machines and coordination (machines/, coord/).
    conflicting_service = 80,  ///< the service id is hosted by another node
    unknown_service = 81,      ///< no service with that id is registered
    duplicate_service = 82,    ///< one command names the same service id twice
    invalid_capability = 83,   ///< a capability is not 1..64 of [a-z0-9_.-]
    missing_field = 84,        ///< a required field is empty (or node 0)
    field_too_large = 85,      ///< a field or list exceeds its documented limit
    revision_compacted = 86,   ///< the change history no longer reaches that revision
    revision_not_reached = 87, ///< the revision is newer than this replica's state
    stale_epoch = 88,          ///< the epoch is older than one the resource has seen
    unknown_command_tag = 89,  ///< a composed command's tag names no machine

    // Client sessions (machines/client_sessions.hpp).
    unknown_session = 90,      ///< the session id was never issued by this state machine
    session_expired = 91,      ///< the session expired, was closed, or was never live here
    stale_sequence = 92,       ///< the sequence is below the client's acknowledged window
    too_many_sessions = 93,    ///< the session table is full
    too_many_outstanding = 94, ///< the session holds its maximum of unacknowledged results

    // Membership (raft/).
    learner_behind = 95, ///< the learner has not caught up with the leader's log yet

    // Admission queue (machines/admission_queue.hpp).
    unknown_execution = 100,        ///< no execution with that id is known (or it is forgotten)
    execution_finished = 101,       ///< the execution already finished or was rejected
    not_running = 102,              ///< complete/fail of an execution that is still pending
    already_dispatched = 103,       ///< dispatch of an execution that is already running
    not_ready = 104,                ///< dispatch of an execution not at the front, or no capacity
    invalid_priority = 105,         ///< a priority outside 0 (critical) .. 4 (background)
    invalid_admission_config = 106, ///< an admission_config value is out of range
};

namespace detail {

class error_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "synod"; }

    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::not_leader:
            return "not leader; retry at the leader named in the reply's leader hint";
        case errc::leader_unknown:
            return "no leader is known; retry after an election timeout";
        case errc::outcome_unknown:
            return "leadership was lost after the entry was appended; it may still commit: "
                   "retry with the same idempotency key";
        case errc::learner_behind:
            return "the learner has not caught up with the leader's log: wait until it has (see "
                   "status().followers) and retry the promotion";
        case errc::proposal_dropped:
            return "the proposal was replaced by another leader's entry before it committed and "
                   "will never apply: propose it again";
        case errc::proposal_too_large:
            return "proposal exceeds max_proposal_bytes: split it or raise the limit";
        case errc::uncommitted_limit:
            return "leader holds max_uncommitted_bytes of uncommitted entries: back off and "
                   "retry";
        case errc::transfer_in_progress:
            return "leadership transfer in progress: retry at the new leader shortly";
        case errc::change_in_progress:
            return "a membership change is already in flight: wait for it to finish";
        case errc::shutting_down:
            return "the node is shutting down";
        case errc::timeout:
            return "operation timed out: retry, or check connectivity to a quorum";
        case errc::stale_read:
            return "leadership could not be confirmed for a read: retry at the current leader";
        case errc::truncated_input:
            return "input ends before the encoding does: the frame is truncated";
        case errc::bad_crc:
            return "checksum mismatch: the bytes were damaged in transit or on disk";
        case errc::unknown_version:
            return "unknown encoding version: upgrade this node or check the peer";
        case errc::unknown_message_type:
            return "unknown message type: the peer speaks a newer protocol or sent garbage";
        case errc::length_mismatch:
            return "declared lengths disagree with the bytes present: the frame is malformed";
        case errc::value_out_of_range:
            return "a field holds a value outside its allowed range: the frame is malformed";
        case errc::frame_too_large:
            return "frame exceeds max_frame_size (default 64 MiB): raise the limit or check "
                   "the peer";
        case errc::storage_failure:
            return "storage write or fsync failed: the log refuses further writes; restart the "
                   "node after checking the disk";
        case errc::corrupt_storage:
            return "stored data failed verification: restore this node from a peer or backup";
        case errc::disk_full:
            return "disk full: free space; nothing was written";
        case errc::index_out_of_range:
            return "log index is compacted or beyond the last entry";
        case errc::log_locked:
            return "the log directory is locked by another process: stop it or use another "
                   "directory";
        case errc::invalid_argument:
            return "invalid argument: a request field is malformed or out of range";
        case errc::unknown_node:
            return "unknown node: the sender or target is not a member of this cluster";
        case errc::queue_full:
            return "queue full: retry later or raise the queue cap";
        case errc::user_limit:
            return "per-user limit reached: wait for this user's work to finish";
        case errc::not_found:
            return "not found";
        case errc::already_exists:
            return "already exists";
        case errc::corrupt_snapshot:
            return "snapshot failed verification and was not restored";
        case errc::conflicting_service:
            return "the service id is already hosted by another node: deregister it there first, "
                   "or pick another id; nothing was changed";
        case errc::unknown_service:
            return "no service with that id is registered: check the id, or watch the directory "
                   "for its registration";
        case errc::duplicate_service:
            return "the command names the same service id twice: send each id once; nothing was "
                   "changed";
        case errc::invalid_capability:
            return "a capability must be 1 to 64 characters of [a-z0-9_.-]: fix the gateway's "
                   "capability list; nothing was changed";
        case errc::missing_field:
            return "a required field is empty: every service needs an id, a kind, an address and "
                   "a hosting node other than node 0; nothing was changed";
        case errc::field_too_large:
            return "a field or list exceeds its limit (see docs/machines.md): shorten it or split "
                   "the command; nothing was changed";
        case errc::revision_compacted:
            return "the change history no longer reaches that revision: read the whole directory "
                   "again and watch from its revision";
        case errc::revision_not_reached:
            return "the revision is newer than this replica's directory: wait for the replica to "
                   "catch up, or read at the leader";
        case errc::stale_epoch:
            return "the epoch is older than one this resource has already seen: the sender was "
                   "superseded by a newer director and must stop";
        case errc::unknown_command_tag:
            return "the command's tag names no machine in this composition: proposer and replica "
                   "disagree on the composed machines (check both builds)";
        case errc::unknown_session:
            return "no session with that id was ever registered: register a session first and "
                   "use the id its registration returned; nothing was applied";
        case errc::session_expired:
            return "the session expired (no command within session_timeout of replicated time), "
                   "was closed, or no longer exists: register a new session; whether this "
                   "session's unanswered commands applied cannot be known";
        case errc::stale_sequence:
            return "the sequence is below the first_outstanding the client already acknowledged, "
                   "so its result was discarded: a client must not retry a command it has "
                   "acknowledged; nothing was applied";
        case errc::too_many_sessions:
            return "the session table is full (max_sessions): close unused sessions or retry "
                   "after idle ones expire; nothing was registered";
        case errc::too_many_outstanding:
            return "the session holds max_results_per_session unacknowledged results: raise "
                   "first_outstanding as results arrive, then retry; nothing was applied";
        case errc::unknown_execution:
            return "no execution with that id is known: it was never submitted, or it finished "
                   "so long ago that its decision is no longer retained (max_retained_decisions); "
                   "nothing was changed";
        case errc::execution_finished:
            return "the execution already finished (completed, failed, cancelled, expired) or was "
                   "rejected at admission: its outcome is final; nothing was changed";
        case errc::not_running:
            return "the execution is still pending: only a dispatched (running) execution can "
                   "complete or fail; cancel it instead, or wait for its dispatch";
        case errc::already_dispatched:
            return "the execution is already running: an execution is dispatched at most once, "
                   "so this dispatch was refused and nothing was changed";
        case errc::not_ready:
            return "the execution is not ready to dispatch (not at the front of the queue, or "
                   "max_running executions run): ask ready_to_dispatch() again; nothing was "
                   "changed";
        case errc::invalid_priority:
            return "the priority must be 0 (critical) to 4 (background); nothing was submitted";
        case errc::invalid_admission_config:
            return "admission_config out of range: max_queue_size, max_per_user and max_running "
                   "must be at least 1, stale_timeout 1 ms to 2^40 ms, and fairness a known "
                   "policy";
        }
        return "unknown synod error " + std::to_string(value);
    }
};

} // namespace detail

[[nodiscard]] inline const std::error_category& error_category() noexcept {
    static const detail::error_category category;
    return category;
}

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

} // namespace synod

template <>
struct std::is_error_code_enum<synod::errc> : std::true_type {};
