#pragma once

/// \file
/// `coord::director_supervisor`: keeps at most one director running on this node, each run
/// with its own epoch. It reacts to four things:
///
/// - `ready(e, view)`: the leader is ready with a fresh epoch `e`: start the director;
/// - `leadership_lost()`: stop the director at once (before anything else happens);
/// - `directory_changed(c)`: tell the running director; a director waiting out a back-off
///   after a failure is retried at once (the change may be what it was missing);
/// - `failed(e, ec)`: the director of epoch `e` failed (or its start did): stop it, and after a
///   back-off ask for a fresh epoch, so a restarted director never reuses the failed one's.
///
/// The supervisor knows nothing of Raft: it asks its owner for epochs through the
/// `request_epoch` callback, and its owner calls `ready` when one is issued.

#include <synod/coord/director.hpp>
#include <synod/core/concepts/clock.hpp>
#include <synod/core/concepts/scheduler.hpp>
#include <synod/core/epoch.hpp>
#include <synod/core/unique_function.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

namespace synod::coord {

struct supervisor_config {
    /// Back-off before a failed director is retried: doubles per consecutive failure, from
    /// `initial_backoff` up to `max_backoff`; a successful start resets it.
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{10'000};
};

template <director Director, clock Clock, scheduler Scheduler>
requires std::same_as<typename Clock::time_point, typename Scheduler::time_point>
class director_supervisor {
public:
    enum class state : std::uint8_t {
        idle,           ///< no director; not leader (or not ready yet)
        running,        ///< a director runs with `epoch()`
        backing_off,    ///< the last director failed; a retry is scheduled
        awaiting_epoch, ///< a retry asked for a fresh epoch and waits for it
    };

    /// `request_epoch` asks the owner to issue a fresh epoch; the owner answers with `ready`.
    director_supervisor(Director& d, const Clock& clock, Scheduler& scheduler,
                        std::function<void()> request_epoch, supervisor_config cfg = {})
        : director_(d)
        , clock_(clock)
        , scheduler_(scheduler)
        , request_epoch_(std::move(request_epoch))
        , cfg_(cfg)
        , backoff_(cfg.initial_backoff)
        , lifetime_(std::make_shared<director_supervisor*>(this)) {}

    director_supervisor(const director_supervisor&) = delete;
    director_supervisor& operator=(const director_supervisor&) = delete;

    ~director_supervisor() {
        *lifetime_ = nullptr;
        cancel_retry();
        if (state_ == state::running) {
            director_.stop(stop_reason::shutting_down);
        }
    }

    /// A fresh epoch was issued for this leader: (re)start the director with it.
    void ready(epoch e, const directory_view& view) {
        if (state_ == state::running) {
            director_.stop(stop_reason::failed); // superseded by a newer epoch
        }
        cancel_retry();
        epoch_ = e;
        ++starts_;
        if (auto ec = director_.start(e, view)) {
            state_ = state::running; // so that `failed` sees it as the current director
            return failed(e, ec);
        }
        state_ = state::running;
        backoff_ = cfg_.initial_backoff;
    }

    void leadership_lost() {
        cancel_retry();
        if (state_ == state::running) {
            director_.stop(stop_reason::leadership_lost);
        }
        state_ = state::idle;
        backoff_ = cfg_.initial_backoff;
    }

    void directory_changed(const machines::directory_change& change) {
        if (state_ == state::running) {
            director_.directory_changed(change);
        } else if (state_ == state::backing_off) {
            cancel_retry();
            retry();
        }
    }

    /// The director of epoch `e` failed. Reports about an older epoch are ignored.
    void failed(epoch e, std::error_code why) {
        if (state_ != state::running || e != epoch_) {
            return;
        }
        director_.stop(stop_reason::failed);
        ++failures_;
        last_failure_ = why;
        state_ = state::backing_off;
        retry_at_ = clock_.now() + std::chrono::duration_cast<typename Clock::duration>(backoff_);
        backoff_ = std::min(backoff_ * 2, cfg_.max_backoff);
        retry_armed_ = true;
        retry_timer_ = scheduler_.schedule_at(retry_at_, [life = std::weak_ptr(lifetime_)] {
            if (auto self = life.lock(); self && *self) {
                (*self)->retry_armed_ = false;
                (*self)->retry();
            }
        });
    }

    [[nodiscard]] state current_state() const noexcept { return state_; }
    /// Epoch of the running director, or of the last one started.
    [[nodiscard]] epoch current_epoch() const noexcept { return epoch_; }
    [[nodiscard]] bool running() const noexcept { return state_ == state::running; }
    [[nodiscard]] std::uint64_t starts() const noexcept { return starts_; }
    [[nodiscard]] std::uint64_t failures() const noexcept { return failures_; }
    [[nodiscard]] std::error_code last_failure() const noexcept { return last_failure_; }

private:
    void retry() {
        if (state_ != state::backing_off) {
            return;
        }
        state_ = state::awaiting_epoch;
        request_epoch_();
    }

    void cancel_retry() {
        if (retry_armed_) {
            scheduler_.cancel(retry_timer_);
            retry_armed_ = false;
        }
    }

    Director& director_;
    const Clock& clock_;
    Scheduler& scheduler_;
    std::function<void()> request_epoch_;
    supervisor_config cfg_;
    state state_ = state::idle;
    /// \invariant while running: the epoch the director was started with.
    epoch epoch_;
    std::chrono::milliseconds backoff_;
    typename Clock::time_point retry_at_{};
    typename Scheduler::timer_handle retry_timer_{};
    bool retry_armed_ = false;
    std::uint64_t starts_ = 0;
    std::uint64_t failures_ = 0;
    std::error_code last_failure_;
    std::shared_ptr<director_supervisor*> lifetime_;
};

} // namespace synod::coord
