#pragma once

/// \file
/// `machines::client_sessions<M>`: exactly-once client commands (Raft thesis §6.3) as a
/// wrapper around any replicated machine `M`. A client registers a session through the log,
/// then tags every command with (session, sequence). The wrapper applies each (session,
/// sequence) to `M` at most once and answers a retry with the result of the first application
/// — across leader changes, restarts and snapshots, since the cached results are part of the
/// replicated state. A pure value (design principle 6): time enters only as the `now` that
/// the proposer stamps into each command.
///
/// Commands (encoders in `session_commands`; formats in docs/machines.md):
/// - `register_session(now)`: a new session; its id is the number of sessions ever registered
///   (1, 2, ...), so an id is never issued twice. A retried registration registers another
///   session; the orphan expires.
/// - `command(session, sequence, first_outstanding, now, payload)`: applies `payload` to `M`
///   once per (session, sequence). `first_outstanding` is the lowest sequence whose result the
///   client still needs: results below it are discarded, and a sequence below it is
///   `stale_sequence` from then on.
/// - `keep_alive(session, now)`: activity without a command.
/// - `close_session(session, now)`: discards the session and its results.
///
/// Replicated time is the largest `now` any well-formed command carried (so it never goes
/// backwards when leaders' clocks disagree). A session with no activity for longer than
/// `session_timeout` of replicated time is expired by the first command that moves time past
/// it; commands on it then get `session_expired`. Every replica must use the same options.
///
/// Results: `M::result_type` must be copyable (a retry gets a copy of the cached result) and
/// encodable for snapshots, through a codec: by default `result_codec<M>`, which calls the
/// static `M::encode_result(wire::byte_writer&, const result_type&)` and
/// `M::decode_result(wire::byte_reader&) -> result_type`. Specialize `result_codec<M>` or
/// pass your own codec to wrap a machine you do not own. `put_error_code` /
/// `get_error_code` encode the `std::error_code`s such results usually carry.

#include <synod/core/assert.hpp>
#include <synod/core/bytes.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/machines/detail/encoding.hpp>
#include <synod/wire/byte_io.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

namespace synod::machines {

/// Writes an error code that a replicated result holds: one category byte (0 none, 1
/// `synod::errc`, 2 `std::errc`) and the value as u32. A deterministic machine's results
/// hold no other categories (their values would not mean the same on every host).
inline void put_error_code(wire::byte_writer& w, std::error_code ec) {
    std::uint8_t category = 0;
    if (ec) {
        category = ec.category() == synod::error_category() ? 1 : 0;
        if (category == 0) {
            SYNOD_ASSERT(ec.category() == std::generic_category(),
                         "a replicated result may hold only synod or generic error codes");
            category = 2;
        }
    }
    w.put(category);
    w.put(static_cast<std::uint32_t>(ec.value()));
}

/// Reads what `put_error_code` wrote; an unknown category, or a value with no category, is
/// `value_out_of_range`.
[[nodiscard]] inline std::error_code get_error_code(wire::byte_reader& r) {
    const auto category = r.get<std::uint8_t>();
    const auto value = static_cast<int>(r.get<std::uint32_t>());
    switch (category) {
    case 0:
        if (value != 0) {
            r.fail(errc::value_out_of_range);
        }
        return {};
    case 1:
        return {value, synod::error_category()};
    case 2:
        return {value, std::generic_category()};
    default:
        r.fail(errc::value_out_of_range);
        return {};
    }
}

/// How `client_sessions<M>` stores `M`'s results in snapshots. The default calls `M`'s static
/// `encode_result` / `decode_result`; specialize it for a machine you cannot change.
/// `decode` reads what `encode` wrote and records a failure in the reader (`r.fail(...)`) for
/// bytes it does not accept.
template <class M>
struct result_codec {
    static void encode(wire::byte_writer& w, const typename M::result_type& v) requires requires {
        M::encode_result(w, v);
    }
    { M::encode_result(w, v); }
    static typename M::result_type decode(wire::byte_reader& r) requires requires {
        { M::decode_result(r) } -> std::same_as<typename M::result_type>;
    }
    { return M::decode_result(r); }
};

template <class Codec, class Result>
concept result_codec_for = requires(wire::byte_writer& w, wire::byte_reader& r, const Result& v) {
    Codec::encode(w, v);
    { Codec::decode(r) } -> std::same_as<Result>;
};

/// A wrapped machine: a `state_machine` whose results can be cached (copied) and snapshotted.
template <class M, class Codec>
concept session_machine = state_machine<M> && std::copy_constructible<typename M::result_type> &&
    result_codec_for<Codec, typename M::result_type>;

/// Limits and timing of a session table. Part of the replicated behaviour: every replica must
/// use the same values.
struct client_sessions_options {
    /// A session with no command for longer than this (in replicated time) expires.
    std::chrono::milliseconds session_timeout{60'000};
    /// Registrations beyond this many live sessions get `too_many_sessions`.
    std::size_t max_sessions = 4'096;
    /// A session's new sequences beyond this many cached (unacknowledged) results get
    /// `too_many_outstanding`.
    std::size_t max_results_per_session = 256;
};

/// The commands of a session table, independent of the wrapped machine. `now` is replicated
/// time in milliseconds, stamped by the proposer (the leader, or a client through it).
struct session_commands {
    static constexpr std::uint8_t command_version = 1;

