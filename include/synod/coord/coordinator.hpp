#pragma once

/// \file
/// `coord::coordinator`: a Raft node running the coordinator's replicated machines — the
/// service directory and the epoch ledger — plus what drives them from the leader (seed 000):
///
/// - **readiness**: `not_leader` → (elected) `leader_waiting_consensus` → `leader_ready`. A new
///   leader commits its no-op at once (paper §8), so it never waits for client traffic; once
///   its log is applied through that no-op the directory is current, and it issues a new
///   epoch through consensus. With the epoch committed it is `leader_ready` and the director
///   starts. A failed director makes it `recovery_failed` until a fresh epoch is issued.
/// - **gateway API**: register/deregister services and read the directory from any node;
///   followers forward writes to the leader and report the leader's outcome. Reads are
///   linearizable (ReadIndex) unless the caller asks for a stale one by name.
/// - **watchers**: directory changes and readiness changes, delivered on the scheduler.
///
/// Epochs are issued by `machines::epoch_ledger`, so each is strictly greater than every epoch
/// issued before it, by any leader, across restarts of every node.

#include <synod/coord/director.hpp>
#include <synod/coord/director_supervisor.hpp>
#include <synod/core/epoch.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/result.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/machines/compose.hpp>
#include <synod/machines/epoch_ledger.hpp>
#include <synod/machines/service_directory.hpp>
#include <synod/raft/node.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace synod::coord {

enum class readiness : std::uint8_t {
    not_leader,
    leader_waiting_consensus,
    leader_ready,
    recovery_failed,
};

[[nodiscard]] constexpr std::string_view to_string(readiness r) noexcept {
    switch (r) {
    case readiness::not_leader:
        return "not_leader";
    case readiness::leader_waiting_consensus:
        return "leader_waiting_consensus";
    case readiness::leader_ready:
        return "leader_ready";
    case readiness::recovery_failed:
        return "recovery_failed";
    }
    return "?";
}

/// The policy classes of a coordinator's Raft node, bundled.
template <log_store Log, transport Transport, clock Clock, scheduler Scheduler>
struct policies {
    using log_type = Log;
    using transport_type = Transport;
    using clock_type = Clock;
    using scheduler_type = Scheduler;
};

/// The machines of a coordinator's group. New machines go at the end: a command's tag is its
/// machine's position.
using coordinator_machines = machines::compose<machines::service_directory, machines::epoch_ledger>;

/// What a directory write reports.
struct write_result {
    /// Refusals from Raft (`not_leader`, `leader_unknown`, `outcome_unknown`, ...) or the
    /// directory's own (`conflicting_service`, `invalid_capability`, ...). Empty: applied.
    std::error_code error;
    std::uint64_t revision = 0; ///< the directory revision after the command
    bool changed = false;       ///< false for a re-registration of the same state
    node_id leader_hint;
};

/// A change of readiness, epoch or leader, as watchers see it.
struct readiness_event {
    coord::readiness readiness = readiness::not_leader;
    epoch current_epoch;
    node_id leader;
    term t;
};

template <class Policies, director Director>
class coordinator {
    using Log = typename Policies::log_type;
    using Transport = typename Policies::transport_type;
    using Clock = typename Policies::clock_type;
    using Scheduler = typename Policies::scheduler_type;

    /// The node's state machine: the composed machines, watched for directory changes.
    class observed_machines {
    public:
        using result_type = coordinator_machines::result_type;
        explicit observed_machines(coordinator& owner)
            : owner_(owner) {}
        result_type apply(const log_entry& e) {
            result_type r = machines_.apply(e);
            if (const auto* d = r.template get_if<machines::service_directory>();
                d != nullptr && d->changed) {
                owner_.directory_applied(d->revision);
            }
            return r;
        }
        [[nodiscard]] shared_bytes snapshot() const { return machines_.snapshot(); }
        std::error_code restore(byte_span b) {
            auto ec = machines_.restore(b);
            if (!ec) {
                owner_.directory_restored();
            }
            return ec;
        }
        coordinator_machines machines_;

    private:
        coordinator& owner_;
    };

public:
    using node_type = raft::node<Log, Transport, Clock, Scheduler, observed_machines>;
    using write_completion = unique_function<void(write_result)>;
    using read_completion = unique_function<void(result<directory_view>)>;
    using directory_watcher = unique_function<void(const machines::directory_change&)>;
    using readiness_watcher = unique_function<void(const readiness_event&)>;

