#pragma once

/// \file
/// `machines::admission_queue`: admission and queuing of executions (seed 002) as a pure,
/// deterministic value. Executions are admitted against a queue cap and a per-user cap, held
/// in priority order (lower value first, FIFO within a priority), dispatched when they reach
/// the front and capacity allows, never dispatched twice, and expired when stale. Every
/// outcome is an event.
///
/// Two ways to use it, on the same object:
/// - **replicated**: the coordinator proposes the `encode_*` commands and Raft applies them
///   (`apply`); every replica that applies the same entries holds the same queue. Dispatch is
///   then an explicit command (`auto_dispatch = false`): the leader's dispatcher proposes
///   `dispatch(id)` for what `ready_to_dispatch()` reports, and the host is told to run an
///   execution only once that command is applied — so a failover can neither lose the
///   decision nor make it twice.
/// - **standalone** (single process, nothing replicated): call `submit`, `complete`, ... with
///   the current time; with `auto_dispatch = true` (the default) the queue dispatches by itself
///   after every operation, as the seed's coordinator does.
///
/// Semantics (docs/machines.md has the long form):
/// - **Time** is replicated: the largest `now` any decoded command carried (it never goes
///   backwards when leaders' clocks disagree). Every command first moves time to its `now`
///   and expires what that makes stale — a consequence of time passing that happens whether
///   the command itself is then refused or not. Beyond that, a refused command changes
///   nothing.
/// - **Admission** (`submit`): a duplicate execution id gets its original decision back and
///   changes nothing. Otherwise `queue_full` when `max_queue_size` executions are pending or
///   the payload does not fit in `max_held_payload_bytes` beside those held, then
///   `user_limit` when the user has `max_per_user` executions pending *or running* (the seed
///   counts both, so the cap also bounds what a user runs). Both rejections are decisions: they
///   are remembered, and a retry of the id gets the same rejection. Accepted: the answer
///   carries the execution's rank among pending executions (0 = next to dispatch).
/// - **Order**: priority first (critical 0 .. background 4), then submission order. With
///   `round_robin_users` fairness each priority is served in rounds: a user's n-th queued
///   execution at a priority goes to the n-th round from now, so every waiting user gets one
///   execution per round, in submission order within the round.
/// - **Dispatch** takes the front only, and only while fewer than `max_running` run. There is
///   no skipping: the per-user cap is enforced at admission over pending + running, so the
///   front's user is never over it at dispatch and no head-of-line blocking by a user cap can
///   occur (as in the seed, which always pops the front). An id is dispatched at most once.
/// - **Finishing**: `complete` / `fail` a running execution; `cancel` a pending or running
///   one; a pending one that waited longer than `stale_timeout` since submission, or a running
///   one with no outcome within `stale_timeout` since dispatch, expires. Each frees capacity
///   (and, with `auto_dispatch`, dispatches the next at once).
/// - **Memory**: pending and running executions are always known. Finished ones are
///   remembered so that duplicates get their original decision, the last
///   `max_retained_decisions` of them; rejected ids likewise, in a separate retention
///   (`max_retained_rejections`), so rejections never push a finished execution out. A
///   forgotten id submitted again is decided afresh as a new execution. "Dispatched at most
///   once" therefore holds for an id while it is live and until `max_retained_decisions`
///   further executions have finished after it: size the retention for the longest
///   redelivery delay you expect.
///
/// Every operation costs O(log n) in the pending count (plus O(k log n) for k executions that
/// expire on the way): the pending order is a ranked (order-statistic) tree with pooled nodes,
/// executions and users are pooled nodes found through open-addressing tables whose probes
/// read one tag byte per slot, the pending and running age orders are intrusive lists, and the
/// retained decisions are a ring in finishing order (docs/performance.md has the costs).

#include <synod/core/assert.hpp>
#include <synod/core/bytes.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/result.hpp>
#include <synod/machines/detail/encoding.hpp>
#include <synod/wire/byte_io.hpp>

#include <boost/intrusive/list.hpp>
#include <boost/multi_index/identity.hpp>
#include <boost/multi_index/ranked_index.hpp>
#include <boost/multi_index_container.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace synod::machines {

/// Lower values are dispatched first.
enum class admission_priority : std::uint8_t {
    critical = 0,
    high = 1,
    normal = 2,
    low = 3,
    background = 4,
};
inline constexpr std::size_t admission_priority_count = 5;

/// How executions of the same priority are ordered.
enum class admission_fairness : std::uint8_t {
    /// Submission order (the seed's behaviour).
    strict_fifo = 0,
    /// Round-robin between users: one execution per waiting user per round.
    round_robin_users = 1,
};

/// Where an execution is in its life.
enum class execution_state : std::uint8_t {
    pending = 0,  ///< accepted, waiting in the queue
    running = 1,  ///< dispatched, no outcome yet
    finished = 2, ///< completed, failed, cancelled, expired, or rejected at admission
};

/// What happened; each is an event and, for finished executions, their final outcome.
enum class admission_event_kind : std::uint8_t {
    accepted = 0,
    rejected = 1,
    dispatched = 2,
    completed = 3,
    failed = 4,
    cancelled = 5,
    expired = 6,
};

[[nodiscard]] constexpr std::string_view to_string(admission_event_kind k) noexcept {
    switch (k) {
    case admission_event_kind::accepted:
        return "accepted";
    case admission_event_kind::rejected:
        return "rejected";
    case admission_event_kind::dispatched:
        return "dispatched";
    case admission_event_kind::completed:
        return "completed";
    case admission_event_kind::failed:
        return "failed";
    case admission_event_kind::cancelled:
        return "cancelled";
    case admission_event_kind::expired:
        return "expired";
    }
    return "?";
}

/// Limits and policy of a queue. Part of the replicated behaviour: every replica must use the
/// same values. `validate()` says whether they are usable.
struct admission_config {
    /// Submissions beyond this many pending executions are rejected with `queue_full`.
    std::size_t max_queue_size = 10'000;
    /// Submissions whose payload would take the payloads held (of pending and running
    /// executions together) beyond this many bytes are rejected with `queue_full` too. It
    /// bounds the snapshot, which holds every one of them: the default (1 GiB) keeps it well
    /// under the 4 GiB a composed snapshot section can hold.
    std::size_t max_held_payload_bytes = std::size_t{1} << 30;
    /// Submissions of a user with this many executions pending or running are rejected with
    /// `user_limit`.
    std::size_t max_per_user = 100;
    /// At most this many executions run at once (default: no limit).
    std::size_t max_running = unlimited;
    /// A pending execution older than this (since submission) expires, and so does a running
    /// one with no outcome this long after its dispatch.
    std::chrono::milliseconds stale_timeout{3'600'000};
    /// Order within a priority.
    admission_fairness fairness = admission_fairness::strict_fifo;
    /// Dispatch by itself after every operation (standalone use). A replicated queue turns
    /// this off and dispatches through `dispatch` commands (see the file comment).
    bool auto_dispatch = true;
    /// How many finished (completed, failed, cancelled, expired) executions are remembered to
    /// answer duplicates: a duplicate of a remembered one is never dispatched again.
    std::size_t max_retained_decisions = 100'000;
    /// How many rejected submissions (`queue_full`, `user_limit`) are remembered, apart from
    /// the finished ones: a flood of rejections (cheap to cause) forgets only older
    /// rejections, never a dispatched execution's decision.
    std::size_t max_retained_rejections = 10'000;

    static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();
    /// Timeouts beyond this (about 35 years) are refused, so that time arithmetic cannot
    /// overflow.
    static constexpr std::chrono::milliseconds max_stale_timeout{std::uint64_t{1} << 40};

    /// `invalid_admission_config` unless every cap and retention is at least 1, the timeout
    /// is in 1 ms..`max_stale_timeout`, and the fairness policy is known.
    [[nodiscard]] std::error_code validate() const noexcept {
        const bool ok = max_queue_size >= 1 && max_per_user >= 1 && max_running >= 1 &&
                        max_retained_decisions >= 1 && max_retained_rejections >= 1 &&
                        max_held_payload_bytes >= 1 && stale_timeout.count() >= 1 &&
                        stale_timeout <= max_stale_timeout &&
                        (fairness == admission_fairness::strict_fifo ||
                         fairness == admission_fairness::round_robin_users);
        return ok ? std::error_code{} : make_error_code(errc::invalid_admission_config);
    }
};

