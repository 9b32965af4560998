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
/// - **admission** (seed 002): the replicated `machines::admission_queue`. Any node submits,
///   cancels, completes and fails executions (forwarded like directory writes) and reads the
///   queue (ReadIndex). The ready leader's dispatcher proposes `dispatch(id)` for what the
///   queue reports ready and tells the host to run an execution only once that command is
///   applied; a new ready leader first re-reports every running execution. It also stamps
///   the replicated time and proposes `tick` so stale executions expire without traffic.
///   The at-most-once contract is in docs/coordination.md ("Admission").
///
/// Epochs are issued by `machines::epoch_ledger`, so each is strictly greater than every epoch
/// issued before it, by any leader, across restarts of every node.

#include <synod/coord/director.hpp>
#include <synod/coord/director_supervisor.hpp>
#include <synod/core/epoch.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/result.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/machines/admission_queue.hpp>
#include <synod/machines/compose.hpp>
#include <synod/machines/epoch_ledger.hpp>
#include <synod/machines/service_directory.hpp>
#include <synod/raft/node.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
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
using coordinator_machines = machines::compose<machines::service_directory, machines::epoch_ledger,
                                               machines::admission_queue>;

/// The admission queue's limits and its dispatcher's pace.
struct admission_options {
    /// The replicated queue's limits and policy: part of the replicated behaviour, so every
    /// node must use the same. `auto_dispatch` is ignored (the coordinator turns it off:
    /// dispatch is a committed command). Must be valid (`validate()`).
    machines::admission_config queue{};
    /// The ready leader proposes `tick` when it has proposed no time-stamped command for this
    /// long, so stale executions expire without traffic. Also bounds how far replicated time
    /// lags the leader's clock for commands proposed on followers (they carry no time).
    std::chrono::milliseconds tick_interval{1000};
    /// At most this many `dispatch` commands in flight at once (one per execution).
    std::size_t max_dispatches_in_flight = 32;
};

/// Everything but the Raft config a coordinator is built with.
struct coordinator_options {
    supervisor_config supervision{};
    admission_options admission{};
};

/// What an admission command (submit, cancel, complete, fail) reports.
struct admission_result {
    /// Raft refusals (`not_leader`, `leader_unknown`, `outcome_unknown`, `proposal_dropped`,
    /// `uncommitted_limit`, ...), then the queue's answer: for a submit `queue_full` /
    /// `user_limit` (rejections: decisions, remembered) or `missing_field` /
    /// `field_too_large` / `invalid_priority` (malformed, not decided); for the others
    /// `unknown_execution`, `execution_finished`, `not_running`. Empty: accepted / done.
    std::error_code error;
    /// Submit, accepted: the rank among pending executions at acceptance (0 = next).
    std::uint64_t position = 0;
    /// Submit: the id was decided before; `error` and `position` are that first decision.
    bool duplicate = false;
    node_id leader_hint;
};

/// An execution the host must run (or already runs), as the ready leader reports it.
struct dispatch_notice {
    std::string execution_id;
    std::string user;
    machines::admission_priority priority = machines::admission_priority::normal;
    /// What to run: the payload given at submission (the seed's create-pod command).
    shared_bytes payload;
    /// Replicated time (ms) of the committed dispatch.
    std::uint64_t dispatched_at = 0;
    /// The reporting leader's epoch: fence the run on it (`coord::epoch_fence`).
    epoch leader_epoch;
    term leader_term;
    /// False: this leader's own dispatch, just applied. True: it was already running when
    /// this leader became ready (dispatched by an earlier leader, whose report may have been
    /// lost): run it unless it runs already.
    bool recovered = false;
};

