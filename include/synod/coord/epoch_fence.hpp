#pragma once

/// \file
/// `coord::epoch_fence`: what a resource (a log, a storage server) keeps so that only the
/// newest director can drive it. Every director command carries the director's epoch; the
/// fence admits it only if that epoch is at least the highest the resource has seen, and so a
/// director that was superseded (and may not know it yet) is refused with `stale_epoch`.
///
/// A new director first locks each resource for recovery with its own epoch, which must be
/// strictly newer than anything seen: two directors can never both hold the lock, even if both
/// believe they lead.
///
/// A plain value, thread-compatible: a resource that serves several threads guards it with
/// its own lock. To fence across its own restarts a resource persists `highest_seen()` before
/// acting on an admitted command and constructs the fence from it on start.

#include <synod/core/epoch.hpp>
#include <synod/core/errc.hpp>

#include <system_error>

namespace synod::coord {

class epoch_fence {
public:
    epoch_fence() = default;
    /// A fence that already saw `highest_seen` (as persisted by the resource).
    explicit epoch_fence(epoch highest_seen) noexcept
        : highest_seen_(highest_seen) {}

    /// Admits a command of `sender`'s epoch: empty if `sender >= highest_seen()` (which then
    /// becomes `sender`), else `stale_epoch` and nothing changes.
    std::error_code admit(epoch sender) noexcept {
        if (sender < highest_seen_) {
            return errc::stale_epoch;
        }
        highest_seen_ = sender;
        return {};
    }

    /// Whether `admit(sender)` would succeed, without recording anything.
    [[nodiscard]] bool would_admit(epoch sender) const noexcept { return sender >= highest_seen_; }

    /// Locks the resource for recovery by the director of epoch `recovering`: empty if
    /// `recovering > highest_seen()` (it then becomes the highest seen and the lock holder),
    /// else `stale_epoch` and nothing changes.
    std::error_code lock_for_recovery(epoch recovering) noexcept {
        if (recovering <= highest_seen_) {
            return errc::stale_epoch;
        }
        highest_seen_ = recovering;
        locked_by_ = recovering;
        return {};
    }

    [[nodiscard]] epoch highest_seen() const noexcept { return highest_seen_; }

    /// The epoch of the last successful `lock_for_recovery` (`no_epoch` if none).
    [[nodiscard]] epoch locked_by() const noexcept { return locked_by_; }

    friend bool operator==(const epoch_fence&, const epoch_fence&) = default;

private:
    /// \invariant never decreases.
    epoch highest_seen_;
    /// \invariant `locked_by_ <= highest_seen_`; never decreases.
    epoch locked_by_;
};

} // namespace synod::coord