/// One outcome, as an event sink sees it. The views point into the queue and are valid only
/// during the sink's call (copy them, or use `admission_event_record`, to keep them).
struct admission_event {
    admission_event_kind kind = admission_event_kind::accepted;
    std::string_view execution_id;
    std::string_view user; ///< empty for `rejected` events of ids submitted without a user
    admission_priority priority = admission_priority::normal;
    /// `accepted`: the rank among pending executions at acceptance (0 = next).
    std::uint64_t position = 0;
    /// `rejected`: `queue_full` or `user_limit`.
    std::error_code reason;
    /// `dispatched`: what the host runs (the seed's create-pod command).
    byte_span payload;
    /// `completed` / `failed` / `cancelled` / `expired`: whether it was pending or running.
    execution_state from = execution_state::pending;
    /// Replicated time of the event (ms).
    std::uint64_t at = 0;
};

/// An `admission_event` that owns its data (what `apply` returns).
struct admission_event_record {
    admission_event_kind kind = admission_event_kind::accepted;
    std::string execution_id;
    std::string user;
    admission_priority priority = admission_priority::normal;
    std::uint64_t position = 0;
    std::error_code reason;
    shared_bytes payload;
    execution_state from = execution_state::pending;
    std::uint64_t at = 0;

    [[nodiscard]] static admission_event_record of(const admission_event& e) {
        return {e.kind,
                std::string(e.execution_id),
                std::string(e.user),
                e.priority,
                e.position,
                e.reason,
                shared_bytes(e.payload),
                e.from,
                e.at};
    }
    friend bool operator==(const admission_event_record&, const admission_event_record&) = default;
};

/// The answer to a submission.
struct submit_decision {
    /// Empty: accepted. `queue_full` / `user_limit`: rejected (a remembered decision).
    /// `missing_field`, `field_too_large`, `invalid_priority`: a malformed submission that was
    /// not decided and is not remembered.
    std::error_code error;
    /// Accepted: the rank among pending executions at acceptance (0 = next to dispatch).
    std::uint64_t position = 0;
    /// The id was already decided: `error` and `position` are that first decision, and
    /// nothing changed.
    bool duplicate = false;

    friend bool operator==(const submit_decision&, const submit_decision&) = default;
};

/// A live (pending or running) execution, as queries report it. Views valid until the next
/// operation on the queue.
struct execution_info {
    std::string_view id;
    std::string_view user;
    admission_priority priority = admission_priority::normal;
    execution_state state = execution_state::pending;
    std::uint64_t submitted_at = 0;
    std::uint64_t dispatched_at = 0; ///< running only
    byte_span payload;
};

class admission_queue {
public:
    static constexpr std::uint8_t command_version = 1;
    static constexpr std::uint8_t snapshot_version = 1;

    // Limits on a submission's fields: constants of the format, not options, since they decide
    // which commands are valid on every replica.
    static constexpr std::size_t max_id_bytes = 128;
    static constexpr std::size_t max_user_bytes = 128;
    static constexpr std::size_t max_payload_bytes = 1 << 20;

    /// What `apply` returns: the command's own answer and every event it caused, in order
    /// (expiries from the time advance first).
    struct result_type {
        /// Decoding errors, the submission's errors (see `submit_decision`), or the refusal of
        /// `dispatch` / `complete` / `fail` / `cancel` (see those). Empty on success.
        std::error_code error;
        std::uint64_t position = 0; ///< submit: see `submit_decision`
        bool duplicate = false;     ///< submit: see `submit_decision`
        std::vector<admission_event_record> events;

        friend bool operator==(const result_type&, const result_type&) = default;
    };

    /// Receives every event as it happens, from `apply` and from the direct API alike.
    using event_sink = std::function<void(const admission_event&)>;

    admission_queue()
        : admission_queue(admission_config{}) {}
    /// `cfg` must be valid (`cfg.validate()`; see also `create`).
    explicit admission_queue(admission_config cfg)
        : cfg_(cfg)
        , s_(std::make_unique<state>()) {
        SYNOD_ASSERT(!cfg_.validate(), "admission_config out of range: check validate() first");
    }
    /// A queue with `cfg`, or `invalid_admission_config`.
    [[nodiscard]] static result<admission_queue> create(admission_config cfg) {
        if (auto ec = cfg.validate()) {
            return ec;
        }
        return admission_queue(cfg);
    }

    /// A copy holds the same queue (rebuilt through a snapshot) and the same sink.
    admission_queue(const admission_queue& other)
        : cfg_(other.cfg_)
        , s_(std::make_unique<state>())
        , sink_(other.sink_) {
        const std::error_code ec = restore(other.snapshot());
        SYNOD_ASSERT(!ec, "an admission queue refused its own snapshot");
    }
    admission_queue& operator=(const admission_queue& other) {
        if (this != &other) {
            admission_queue copy(other);
            *this = std::move(copy);
        }
        return *this;
    }
    admission_queue(admission_queue&&) noexcept = default;
    admission_queue& operator=(admission_queue&&) noexcept = default;
    ~admission_queue() = default;

    [[nodiscard]] const admission_config& config() const noexcept { return cfg_; }
    void set_event_sink(event_sink sink) { sink_ = std::move(sink); }

    // ---- Encoders: what a coordinator proposes. `now` is the proposer's time in ms. They
    // encode any input; validity is decided when the command is applied.

    [[nodiscard]] static shared_bytes encode_submit(std::string_view id, std::string_view user,
                                                    admission_priority priority, byte_span payload,
                                                    std::uint64_t now) {
        byte_vector out;
        out.reserve(2 + 8 + 3 * 4 + 1 + id.size() + user.size() + payload.size());
        wire::byte_writer w(out);
        put_header(w, op::submit, now);
        detail::put_string(w, id);
        detail::put_string(w, user);
        w.put(static_cast<std::uint8_t>(priority));
        w.put(static_cast<std::uint32_t>(payload.size()));
        w.put_bytes(payload);
        return shared_bytes(byte_span(out));
    }
    [[nodiscard]] static shared_bytes encode_dispatch(std::string_view id, std::uint64_t now) {
        return id_command(op::dispatch, id, now);
    }
    [[nodiscard]] static shared_bytes encode_complete(std::string_view id, std::uint64_t now) {
        return id_command(op::complete, id, now);
    }
    [[nodiscard]] static shared_bytes encode_fail(std::string_view id, std::uint64_t now) {
        return id_command(op::fail, id, now);
    }
    [[nodiscard]] static shared_bytes encode_cancel(std::string_view id, std::uint64_t now) {
        return id_command(op::cancel, id, now);
    }
    /// Moves replicated time to `now`, expiring what is stale (and, with `auto_dispatch`,
    /// dispatching what that frees). A leader proposes it periodically.
    [[nodiscard]] static shared_bytes encode_tick(std::uint64_t now) {
        byte_vector out;
        wire::byte_writer w(out);
        put_header(w, op::tick, now);
        return shared_bytes(byte_span(out));
    }

    // ---- state_machine

    result_type apply(const log_entry& e) {
        result_type out;
        wire::byte_reader r(e.payload.span());
        const auto version = r.get<std::uint8_t>();
        const auto code = r.get<std::uint8_t>();
        const auto now = r.get<std::uint64_t>();
        if (!r.ok()) {
            out.error = r.error();
            return out;
        }
        if (version != command_version) {
            out.error = errc::unknown_version;
            return out;
        }
        if (code < static_cast<std::uint8_t>(op::submit) ||
            code > static_cast<std::uint8_t>(op::tick)) {
            out.error = errc::unknown_message_type;
            return out;
        }
        const auto o = static_cast<op>(code);
        std::string_view id;
        std::string_view user;
        std::uint8_t priority = 0;
        byte_span payload;
        if (o != op::tick) {
            id = view_string(r);
        }
        if (o == op::submit) {
            user = view_string(r);
            priority = r.get<std::uint8_t>();
            payload = r.get_bytes(r.get<std::uint32_t>());
        }
        if (r.ok() && r.remaining() != 0) {
            r.fail(errc::length_mismatch);
        }
        if (!r.ok()) {
            out.error = r.error();
            return out;
        }
        // Reset however `apply` leaves (a throwing sink, bad_alloc): `collecting_` must never
        // point at a dead result.
        struct collect_guard {
            admission_queue& q;
            collect_guard(admission_queue& owner, std::vector<admission_event_record>* events)
                : q(owner) {
                q.collecting_ = events;
            }
            collect_guard(const collect_guard&) = delete;
            collect_guard& operator=(const collect_guard&) = delete;
            ~collect_guard() { q.collecting_ = nullptr; }
        } guard(*this, &out.events);
        switch (o) {
        case op::submit: {
            const auto d = submit_impl(id, user, priority, payload, {}, now);
            out.error = d.error;
            out.position = d.position;
            out.duplicate = d.duplicate;
            break;
        }
        case op::dispatch:
            out.error = dispatch(id, now);
            break;
        case op::complete:
            out.error = complete(id, now);
            break;
        case op::fail:
            out.error = fail(id, now);
            break;
        case op::cancel:
            out.error = cancel(id, now);
            break;
        case op::tick:
            tick(now);
            break;
        }
        return out;
    }

