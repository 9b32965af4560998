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