    [[nodiscard]] static shared_bytes encode_register_session(std::uint64_t now) {
        byte_vector out;
        wire::byte_writer w(out);
        header(w, register_op);
        w.put(now);
        return shared_bytes(byte_span(out));
    }

    /// `payload` is the wrapped machine's own command. Sequences start at 1 and each new
    /// command takes the next one; a retry repeats its sequence (and payload).
    /// `first_outstanding` (1..`sequence`) is the lowest sequence whose result the client
    /// still needs.
    [[nodiscard]] static shared_bytes encode_command(std::uint64_t session, std::uint64_t sequence,
                                                     std::uint64_t first_outstanding,
                                                     std::uint64_t now, byte_span payload) {
        byte_vector out;
        out.reserve(2 + 4 * sizeof(std::uint64_t) + sizeof(std::uint32_t) + payload.size());
        wire::byte_writer w(out);
        header(w, command_op);
        w.put(session);
        w.put(sequence);
        w.put(first_outstanding);
        w.put(now);
        w.put(static_cast<std::uint32_t>(payload.size()));
        w.put_bytes(payload);
        return shared_bytes(byte_span(out));
    }

    [[nodiscard]] static shared_bytes encode_keep_alive(std::uint64_t session, std::uint64_t now) {
        return session_only(keep_alive_op, session, now);
    }

    [[nodiscard]] static shared_bytes encode_close_session(std::uint64_t session,
                                                           std::uint64_t now) {
        return session_only(close_op, session, now);
    }

protected:
    static constexpr std::uint8_t register_op = 1;
    static constexpr std::uint8_t command_op = 2;
    static constexpr std::uint8_t keep_alive_op = 3;
    static constexpr std::uint8_t close_op = 4;

private:
    static void header(wire::byte_writer& w, std::uint8_t op) {
        w.put(command_version);
        w.put(op);
    }
    static shared_bytes session_only(std::uint8_t op, std::uint64_t session, std::uint64_t now) {
        byte_vector out;
        wire::byte_writer w(out);
        header(w, op);
        w.put(session);
        w.put(now);
        return shared_bytes(byte_span(out));
    }
};

/// What the table knows of one live session.
struct session_info {
    std::uint64_t last_activity = 0;     ///< replicated time of its last command
    std::uint64_t first_outstanding = 1; ///< the highest `first_outstanding` it has sent
    std::size_t cached_results = 0;      ///< results kept for retries
};

template <state_machine M, class Codec = result_codec<M>>
requires session_machine<M, Codec>
class client_sessions : public session_commands {
public:
    static constexpr std::uint8_t snapshot_version = 1;
    using inner_result = typename M::result_type;

    struct result_type {
        /// A session-level refusal (the wrapped machine was not touched): a decoding errc,
        /// `unknown_session`, `session_expired`, `invalid_argument` (sequence 0, or
        /// `first_outstanding` above the sequence), `stale_sequence`, `too_many_sessions`,
        /// `too_many_outstanding`, `value_out_of_range` (session ids exhausted). Empty
        /// otherwise — even when `M` rejected the command: that is in `inner`.
        std::error_code error;
        /// The session the command ran under; for `register_session`, the new id.
        std::uint64_t session = 0;
        /// `M`'s result for a `command` that was applied now or earlier.
        std::optional<inner_result> inner;
        /// `inner` is the cached result of an earlier application of this sequence: this
        /// command was a retry and `M` was not touched.
        bool cached = false;

        /// Defined when `M`'s result compares (deleted otherwise).
        friend bool operator==(const result_type&, const result_type&) = default;
    };