    /// Everything but the config and the sink, sealed with a CRC32C (format in
    /// docs/machines.md). Equal queues give equal bytes.
    [[nodiscard]] shared_bytes snapshot() const {
        const state& s = *s_;
        byte_vector out;
        wire::byte_writer w(out);
        w.put(snapshot_version);
        w.put(s.clock);
        w.put(s.next_seq);
        for (const auto round : s.current_round) {
            w.put(round);
        }
        std::vector<const user_state*> users;
        users.reserve(s.users.size());
        s.users.for_each([&](const user_state& u) { users.push_back(&u); });
        std::sort(users.begin(), users.end(),
                  [](const user_state* a, const user_state* b) { return a->name < b->name; });
        w.put(static_cast<std::uint32_t>(users.size()));
        for (const user_state* u : users) {
            detail::put_string(w, u->name);
            for (const auto round : u->next_round) {
                w.put(round);
            }
        }
        w.put(static_cast<std::uint32_t>(s.queue.size()));
        for (const queued& q : s.queue) {
            put_live(w, *q.node);
        }
        w.put(static_cast<std::uint32_t>(s.running.size()));
        for (const execution& x : s.running) {
            put_live(w, x);
        }
        // One list, as in earlier versions: the finished ones, then the rejected ones, each
        // in finishing order (a restore sorts them apart by outcome).
        w.put(static_cast<std::uint32_t>(s.finished.size() + s.rejected.size()));
        for (const finished_ring* ring : {&s.finished, &s.rejected}) {
            for (std::size_t i = 0; i < ring->size(); ++i) {
                const execution& x = *(*ring)[i].node;
                detail::put_string(w, x.id);
                w.put(static_cast<std::uint32_t>(x.rejection));
                w.put(x.position);
                w.put(static_cast<std::uint8_t>(x.outcome));
                w.put(static_cast<std::uint8_t>(x.dispatched ? 1 : 0));
                w.put(x.finished_at);
            }
        }
        return detail::seal(out);
    }

    /// Replaces the whole queue with a snapshot's: `corrupt_snapshot`, with the queue
    /// unchanged, if it is damaged, of another version, or holds a state no sequence of
    /// commands could produce. Finished executions beyond `max_retained_decisions` (a replica
    /// with a larger retention wrote it) are forgotten oldest first.
    std::error_code restore(byte_span bytes) {
        const auto body = detail::unseal(bytes);
        if (!body) {
            return errc::corrupt_snapshot;
        }
        auto loaded = std::make_unique<state>();
        if (!load(*loaded, *body)) {
            return errc::corrupt_snapshot;
        }
        s_ = std::move(loaded);
        trim_finished();
        return {};
    }

    // ---- Direct API (standalone use; `apply` calls the same code). `now` is the caller's
    // time in ms; events go to the sink.

    /// Admits or rejects `id` (see the file comment). `payload` is kept as it is (shared, not
    /// copied) and handed back in the `dispatched` event.
    submit_decision submit(std::string_view id, std::string_view user, admission_priority priority,
                           shared_bytes payload, std::uint64_t now) {
        const byte_span bytes = payload.span(); // the buffer stays put when `payload` moves
        return submit_impl(id, user, static_cast<std::uint8_t>(priority), bytes, std::move(payload),
                           now);
    }

    /// Marks `id` running, once. Only the front of the queue is dispatched, and only while
    /// fewer than `max_running` run: `not_ready` otherwise (ask `ready_to_dispatch` again).
    /// `already_dispatched` if it runs, `execution_finished` if it finished (or was rejected),
    /// `unknown_execution` if it was never submitted or is forgotten.
    std::error_code dispatch(std::string_view id, std::uint64_t now) {
        advance(now);
        std::error_code ec;
        execution* x = find_node(id);
        if (x == nullptr) {
            ec = errc::unknown_execution;
        } else if (x->state == execution_state::finished) {
            ec = errc::execution_finished;
        } else if (x->state == execution_state::running) {
            ec = errc::already_dispatched;
        } else if (!capacity_free() || s_->queue.begin()->node != x) {
            ec = errc::not_ready;
        } else {
            start(*x);
        }
        pump();
        return ec;
    }

    /// The running execution `id` succeeded. `not_running` if it is still pending,
    /// `execution_finished` / `unknown_execution` as for `dispatch`.
    std::error_code complete(std::string_view id, std::uint64_t now) {
        return finish_running(id, now, admission_event_kind::completed);
    }
    /// The running execution `id` failed. Errors as for `complete`.
    std::error_code fail(std::string_view id, std::uint64_t now) {
        return finish_running(id, now, admission_event_kind::failed);
    }

    /// Cancels a pending or running execution. `execution_finished` / `unknown_execution` as
    /// for `dispatch`.
    std::error_code cancel(std::string_view id, std::uint64_t now) {
        advance(now);
        std::error_code ec;
        execution* x = find_node(id);
        if (x == nullptr) {
            ec = errc::unknown_execution;
        } else if (x->state == execution_state::finished) {
            ec = errc::execution_finished;
        } else {
            finish(*x, admission_event_kind::cancelled);
        }
        pump();
        return ec;
    }

    /// Moves time to `now`: expires what is stale and (with `auto_dispatch`) dispatches what
    /// that frees.
    void tick(std::uint64_t now) {
        advance(now);
        pump();
    }

    // ---- Queries

    /// Up to `limit` ids that `dispatch` would accept next, in order: the front of the queue
    /// and those behind it, as many as `max_running` leaves room for. (Each becomes the front
    /// once those before it are dispatched.) Views valid until the next operation.
    [[nodiscard]] std::vector<std::string_view> ready_to_dispatch(std::size_t limit = 1) const {
        const state& s = *s_;
        std::size_t room = cfg_.max_running == admission_config::unlimited
                               ? s.queue.size()
                               : cfg_.max_running - std::min(cfg_.max_running, s.running.size());
        room = std::min({room, limit, s.queue.size()});
        std::vector<std::string_view> out;
        out.reserve(room);
        for (auto it = s.queue.begin(); out.size() < room; ++it) {
            out.push_back(it->node->id);
        }
        return out;
    }

    [[nodiscard]] std::size_t pending_count() const noexcept { return s_->queue.size(); }
    [[nodiscard]] std::size_t running_count() const noexcept { return s_->running.size(); }
    /// Finished and rejected executions whose decision is remembered.
    [[nodiscard]] std::size_t retained_count() const noexcept {
        return s_->finished.size() + s_->rejected.size();
    }
    /// Rejected executions whose decision is remembered (part of `retained_count`).
    [[nodiscard]] std::size_t retained_rejections() const noexcept { return s_->rejected.size(); }
    /// Replicated time: the largest `now` seen (ms).
    [[nodiscard]] std::uint64_t now() const noexcept { return s_->clock; }
    /// Executions of `user` pending or running (what `max_per_user` caps).
    [[nodiscard]] std::size_t user_load(std::string_view user) const {
        const user_state* u = s_->users.find(user, hash_string(user));
        return u == nullptr ? 0 : u->load;
    }

