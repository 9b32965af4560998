#pragma once

/// \file
/// The window of AppendEntries sent to one follower and not yet acknowledged. Bounds both the
/// number of messages and their bytes, so a slow follower cannot make the leader buffer
/// without limit.

#include <synod/core/assert.hpp>
#include <synod/core/ids.hpp>

#include <cstddef>
#include <deque>

namespace synod::raft {

class inflights {
public:
    inflights(std::size_t max_count, std::size_t max_bytes) noexcept
        : max_count_(max_count)
        , max_bytes_(max_bytes) {}

    /// Whether another message may be sent. A window with nothing in flight always admits
    /// one, however large, so progress never stalls on a single big entry.
    [[nodiscard]] bool full() const noexcept {
        return !window_.empty() && (window_.size() >= max_count_ || bytes_ >= max_bytes_);
    }

    /// Records a message whose last entry is `last` and whose entries cost `bytes`.
    /// \pre !full(); `last` is larger than every index already in the window.
    void add(log_index last, std::size_t bytes) {
        SYNOD_ASSERT(!full(), "inflight window overflow");
        SYNOD_ASSERT(window_.empty() || window_.back().last < last,
                     "inflight messages must be added in index order");
        window_.push_back({last, bytes});
        bytes_ += bytes;
    }

    /// Frees every message whose last entry is at or below `acked`.
    void free_through(log_index acked) noexcept {
        while (!window_.empty() && window_.front().last <= acked) {
            bytes_ -= window_.front().bytes;
            window_.pop_front();
        }
    }

    /// Frees the oldest message (a heartbeat reply in probe state unblocks one slot).
    void free_first() noexcept {
        if (!window_.empty()) {
            bytes_ -= window_.front().bytes;
            window_.pop_front();
        }
    }

    void reset() noexcept {
        window_.clear();
        bytes_ = 0;
    }

    [[nodiscard]] std::size_t count() const noexcept { return window_.size(); }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

private:
    struct in_flight {
        log_index last;
        std::size_t bytes;
    };

    std::size_t max_count_;
    std::size_t max_bytes_;
    std::deque<in_flight> window_;
    /// \invariant the sum of window_[k].bytes.
    std::size_t bytes_ = 0;
};

} // namespace synod::raft