    client_sessions() requires std::default_initializable<M>
    = default;
    explicit client_sessions(client_sessions_options options, M inner = M{})
        : options_(options)
        , inner_(std::move(inner)) {
        SYNOD_ASSERT(options_.session_timeout.count() >= 0, "session_timeout must not be negative");
    }

    result_type apply(const log_entry& e) {
        wire::byte_reader r(e.payload.span());
        const auto version = r.get<std::uint8_t>();
        const auto op = r.get<std::uint8_t>();
        if (!r.ok()) {
            return refused(r.error());
        }
        if (version != command_version) {
            return refused(errc::unknown_version);
        }
        switch (op) {
        case register_op: {
            const auto now = r.get<std::uint64_t>();
            if (auto ec = finish(r)) {
                return refused(ec);
            }
            advance(now);
            return register_session();
        }
        case command_op: {
            const auto session = r.get<std::uint64_t>();
            const auto sequence = r.get<std::uint64_t>();
            const auto first_outstanding = r.get<std::uint64_t>();
            const auto now = r.get<std::uint64_t>();
            const byte_span payload = r.get_bytes(r.get<std::uint32_t>());
            if (auto ec = finish(r)) {
                return refused(ec);
            }
            advance(now);
            return command(e, session, sequence, first_outstanding, payload);
        }
        case keep_alive_op:
        case close_op: {
            const auto session = r.get<std::uint64_t>();
            const auto now = r.get<std::uint64_t>();
            if (auto ec = finish(r)) {
                return refused(ec);
            }
            advance(now);
            const auto [ec, s] = live(session);
            if (ec) {
                return refused(ec, session);
            }
            if (op == keep_alive_op) {
                touch(session, *s);
            } else {
                drop(session);
            }
            return {{}, session, std::nullopt, false};
        }
        default:
            return refused(errc::unknown_message_type);
        }
    }

    /// version u8, replicated time u64, last issued id u64; count, per live session (ascending
    /// id): id u64, last activity u64, first_outstanding u64, count, per cached result
    /// (ascending sequence): sequence u64, u32 length and the codec's bytes; then u32 length and
    /// `M`'s snapshot; seal u32.
    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(snapshot_version);
        w.put(clock_);
        w.put(last_issued_);
        w.put(static_cast<std::uint32_t>(sessions_.size()));
        byte_vector result_bytes;
        for (const auto& [id, s] : sessions_) {
            w.put(id);
            w.put(s.last_activity);
            w.put(s.first_outstanding);
            w.put(static_cast<std::uint32_t>(s.results.size()));
            for (const auto& [sequence, result] : s.results) {
                w.put(sequence);
                result_bytes.clear();
                wire::byte_writer rw(result_bytes);
                Codec::encode(rw, result);
                w.put(static_cast<std::uint32_t>(result_bytes.size()));
                w.put_bytes(byte_span(result_bytes));
            }
        }
        const shared_bytes inner(inner_.snapshot());
        w.put(static_cast<std::uint32_t>(inner.size()));
        w.put_bytes(inner.span());
        return detail::seal(out);
    }

    /// All or nothing: the session table is decoded and checked first, then `M` restores its
    /// section; only if both succeed does anything change.
    std::error_code restore(byte_span bytes) {
        const auto body = detail::unseal(bytes);
        if (!body) {
            return errc::corrupt_snapshot;
        }
        wire::byte_reader r(*body);
        const auto version = r.get<std::uint8_t>();
        const auto clock = r.get<std::uint64_t>();
        const auto last_issued = r.get<std::uint64_t>();
        // id, last activity, first_outstanding, result count.
        constexpr std::size_t min_session_bytes = 3 * sizeof(std::uint64_t) + 4;
        const auto count = detail::get_count(r, min_session_bytes);
        if (!r.ok() || version != snapshot_version) {
            return errc::corrupt_snapshot;
        }
        std::map<std::uint64_t, session_state> sessions;
        std::set<std::pair<std::uint64_t, std::uint64_t>> by_activity;
        std::uint64_t previous_id = 0;
        for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
            const auto id = r.get<std::uint64_t>();
            session_state s;
            s.last_activity = r.get<std::uint64_t>();
            s.first_outstanding = r.get<std::uint64_t>();
            // sequence, result length.
            const auto results = detail::get_count(r, sizeof(std::uint64_t) + 4);
            if (!r.ok() || id <= previous_id || id > last_issued || s.last_activity > clock ||
                s.first_outstanding == 0) {
                return errc::corrupt_snapshot;
            }
            previous_id = id;
            std::uint64_t previous_sequence = 0;
            for (std::uint32_t j = 0; j < results; ++j) {
                const auto sequence = r.get<std::uint64_t>();
                wire::byte_reader rr(r.get_bytes(r.get<std::uint32_t>()));
                if (!r.ok() || sequence <= previous_sequence || sequence < s.first_outstanding) {
                    return errc::corrupt_snapshot;
                }
                previous_sequence = sequence;
                inner_result decoded = Codec::decode(rr);
                if (!rr.ok() || rr.remaining() != 0) {
                    return errc::corrupt_snapshot;
                }
                s.results.emplace_hint(s.results.end(), sequence, std::move(decoded));
            }
            by_activity.emplace(s.last_activity, id);
            sessions.emplace_hint(sessions.end(), id, std::move(s));
        }
        const byte_span inner = r.get_bytes(r.get<std::uint32_t>());
        if (!r.ok() || r.remaining() != 0) {
            return errc::corrupt_snapshot;
        }
        if (inner_.restore(inner)) {
            return errc::corrupt_snapshot;
        }
        clock_ = clock;
        last_issued_ = last_issued;
        sessions_ = std::move(sessions);
        by_activity_ = std::move(by_activity);
        return {};
    }