    /// `id`'s state, or nothing if it is unknown (never submitted, or forgotten).
    [[nodiscard]] std::optional<execution_state> state_of(std::string_view id) const {
        const execution* x = find_node(id);
        return x == nullptr ? std::nullopt : std::optional(x->state);
    }
    /// A pending execution's current rank (0 = next), in O(log n); nothing if not pending.
    [[nodiscard]] std::optional<std::uint64_t> position(std::string_view id) const {
        const execution* x = find_node(id);
        if (x == nullptr || x->state != execution_state::pending) {
            return std::nullopt;
        }
        return s_->queue.rank(x->slot);
    }
    /// A live execution, or nothing if it is not pending or running.
    [[nodiscard]] std::optional<execution_info> find(std::string_view id) const {
        const execution* x = find_node(id);
        if (x == nullptr || x->state == execution_state::finished) {
            return std::nullopt;
        }
        return info(*x);
    }
    /// The running executions, oldest dispatch first (what a new leader's host re-learns).
    [[nodiscard]] std::vector<execution_info> running() const {
        std::vector<execution_info> out;
        out.reserve(s_->running.size());
        for (const execution& x : s_->running) {
            out.push_back(info(x));
        }
        return out;
    }
    /// The pending executions in dispatch order.
    [[nodiscard]] std::vector<execution_info> pending() const {
        std::vector<execution_info> out;
        out.reserve(s_->queue.size());
        for (const queued& q : s_->queue) {
            out.push_back(info(*q.node));
        }
        return out;
    }

    /// Same queue: same snapshot bytes (config and sink aside).
    friend bool operator==(const admission_queue& a, const admission_queue& b) {
        return a.snapshot() == b.snapshot();
    }

private:
    enum class op : std::uint8_t {
        submit = 1,
        dispatch = 2,
        complete = 3,
        fail = 4,
        cancel = 5,
        tick = 6,
    };

    struct execution;

    /// A user with live executions.
    struct user_state {
        std::string name;
        std::size_t hash = 0; ///< of `name`, as `user_table` files it
        /// \invariant the user's pending + running executions. 0 only for an idle user that
        /// is held (round-robin: see `holds`).
        std::size_t load = 0;
        /// Round-robin only: per priority, the earliest round its next execution may take
        /// (one past its last; 0 before its first). Kept while the user is live, so a user
        /// cannot take two executions of one round by cancelling; and kept after its last
        /// execution finishes while it is still ahead of the round being served (with others
        /// waiting at that priority), so a user who finishes and resubmits cannot be served
        /// twice in one round.
        /// \invariant for an idle user (load 0), per priority either 0, or greater than
        /// `current_round` with executions pending there (then the user is in `held`).
        std::array<std::uint64_t, admission_priority_count> next_round{};
        /// Idle users only: at how many priorities the user is held.
        std::size_t holds = 0;
    };

    /// A pending execution's place in the queue. Ordered by `major` (priority in the top
    /// byte, round below), then by submission sequence.
    struct queued {
        std::uint64_t major;
        std::uint64_t seq;
        execution* node;
    };
    struct queued_order {
        bool operator()(const queued& a, const queued& b) const noexcept {
            return a.major != b.major ? a.major < b.major : a.seq < b.seq;
        }
    };

    /// Fixed-size blocks from chunks with a free list: the ranked index's nodes, so that
    /// queuing and dispatching an execution calls neither malloc nor free.
    class node_pool {
    public:
        node_pool() = default;
        node_pool(const node_pool&) = delete;
        node_pool& operator=(const node_pool&) = delete;
        ~node_pool() {
            for (void* c : chunks_) {
                ::operator delete(c);
            }
        }
        /// Whether blocks of this size come from the pool: the size of the first block asked
        /// for (the index's node type), and only it.
        [[nodiscard]] bool serves(std::size_t size, std::size_t align) noexcept {
            if (block_ == 0 && align <= alignof(std::max_align_t) && size >= sizeof(void*)) {
                block_ = (size + alignof(std::max_align_t) - 1) & ~(alignof(std::max_align_t) - 1);
                served_ = size;
            }
            return size == served_;
        }
        [[nodiscard]] void* take() {
            if (free_ == nullptr) {
                constexpr std::size_t per_chunk = 256;
                char* chunk = static_cast<char*>(::operator new(block_* per_chunk));
                chunks_.push_back(chunk);
                for (std::size_t i = per_chunk; i-- > 0;) {
                    give(chunk + i * block_);
                }
            }
            void* p = free_;
            free_ = *static_cast<void**>(p);
            return p;
        }
        void give(void* p) noexcept {
            *static_cast<void**>(p) = free_;
            free_ = p;
        }

    private:
        std::vector<void*> chunks_;
        void* free_ = nullptr;
        std::size_t block_ = 0;
        std::size_t served_ = 0;
    };
    template <class T>
    struct pool_allocator {
        using value_type = T;
        node_pool* pool;
        explicit pool_allocator(node_pool* p) noexcept
            : pool(p) {}
        template <class U>
        pool_allocator(const pool_allocator<U>& other) noexcept // NOLINT: rebinding converts
            : pool(other.pool) {}
        [[nodiscard]] T* allocate(std::size_t n) {
            if (n == 1 && pool->serves(sizeof(T), alignof(T))) {
                return static_cast<T*>(pool->take());
            }
            return std::allocator<T>{}.allocate(n);
        }
        void deallocate(T* p, std::size_t n) noexcept {
            if (n == 1 && pool->serves(sizeof(T), alignof(T))) {
                pool->give(p);
                return;
            }
            std::allocator<T>{}.deallocate(p, n);
        }
        template <class U>
        friend bool operator==(const pool_allocator& a, const pool_allocator<U>& b) noexcept {
            return a.pool == b.pool;
        }
    };
    using queue_index = boost::multi_index_container<
        queued,
        boost::multi_index::indexed_by<
            boost::multi_index::ranked_unique<boost::multi_index::identity<queued>, queued_order>>,
        pool_allocator<queued>>;
    static constexpr unsigned round_bits = 56;

    using age_hook = boost::intrusive::list_member_hook<
        boost::intrusive::link_mode<boost::intrusive::normal_link>>;

    /// One submitted id, from its decision until it is forgotten. Pooled: nodes are reused.
    struct execution {
        std::string id;
        /// \invariant non-null iff pending or running.
        user_state* user = nullptr;
        shared_bytes payload; ///< empty once finished
        std::uint64_t seq = 0;
        std::uint64_t round = 0;
        std::uint64_t submitted_at = 0;
        std::uint64_t dispatched_at = 0;
        std::uint64_t finished_at = 0;
        std::uint64_t position = 0;  ///< the accepted rank (the original decision)
        std::uint32_t rejection = 0; ///< the rejecting errc, 0 when accepted
        admission_priority priority = admission_priority::normal;
        execution_state state = execution_state::pending;
        admission_event_kind outcome = admission_event_kind::accepted; ///< when finished
        bool dispatched = false;
        queue_index::iterator slot{}; ///< valid while pending
        std::size_t hash = 0;         ///< of `id`, as `id_table` files it
        /// In `pending_by_age` or `running`, by `state`.
        age_hook by_age;
    };