    /// `cfg` is the node's config; the coordinator turns on proposal forwarding and installs
    /// its observers (chaining any the host set). The policies and director must outlive it.
    coordinator(raft::config cfg, Log& log, Transport& transport, const Clock& clock,
                Scheduler& scheduler, Director& d, supervisor_config supervision = {})
        : clock_(clock)
        , scheduler_(scheduler)
        , machine_(*this)
        , lifetime_(std::make_shared<coordinator*>(this))
        , node_(prepare(std::move(cfg)), log, transport, clock, scheduler, machine_)
        , supervisor_(
              d, clock, scheduler, [this] { request_epoch(); }, supervision) {}

    coordinator(const coordinator&) = delete;
    coordinator& operator=(const coordinator&) = delete;

    ~coordinator() { *lifetime_ = nullptr; }

    /// Recovers the node's state and starts it (see `raft::node::start`).
    std::error_code start() { return node_.start(); }

    // --- gateway API -----------------------------------------------------------------------

    /// Replaces `node`'s services and capabilities (its services not listed are removed).
    void register_gateway(node_id node, const std::vector<machines::service_endpoint>& services,
                          const std::vector<std::string>& capabilities, write_completion done) {
        write(machines::service_directory::encode_register_gateway(node, services, capabilities),
              std::move(done));
    }
    /// Inserts or replaces services by id.
    void register_services(const std::vector<machines::service>& services, write_completion done) {
        write(machines::service_directory::encode_register_services(services), std::move(done));
    }
    void deregister_services(const std::vector<std::string>& ids, write_completion done) {
        write(machines::service_directory::encode_deregister_services(ids), std::move(done));
    }

    /// A linearizable read (ReadIndex, thesis §6.4): the directory once every write
    /// committed before this call is applied here; from a follower, through its leader's read
    /// index. Errors as `raft::read_result` (`stale_read`, `leader_unknown`, ...).
    void read_directory(read_completion done) {
        node_.read_index([this, life = std::weak_ptr(lifetime_),
                          done = std::move(done)](raft::read_result r) mutable {
            if (auto self = life.lock(); !self || !*self) {
                return done(errc::shutting_down);
            }
            if (r.error) {
                return done(r.error);
            }
            done(view());
        });
    }

    /// This replica's directory as it is, without asking anyone: it may lag the leader
    /// (stale on a follower or a deposed leader). For watchers and diagnostics.
    [[nodiscard]] directory_view stale_directory_view() const { return view(); }
    [[nodiscard]] const machines::service_directory& stale_directory() const noexcept {
        return machine_.machines_.template get<machines::service_directory>();
    }

    // --- leadership, epochs, director ------------------------------------------------------

    [[nodiscard]] coord::readiness readiness() const noexcept { return readiness_; }
    /// The epoch of this leader's director (`no_epoch` when none is issued for this term).
    [[nodiscard]] epoch current_epoch() const noexcept { return epoch_; }
    /// The last epoch the ledger issued, as applied here.
    [[nodiscard]] epoch last_issued_epoch() const noexcept {
        return machine_.machines_.template get<machines::epoch_ledger>().last_issued();
    }
    [[nodiscard]] const director_supervisor<Director, Clock, Scheduler>& supervisor() const {
        return supervisor_;
    }

    /// The running director of epoch `e` failed: it is stopped, the coordinator records
    /// `recovery_failed`, and after a back-off a fresh epoch is issued and it is started again.
    void report_director_failure(epoch e, std::error_code why) {
        if (readiness_ == readiness::leader_ready && e == epoch_) {
            set_readiness(readiness::recovery_failed);
        }
        supervisor_.failed(e, why);
    }

    // --- watchers --------------------------------------------------------------------------

    /// Calls `w` with every directory change applied here, in revision order, on the
    /// scheduler. After a snapshot is installed the watcher gets a change with the new
    /// revision and nothing listed: re-read the directory. Returns an id for `unwatch`.
    std::uint64_t watch_directory(directory_watcher w) {
        directory_watchers_.emplace(++watch_ids_, std::move(w));
        return watch_ids_;
    }
    std::uint64_t watch_readiness(readiness_watcher w) {
        readiness_watchers_.emplace(++watch_ids_, std::move(w));
        return watch_ids_;
    }
    void unwatch(std::uint64_t id) {
        directory_watchers_.erase(id);
        readiness_watchers_.erase(id);
    }