    /// The largest `now` applied so far (milliseconds).
    [[nodiscard]] std::uint64_t replicated_time() const noexcept { return clock_; }
    /// The last session id issued (0 before the first registration).
    [[nodiscard]] std::uint64_t last_session_id() const noexcept { return last_issued_; }
    [[nodiscard]] std::size_t session_count() const noexcept { return sessions_.size(); }
    /// A live session, or nothing if it expired, was closed, or never existed.
    [[nodiscard]] std::optional<session_info> find(std::uint64_t session) const {
        const auto it = sessions_.find(session);
        if (it == sessions_.end()) {
            return std::nullopt;
        }
        return session_info{it->second.last_activity, it->second.first_outstanding,
                            it->second.results.size()};
    }
    [[nodiscard]] const client_sessions_options& options() const noexcept { return options_; }

    /// The wrapped machine (for reads; commands must go through the log).
    [[nodiscard]] M& inner() noexcept { return inner_; }
    [[nodiscard]] const M& inner() const noexcept { return inner_; }

private:
    struct session_state {
        std::uint64_t last_activity = 0;
        /// \invariant every cached sequence is >= `first_outstanding`, which only grows.
        std::uint64_t first_outstanding = 1;
        std::map<std::uint64_t, inner_result> results;
    };

    static result_type refused(std::error_code ec, std::uint64_t session = 0) {
        return {ec, session, std::nullopt, false};
    }

    static std::error_code finish(wire::byte_reader& r) {
        if (r.ok() && r.remaining() != 0) {
            r.fail(errc::length_mismatch);
        }
        return r.error();
    }

    /// Moves replicated time to `now` (never back) and expires every session idle for longer
    /// than the timeout.
    void advance(std::uint64_t now) {
        clock_ = std::max(clock_, now);
        const auto timeout = static_cast<std::uint64_t>(options_.session_timeout.count());
        while (!by_activity_.empty()) {
            const auto [last_activity, id] = *by_activity_.begin();
            if (clock_ - last_activity <= timeout) {
                break;
            }
            by_activity_.erase(by_activity_.begin());
            sessions_.erase(id);
        }
    }

    void touch(std::uint64_t id, session_state& s) {
        by_activity_.erase({s.last_activity, id});
        s.last_activity = clock_;
        by_activity_.emplace(s.last_activity, id);
    }

    void drop(std::uint64_t id) {
        const auto it = sessions_.find(id);
        by_activity_.erase({it->second.last_activity, id});
        sessions_.erase(it);
    }

    /// The live session `id`, or why there is none: ids never issued are `unknown_session`,
    /// issued ones no longer in the table (expired, closed) `session_expired`.
    std::pair<std::error_code, session_state*> live(std::uint64_t id) {
        if (id == 0 || id > last_issued_) {
            return {errc::unknown_session, nullptr};
        }
        const auto it = sessions_.find(id);
        if (it == sessions_.end()) {
            return {errc::session_expired, nullptr};
        }
        return {{}, &it->second};
    }

    result_type register_session() {
        if (sessions_.size() >= options_.max_sessions) {
            return refused(errc::too_many_sessions);
        }
        if (last_issued_ == std::numeric_limits<std::uint64_t>::max()) {
            return refused(errc::value_out_of_range);
        }
        const std::uint64_t id = ++last_issued_;
        session_state& s = sessions_[id];
        s.last_activity = clock_;
        by_activity_.emplace(clock_, id);
        return {{}, id, std::nullopt, false};
    }