    /// Nodes by their name (`Key`, hashed into the node's `hash` by `hash_string`): open
    /// addressing with linear probing over three parallel arrays — a one-byte tag per slot
    /// (0 = empty, else 8 bits of the hash), the hash's low 32 bits, and the node. A lookup
    /// scans only tags until an empty one, so deciding that a name is absent reads a byte per
    /// probed slot and touches no node: with the retained decisions the table is large, and
    /// the tags are the part that stays in cache. Deletion shifts back (no tombstones).
    template <class Node, std::string Node::*Key>
    class string_table {
    public:
        [[nodiscard]] Node* find(std::string_view name, std::size_t h) const noexcept {
            const std::uint8_t t = tag_of(h);
            for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
                const std::uint8_t ti = tags_[i];
                if (ti == 0) {
                    return nullptr;
                }
                if (ti == t && std::string_view(nodes_[i]->*Key) == name) {
                    return nodes_[i];
                }
            }
        }
        /// Starts fetching what a lookup of a name of hash `h` reads first.
        void prefetch(std::size_t h) const noexcept { prefetch_for_write(&tags_[h & mask_]); }
        /// What erasing a name of hash `h` reads.
        void prefetch_erase(std::size_t h) const noexcept {
            const std::size_t i = h & mask_;
            prefetch_for_write(&tags_[i]);
            prefetch_for_write(&hashes_[i]);
            prefetch_for_write(&nodes_[i]);
        }
        /// `x` (with `x.hash` set) must not be in the table.
        void insert(Node& x) {
            if ((count_ + 1) * 4 > tags_.size() * 3) {
                grow();
            }
            place(tag_of(x.hash), static_cast<std::uint32_t>(x.hash), &x);
            ++count_;
        }
        /// `x` must be in the table.
        void erase(const Node& x) noexcept {
            std::size_t i = x.hash & mask_;
            while (nodes_[i] != &x) {
                i = (i + 1) & mask_;
            }
            // Shift later members of the run back into the hole when their home allows.
            for (std::size_t j = (i + 1) & mask_; tags_[j] != 0; j = (j + 1) & mask_) {
                const std::size_t home = hashes_[j] & mask_;
                // Movable unless its home lies cyclically in (i, j].
                const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                    tags_[i] = tags_[j];
                    hashes_[i] = hashes_[j];
                    nodes_[i] = nodes_[j];
                    i = j;
                }
            }
            tags_[i] = 0;
            nodes_[i] = nullptr;
            --count_;
        }
        [[nodiscard]] std::size_t size() const noexcept { return count_; }
        /// Calls `f` with every node, in no particular order.
        template <class F>
        void for_each(F f) const {
            for (Node* n : nodes_) {
                if (n != nullptr) {
                    f(*n);
                }
            }
        }

    private:
        [[nodiscard]] static std::uint8_t tag_of(std::size_t h) noexcept {
            const auto t = static_cast<std::uint8_t>(static_cast<std::uint64_t>(h) >> 56);
            return t == 0 ? std::uint8_t{1} : t;
        }
        void place(std::uint8_t tag, std::uint32_t low, Node* node) noexcept {
            std::size_t i = low & mask_;
            while (tags_[i] != 0) {
                i = (i + 1) & mask_;
            }
            tags_[i] = tag;
            hashes_[i] = low;
            nodes_[i] = node;
        }
        void grow() {
            const std::size_t size = tags_.size() * 2;
            // Homes are taken from the low 32 bits of the hash.
            SYNOD_ASSERT(size - 1 <= std::numeric_limits<std::uint32_t>::max(),
                         "admission table too large");
            std::vector<std::uint8_t> tags(size);
            std::vector<std::uint32_t> hashes(size);
            std::vector<Node*> nodes(size);
            tags.swap(tags_);
            hashes.swap(hashes_);
            nodes.swap(nodes_);
            mask_ = size - 1;
            for (std::size_t i = 0; i < tags.size(); ++i) {
                if (tags[i] != 0) {
                    place(tags[i], hashes[i], nodes[i]);
                }
            }
        }

        /// \invariant the same power-of-two size, more than 4/3 of `count_`: probes end at an
        /// empty slot. `nodes_[i]` is null iff `tags_[i]` is 0.
        std::vector<std::uint8_t> tags_ = std::vector<std::uint8_t>(64);
        std::vector<std::uint32_t> hashes_ = std::vector<std::uint32_t>(64);
        std::vector<Node*> nodes_ = std::vector<Node*>(64);
        std::size_t mask_ = 63;
        std::size_t count_ = 0;
    };

    using id_table = string_table<execution, &execution::id>;
    using user_table = string_table<user_state, &user_state::name>;

    /// The finished executions in finishing order with their id hashes: a ring, so that the
    /// ones to forget next are known in advance (and prefetched: they finished long ago).
    class finished_ring {
    public:
        struct entry {
            execution* node;
            std::size_t hash;
        };
        [[nodiscard]] std::size_t size() const noexcept { return size_; }
        [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
        /// The `i`-th oldest; `i < size()`.
        [[nodiscard]] const entry& operator[](std::size_t i) const noexcept {
            return buf_[(head_ + i) & (buf_.size() - 1)];
        }
        [[nodiscard]] const entry& front() const noexcept { return (*this)[0]; }
        [[nodiscard]] const entry& back() const noexcept { return (*this)[size_ - 1]; }
        void push_back(execution& x) {
            if (size_ == buf_.size()) {
                grow();
            }
            buf_[(head_ + size_) & (buf_.size() - 1)] = entry{&x, x.hash};
            ++size_;
        }
        void pop_front() noexcept {
            head_ = (head_ + 1) & (buf_.size() - 1);
            --size_;
        }

    private:
        void grow() {
            std::vector<entry> bigger(std::max<std::size_t>(64, buf_.size() * 2));
            for (std::size_t i = 0; i < size_; ++i) {
                bigger[i] = (*this)[i];
            }
            buf_.swap(bigger);
            head_ = 0;
        }
        /// \invariant empty or a power of two in size.
        std::vector<entry> buf_;
        std::size_t head_ = 0;
        std::size_t size_ = 0;
    };

    using age_list = boost::intrusive::list<
        execution, boost::intrusive::member_hook<execution, age_hook, &execution::by_age>,
        boost::intrusive::constant_time_size<true>>;

    /// The hash of ids and user names, inline and cheap for short strings: 8 bytes at a time
    /// (the tail read as overlapping words), then murmur3's finalizer, so that the low bits
    /// the tables use depend on every byte. (Not persisted: any change is compatible.)
    [[nodiscard]] static std::size_t hash_string(std::string_view text) noexcept {
        constexpr std::uint64_t m = 0x9e3779b97f4a7c15ULL;
        const char* p = text.data();
        const std::size_t n = text.size();
        const auto load64 = [](const char* q) {
            std::uint64_t v = 0;
            std::memcpy(&v, q, 8);
            return v;
        };
        const auto load32 = [](const char* q) {
            std::uint32_t v = 0;
            std::memcpy(&v, q, 4);
            return std::uint64_t{v};
        };
        std::uint64_t h = (n + 1) * m;
        const auto mix = [&](std::uint64_t k) { h = std::rotl((h ^ k) * m, 29); };
        if (n > 8) {
            std::size_t i = 0;
            for (; i + 8 < n; i += 8) {
                mix(load64(p + i));
            }
            mix(load64(p + n - 8));
        } else if (n >= 4) {
            mix(load32(p) | (load32(p + n - 4) << 32));
        } else if (n > 0) {
            mix(std::uint64_t{static_cast<unsigned char>(p[0])} |
                (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
                (std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16));
        }
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        return static_cast<std::size_t>(h);
    }

    /// Starts fetching every cache line of `x`.
    static void prefetch_node(const execution* x) noexcept {
        const auto* bytes = reinterpret_cast<const unsigned char*>(x);
        for (std::size_t off = 0; off < sizeof(execution); off += 64) {
            prefetch_for_write(bytes + off);
        }
    }

    static void prefetch_for_write(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 1, 3);
#else
        (void)p;
#endif
    }

    /// The whole replicated state, behind a pointer so that the intrusive structures never
    /// move (a moved queue moves the pointer).
    struct state {
        state() = default;
        state(const state&) = delete;
        state& operator=(const state&) = delete;
        ~state() {
            // Unhook before the nodes go (normal_link hooks are not checked, but be tidy).
            pending_by_age.clear();
            running.clear();
        }

        /// \invariant the largest `now` of every decoded command; never decreases.
        std::uint64_t clock = 0;
        /// \invariant greater than every issued submission sequence.
        std::uint64_t next_seq = 0;
        /// \invariant the payload bytes of the pending and running executions (not in the
        /// snapshot: it is their sum).
        std::size_t held_payload_bytes = 0;
        /// Round-robin only: per priority, the round of the last execution dispatched.
        /// \invariant every pending execution of priority p has `round >= current_round[p]`.
        std::array<std::uint64_t, admission_priority_count> current_round{};
        /// Round-robin only: per priority, the idle users held there, by their `next_round`.
        std::array<std::set<std::pair<std::uint64_t, user_state*>>, admission_priority_count> held;
        /// Every node ever handed out (stable addresses); `free_nodes` are not in use.
        std::deque<execution> nodes;
        std::vector<execution*> free_nodes;
        /// Likewise for users (a user goes when its load drops to 0 and may come back).
        std::deque<user_state> user_nodes;
        std::vector<user_state*> free_users;
        /// \invariant exactly the users with load > 0; load counts their pending + running.
        user_table users;
        /// \invariant every node in use, once, by id.
        id_table by_id;
        /// \invariant exactly the pending executions, in dispatch order; size() is the
        /// pending count that `max_queue_size` caps.
        /// \invariant per priority, how many executions of `queue` have it.
        std::array<std::size_t, admission_priority_count> pending_at{};
        /// Strict FIFO only (null otherwise): per priority, its last execution in `queue`.
        std::array<execution*, admission_priority_count> last_at{};
        node_pool queue_pool; // before `queue`, which returns its nodes to it
        queue_index queue{queue_index::ctor_args_list(), pool_allocator<queued>(&queue_pool)};
        /// \invariant the pending executions in submission order, which is also
        /// `submitted_at` order (time never goes backwards): the oldest is at the front.
        age_list pending_by_age;
        /// \invariant the running executions in dispatch (= `dispatched_at`) order.
        age_list running;
        /// \invariant the finished (not rejected) executions in finishing order, at most
        /// `max_retained_decisions`: the next to forget is at the front.
        finished_ring finished;
        /// \invariant likewise the rejected ones, at most `max_retained_rejections`.
        finished_ring rejected;
    };

    // ---- encoding helpers

    static void put_header(wire::byte_writer& w, op o, std::uint64_t now) {
        w.put(command_version);
        w.put(static_cast<std::uint8_t>(o));
        w.put(now);
    }
    static shared_bytes id_command(op o, std::string_view id, std::uint64_t now) {
        byte_vector out;
        out.reserve(2 + 8 + 4 + id.size());
        wire::byte_writer w(out);
        put_header(w, o, now);
        detail::put_string(w, id);
        return shared_bytes(byte_span(out));
    }
    static std::string_view view_string(wire::byte_reader& r) {
        const byte_span b = r.get_bytes(r.get<std::uint32_t>());
        return {reinterpret_cast<const char*>(b.data()), b.size()};
    }
    /// What `put_live` writes for the smallest valid execution: a 1-byte id and a 1-byte user
    /// (each with its u32 length), the priority, five u64 fields and an empty payload's u32
    /// length. `load` bounds counts by it, so it must never exceed a real record: keep it in
    /// step with `put_live`.
    static constexpr std::size_t min_live_bytes = (4 + 1) + (4 + 1) + 1 + 5 * 8 + 4;
    static void put_live(wire::byte_writer& w, const execution& x) {
        detail::put_string(w, x.id);
        detail::put_string(w, x.user->name);
        w.put(static_cast<std::uint8_t>(x.priority));
        w.put(x.round);
        w.put(x.seq);
        w.put(x.submitted_at);
        w.put(x.dispatched_at);
        w.put(x.position);
        w.put(static_cast<std::uint32_t>(x.payload.size()));
        w.put_bytes(x.payload.span());
    }

    // ---- the operations

    submit_decision submit_impl(std::string_view id, std::string_view user, std::uint8_t priority,
                                byte_span payload_bytes, shared_bytes payload, std::uint64_t now) {
        advance(now);
        submit_decision d = decide(id, user, priority, payload_bytes, std::move(payload));
        pump();
        return d;
    }

    submit_decision decide(std::string_view id, std::string_view user, std::uint8_t priority,
                           byte_span payload_bytes, shared_bytes payload) {
        if (id.empty()) {
            return {make_error_code(errc::missing_field), 0, false};
        }
        if (id.size() > max_id_bytes) {
            return {make_error_code(errc::field_too_large), 0, false};
        }
        state& s = *s_;
        // Both lookups first: the id's slot is likely cold (the retained decisions make the
        // table large), so fetch it while the user is looked up.
        const std::size_t h = hash_string(id);
        s.by_id.prefetch(h);
        const std::size_t user_hash = user.size() <= max_user_bytes ? hash_string(user) : 0;
        user_state* known_user =
            user.size() <= max_user_bytes ? s.users.find(user, user_hash) : nullptr;
        if (const execution* x = s.by_id.find(id, h)) {
            return {x->rejection == 0 ? std::error_code{}
                                      : make_error_code(static_cast<errc>(x->rejection)),
                    x->position, true};
        }
        if (user.empty()) {
            return {make_error_code(errc::missing_field), 0, false};
        }
        if (user.size() > max_user_bytes || payload_bytes.size() > max_payload_bytes) {
            return {make_error_code(errc::field_too_large), 0, false};
        }
        if (priority >= admission_priority_count) {
            return {make_error_code(errc::invalid_priority), 0, false};
        }
        const auto p = static_cast<admission_priority>(priority);
        errc rejection{};
        if (s.queue.size() >= cfg_.max_queue_size ||
            s.held_payload_bytes > cfg_.max_held_payload_bytes || // (a restored state may be)
            payload_bytes.size() > cfg_.max_held_payload_bytes - s.held_payload_bytes) {
            rejection = errc::queue_full;
        } else if (known_user != nullptr && known_user->load >= cfg_.max_per_user) {
            rejection = errc::user_limit;
        }
        execution& x = new_node(id, h);
        x.priority = p;
        if (rejection != errc{}) {
            x.rejection = static_cast<std::uint32_t>(rejection);
            x.state = execution_state::finished;
            x.outcome = admission_event_kind::rejected;
            x.finished_at = s.clock;
            s.rejected.push_back(x);
            admission_event ev;
            ev.kind = admission_event_kind::rejected;
            ev.execution_id = x.id;
            ev.user = user;
            ev.priority = p;
            ev.reason = make_error_code(rejection);
            ev.at = s.clock;
            emit(ev);
            trim_finished();
            return {make_error_code(rejection), 0, false};
        }
        user_state& u = known_user != nullptr ? *known_user : add_user(s, user, user_hash);
        if (u.load == 0 && u.holds > 0) {
            unhold(s, u); // an idle user comes back with its rounds
        }
        ++u.load;
        x.user = &u;
        x.payload = payload.size() == payload_bytes.size() ? std::move(payload)
                                                           : shared_bytes(payload_bytes);
        s.held_payload_bytes += x.payload.size();
        x.seq = s.next_seq++;
        x.submitted_at = s.clock;
        if (cfg_.fairness == admission_fairness::round_robin_users) {
            x.round = std::max(s.current_round[priority], u.next_round[priority]);
            u.next_round[priority] = x.round + 1;
        }
        SYNOD_ASSERT(x.round < (std::uint64_t{1} << round_bits), "round-robin rounds exhausted");
        x.state = execution_state::pending;
        if (cfg_.fairness == admission_fairness::strict_fifo) {
            // The newest of its priority goes last among them: its rank is the pending count
            // of its priority and the more urgent ones (no O(log n) walk in the tree).
            std::uint64_t ahead = 0;
            for (std::size_t q = 0; q <= priority; ++q) {
                ahead += s.pending_at[q];
            }
            enqueue(x);
            x.position = ahead;
#ifndef NDEBUG
            SYNOD_ASSERT(x.position == s.queue.rank(x.slot), "pending counts out of step");
#endif
        } else {
            enqueue(x);
            x.position = s.queue.rank(x.slot);
        }
        admission_event ev;
        ev.kind = admission_event_kind::accepted;
        ev.execution_id = x.id;
        ev.user = u.name;
        ev.priority = p;
        ev.position = x.position;
        ev.at = s.clock;
        emit(ev);
        return {{}, x.position, false};
    }

    std::error_code finish_running(std::string_view id, std::uint64_t now,
                                   admission_event_kind outcome) {
        advance(now);
        std::error_code ec;
        execution* x = find_node(id);
        if (x == nullptr) {
            ec = errc::unknown_execution;
        } else if (x->state == execution_state::finished) {
            ec = errc::execution_finished;
        } else if (x->state == execution_state::pending) {
            ec = errc::not_running;
        } else {
            finish(*x, outcome);
        }
        pump();
        return ec;
    }

    /// Time moves to `now` (never back), and what is stale by it expires: pending ones
    /// oldest first, then running ones oldest first.
    void advance(std::uint64_t now) {
        state& s = *s_;
        s.clock = std::max(s.clock, now);
        const auto timeout = static_cast<std::uint64_t>(cfg_.stale_timeout.count());
        while (!s.pending_by_age.empty() &&
               s.clock - s.pending_by_age.front().submitted_at > timeout) {
            finish(s.pending_by_age.front(), admission_event_kind::expired);
        }
        while (!s.running.empty() && s.clock - s.running.front().dispatched_at > timeout) {
            finish(s.running.front(), admission_event_kind::expired);
        }
    }

    [[nodiscard]] bool capacity_free() const noexcept {
        return s_->running.size() < cfg_.max_running;
    }

    /// With `auto_dispatch`, dispatches the front while capacity allows.
    void pump() {
        if (!cfg_.auto_dispatch) {
            return;
        }
        while (!s_->queue.empty() && capacity_free()) {
            start(*s_->queue.begin()->node);
        }
    }

    void enqueue(execution& x) {
        state& s = *s_;
        queue_insert(s, x);
        s.pending_by_age.push_back(x);
    }

    /// Files the pending `x` in the queue. In strict FIFO order the newest execution of a
    /// priority goes right after the last one of that priority (or of the nearest more urgent
    /// one): that place is known, and inserting there with a hint skips the O(log n) descent,
    /// which at large backlogs reads cold nodes. (A wrong hint would only cost the descent.)
    void queue_insert(state& s, execution& x) const {
        const auto p = static_cast<std::size_t>(x.priority);
        const queued q{(static_cast<std::uint64_t>(x.priority) << round_bits) | x.round, x.seq, &x};
        if (cfg_.fairness == admission_fairness::strict_fifo) {
            auto hint = s.queue.begin();
            for (std::size_t r = p + 1; r-- > 0;) {
                if (s.last_at[r] != nullptr) {
                    hint = std::next(s.last_at[r]->slot);
                    break;
                }
            }
            x.slot = s.queue.insert(hint, q);
            s.last_at[p] = &x;
        } else {
            x.slot = s.queue.insert(q).first;
        }
        ++s.pending_at[p];
    }

    /// Takes the pending `x` out of the queue.
    static void queue_erase(state& s, execution& x) noexcept {
        const auto p = static_cast<std::size_t>(x.priority);
        if (s.last_at[p] == &x) {
            execution* before = nullptr;
            if (x.slot != s.queue.begin()) {
                execution* prev = std::prev(x.slot)->node;
                before = prev->priority == x.priority ? prev : nullptr;
            }
            s.last_at[p] = before;
        }
        s.queue.erase(x.slot);
        --s.pending_at[p];
    }

    /// Pending → running.
    void start(execution& x) {
        state& s = *s_;
        queue_erase(s, x);
        s.pending_by_age.erase(s.pending_by_age.iterator_to(x));
        if (!s.queue.empty()) {
            // The new front is the next to dispatch; with a long backlog it was queued long
            // ago and is cold. Fetch it now rather than when its dispatch waits on it.
            prefetch_node(s.queue.begin()->node);
        }
        if (cfg_.fairness == admission_fairness::round_robin_users) {
            s.current_round[static_cast<std::size_t>(x.priority)] = x.round;
            release_holds(s, static_cast<std::size_t>(x.priority));
        }
        x.state = execution_state::running;
        x.dispatched = true;
        x.dispatched_at = s.clock;
        s.running.push_back(x);
        admission_event ev;
        ev.kind = admission_event_kind::dispatched;
        ev.execution_id = x.id;
        ev.user = x.user->name;
        ev.priority = x.priority;
        ev.payload = x.payload.span();
        ev.at = s.clock;
        emit(ev);
    }

    /// Pending or running → finished with `outcome`; the node is kept for duplicates.
    void finish(execution& x, admission_event_kind outcome) {
        state& s = *s_;
        const execution_state from = x.state;
        if (from == execution_state::pending) {
            queue_erase(s, x);
            s.pending_by_age.erase(s.pending_by_age.iterator_to(x));
            if (cfg_.fairness == admission_fairness::round_robin_users) {
                release_holds(s, static_cast<std::size_t>(x.priority));
            }
        } else {
            s.running.erase(s.running.iterator_to(x));
        }
        admission_event ev;
        ev.kind = outcome;
        ev.execution_id = x.id;
        ev.user = x.user->name;
        ev.priority = x.priority;
        ev.from = from;
        ev.at = s.clock;
        emit(ev);
        user_state* u = x.user;
        x.user = nullptr;
        if (--u->load == 0) {
            go_idle(s, *u);
        }
        s.held_payload_bytes -= x.payload.size();
        x.payload = shared_bytes();
        x.state = execution_state::finished;
        x.outcome = outcome;
        x.finished_at = s.clock;
        s.finished.push_back(x);
        trim_finished();
    }

    /// Forgets the oldest finished and rejected executions beyond their retentions.
    void trim_finished() {
        trim(s_->finished, cfg_.max_retained_decisions);
        trim(s_->rejected, cfg_.max_retained_rejections);
    }
    void trim(finished_ring& ring, std::size_t keep) {
        state& s = *s_;
        while (ring.size() > keep) {
            execution& old = *ring.front().node;
            ring.pop_front();
            s.by_id.erase(old);
            release_node(old);
        }
        // At the retention, the next finish forgets the (now) oldest: it finished long ago,
        // so its node and id slot are cold. Fetch them now, while the caller goes on.
        if (!ring.empty() && ring.size() >= keep) {
            const auto& next = ring.front();
            s.by_id.prefetch_erase(next.hash);
            prefetch_node(next.node);
        }
    }

    /// Whether an idle user must keep its round at priority `p`: its next execution there
    /// would otherwise go to the round being served, which it may already have had, ahead of
    /// users still waiting in that round.
    [[nodiscard]] static bool holds_at(const state& s, const user_state& u, std::size_t p) {
        return u.next_round[p] > s.current_round[p] && s.pending_at[p] > 0;
    }

    /// `u`'s last execution finished: keep it where it is held, forget it otherwise.
    static void go_idle(state& s, user_state& u) {
        u.holds = 0;
        for (std::size_t p = 0; p < admission_priority_count; ++p) {
            if (holds_at(s, u, p)) {
                s.held[p].emplace(u.next_round[p], &u);
                ++u.holds;
            } else {
                u.next_round[p] = 0;
            }
        }
        if (u.holds == 0) {
            drop_user(s, u);
        }
    }

    /// The held idle user `u` submits again: it is live, with its rounds.
    static void unhold(state& s, user_state& u) {
        for (std::size_t p = 0; p < admission_priority_count; ++p) {
            if (u.next_round[p] != 0) {
                s.held[p].erase({u.next_round[p], &u});
            }
        }
        u.holds = 0;
    }

    /// Lets go of the users held at `p` that no longer need to be: the served round reached
    /// theirs, or nothing is pending there any more. Each hold is released once.
    static void release_holds(state& s, std::size_t p) {
        auto& held = s.held[p];
        while (!held.empty() &&
               (s.pending_at[p] == 0 || held.begin()->first <= s.current_round[p])) {
            user_state& u = *held.begin()->second;
            held.erase(held.begin());
            u.next_round[p] = 0;
            if (--u.holds == 0) {
                drop_user(s, u);
            }
        }
    }

    static void drop_user(state& s, user_state& u) {
        s.users.erase(u);
        s.free_users.push_back(&u);
    }

    void emit(const admission_event& ev) {
        if (collecting_ != nullptr) {
            collecting_->push_back(admission_event_record::of(ev));
        }
        if (sink_) {
            sink_(ev);
        }
    }

    // ---- node pool and id index

    [[nodiscard]] execution* find_node(std::string_view id) const {
        return s_->by_id.find(id, hash_string(id));
    }

    /// A fresh node for `id` (of hash `h`), indexed by it.
    execution& new_node(std::string_view id, std::size_t h) {
        state& s = *s_;
        execution* x = nullptr;
        if (!s.free_nodes.empty()) {
            x = s.free_nodes.back();
            s.free_nodes.pop_back();
        } else {
            x = &s.nodes.emplace_back();
        }
        x->id.assign(id);
        x->hash = h;
        s.by_id.insert(*x);
        return *x;
    }

    /// A live user `name` (of hash `h`, not live yet) with no load, indexed by it.
    static user_state& add_user(state& s, std::string_view name, std::size_t h) {
        user_state* u = nullptr;
        if (!s.free_users.empty()) {
            u = s.free_users.back();
            s.free_users.pop_back();
            u->load = 0;
            u->holds = 0;
            u->next_round = {};
        } else {
            u = &s.user_nodes.emplace_back();
        }
        u->name.assign(name);
        u->hash = h;
        s.users.insert(*u);
        return *u;
    }

    void release_node(execution& x) {
        // Keep the id's capacity for the next one; reset everything else.
        std::string id = std::move(x.id);
        id.clear();
        x.~execution();
        ::new (&x) execution();
        x.id = std::move(id);
        s_->free_nodes.push_back(&x);
    }

    [[nodiscard]] static execution_info info(const execution& x) {
        return {x.id,           x.user->name,    x.priority,      x.state,
                x.submitted_at, x.dispatched_at, x.payload.span()};
    }

    // ---- restore

    /// Decodes and checks a snapshot body into `s` (empty). False if anything is wrong.
    bool load(state& s, byte_span body) const {
        wire::byte_reader r(body);
        const auto version = r.get<std::uint8_t>();
        s.clock = r.get<std::uint64_t>();
        s.next_seq = r.get<std::uint64_t>();
        for (auto& round : s.current_round) {
            round = r.get<std::uint64_t>();
        }
        const bool round_robin = cfg_.fairness == admission_fairness::round_robin_users;
        const auto no_rounds = [](const auto& rounds) {
            return std::all_of(rounds.begin(), rounds.end(), [](auto v) { return v == 0; });
        };
        if (!r.ok() || version != snapshot_version ||
            (!round_robin && !no_rounds(s.current_round))) {
            return false;
        }
        const auto user_count = detail::get_count(r, 4 + 8 * admission_priority_count);
        std::string previous;
        for (std::uint32_t i = 0; i < user_count && r.ok(); ++i) {
            std::string name = detail::get_string(r);
            user_state u;
            for (auto& round : u.next_round) {
                round = r.get<std::uint64_t>();
            }
            if (name.empty() || name.size() > max_user_bytes || (i > 0 && name <= previous) ||
                (!round_robin && !no_rounds(u.next_round))) {
                return false;
            }
            add_user(s, name, hash_string(name)).next_round = u.next_round;
            previous = std::move(name);
        }
        const auto pending_count = detail::get_count(r, min_live_bytes);
        std::vector<execution*> by_seq;
        by_seq.reserve(pending_count);
        for (std::uint32_t i = 0; i < pending_count && r.ok(); ++i) {
            execution* x = load_live(s, r, execution_state::pending);
            if (x == nullptr) {
                return false;
            }
            const std::uint64_t major =
                (static_cast<std::uint64_t>(x->priority) << round_bits) | x->round;
            // Listed in dispatch order: each must go to the end.
            const queued q{major, x->seq, x};
            if (!s.queue.empty() && !queued_order{}(*s.queue.rbegin(), q)) {
                return false;
            }
            x->slot = s.queue.insert(s.queue.end(), q);
            ++s.pending_at[static_cast<std::size_t>(x->priority)];
            if (cfg_.fairness == admission_fairness::strict_fifo) {
                s.last_at[static_cast<std::size_t>(x->priority)] = x;
            }
            by_seq.push_back(x);
        }
        std::sort(by_seq.begin(), by_seq.end(),
                  [](const execution* a, const execution* b) { return a->seq < b->seq; });
        for (execution* x : by_seq) {
            if (!s.pending_by_age.empty() &&
                s.pending_by_age.back().submitted_at > x->submitted_at) {
                return false;
            }
            s.pending_by_age.push_back(*x);
        }
        const auto running_count = detail::get_count(r, min_live_bytes);
        for (std::uint32_t i = 0; i < running_count && r.ok(); ++i) {
            execution* x = load_live(s, r, execution_state::running);
            if (x == nullptr ||
                (!s.running.empty() && s.running.back().dispatched_at > x->dispatched_at)) {
                return false;
            }
            s.running.push_back(*x);
        }
        const auto finished_count = detail::get_count(r, 4 + 4 + 8 + 1 + 1 + 8);
        for (std::uint32_t i = 0; i < finished_count && r.ok(); ++i) {
            const std::string id = detail::get_string(r);
            const auto rejection = r.get<std::uint32_t>();
            const auto position = r.get<std::uint64_t>();
            const auto outcome = r.get<std::uint8_t>();
            const auto dispatched = r.get<std::uint8_t>();
            const auto finished_at = r.get<std::uint64_t>();
            if (!r.ok()) {
                return false;
            }
            const bool rejected =
                outcome == static_cast<std::uint8_t>(admission_event_kind::rejected);
            const bool valid_outcome =
                rejected
                    ? ((rejection == static_cast<std::uint32_t>(errc::queue_full) ||
                        rejection == static_cast<std::uint32_t>(errc::user_limit)) &&
                       dispatched == 0 && position == 0)
                    : (rejection == 0 &&
                       outcome >= static_cast<std::uint8_t>(admission_event_kind::completed) &&
                       outcome <= static_cast<std::uint8_t>(admission_event_kind::expired) &&
                       dispatched <= 1 &&
                       // completing or failing needs a dispatch first
                       (dispatched == 1 ||
                        outcome == static_cast<std::uint8_t>(admission_event_kind::cancelled) ||
                        outcome == static_cast<std::uint8_t>(admission_event_kind::expired)));
            finished_ring& ring = rejected ? s.rejected : s.finished;
            if (!valid_outcome || !valid_id(id) || finished_at > s.clock ||
                (!ring.empty() && ring.back().node->finished_at > finished_at) ||
                index_lookup(s, id) != nullptr) {
                return false;
            }
            execution& x = pooled(s, id);
            x.rejection = rejection;
            x.position = position;
            x.outcome = static_cast<admission_event_kind>(outcome);
            x.dispatched = dispatched == 1;
            x.finished_at = finished_at;
            x.state = execution_state::finished;
            ring.push_back(x);
        }
        if (!r.ok() || r.remaining() != 0) {
            return false;
        }
        // Every listed user is live (its load is what the lists say) or, idle, held where its
        // rounds say (round-robin).
        std::vector<user_state*> idle;
        s.users.for_each([&](user_state& u) {
            if (u.load == 0) {
                idle.push_back(&u);
            }
        });
        for (user_state* u : idle) {
            for (std::size_t p = 0; p < admission_priority_count; ++p) {
                if (holds_at(s, *u, p)) {
                    s.held[p].emplace(u->next_round[p], u);
                    ++u->holds;
                } else if (u->next_round[p] != 0) {
                    return false;
                }
            }
            if (u->holds == 0) {
                return false;
            }
        }
        return true;
    }

    /// Reads one pending or running execution into a node of `s`; null if it is invalid.
    execution* load_live(state& s, wire::byte_reader& r, execution_state st) const {
        const std::string id = detail::get_string(r);
        const std::string user = detail::get_string(r);
        const auto priority = r.get<std::uint8_t>();
        const auto round = r.get<std::uint64_t>();
        const auto seq = r.get<std::uint64_t>();
        const auto submitted_at = r.get<std::uint64_t>();
        const auto dispatched_at = r.get<std::uint64_t>();
        const auto position = r.get<std::uint64_t>();
        const byte_span payload = r.get_bytes(r.get<std::uint32_t>());
        if (!r.ok() || !valid_id(id) || priority >= admission_priority_count ||
            round >= (std::uint64_t{1} << round_bits) || seq >= s.next_seq ||
            submitted_at > s.clock || payload.size() > max_payload_bytes ||
            (cfg_.fairness == admission_fairness::strict_fifo && round != 0) ||
            (st == execution_state::pending &&
             (dispatched_at != 0 || round < s.current_round[priority])) ||
            (st == execution_state::running &&
             (dispatched_at < submitted_at || dispatched_at > s.clock)) ||
            index_lookup(s, id) != nullptr) {
            return nullptr;
        }
        user_state* u = s.users.find(user, hash_string(user));
        if (u == nullptr) {
            return nullptr;
        }
        execution& x = pooled(s, id);
        x.user = u;
        ++u->load;
        x.payload = shared_bytes(payload);
        s.held_payload_bytes += payload.size();
        x.priority = static_cast<admission_priority>(priority);
        x.round = round;
        x.seq = seq;
        x.submitted_at = submitted_at;
        x.dispatched_at = dispatched_at;
        x.position = position;
        x.state = st;
        x.dispatched = st == execution_state::running;
        return &x;
    }

    [[nodiscard]] static bool valid_id(std::string_view id) noexcept {
        return !id.empty() && id.size() <= max_id_bytes;
    }
    [[nodiscard]] static const execution* index_lookup(const state& s, std::string_view id) {
        return s.by_id.find(id, hash_string(id));
    }
    static execution& pooled(state& s, std::string_view id) {
        execution& x = s.nodes.emplace_back();
        x.id.assign(id);
        x.hash = hash_string(id);
        s.by_id.insert(x);
        return x;
    }

    admission_config cfg_;
    /// \invariant never null (but in a moved-from queue, which may only be assigned or
    /// destroyed).
    std::unique_ptr<state> s_;
    event_sink sink_;
    /// Set during `apply`: where its events are recorded.
    std::vector<admission_event_record>* collecting_ = nullptr;
};

static_assert(state_machine<admission_queue>);

} // namespace synod::machines