    [[nodiscard]] node_type& node() noexcept { return node_; }
    [[nodiscard]] const node_type& node() const noexcept { return node_; }

private:
    raft::config prepare(raft::config cfg) {
        cfg.forward_proposals = true;
        cfg.on_leader_change = [this, chained = std::move(cfg.on_leader_change)](node_id l,
                                                                                 term t) {
            on_leader_change(l, t);
            if (chained) {
                chained(l, t);
            }
        };
        cfg.on_applied = [this, chained = std::move(cfg.on_applied)](log_index i) {
            post_advance();
            if (chained) {
                chained(i);
            }
        };
        return cfg;
    }

    void write(shared_bytes command, write_completion done) {
        node_.propose(coordinator_machines::encode<machines::service_directory>(command.span()),
                      [done = std::move(done)](typename node_type::result r) mutable {
                          write_result out;
                          out.leader_hint = r.leader_hint;
                          if (r.error) {
                              out.error = r.error;
                              return done(std::move(out));
                          }
                          if (r.value->routing_error) {
                              out.error = r.value->routing_error;
                              return done(std::move(out));
                          }
                          const auto* d = r.value->template get_if<machines::service_directory>();
                          out.error = d->error;
                          out.revision = d->revision;
                          out.changed = d->changed;
                          done(std::move(out));
                      });
    }

    [[nodiscard]] directory_view view() const {
        const auto& dir = stale_directory();
        return directory_view{dir.all().value, dir.nodes().value, dir.revision()};
    }

    /// Runs inside the node (a role change): stop the director before anything else.
    void on_leader_change(node_id leader, term t) {
        if (leader == node_.id()) {
            leader_term_ = t;
            epoch_ = epoch{};
            epoch_requested_ = false;
            set_readiness(readiness::leader_waiting_consensus);
            post_advance();
            return;
        }
        if (readiness_ != readiness::not_leader) {
            supervisor_.leadership_lost();
            epoch_ = epoch{};
            set_readiness(readiness::not_leader);
        } else {
            notify_readiness(); // the known leader changed
        }
    }

    void post_advance() {
        if (advance_posted_) {
            return;
        }
        advance_posted_ = true;
        scheduler_.post([life = std::weak_ptr(lifetime_)] {
            if (auto self = life.lock(); self && *self) {
                (*self)->advance_posted_ = false;
                (*self)->advance();
            }
        });
    }

    /// `leader_waiting_consensus` → issue an epoch, once the log is applied through this
    /// leader's no-op (so the directory holds everything committed before it took office).
    void advance() {
        if (readiness_ == readiness::leader_waiting_consensus && !epoch_requested_ &&
            node_.leader_caught_up() && node_.current_term() == leader_term_) {
            issue_epoch();
        }
    }

    /// The supervisor's retry after a director failure.
    void request_epoch() {
        if (readiness_ == readiness::leader_ready || readiness_ == readiness::recovery_failed) {
            issue_epoch();
        }
    }

    void issue_epoch() {
        epoch_requested_ = true;
        const term t = leader_term_;
        node_.propose(coordinator_machines::encode<machines::epoch_ledger>(
                          machines::epoch_ledger::encode_issue_epoch(node_.id(), t).span()),
                      [this, t, life = std::weak_ptr(lifetime_)](typename node_type::result r) {
                          if (auto self = life.lock(); self && *self) {
                              epoch_issued(t, r);
                          }
                      });
    }