    result_type command(const log_entry& e, std::uint64_t id, std::uint64_t sequence,
                        std::uint64_t first_outstanding, byte_span payload) {
        const auto [ec, found] = live(id);
        if (ec) {
            return refused(ec, id);
        }
        if (sequence == 0 || first_outstanding == 0 || first_outstanding > sequence) {
            return refused(errc::invalid_argument, id);
        }
        session_state& s = *found;
        touch(id, s);
        if (sequence < s.first_outstanding) {
            return refused(errc::stale_sequence, id);
        }
        if (first_outstanding > s.first_outstanding) {
            s.first_outstanding = first_outstanding;
            s.results.erase(s.results.begin(), s.results.lower_bound(first_outstanding));
        }
        if (const auto hit = s.results.find(sequence); hit != s.results.end()) {
            return {{}, id, hit->second, true};
        }
        if (s.results.size() >= options_.max_results_per_session) {
            return refused(errc::too_many_outstanding, id);
        }
        const log_entry inner{e.term, e.index, e.kind, shared_bytes(payload)};
        auto applied = s.results.emplace(sequence, inner_.apply(inner)).first;
        return {{}, id, applied->second, false};
    }

    client_sessions_options options_;
    M inner_;
    /// \invariant never decreases; every live session's last activity is <= it.
    std::uint64_t clock_ = 0;
    /// \invariant every live session id is in 1..`last_issued_`; never decreases.
    std::uint64_t last_issued_ = 0;
    std::map<std::uint64_t, session_state> sessions_;
    /// (last activity, id) of every live session: the expiry order.
    std::set<std::pair<std::uint64_t, std::uint64_t>> by_activity_;
};

namespace detail {

/// The smallest machine `client_sessions` wraps: counts its commands.
struct counting_machine {
    using result_type = std::uint64_t;
    std::uint64_t count = 0;
    result_type apply(const log_entry&) { return ++count; }
    [[nodiscard]] shared_bytes snapshot() const { return {}; }
    std::error_code restore(byte_span) { return {}; }
    static void encode_result(wire::byte_writer& w, result_type v) { w.put(v); }
    static result_type decode_result(wire::byte_reader& r) { return r.get<std::uint64_t>(); }
};

} // namespace detail

static_assert(state_machine<client_sessions<detail::counting_machine>>);

/// A client's side of a session: hands out sequence numbers and tracks which results it still
/// awaits, so that every command it encodes carries the right `first_outstanding`.
class session_client {
public:
    explicit session_client(std::uint64_t session) noexcept
        : session_(session) {}

    struct request {
        std::uint64_t sequence;
        shared_bytes command; ///< propose this (and again, unchanged but for `now`, to retry)
    };

    /// A new command with the next sequence; outstanding until `completed(sequence)`.
    [[nodiscard]] request next(std::uint64_t now, byte_span payload) {
        const std::uint64_t sequence = next_++;
        outstanding_.insert(sequence);
        return {sequence, encode(sequence, now, payload)};
    }

    /// The command that retries outstanding `sequence` (same payload as the first attempt).
    [[nodiscard]] shared_bytes retry(std::uint64_t sequence, std::uint64_t now,
                                     byte_span payload) const {
        SYNOD_ASSERT(outstanding_.contains(sequence),
                     "retry of a sequence that is not outstanding");
        return encode(sequence, now, payload);
    }

    /// The result of `sequence` arrived: the machine may discard it once a later command says
    /// so.
    void completed(std::uint64_t sequence) { outstanding_.erase(sequence); }

    [[nodiscard]] std::uint64_t session() const noexcept { return session_; }
    [[nodiscard]] std::uint64_t next_sequence() const noexcept { return next_; }
    /// The lowest sequence still awaited (the next one when none is).
    [[nodiscard]] std::uint64_t first_outstanding() const noexcept {
        return outstanding_.empty() ? next_ : *outstanding_.begin();
    }
    [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_.size(); }

private:
    shared_bytes encode(std::uint64_t sequence, std::uint64_t now, byte_span payload) const {
        return session_commands::encode_command(
            session_, sequence, std::min(first_outstanding(), sequence), now, payload);
    }

    std::uint64_t session_;
    std::uint64_t next_ = 1;
    std::set<std::uint64_t> outstanding_;
};

} // namespace synod::machines
