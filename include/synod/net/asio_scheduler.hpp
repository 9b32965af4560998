#pragma once

/// \file
/// `net::asio_scheduler`: the `scheduler` policy over a Boost.Asio executor — an
/// `io_context`'s executor when one thread runs it, a strand when several do. Posts become
/// `asio::post`, timers become `steady_timer`s on the same executor, so a node, its transport
/// and its timers share one serial context and need no locks (design principle 2).
///
/// \warning Construct, use and destroy the scheduler on its context (or while the
/// `io_context` is not running). After destruction nothing it was handed runs: pending posts
/// and timers become no-ops, and timers are cancelled so `io_context::run` need not wait for
/// them.

#include <synod/core/concepts/scheduler.hpp>
#include <synod/net/steady_clock.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <memory>
#include <system_error>
#include <utility>

namespace synod::net {

class asio_scheduler {
    /// One armed timer. The pending wait owns it; handles observe it weakly, so a handle to a
    /// timer that has run (or been cancelled) expires with it.
    struct timer_slot : boost::intrusive::list_base_hook<
                            boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
        explicit timer_slot(const boost::asio::any_io_executor& ex)
            : timer(ex) {}
        boost::asio::steady_timer timer;
        /// \invariant true once the callable ran or was cancelled: it never runs (again).
        bool done = false;
    };
    using slot_list =
        boost::intrusive::list<timer_slot, boost::intrusive::constant_time_size<false>>;

public:
    using time_point = steady_clock::time_point;

    class timer_handle {
    public:
        timer_handle() = default;

    private:
        friend class asio_scheduler;
        explicit timer_handle(std::weak_ptr<timer_slot> slot)
            : slot_(std::move(slot)) {}
        std::weak_ptr<timer_slot> slot_;
    };

    explicit asio_scheduler(boost::asio::any_io_executor executor)
        : executor_(std::move(executor))
        , alive_(std::make_shared<bool>(true)) {}

    asio_scheduler(const asio_scheduler&) = delete;
    asio_scheduler& operator=(const asio_scheduler&) = delete;

    ~asio_scheduler() {
        *alive_ = false;
        while (!armed_.empty()) {
            timer_slot& s = armed_.front();
            s.unlink();
            s.done = true;
            s.timer.cancel();
        }
    }

    template <class F>
    void post(F&& f) {
        boost::asio::post(executor_, [alive = alive_, f = std::forward<F>(f)]() mutable {
            if (*alive) {
                f();
            }
        });
    }

    template <class F>
    timer_handle schedule_at(time_point at, F&& f) {
        auto slot = std::make_shared<timer_slot>(executor_);
        armed_.push_back(*slot);
        slot->timer.expires_at(at);
        slot->timer.async_wait(
            [slot, alive = alive_, f = std::forward<F>(f)](boost::system::error_code) mutable {
                slot->unlink();
                if (slot->done || !*alive) {
                    return;
                }
                slot->done = true;
                f();
            });
        return timer_handle(slot);
    }

    bool cancel(timer_handle h) {
        auto slot = h.slot_.lock();
        if (!slot || slot->done) {
            return false;
        }
        slot->done = true;
        slot->unlink();
        slot->timer.cancel();
        return true;
    }

    [[nodiscard]] const boost::asio::any_io_executor& executor() const noexcept {
        return executor_;
    }

private:
    boost::asio::any_io_executor executor_;
    std::shared_ptr<bool> alive_;
    /// Timers whose callable may still run; cancelled on destruction.
    slot_list armed_;
};

static_assert(scheduler<asio_scheduler>);

} // namespace synod::net