    void epoch_issued(term t, const typename node_type::result& r) {
        if (node_.role() != raft::role::leader || node_.current_term() != t || leader_term_ != t) {
            return; // leadership moved on; the epoch (if issued) is simply never used
        }
        epoch_requested_ = false;
        const machines::epoch_ledger::result_type* grant =
            r.error ? nullptr : r.value->template get_if<machines::epoch_ledger>();
        if (grant == nullptr || grant->error) {
            // Not issued (a transfer under way, the uncommitted limit, a full disk): try
            // again a little later — at once would spin without letting time pass.
            const auto retry_at =
                clock_.now() + std::chrono::duration_cast<typename Clock::duration>(retry_delay_);
            scheduler_.schedule_at(retry_at, [life = std::weak_ptr(lifetime_)] {
                if (auto self = life.lock(); self && *self) {
                    if ((*self)->readiness_ == readiness::leader_waiting_consensus) {
                        (*self)->advance();
                    } else {
                        (*self)->request_epoch();
                    }
                }
            });
            return;
        }
        epoch_ = grant->grant.epoch;
        readiness_ = readiness::leader_ready;
        supervisor_.ready(epoch_, view());
        // A director that failed to start leaves the leader in recovery until a retry works.
        set_readiness(supervisor_.running() ? readiness::leader_ready : readiness::recovery_failed);
    }

    void directory_applied(std::uint64_t revision) {
        // Runs inside the node's apply: deliver from the scheduler, in order, to the watchers
        // registered when it happened.
        scheduler_.post([life = std::weak_ptr(lifetime_), revision, upto = watch_ids_] {
            if (auto self = life.lock(); self && *self) {
                (*self)->deliver_change(revision, upto);
            }
        });
    }

    void deliver_change(std::uint64_t revision, std::uint64_t upto) {
        const auto& dir = stale_directory();
        auto changes = dir.changes_since(revision - 1);
        if (!changes || changes->value.empty() || changes->value.front().revision != revision) {
            return; // superseded by a snapshot install (watchers were told to re-read)
        }
        const machines::directory_change& change = changes->value.front();
        supervisor_.directory_changed(change);
        notify(directory_watchers_, upto, change);
    }

    void directory_restored() {
        scheduler_.post([life = std::weak_ptr(lifetime_), upto = watch_ids_] {
            if (auto self = life.lock(); self && *self) {
                machines::directory_change resync;
                resync.revision = (*self)->stale_directory().revision();
                (*self)->notify((*self)->directory_watchers_, upto, resync);
            }
        });
    }

    /// Calls the watchers registered up to `upto` with `event`. A watcher may unwatch (itself
    /// or others) or destroy the coordinator from inside its call.
    template <class Watchers, class Event>
    void notify(Watchers& watchers, std::uint64_t upto, const Event& event) {
        std::vector<std::uint64_t> ids;
        for (const auto& [id, w] : watchers) {
            if (id > upto) {
                break;
            }
            ids.push_back(id);
        }
        const std::shared_ptr<coordinator*> life = lifetime_;
        for (std::uint64_t id : ids) {
            auto it = watchers.find(id);
            if (it == watchers.end()) {
                continue; // unwatched by an earlier watcher
            }
            auto w = std::move(it->second); // survives an unwatch from inside its own call
            w(event);
            if (*life == nullptr) {
                return; // the watcher destroyed the coordinator
            }
            if (auto again = watchers.find(id); again != watchers.end()) {
                again->second = std::move(w);
            }
        }
    }

    void set_readiness(coord::readiness r) {
        readiness_ = r;
        notify_readiness();
    }

    void notify_readiness() {
        const readiness_event ev{readiness_, epoch_, node_.leader(), node_.current_term()};
        scheduler_.post([life = std::weak_ptr(lifetime_), ev, upto = watch_ids_] {
            if (auto self = life.lock(); self && *self) {
                (*self)->notify((*self)->readiness_watchers_, upto, ev);
            }
        });
    }

    const Clock& clock_;
    Scheduler& scheduler_;
    observed_machines machine_;
    std::shared_ptr<coordinator*> lifetime_;
    coord::readiness readiness_ = readiness::not_leader;
    /// The term this node leads (valid while readiness != not_leader).
    term leader_term_;
    /// \invariant no_epoch unless readiness is leader_ready or recovery_failed.
    epoch epoch_;
    bool epoch_requested_ = false;
    /// Pause before asking again for an epoch the log refused.
    std::chrono::milliseconds retry_delay_{50};
    bool advance_posted_ = false;
    std::uint64_t watch_ids_ = 0;
    std::map<std::uint64_t, directory_watcher> directory_watchers_;
    std::map<std::uint64_t, readiness_watcher> readiness_watchers_;
    node_type node_;
    director_supervisor<Director, Clock, Scheduler> supervisor_;
};

} // namespace synod::coord