/// A queue read: an execution's state and the queue's counts, as of the read.
struct execution_status {
    /// Nothing: never submitted, or its decision was forgotten.
    std::optional<machines::execution_state> state;
    /// Pending: the current rank (0 = next).
    std::optional<std::uint64_t> position;
    std::size_t pending = 0;
    std::size_t running = 0;
    /// Replicated time (ms).
    std::uint64_t now = 0;
};

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
        observed_machines(coordinator& owner, machines::admission_config admission)
            : machines_(machines::service_directory{}, machines::epoch_ledger{},
                        machines::admission_queue(admission))
            , owner_(owner) {}
        result_type apply(const log_entry& e) {
            result_type r = machines_.apply(e);
            if (const auto* d = r.template get_if<machines::service_directory>();
                d != nullptr && d->changed) {
                owner_.directory_applied(d->revision);
            }
            if (const auto* a = r.template get_if<machines::admission_queue>();
                a != nullptr && !a->events.empty()) {
                owner_.admission_applied(*a);
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
    using admission_completion = unique_function<void(admission_result)>;
    using execution_read_completion = unique_function<void(result<execution_status>)>;
    /// Gets the queue (valid during the call only) once the read is linearizable.
    using admission_read_completion =
        unique_function<void(result<const machines::admission_queue*>)>;
    using dispatch_watcher = unique_function<void(const dispatch_notice&)>;
    using admission_watcher = unique_function<void(const machines::admission_event_record&)>;

    /// `cfg` is the node's config; the coordinator turns on proposal forwarding and installs
    /// its observers (chaining any the host set). The policies and director must outlive it.
    coordinator(raft::config cfg, Log& log, Transport& transport, const Clock& clock,
                Scheduler& scheduler, Director& d, supervisor_config supervision = {})
        : coordinator(std::move(cfg), log, transport, clock, scheduler, d,
                      coordinator_options{supervision, {}}) {}

    /// As above, with the admission queue's options too.
    coordinator(raft::config cfg, Log& log, Transport& transport, const Clock& clock,
                Scheduler& scheduler, Director& d, coordinator_options options)
        : clock_(clock)
        , scheduler_(scheduler)
        , admission_(checked(std::move(options.admission)))
        , machine_(*this, admission_.queue)
        , lifetime_(std::make_shared<coordinator*>(this))
        , node_(prepare(std::move(cfg)), log, transport, clock, scheduler, machine_)
        , supervisor_(
              d, clock, scheduler, [this] { request_epoch(); }, options.supervision) {}

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

    // --- admission (seed 002) --------------------------------------------------------------

    /// Admits or rejects execution `id` of `user` (see `admission_result`). Retrying with the
    /// same id after a Raft error is safe: a decided id gets its first decision back
    /// (`duplicate`). `payload` is what the host is handed when it is dispatched.
    void submit_execution(std::string_view id, std::string_view user,
                          machines::admission_priority priority, byte_span payload,
                          admission_completion done) {
        admission_write(
            machines::admission_queue::encode_submit(id, user, priority, payload, stamp_command()),
            std::move(done));
    }
    /// Cancels a pending or running execution (the host stops running it on its own).
    void cancel_execution(std::string_view id, admission_completion done) {
        admission_write(machines::admission_queue::encode_cancel(id, stamp_command()),
                        std::move(done));
    }
    /// A running execution succeeded; its capacity goes to the next one.
    void complete_execution(std::string_view id, admission_completion done) {
        admission_write(machines::admission_queue::encode_complete(id, stamp_command()),
                        std::move(done));
    }
    /// A running execution failed; its capacity goes to the next one.
    void fail_execution(std::string_view id, admission_completion done) {
        admission_write(machines::admission_queue::encode_fail(id, stamp_command()),
                        std::move(done));
    }

    /// A linearizable read of `id`'s state and position and the queue's counts (ReadIndex, as
    /// `read_directory`).
    void read_execution(std::string_view id, execution_read_completion done) {
        read_admission([id = std::string(id), done = std::move(done)](
                           result<const machines::admission_queue*> r) mutable {
            if (!r) {
                return done(r.error());
            }
            const machines::admission_queue& q = *r.value();
            done(execution_status{q.state_of(id), q.position(id), q.pending_count(),
                                  q.running_count(), q.now()});
        });
    }
    /// A linearizable read of the whole queue: `done` gets it (valid during the call) once
    /// every command committed before this call is applied here.
    void read_admission(admission_read_completion done) {
        node_.read_index([this, life = std::weak_ptr(lifetime_),
                          done = std::move(done)](raft::read_result r) mutable {
            if (auto self = life.lock(); !self || !*self) {
                return done(errc::shutting_down);
            }
            if (r.error) {
                return done(r.error);
            }
            done(&stale_admission());
        });
    }
    /// This replica's queue as it is (may lag the leader; current on a dispatching leader).
    [[nodiscard]] const machines::admission_queue& stale_admission() const noexcept {
        return machine_.machines_.template get<machines::admission_queue>();
    }
    /// The executions running in this replica's queue, oldest dispatch first, as notices
    /// (`recovered`, with this node's epoch). What a host re-learns after a failover; on a
    /// follower it may lag.
    [[nodiscard]] std::vector<dispatch_notice> running_executions() const {
        std::vector<dispatch_notice> out;
        for (const machines::execution_info& x : stale_admission().running()) {
            out.push_back(dispatch_notice{std::string(x.id), std::string(x.user), x.priority,
                                          shared_bytes(x.payload), x.dispatched_at, epoch_,
                                          leader_term_, true});
        }
        return out;
    }
    /// Whether this node's dispatcher runs: it leads, and its term's epoch is committed.
    [[nodiscard]] bool dispatching() const noexcept { return dispatching_; }

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
    /// Calls `w` with every execution this node's dispatcher hands to the host: on the ready
    /// leader only, after the `dispatch` command is applied; when the leader becomes ready,
    /// first every execution already running (`recovered`), and again whenever a fresh epoch
    /// is issued in the same term. Nothing more once leadership is lost. At most one notice
    /// per execution per leader epoch; see docs/coordination.md for the contract (idempotent
    /// by execution id).
    std::uint64_t watch_dispatch(dispatch_watcher w) {
        dispatch_watchers_.emplace(++watch_ids_, std::move(w));
        return watch_ids_;
    }
    /// Calls `w` with every admission event applied on this replica (any node), in log
    /// order, on the scheduler. Events inside an installed snapshot are not replayed.
    std::uint64_t watch_admission(admission_watcher w) {
        admission_watchers_.emplace(++watch_ids_, std::move(w));
        return watch_ids_;
    }
    void unwatch(std::uint64_t id) {
        directory_watchers_.erase(id);
        readiness_watchers_.erase(id);
        dispatch_watchers_.erase(id);
        admission_watchers_.erase(id);
    }

    [[nodiscard]] node_type& node() noexcept { return node_; }
    [[nodiscard]] const node_type& node() const noexcept { return node_; }

private:
    static admission_options checked(admission_options o) {
        o.queue.auto_dispatch = false;
        SYNOD_ASSERT(!o.queue.validate(), "admission_config out of range: check validate() first");
        SYNOD_ASSERT(o.tick_interval.count() > 0 && o.max_dispatches_in_flight > 0,
                     "admission_options: tick_interval and max_dispatches_in_flight must be > 0");
        return o;
    }

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

    /// Proposes `command` to `Machine` and completes `done` with an `Out` that carries Raft's
    /// refusal, the composition's routing error, or what `fill` takes from the machine's result.
    template <class Machine, class Out, class Fill>
    void propose_to(shared_bytes command, unique_function<void(Out)> done, Fill fill) {
        node_.propose(coordinator_machines::encode<Machine>(command.span()),
                      [done = std::move(done), fill](typename node_type::result r) mutable {
                          Out out;
                          out.leader_hint = r.leader_hint;
                          if (r.error) {
                              out.error = r.error;
                          } else if (r.value->routing_error) {
                              out.error = r.value->routing_error;
                          } else {
                              fill(*r.value->template get_if<Machine>(), out);
                          }
                          done(std::move(out));
                      });
    }

    void write(shared_bytes command, write_completion done) {
        propose_to<machines::service_directory>(std::move(command), std::move(done),
                                                [](const auto& d, write_result& out) {
                                                    out.error = d.error;
                                                    out.revision = d.revision;
                                                    out.changed = d.changed;
                                                });
    }

    void admission_write(shared_bytes command, admission_completion done) {
        propose_to<machines::admission_queue>(std::move(command), std::move(done),
                                              [](const auto& a, admission_result& out) {
                                                  out.error = a.error;
                                                  out.position = a.position;
                                                  out.duplicate = a.duplicate;
                                              });
    }

    [[nodiscard]] directory_view view() const {
        const auto& dir = stale_directory();
        return directory_view{dir.all().value, dir.nodes().value, dir.revision()};
    }

    /// Runs inside the node (a role change): stop the director before anything else.
    void on_leader_change(node_id leader, term t) {
        stop_dispatching(); // nothing more is told to this host until it is ready again
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
        pump_dispatches();
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
        if (!dispatching_) {
            start_dispatching(); // the first epoch of this term: everything before is applied
        } else {
            // A fresh epoch in the same term (the director failed and restarts): what runs was
            // reported under the old epoch, which the new director's fence now refuses.
            // Report it again under this one, as a new leader does.
            std::vector<dispatch_notice> running = running_executions();
            if (!running.empty()) {
                post_notices(std::move(running));
            }
        }
        // A director that failed to start leaves the leader in recovery until a retry works.
        set_readiness(supervisor_.running() ? readiness::leader_ready : readiness::recovery_failed);
    }

    // --- the admission dispatcher ----------------------------------------------------------

    [[nodiscard]] const machines::admission_queue& queue() const noexcept {
        return stale_admission();
    }

    /// Replicated time as this leader stamps it: the queue's time when the dispatcher started
    /// plus the time elapsed since on this node's clock. So time never jumps at a failover
    /// (leaders' clocks need not agree, even on their origin); it stands still between
    /// leaders, which only gives executions more time. 0 ("no reading": the command takes
    /// the queue's time) when this node is not dispatching.
    [[nodiscard]] std::uint64_t stamp() const {
        if (!dispatching_) {
            return 0;
        }
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - clock_base_)
                .count();
        return time_base_ + static_cast<std::uint64_t>(std::max<decltype(elapsed)>(elapsed, 0));
    }
    /// `stamp()` for a command this node proposes now (the tick waits while they flow).
    [[nodiscard]] std::uint64_t stamp_command() {
        if (dispatching_) {
            last_stamped_ = clock_.now();
        }
        return stamp();
    }

    /// This leader's term has its epoch, so its queue holds every command committed before:
    /// report what is running, then dispatch and tick.
    void start_dispatching() {
        dispatching_ = true;
        ++dispatch_generation_;
        time_base_ = queue().now();
        clock_base_ = clock_.now();
        last_stamped_ = clock_base_;
        std::vector<dispatch_notice> running = running_executions();
        if (!running.empty()) {
            post_notices(std::move(running));
        }
        arm_tick();
        pump_dispatches();
    }

    /// Leadership is gone (or changing): forget what is in flight; their completions, the
    /// tick timer and undelivered notices belong to an older generation and are dropped.
    void stop_dispatching() {
        if (!dispatching_) {
            return;
        }
        dispatching_ = false;
        ++dispatch_generation_;
        dispatches_in_flight_.clear();
        tick_in_flight_ = false;
        dispatch_paused_ = false;
    }

    /// Proposes `dispatch` for the ready executions not already in flight, up to the bound.
    void pump_dispatches() {
        const std::size_t cap = admission_.max_dispatches_in_flight;
        if (!dispatching_ || dispatch_paused_ || dispatches_in_flight_.size() >= cap) {
            return;
        }
        // Copied: proposing cannot change the queue, but keep the views out of the loop.
        std::vector<std::string> ready;
        for (std::string_view id : queue().ready_to_dispatch(cap)) {
            if (!dispatches_in_flight_.contains(id)) {
                ready.emplace_back(id);
            }
        }
        for (std::string& id : ready) {
            if (dispatches_in_flight_.size() >= cap) {
                break;
            }
            propose_dispatch(std::move(id));
        }
    }

    void propose_dispatch(std::string id) {
        const auto command = machines::admission_queue::encode_dispatch(id, stamp_command());
        dispatches_in_flight_.insert(id);
        node_.propose(coordinator_machines::encode<machines::admission_queue>(command.span()),
                      [life = std::weak_ptr(lifetime_), generation = dispatch_generation_,
                       id = std::move(id)](typename node_type::result r) mutable {
                          if (auto self = life.lock(); self && *self) {
                              (*self)->dispatch_done(generation, id, r);
                          }
                      });
    }

    /// A dispatch command's outcome. What it did is in the applied events (`admission_applied`
    /// tells the host); here the id leaves the in-flight set. A refusal by Raft (the
    /// uncommitted limit, a transfer) pauses the dispatcher briefly instead of spinning.
    void dispatch_done(std::uint64_t generation, const std::string& id,
                       const typename node_type::result& r) {
        if (generation != dispatch_generation_) {
            return;
        }
        if (auto it = dispatches_in_flight_.find(id); it != dispatches_in_flight_.end()) {
            dispatches_in_flight_.erase(it);
        }
        if (r.error && !dispatch_paused_) {
            dispatch_paused_ = true;
            after(retry_delay_, [](coordinator& self, std::uint64_t) {
                self.dispatch_paused_ = false;
                self.pump_dispatches();
            });
            return;
        }
        post_advance();
    }

    /// Proposes `tick` every `tick_interval` in which this leader stamped nothing else, while
    /// anything is pending or running (an idle queue has nothing to expire: its time stands
    /// still until the next stamped command moves it).
    void arm_tick() {
        after(admission_.tick_interval, [](coordinator& self, std::uint64_t) {
            const bool busy = self.queue().pending_count() + self.queue().running_count() > 0;
            if (busy && !self.tick_in_flight_ &&
                self.clock_.now() - self.last_stamped_ >=
                    std::chrono::duration_cast<typename Clock::duration>(
                        self.admission_.tick_interval)) {
                self.propose_tick();
            }
            self.arm_tick();
        });
    }

    void propose_tick() {
        tick_in_flight_ = true;
        const auto command = machines::admission_queue::encode_tick(stamp_command());
        node_.propose(coordinator_machines::encode<machines::admission_queue>(command.span()),
                      [life = std::weak_ptr(lifetime_),
                       generation = dispatch_generation_](const typename node_type::result&) {
                          if (auto self = life.lock();
                              self && *self && (*self)->dispatch_generation_ == generation) {
                              (*self)->tick_in_flight_ = false;
                          }
                      });
    }

    /// Runs `fn(*this, generation)` after `delay` if this dispatcher generation still runs.
    template <class Fn>
    void after(std::chrono::milliseconds delay, Fn fn) {
        scheduler_.schedule_at(
            clock_.now() + std::chrono::duration_cast<typename Clock::duration>(delay),
            [life = std::weak_ptr(lifetime_), generation = dispatch_generation_, fn] {
                if (auto self = life.lock(); self && *self && (*self)->dispatching_ &&
                                             (*self)->dispatch_generation_ == generation) {
                    fn(**self, generation);
                }
            });
    }

    /// Runs inside the node's apply. A dispatching leader tells its host about the
    /// dispatches it applied (every entry it applies now is of its own term: those before
    /// were applied before it started). Watchers get every event, from the scheduler.
    void admission_applied(const machines::admission_queue::result_type& r) {
        if (dispatching_) {
            std::vector<dispatch_notice> fresh;
            for (const machines::admission_event_record& ev : r.events) {
                if (ev.kind == machines::admission_event_kind::dispatched) {
                    fresh.push_back(dispatch_notice{ev.execution_id, ev.user, ev.priority,
                                                    ev.payload, ev.at, epoch_, leader_term_,
                                                    false});
                }
            }
            if (!fresh.empty()) {
                post_notices(std::move(fresh));
            }
        }
        if (!admission_watchers_.empty()) {
            scheduler_.post(
                [life = std::weak_ptr(lifetime_), events = r.events, upto = watch_ids_] {
                    if (auto self = life.lock(); self && *self) {
                        for (const auto& ev : events) {
                            (*self)->notify((*self)->admission_watchers_, upto, ev);
                            if (!*self) {
                                return;
                            }
                        }
                    }
                });
        }
    }

    /// Delivers `notices` from the scheduler, unless leadership was lost in between (the next
    /// leader reports what still runs).
    void post_notices(std::vector<dispatch_notice> notices) {
        scheduler_.post([life = std::weak_ptr(lifetime_), generation = dispatch_generation_,
                         notices = std::move(notices), upto = watch_ids_] {
            for (const dispatch_notice& n : notices) {
                auto self = life.lock();
                if (!self || !*self || !(*self)->dispatching_ ||
                    (*self)->dispatch_generation_ != generation) {
                    return;
                }
                (*self)->notify((*self)->dispatch_watchers_, upto, n);
            }
        });
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
    /// Before `machine_`, which is built with its queue config.
    admission_options admission_;
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
    std::map<std::uint64_t, dispatch_watcher> dispatch_watchers_;
    std::map<std::uint64_t, admission_watcher> admission_watchers_;

    // The admission dispatcher (runs on the ready leader only).
    /// \invariant true only on a leader whose term's first epoch is committed, from then
    /// until leadership is lost.
    bool dispatching_ = false;
    /// Bumped at every start and stop: completions, timers and notices of an older one are
    /// dropped.
    std::uint64_t dispatch_generation_ = 0;
    /// Replicated time and this node's clock when the dispatcher started (see `stamp`).
    std::uint64_t time_base_ = 0;
    typename Clock::time_point clock_base_{};
    /// When this leader last proposed a time-stamped command.
    typename Clock::time_point last_stamped_{};
    /// \invariant only while dispatching: the executions with a dispatch command in flight.
    std::set<std::string, std::less<>> dispatches_in_flight_;
    bool tick_in_flight_ = false;
    /// Raft refused a dispatch: wait `retry_delay_` before proposing more.
    bool dispatch_paused_ = false;
    node_type node_;
    director_supervisor<Director, Clock, Scheduler> supervisor_;
};

} // namespace synod::coord
