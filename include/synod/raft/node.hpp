#pragma once

/// \file
/// `raft::node`: one server of a Raft group (Ongaro & Ousterhout 2014; Ongaro's thesis 2014).
///
/// The node is a deterministic state machine over its four policies (design principle 1): it
/// reads time only from `Clock`, draws randomness only from a generator seeded in its config,
/// does I/O only through `Log` and `Transport`, and defers work only through `Scheduler`.
/// Every public member function must be called on the scheduler's context (principle 2).
///
/// Persistence contract (principle 3, thesis §10.2.1), enforced here:
/// - a vote is granted, and the candidate counts its own vote, only once the hard state that
///   records it is durable;
/// - a follower acknowledges entries only once they are durable;
/// - a leader sends AppendEntries while its own append is being flushed, and counts itself
///   toward a commit quorum only for entries whose flush has completed;
/// - entries are applied only once they are committed *and* durable on this node.
/// Writes made in one turn of the scheduler share one flush (group commit).
///
/// Log compaction (paper §7, thesis chapter 5): the node snapshots its state machine when the
/// config's thresholds say so and removes the covered prefix of its log, keeping a tail, only
/// once the snapshot is durable. A follower that needs compacted entries receives the leader's
/// snapshot in checksummed chunks; it restores it only after the whole has verified.

#include <synod/core/assert.hpp>
#include <synod/core/concepts.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/messages.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/raft/config.hpp>
#include <synod/raft/progress.hpp>
#include <synod/raft/proposal.hpp>
#include <synod/raft/quorum.hpp>
#include <synod/raft/read_index.hpp>
#include <synod/raft/status.hpp>
#include <synod/wire/codec.hpp>
#include <synod/wire/crc32c.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace synod::raft {

template <log_store Log, transport Transport, clock Clock, scheduler Scheduler,
          state_machine Machine>
requires std::same_as<typename Clock::time_point, typename Scheduler::time_point>
class node {
public:
    using result_type = typename Machine::result_type;
    using result = proposal_result<result_type>;
    using completion = unique_function<void(result)>;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    /// The policies are the host's; they must outlive the node.
    node(raft::config cfg, Log& log, Transport& transport, const Clock& clock, Scheduler& scheduler,
         Machine& machine)
        : cfg_(std::move(cfg))
        , log_(log)
        , transport_(transport)
        , clock_(clock)
        , scheduler_(scheduler)
        , machine_(machine)
        , rng_(cfg_.random_seed ^ (cfg_.id.value() * 0x9e3779b97f4a7c15ULL))
        , lifetime_(std::make_shared<node*>(this)) {}

    node(const node&) = delete;
    node& operator=(const node&) = delete;

    /// Callbacks already handed to policies become no-ops once the node is gone. Proposals
    /// still pending complete (posted) with `outcome_unknown`: they may commit elsewhere.
    ~node() {
        *lifetime_ = nullptr;
        if (timer_armed_) {
            scheduler_.cancel(timer_);
        }
        fail_pending(errc::outcome_unknown);
        fail_forwarded(errc::outcome_unknown, true);
        fail_reads(errc::shutting_down, true);
        fail_changes(errc::shutting_down);
    }

    /// Recovers durable state from the log and starts as a follower. Call once.
    std::error_code start() {
        if (auto ec = cfg_.validate()) {
            return ec;
        }
        if (auto ec = log_.recover()) {
            return ec;
        }
        const hard_state hs = log_.saved_hard_state();
        term_ = hs.current_term;
        voted_for_ = hs.voted_for;
        durable_index_ = log_.last_index();
        applied_config_ = cfg_.initial_membership;
        if (auto snap = log_.latest_snapshot()) {
            if (auto ec = machine_.restore(snap->data.span())) {
                return ec;
            }
            applied_ = snap->meta.last_index;
            snapshot_index_ = snap->meta.last_index;
            applied_config_ = snap->meta.config;
        }
        commit_ = std::max(applied_, std::min(hs.commit, log_.last_index()));
        if (auto ec = reload_membership()) {
            return ec;
        }
        become_follower(term_, no_node);
        schedule_apply();
        return {};
    }

    /// Hands an inbound message to the node. Anything malformed, misaddressed or stale is
    /// dropped and counted (`status().counters.messages_dropped`).
    void receive(message m) {
        if (stopped_) {
            return drop(drop_reason::stopped, m);
        }
        const node_id from = message_from(m);
        if (message_to(m) != cfg_.id || from == cfg_.id) {
            return drop(drop_reason::wrong_recipient, m);
        }
        if (!config_.is_member(from) && !config_.voters().empty()) {
            // (A node that joins with no configuration yet learns it from the leader.)
            return drop(drop_reason::unknown_sender, m);
        }
        if (!apply_term_rules(m)) {
            return;
        }
        std::visit([this](auto& msg) { this->handle(msg); }, m);
        check_invariants();
    }

    /// Proposes `payload` for the log. `done` runs exactly once, never inside this call (see
    /// proposal.hpp for the outcomes).
    void propose(shared_bytes payload, completion done) {
        if (stopped_) {
            return refuse(rejection::stopped, errc::storage_failure, std::move(done));
        }
        if (role_ != role::leader) {
            if (cfg_.forward_proposals && leader_ != no_node) {
                if (payload.size() > cfg_.max_proposal_bytes) {
                    return refuse(rejection::too_large, errc::proposal_too_large, std::move(done));
                }
                return forward(std::move(payload), std::move(done));
            }
            return refuse(rejection::not_leader,
                          leader_ == no_node ? errc::leader_unknown : errc::not_leader,
                          std::move(done));
        }
        if (transfer_) {
            return refuse(rejection::transfer_in_progress, errc::transfer_in_progress,
                          std::move(done));
        }
        const appended a = append_proposal(std::move(payload));
        if (a.refused) {
            return refuse(a.reason, a.why, std::move(done));
        }
        pending_.push_back(pending_proposal{a.index, std::move(done)});
    }

    /// What a membership change or leadership transfer reports: empty when done (the new
    /// configuration is committed; the target has taken over), else why not.
    using change_completion = unique_function<void(std::error_code)>;

    /// Moves the group to `voters` and `learners` (thesis chapter 4), on the leader: through
    /// the joint configuration C_old,new when voters change (elections and commitment need
    /// majorities of both), directly when only learners do. Each configuration takes effect
    /// when appended. `done` runs when C_new is committed. Refused with `not_leader`,
    /// `change_in_progress` (one change at a time), `invalid_argument` (no voters, `no_node`,
    /// a node listed twice), `unknown_node` (a new voter that is not a learner yet: add it as a
    /// learner first), `learner_behind` (a learner promoted before it caught up). A leader
    /// that is not a voter of C_new steps down once C_new commits.
    void change_membership(std::vector<node_id> voters, std::vector<node_id> learners,
                           change_completion done) {
        if (auto ec = check_change(voters, learners)) {
            return finish_change(std::move(done), ec);
        }
        membership target(std::move(voters), std::move(learners));
        if (target.voters() == config_.voters() && target.learners() == config_.learners()) {
            return finish_change(std::move(done), {}); // nothing to change
        }
        const bool voters_change = target.voters() != config_.voters();
        membership next = voters_change
                              ? membership(target.voters(), target.learners(), config_.voters())
                              : target;
        if (auto ec = append_config(next)) {
            return finish_change(std::move(done), ec);
        }
        change_ = pending_change{std::move(done), voters_change ? log_index{} : config_index_};
    }

    void add_learner(node_id id, change_completion done) {
        if (config_.is_member(id)) {
            return finish_change(std::move(done), errc::already_exists);
        }
        auto learners = config_.learners();
        learners.push_back(id);
        change_membership(config_.voters(), std::move(learners), std::move(done));
    }
    void promote(node_id id, change_completion done) {
        if (!config_.is_learner(id)) {
            return finish_change(std::move(done), errc::unknown_node);
        }
        auto voters = config_.voters();
        voters.push_back(id);
        change_membership(std::move(voters), without(config_.learners(), id), std::move(done));
    }
    void demote(node_id id, change_completion done) {
        if (!config_.is_voter(id)) {
            return finish_change(std::move(done), errc::unknown_node);
        }
        auto learners = config_.learners();
        learners.push_back(id);
        change_membership(without(config_.voters(), id), std::move(learners), std::move(done));
    }
    void remove(node_id id, change_completion done) {
        if (!config_.is_member(id)) {
            return finish_change(std::move(done), errc::unknown_node);
        }
        change_membership(without(config_.voters(), id), without(config_.learners(), id),
                          std::move(done));
    }

    /// Hands leadership to `target` (thesis §3.10): the leader stops accepting proposals
    /// (`transfer_in_progress`), brings the target's log up to date, and tells it to start an
    /// election at once (TimeoutNow). `done` runs with success once this node has stepped
    /// down, or with `timeout` if the target has not taken over within an election timeout —
    /// the leader then resumes. Refused with `not_leader`, `unknown_node` (not a voter),
    /// `invalid_argument` (itself), `transfer_in_progress`.
    void transfer_leadership(node_id target, change_completion done) {
        std::error_code ec;
        if (stopped_) {
            ec = errc::storage_failure;
        } else if (role_ != role::leader) {
            ec = leader_ == no_node ? errc::leader_unknown : errc::not_leader;
        } else if (target == cfg_.id) {
            ec = errc::invalid_argument;
        } else if (!config_.is_voter(target) || find_peer(target) == nullptr) {
            ec = errc::unknown_node;
        } else if (transfer_) {
            ec = errc::transfer_in_progress;
        }
        if (ec) {
            return finish_change(std::move(done), ec);
        }
        ++counters_.transfers_started;
        transfer_ = pending_transfer{
            target, clock_.now() + std::chrono::duration_cast<duration>(cfg_.election_timeout_max),
            false, std::move(done), term_};
        note(log_level::info, "transferring leadership", {{"to", target.value()}});
        arm_timer();
        maybe_send_timeout_now();
    }

    using read_completion = unique_function<void(read_result)>;

    /// A linearizable read (thesis §6.4, ReadIndex): `done` runs, never inside this call, once
    /// this node's state machine reflects every write committed before the call — read it
    /// then. On the leader: it records its commit index, confirms it still leads with one
    /// heartbeat round to a quorum (shared by every read of the same turn), and waits until
    /// that index is applied; a new leader first commits its no-op. On a follower: it asks the
    /// leader for a read index, then waits until it has applied that far itself. See
    /// read_index.hpp for the outcomes.
    void read_index(read_completion done) {
        if (stopped_) {
            return finish_read(std::move(done), errc::storage_failure, log_index{});
        }
        if (role_ != role::leader) {
            if (leader_ == no_node) {
                return finish_read(std::move(done), errc::leader_unknown, log_index{});
            }
            return ask_leader_for_read(std::move(done));
        }
        reads_.push_back({log_index{}, 0, read_deadline(), std::move(done), no_node, 0});
        want_read_round();
    }

    /// A read under the leader's lease: no round trip while the lease holds, so its safety
    /// also rests on clocks drifting apart by less than `lease_clock_drift` per election
    /// timeout (thesis §6.4.1) — a weaker guarantee than `read_index`, hence the name. Needs
    /// `check_quorum`; without a valid lease (or on a follower) it is a `read_index`.
    void read_under_lease(read_completion done) {
        if (!stopped_ && role_ == role::leader && cfg_.check_quorum && leader_caught_up() &&
            !transfer_ && clock_.now() < lease_until_) {
            ++counters_.lease_reads;
            reads_ready_.emplace(commit_, std::move(done));
            return settle_reads();
        }
        read_index(std::move(done));
    }

    /// Starts an election now, as if the election timeout had elapsed (for tests and tools).
    void campaign() {
        if (!stopped_ && role_ != role::leader && config_.is_voter(cfg_.id)) {
            start_election(clock_.now());
            check_invariants();
        }
    }

    [[nodiscard]] raft::status status() const {
        raft::status s;
        s.id = cfg_.id;
        s.role = role_;
        s.current_term = term_;
        s.voted_for = voted_for_;
        s.leader = leader_;
        s.first_index = log_.first_index();
        s.last_index = log_.last_index();
        s.durable_index = durable_index_;
        s.commit_index = commit_;
        s.applied_index = applied_;
        s.config = config_;
        s.stopped = stopped_;
        s.snapshot_index = snapshot_index_;
        s.membership_change_in_flight = change_.has_value() || config_.is_joint() ||
                                        (role_ == role::leader && config_index_ > commit_);
        s.transfer_target = transfer_ ? transfer_->target : no_node;
        if (incoming_) {
            s.incoming_snapshot_index = incoming_->last_index;
            s.incoming_snapshot_bytes = incoming_->bytes.size();
        }
        s.last_snapshot_rejection = last_snapshot_rejection_;
        for (const auto& [id, pr] : peers_) {
            follower_status f{id, pr.match, pr.next, pr.state, pr.window.count(), {}, 0, 0};
            if (pr.transfer) {
                f.snapshot_index = pr.transfer->image.meta.last_index;
                f.snapshot_bytes = pr.transfer->image.data.size();
                f.snapshot_acked = pr.transfer->acked;
            }
            s.followers.push_back(f);
        }
        s.counters = counters_;
        return s;
    }

    [[nodiscard]] node_id id() const noexcept { return cfg_.id; }
    [[nodiscard]] raft::role role() const noexcept { return role_; }
    [[nodiscard]] term current_term() const noexcept { return term_; }
    [[nodiscard]] node_id leader() const noexcept { return leader_; }
    [[nodiscard]] log_index commit_index() const noexcept { return commit_; }
    [[nodiscard]] log_index applied_index() const noexcept { return applied_; }
    [[nodiscard]] log_index durable_index() const noexcept { return durable_index_; }
    /// Last index covered by the log's latest snapshot (0: none).
    [[nodiscard]] log_index snapshot_index() const noexcept { return snapshot_index_; }
    /// A leader whose term's first entry (its no-op) is committed and applied: its state
    /// machine reflects every entry committed before it took office (paper §8).
    [[nodiscard]] bool leader_caught_up() const noexcept {
        return role_ == role::leader && applied_ >= term_start_index_;
    }
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }
    [[nodiscard]] const membership& config() const noexcept { return config_; }
    [[nodiscard]] const raft::counters& counters() const noexcept { return counters_; }

private:
    struct pending_proposal {
        log_index index;
        completion done;
    };

    /// A message that may leave only once this node's state is durable far enough: a granted
    /// vote (its hard state) or an acknowledgement (its entries). Dropped if the term moved on
    /// before then, because its promise was made in that term only.
    struct deferred_message {
        log_index needs_index;
        std::uint64_t needs_writes;
        term in_term;
        node_id to;
        message msg;
    };

    struct uncommitted_entry {
        log_index index;
        std::size_t cost;
    };

    // --- term rules (paper §5.1, thesis §9.6, §4.2.3) ----------------------------------------

    /// Applies "if RPC request or response contains term T > currentTerm: set currentTerm =
    /// T, convert to follower" with the exceptions pre-vote and leader leases need. Returns
    /// false if the message has been fully dealt with.
    bool apply_term_rules(const message& m) {
        const term mt = message_term(m);
        const node_id from = message_from(m);
        if (mt > term_) {
            if (const auto* req = std::get_if<vote_request>(&m)) {
                if (cfg_.check_quorum && !req->leadership_transfer && in_leader_lease()) {
                    drop(drop_reason::leader_lease, m);
                    return false;
                }
                if (req->pre_vote) {
                    return true; // a pre-vote changes nothing at the receiver
                }
                become_follower(mt, no_node);
                return true;
            }
            if (const auto* resp = std::get_if<vote_response>(&m)) {
                if (resp->pre_vote && resp->granted) {
                    return true; // granted pre-votes carry the term we would campaign in
                }
            }
            const bool from_leader = std::holds_alternative<append_request>(m) ||
                                     std::holds_alternative<snapshot_chunk_request>(m) ||
                                     std::holds_alternative<timeout_now>(m);
            become_follower(mt, from_leader ? from : no_node);
            return true;
        }
        if (mt < term_) {
            // Tell stale leaders and candidates about the newer term so they step down;
            // stale responses are simply old news.
            if (const auto* req = std::get_if<append_request>(&m)) {
                send(req->from, append_response{cfg_.id, req->from, term_, false, log_.last_index(),
                                                term{}, log_index{}, req->round});
            } else if (const auto* vreq = std::get_if<vote_request>(&m)) {
                send(vreq->from, vote_response{cfg_.id, vreq->from, term_, false, vreq->pre_vote});
            } else if (const auto* fwd = std::get_if<proposal_forward>(&m)) {
                send(fwd->from, proposal_forward_response{
                                    cfg_.id, fwd->from, term_, fwd->request_id, log_index{},
                                    static_cast<std::uint32_t>(errc::leader_unknown)});
            } else if (const auto* sreq = std::get_if<snapshot_chunk_request>(&m)) {
                send(sreq->from,
                     snapshot_chunk_response{cfg_.id, sreq->from, term_, sreq->last_included_index,
                                             0, false, false});
            } else {
                drop(drop_reason::stale_term, m);
            }
            return false;
        }
        return true;
    }

    [[nodiscard]] bool in_leader_lease() const {
        if (role_ == role::leader) {
            return true;
        }
        return leader_ != no_node &&
               clock_.now() - last_leader_contact_ < duration(cfg_.election_timeout_min);
    }

    // --- elections (paper §5.2, thesis §9.6) -------------------------------------------------

    void start_election(time_point now) {
        transfer_campaign_ = false; // only the election TimeoutNow started bypasses leases
        reset_election_deadline(now, true);
        if (cfg_.pre_vote) {
            become_pre_candidate();
        } else {
            become_candidate();
        }
    }

    void become_pre_candidate() {
        role_ = role::pre_candidate;
        set_leader(no_node);
        votes_.clear();
        votes_.emplace_back(cfg_.id, true); // a pre-vote for oneself persists nothing
        ++counters_.pre_votes_started;
        note(log_level::info, "pre-vote started", {{"term", term_.value() + 1}});
        request_votes(true);
        tally(true);
    }

    void become_candidate() {
        role_ = role::candidate;
        term_ = term_ + 1;
        voted_for_ = cfg_.id;
        set_leader(no_node);
        votes_.clear();
        ++counters_.elections_started;
        persist_hard_state();
        // The self-vote counts once the hard state recording it is durable.
        self_vote_writes_ = writes_;
        note(log_level::info, "election started", {{"term", term_.value()}});
        request_votes(false);
        count_self_vote_if_durable();
    }

    void request_votes(bool pre_vote) {
        const log_index last = log_.last_index();
        const term last_term = *log_.term_at(last);
        const term t = pre_vote ? term_ + 1 : term_;
        for (node_id id : all_voters()) {
            if (id != cfg_.id) {
                send(id,
                     vote_request{cfg_.id, id, t, last, last_term, pre_vote, transfer_campaign_});
            }
        }
    }

    /// The self-vote counts, and the candidate may take office, only once the hard state
    /// recording this term and vote is durable: a leader that crashed before that could
    /// forget the term and win it a second time with different entries.
    void count_self_vote_if_durable() {
        if (role_ == role::candidate && durable_writes_ >= self_vote_writes_) {
            if (!has_voted(cfg_.id)) {
                votes_.emplace_back(cfg_.id, true);
            }
            tally(false);
        }
    }

    [[nodiscard]] bool has_voted(node_id id) const {
        return std::any_of(votes_.begin(), votes_.end(),
                           [&](const auto& v) { return v.first == id; });
    }

    void tally(bool pre_vote) {
        auto outcome = tally_votes(config_, [&](node_id id) {
            for (const auto& [voter, granted] : votes_) {
                if (voter == id) {
                    return granted ? 1 : -1;
                }
            }
            return 0;
        });
        if (outcome == vote_tally::won) {
            if (pre_vote) {
                become_candidate();
            } else if (durable_writes_ >= self_vote_writes_) {
                become_leader();
            } // else: count_self_vote_if_durable() tallies again when the flush completes
        } else if (outcome == vote_tally::lost) {
            become_follower(term_, no_node);
        }
    }

    void handle(const vote_request& req) {
        const log_index last = log_.last_index();
        const term last_term = *log_.term_at(last);
        // Paper §5.4.1: grant only to a candidate whose log is at least as up-to-date.
        const bool log_ok = req.last_log_term > last_term ||
                            (req.last_log_term == last_term && req.last_log_index >= last);
        if (req.pre_vote) {
            // Thesis §9.6: grant a pre-vote only to a future term, for an up-to-date log, and
            // only if no leader has been heard from within the minimum election timeout.
            const bool grant =
                req.term > term_ && log_ok && (req.leadership_transfer || !in_leader_lease());
            send(req.from, vote_response{cfg_.id, req.from, grant ? req.term : term_, grant, true});
            return;
        }
        const bool free_to_vote =
            voted_for_ == req.from || (voted_for_ == no_node && leader_ == no_node);
        if (!(free_to_vote && log_ok)) {
            send(req.from, vote_response{cfg_.id, req.from, term_, false, false});
            return;
        }
        if (voted_for_ != req.from) {
            voted_for_ = req.from;
            persist_hard_state();
        }
        reset_election_deadline(clock_.now(), false);
        send_when_durable(req.from, vote_response{cfg_.id, req.from, term_, true, false},
                          log_index{});
    }

    void handle(const vote_response& resp) {
        const bool expected = resp.pre_vote ? role_ == role::pre_candidate &&
                                                  resp.term == (resp.granted ? term_ + 1 : term_)
                                            : role_ == role::candidate && resp.term == term_;
        if (!expected || !config_.is_voter(resp.from) || has_voted(resp.from)) {
            return drop(drop_reason::unexpected, resp);
        }
        votes_.emplace_back(resp.from, resp.granted);
        tally(resp.pre_vote);
    }

    // --- roles ---------------------------------------------------------------------------------

    void become_follower(term t, node_id leader) {
        const bool was_leader = role_ == role::leader;
        if (t > term_) {
            term_ = t;
            voted_for_ = no_node;
            persist_hard_state();
        }
        role_ = role::follower;
        votes_.clear();
        set_leader(leader);
        if (leader != no_node) {
            last_leader_contact_ = clock_.now();
        }
        reset_election_deadline(clock_.now(), true);
        transfer_campaign_ = false;
        if (transfer_) {
            // Stepping down for a newer term is the transfer's success; anything else is not.
            ++counters_.transfers_completed;
            finish_change(std::move(transfer_->done),
                          t > transfer_->in_term ? std::error_code{} : errc::not_leader);
            transfer_.reset();
        }
        if (change_) {
            finish_change(std::move(change_->done), errc::outcome_unknown);
            change_.reset();
        }
        if (was_leader) {
            peers_.clear();
            uncommitted_.clear();
            uncommitted_bytes_ = 0;
            fail_pending(errc::outcome_unknown);
            fail_reads(errc::stale_read, false);
            lease_until_ = time_point{};
            broadcasts_.clear();
        }
        arm_timer();
    }

    void become_leader() {
        role_ = role::leader;
        transfer_campaign_ = false;
        incoming_.reset(); // a leader receives no snapshots: free the partial one
        set_leader(cfg_.id);
        ++counters_.elections_won;
        votes_.clear();
        peers_.clear();
        const log_index last = log_.last_index();
        for (node_id id : config_.members()) {
            if (id != cfg_.id) {
                peers_.emplace_back(
                    id, progress(last, cfg_.max_inflight_appends, cfg_.max_inflight_bytes));
            }
        }
        const time_point now = clock_.now();
        quorum_check_deadline_ = now + duration(cfg_.election_timeout_min);
        note(log_level::info, "became leader", {{"term", term_.value()}});
        // Paper §5.4.2 and §8: a leader commits entries of earlier terms only by committing
        // one of its own, so it appends a no-op at once.
        term_start_index_ = last + 1;
        if (append_as_leader(log_entry{term_, last + 1, entry_kind::noop, {}}) == errc::disk_full) {
            // A leader that cannot write cannot commit anything; let another node lead.
            note(log_level::warning, "disk full; cannot take office", {{"term", term_.value()}});
            become_follower(term_, no_node);
            return;
        }
        // The no-op's replication, at the end of this turn, announces the new leader.
        heartbeat_deadline_ = now + duration(cfg_.heartbeat_interval);
        arm_timer();
    }

    void set_leader(node_id leader) {
        if (leader != leader_) {
            leader_ = leader;
            ++counters_.leader_changes;
            note(log_level::info, "leader changed",
                 {{"leader", leader.value()}, {"term", term_.value()}});
            // Forwards the old leader has not answered may or may not have been appended.
            fail_forwarded(errc::outcome_unknown, false);
            for (auto& [id, r] : remote_reads_) {
                finish_read(std::move(r.done), errc::stale_read, log_index{});
            }
            remote_reads_.clear();
            if (cfg_.on_leader_change) {
                cfg_.on_leader_change(leader, term_);
            }
        }
    }

    // --- replication: leader side (paper §5.3) -------------------------------------------------

    /// Appends one entry of this leader's term. A full disk refuses the entry and nothing
    /// else; any other failure stops the node.
    std::error_code append_as_leader(log_entry entry) {
        const std::size_t cost = entry_cost(entry);
        const log_index index = entry.index;
        if (auto ec = log_.append(std::span<const log_entry>(&entry, 1))) {
            if (ec != errc::disk_full) {
                fail_storage(ec);
            }
            return ec;
        }
        ++writes_;
        uncommitted_.push_back({index, cost});
        uncommitted_bytes_ += cost;
        // Replication and the flush happen together at the end of this turn, so proposals
        // made in one turn share one flush and one AppendEntries per follower.
        replicate_pending_ = true;
        schedule_io();
        return {};
    }

    void replicate_to_all() {
        // (Indexed: a storage failure inside send_entries clears peers_.)
        for (std::size_t k = 0; k < peers_.size(); ++k) {
            send_entries(peers_[k].first, peers_[k].second);
        }
    }

    /// Sends the next batch of entries to one follower if its state allows.
    void send_entries(node_id to, progress& pr) {
        const log_index last = log_.last_index();
        while (pr.can_send()) {
            if (pr.state == replication_state::snapshot) {
                send_snapshot_chunk(to, pr);
                continue;
            }
            if (pr.state == replication_state::replicate && pr.next > last) {
                return;
            }
            const log_index prev = pr.next - 1;
            const std::optional<term> prev_term = log_.term_at(prev);
            if (!prev_term) {
                // Paper §7: the follower needs entries compacted away; it gets the snapshot.
                start_snapshot_transfer(to, pr);
                continue;
            }
            append_request req{cfg_.id, to, term_, prev, *prev_term, commit_, ++rounds_, {}};
            if (pr.next <= last) {
                const log_index hi = std::min(last + 1, pr.next + cfg_.max_entries_per_append);
                if (auto ec = log_.entries(pr.next, hi, cfg_.max_bytes_per_append, req.entries)) {
                    return fail_storage(ec); // e.g. corrupt_storage: never send damaged data
                }
            }
            std::size_t bytes = 0;
            for (const auto& e : req.entries) {
                bytes += entry_cost(e);
            }
            counters_.entry_bytes_sent += bytes;
            if (pr.state == replication_state::probe) {
                pr.probe_sent = true;
                pr.probe_round = req.round;
            } else {
                pr.next = req.entries.back().index + 1;
                pr.window.add(req.entries.back().index, bytes);
            }
            send(to, std::move(req));
        }
    }

    /// Heartbeat (paper §5.2): tells followers the leader is alive and how far it has
    /// committed. In replicate state it names the follower's known match, so it is never
    /// rejected for entries still in flight; in probe state it is the next probe.
    void heartbeat(time_point now) {
        // Every message of this broadcast carries a round above this one: an answer to any of
        // them shows the follower still followed this leader after `now` (for leases).
        if (cfg_.check_quorum) {
            broadcasts_.emplace_back(rounds_ + 1, now);
        }
        for (std::size_t k = 0; k < peers_.size(); ++k) {
            const node_id id = peers_[k].first;
            progress& pr = peers_[k].second;
            if (pr.state == replication_state::snapshot) {
                heartbeat_snapshot(id, pr);
                continue;
            }
            if (pr.state == replication_state::probe) {
                pr.probe_sent = false;
                send_entries(id, pr);
                continue;
            }
            // A window that made no progress for two heartbeats has probably lost messages:
            // fall back to probing rather than wait forever for acknowledgements.
            if (pr.window.count() > 0 && pr.match == pr.match_at_heartbeat) {
                if (++pr.stalled_heartbeats >= 2) {
                    pr.become_probe();
                    send_entries(id, pr);
                    continue;
                }
            } else {
                pr.stalled_heartbeats = 0;
            }
            pr.match_at_heartbeat = pr.match;
            if (const std::optional<term> match_term = log_.term_at(pr.match)) {
                send(id, append_request{cfg_.id,
                                        id,
                                        term_,
                                        pr.match,
                                        *match_term,
                                        std::min(commit_, pr.match),
                                        ++rounds_,
                                        {}});
            } // else compaction overtook `match`: the appends in flight advance it, or the
              // stall check above falls back to probing, which sends the snapshot.
            send_entries(id, pr);
        }
        heartbeat_deadline_ = now + duration(cfg_.heartbeat_interval);
    }

    void handle(const append_response& resp) {
        progress* pr = role_ == role::leader ? find_peer(resp.from) : nullptr;
        if (pr == nullptr) {
            return drop(drop_reason::unexpected, resp);
        }
        if (resp.success && resp.match_index > log_.last_index()) {
            return drop(drop_reason::index_out_of_range, resp);
        }
        pr->recently_active = true;
        if (resp.round > pr->acked_round && resp.round <= rounds_) {
            pr->acked_round = resp.round;
            leadership_acknowledged();
        }
        if (pr->state == replication_state::snapshot) {
            // Answers to appends sent before the transfer began; only one showing that the
            // follower can be served from the log again ends the transfer.
            if (resp.success && resp.match_index > pr->match &&
                resp.match_index + 1 >= log_.first_index()) {
                pr->match = resp.match_index;
                pr->become_replicate();
                maybe_commit();
                send_entries(resp.from, *pr);
            }
            return;
        }
        if (resp.success) {
            if (resp.match_index > pr->match) {
                pr->match = resp.match_index;
                if (pr->state == replication_state::probe) {
                    pr->become_replicate();
                } else {
                    pr->window.free_through(pr->match);
                    pr->next = std::max(pr->next, pr->match + 1);
                }
                maybe_commit();
            } else if (pr->state == replication_state::probe && resp.round == pr->probe_round) {
                pr->probe_sent = false; // the outstanding probe is answered
            }
        } else {
            const log_index hinted = next_from_hint(resp);
            const bool answers_probe =
                pr->state == replication_state::replicate || resp.round == pr->probe_round;
            if (hinted <= pr->match || !answers_probe) {
                // Stale: the follower already acknowledged more than this rejection allows,
                // or it answers an older probe. Nothing to resend; the next heartbeat probes.
                return;
            } else {
                pr->state = replication_state::probe;
                pr->window.reset();
                pr->probe_sent = false;
                pr->next = hinted;
            }
        }
        if (role_ == role::leader) {
            send_entries(resp.from, *pr);
            maybe_send_timeout_now();
        }
    }

    /// Where to resume after a rejection, skipping a whole term per round trip: the entry
    /// after our last entry of the follower's conflicting term if we have that term, else the
    /// first index the follower holds of it (paper §5.3, "if desired, the protocol can be
    /// optimized").
    [[nodiscard]] log_index next_from_hint(const append_response& resp) const {
        const log_index last = log_.last_index();
        log_index next = resp.conflict_index;
        if (resp.conflict_term != term{}) {
            // Terms never decrease along a log, so the last entry with term <= conflict_term
            // is found by binary search.
            log_index lo = log_.first_index() - 1;
            log_index hi = last;
            while (lo < hi) {
                const log_index mid = lo + ((hi - lo + 1) / 2);
                if (*log_.term_at(mid) <= resp.conflict_term) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if (*log_.term_at(lo) == resp.conflict_term) {
                next = lo + 1;
            }
        }
        // Below the first index the follower is sent the snapshot instead.
        return std::clamp(next, log_index{1}, last + 1);
    }

    /// Paper §5.3/§5.4.2: advance the commit index to the highest index stored on a quorum,
    /// but only if that entry is from the current term (Figure 8).
    void maybe_commit() {
        if (role_ != role::leader) {
            return;
        }
        const log_index q = quorum_index(
            config_,
            [&](node_id id) {
                if (id == cfg_.id) {
                    return durable_index_;
                }
                const progress* pr = find_peer(id);
                return pr != nullptr ? pr->match : log_index{};
            },
            scratch_indexes_);
        if (q > commit_ && q <= log_.last_index() && *log_.term_at(q) == term_) {
            advance_commit(q);
        }
    }

    void advance_commit(log_index to) {
        commit_ = to;
        if (role_ == role::leader &&
            (change_ || config_.is_joint() || !config_.is_voter(cfg_.id))) {
            schedule_io(); // advance_membership at the end of the turn
        }
        if (incoming_ && incoming_->last_index <= commit_) {
            incoming_.reset(); // caught up through the log: the partial snapshot is moot
        }
        while (!uncommitted_.empty() && uncommitted_.front().index <= commit_) {
            uncommitted_bytes_ -= uncommitted_.front().cost;
            uncommitted_.pop_front();
        }
        schedule_apply();
    }

    // --- replication: follower side (paper §5.3, Figure 2 "AppendEntries RPC") --------------

    void handle(append_request& req) {
        if (role_ != role::follower || leader_ != req.from) {
            become_follower(term_, req.from); // a candidate hears the term's leader
        }
        const time_point now = clock_.now();
        last_leader_contact_ = now;
        reset_election_deadline(now, false);

        append_response resp{cfg_.id,     req.from, term_,       false,
                             log_index{}, term{},   log_index{}, req.round};
        // Entries at or below the compaction point are committed, hence match the leader's.
        const log_index floor = log_.first_index() - 1;
        log_index prev = req.prev_log_index;
        std::size_t skip = 0;
        if (prev < floor) {
            skip = std::min<std::size_t>(floor - prev, req.entries.size());
            prev = prev + skip;
            if (prev < floor) { // everything in the request is already compacted
                resp.success = true;
                resp.match_index = prev;
                send_when_durable(req.from, std::move(resp), prev);
                return;
            }
        }
        const std::optional<term> have = log_.term_at(prev);
        const term expected = skip > 0 ? req.entries[skip - 1].term : req.prev_log_term;
        if (!have || *have != expected) {
            // "Reply false if log doesn't contain an entry at prevLogIndex whose term matches
            // prevLogTerm", with the hint that lets the leader skip a term at a time.
            resp.match_index = log_.last_index();
            if (!have) {
                resp.conflict_index = log_.last_index() + 1;
            } else {
                resp.conflict_term = *have;
                log_index first = prev;
                while (first > log_.first_index() && *log_.term_at(first - 1) == *have) {
                    first = first - 1;
                }
                resp.conflict_index = first;
            }
            send(req.from, std::move(resp));
            return;
        }
        // "If an existing entry conflicts with a new one (same index but different terms),
        // delete the existing entry and all that follow it; append any new entries not
        // already in the log." Entries we already hold are left alone, so a delayed, shorter
        // request never truncates what a later one appended.
        std::size_t k = skip;
        for (; k < req.entries.size(); ++k) {
            const log_entry& e = req.entries[k];
            if (e.index > log_.last_index()) {
                break;
            }
            if (*log_.term_at(e.index) != e.term) {
                SYNOD_ASSERT(e.index > commit_, "a leader asked to overwrite a committed entry");
                truncate_from(e.index);
                break;
            }
        }
        if (k < req.entries.size()) {
            std::span<const log_entry> fresh(req.entries.data() + k, req.entries.size() - k);
            if (auto ec = log_.append(fresh)) {
                if (ec == errc::disk_full) {
                    // Nothing was written: acknowledge nothing; the leader retries.
                    ++counters_.appends_refused_disk_full;
                    return;
                }
                return fail_storage(ec);
            }
            ++writes_;
            for (const log_entry& e : fresh) {
                if (e.kind == entry_kind::config) {
                    adopt_config_entry(e);
                }
            }
            schedule_io();
        }
        const log_index match = req.prev_log_index + req.entries.size();
        // "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last
        // new entry)".
        const log_index new_commit = std::min(req.leader_commit, match);
        if (new_commit > commit_) {
            advance_commit(new_commit);
        }
        resp.success = true;
        resp.match_index = match;
        send_when_durable(req.from, std::move(resp), match);
    }

    void truncate_from(log_index index) {
        if (auto ec = log_.truncate_suffix(index)) {
            return fail_storage(ec);
        }
        ++writes_;
        // What the truncation removed is no longer durable here, and a flush already under way
        // cannot make entries appended after the truncation durable.
        durable_index_ = std::min(durable_index_, index - 1);
        for (pending_flush& f : flushes_) {
            f.index = std::min(f.index, index - 1);
        }
        if (config_index_ >= index) {
            if (auto ec = reload_membership()) {
                fail_storage(ec);
            }
        }
    }

    // --- snapshots and compaction (paper §7, thesis chapter 5) ------------------------------

    /// Takes a snapshot of the state machine when the config's thresholds are reached, and
    /// schedules the compaction it allows for when the snapshot is durable.
    void maybe_take_snapshot() {
        if (compaction_pending_ || stopped_) {
            return;
        }
        const std::uint64_t since = applied_ - snapshot_index_;
        const bool due =
            (cfg_.snapshot_after_entries != 0 && since >= cfg_.snapshot_after_entries) ||
            (cfg_.snapshot_after_bytes != 0 &&
             applied_bytes_since_snapshot_ >= cfg_.snapshot_after_bytes);
        if (!due || since == 0) {
            return;
        }
        snapshot image{{applied_, *log_.term_at(applied_), applied_config_}, machine_.snapshot()};
        if (auto ec = log_.save_snapshot(image)) {
            return fail_storage(ec);
        }
        ++writes_;
        ++counters_.snapshots_taken;
        snapshot_index_ = applied_;
        applied_bytes_since_snapshot_ = 0;
        note(log_level::info, "snapshot taken", {{"index", applied_.value()}});
        if (applied_.value() > cfg_.snapshot_keep_entries) {
            compaction_pending_ = true;
            compaction_upto_ = applied_ - cfg_.snapshot_keep_entries;
            compaction_needs_writes_ = writes_;
        }
        schedule_io();
    }

    /// Removes entries through `upto` (all covered by a durable snapshot) from the log.
    void compact_log(log_index upto) {
        const log_index first = log_.first_index();
        if (upto < first) {
            return;
        }
        const log_index last = log_.last_index();
        if (auto ec = log_.compact_prefix(upto)) {
            return fail_storage(ec);
        }
        ++writes_;
        counters_.entries_compacted += (std::min(upto, last) + 1) - first;
        schedule_io();
    }

    /// The CRC32C of a snapshot's bytes, computed once per snapshot however many followers
    /// receive it.
    std::uint32_t snapshot_checksum(const snapshot& image) {
        if (!checksum_cache_ || checksum_cache_->first != image.meta.last_index) {
            checksum_cache_.emplace(image.meta.last_index, wire::crc32c(image.data.span()));
        }
        return checksum_cache_->second;
    }

    void start_snapshot_transfer(node_id to, progress& pr) {
        std::optional<snapshot> image = log_.latest_snapshot();
        SYNOD_ASSERT(image.has_value() && image->meta.last_index + 1 >= log_.first_index(),
                     "entries were compacted that no snapshot covers");
        const std::uint32_t crc = snapshot_checksum(*image);
        ++counters_.snapshot_transfers_started;
        note(log_level::info, "sending snapshot",
             {{"to", to.value()},
              {"index", image->meta.last_index.value()},
              {"bytes", image->data.size()}});
        pr.become_snapshot(std::move(*image), crc);
    }

    void send_snapshot_chunk(node_id to, progress& pr) {
        snapshot_transfer& t = *pr.transfer;
        const std::uint64_t total = t.image.data.size();
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(cfg_.snapshot_chunk_bytes, total - t.sent));
        snapshot_chunk_request req;
        req.from = cfg_.id;
        req.to = to;
        req.term = term_;
        req.last_included_index = t.image.meta.last_index;
        req.last_included_term = t.image.meta.last_term;
        req.config = t.image.meta.config;
        req.offset = t.sent;
        req.total_size = total;
        req.data = shared_bytes(t.image.data.span().subspan(static_cast<std::size_t>(t.sent), n));
        req.chunk_crc = wire::crc32c(req.data.span());
        req.snapshot_crc = t.crc;
        req.done = t.sent + n == total;
        t.sent += n;
        t.all_sent = req.done;
        // Chunks share the entries' inflight window, keyed by the offset they end at.
        pr.window.add(log_index{t.sent}, n);
        ++counters_.snapshot_chunks_sent;
        counters_.snapshot_bytes_sent += n;
        send(to, std::move(req));
    }

    /// A transfer whose acknowledgements stopped for two heartbeats has lost chunks (or the
    /// final answer): resend from what the follower confirmed.
    void heartbeat_snapshot(node_id to, progress& pr) {
        snapshot_transfer& t = *pr.transfer;
        const bool outstanding = t.sent > t.acked || t.all_sent;
        if (outstanding && t.acked == t.acked_at_heartbeat) {
            if (++pr.stalled_heartbeats >= 2) {
                rewind_or_refresh(to, pr, t.restart_on_stall ? 0 : t.acked);
                if (pr.transfer) {
                    pr.transfer->rewound_to = no_rewind;
                }
            }
        } else {
            pr.stalled_heartbeats = 0;
        }
        pr.transfer->acked_at_heartbeat = pr.transfer->acked; // (a refresh replaced `t`)
        send_entries(to, pr);
    }

    static constexpr std::uint64_t no_rewind = UINT64_MAX;

    /// Resends from `offset`, or, when the follower holds nothing of this snapshot and a newer
    /// one exists, starts over with that (it spares the follower a second transfer).
    void rewind_or_refresh(node_id to, progress& pr, std::uint64_t offset) {
        if (offset == 0 && snapshot_index_ > pr.transfer->image.meta.last_index) {
            start_snapshot_transfer(to, pr);
        } else {
            rewind_transfer(pr, offset);
        }
    }

    static void rewind_transfer(progress& pr, std::uint64_t offset) {
        snapshot_transfer& t = *pr.transfer;
        t.acked = offset;
        t.sent = offset;
        t.all_sent = false;
        t.rewound_to = offset;
        t.restart_on_stall = false;
        pr.stalled_heartbeats = 0;
        pr.window.reset();
    }

    void handle(const snapshot_chunk_response& resp) {
        progress* pr = role_ == role::leader ? find_peer(resp.from) : nullptr;
        if (pr == nullptr) {
            return drop(drop_reason::unexpected, resp);
        }
        pr->recently_active = true;
        if (pr->state != replication_state::snapshot ||
            resp.last_included_index != pr->transfer->image.meta.last_index) {
            return drop(drop_reason::unexpected, resp); // about a transfer that is over
        }
        snapshot_transfer& t = *pr->transfer;
        if (resp.next_offset > t.image.data.size()) {
            return drop(drop_reason::index_out_of_range, resp);
        }
        if (resp.done && !resp.rejected) {
            note(log_level::info, "snapshot installed by follower",
                 {{"follower", resp.from.value()}, {"index", resp.last_included_index.value()}});
            pr->snapshot_installed(resp.last_included_index);
            maybe_commit();
            return send_entries(resp.from, *pr);
        }
        if (resp.rejected) {
            // The follower holds the snapshot only up to next_offset (a chunk was lost or
            // damaged, or it started over). Rejections of chunks sent before the last rewind
            // ask for the same offset again and are ignored.
            const bool echo = t.rewound_to == resp.next_offset && t.sent > resp.next_offset &&
                              resp.next_offset >= t.acked;
            // A refusal of the whole (it failed verification or the state machine refused it)
            // is retried by the heartbeat's stall check, not at once: a state machine that
            // cannot restore it would otherwise receive it in a tight loop.
            const bool whole_refused = resp.next_offset == 0 && t.all_sent;
            if (whole_refused) {
                t.restart_on_stall = true; // the follower holds nothing of it any more
            }
            if (!echo && !whole_refused) {
                rewind_or_refresh(resp.from, *pr, resp.next_offset);
            }
        } else if (resp.next_offset > t.acked) {
            t.acked = resp.next_offset;
            pr->window.free_through(log_index{t.acked});
            if (t.acked > t.sent) {
                // The follower already held more of this snapshot (from an earlier leader's
                // transfer of the same snapshot): resume from there.
                t.sent = t.acked;
                t.all_sent = false;
                pr->window.reset();
            }
        }
        send_entries(resp.from, *pr);
    }

    /// A chunk of the leader's snapshot: assembled in order; restored only once whole and
    /// verified against the snapshot's checksum (paper §7, "InstallSnapshot RPC").
    void handle(snapshot_chunk_request& req) {
        if (role_ != role::follower || leader_ != req.from) {
            become_follower(term_, req.from);
        }
        const time_point now = clock_.now();
        last_leader_contact_ = now;
        reset_election_deadline(now, false);

        snapshot_chunk_response resp{cfg_.id, req.from, term_, req.last_included_index,
                                     0,       false,    false};
        if (req.last_included_index <= commit_) {
            // Everything the snapshot covers is committed here already: nothing to install.
            if (incoming_ && incoming_->last_index <= commit_) {
                incoming_.reset();
            }
            resp.next_offset = req.total_size;
            resp.done = true;
            send_when_durable(req.from, std::move(resp), req.last_included_index);
            return;
        }
        const bool same = incoming_ && incoming_->last_index == req.last_included_index &&
                          incoming_->last_term == req.last_included_term &&
                          incoming_->total_size == req.total_size &&
                          incoming_->crc == req.snapshot_crc;
        if (wire::crc32c(req.data.span()) != req.chunk_crc) {
            ++counters_.snapshot_chunks_corrupt;
            last_snapshot_rejection_ = errc::bad_crc;
            note(log_level::warning, "snapshot chunk failed its checksum",
                 {{"index", req.last_included_index.value()}, {"offset", req.offset}});
            resp.rejected = true;
            resp.next_offset = same ? incoming_->bytes.size() : 0;
            send(req.from, std::move(resp));
            return;
        }
        if (!same) {
            if (req.offset != 0) {
                resp.rejected = true; // start from the beginning of this snapshot
                send(req.from, std::move(resp));
                return;
            }
            incoming_.emplace(incoming_snapshot{req.last_included_index,
                                                req.last_included_term,
                                                req.config,
                                                req.total_size,
                                                req.snapshot_crc,
                                                {},
                                                0});
            // Reserve what a plausible snapshot needs, not what a message claims.
            incoming_->bytes.reserve(static_cast<std::size_t>(
                std::min<std::uint64_t>(req.total_size, std::uint64_t{64} << 20)));
        }
        incoming_snapshot& in = *incoming_;
        if (req.offset != in.bytes.size()) {
            // A duplicate (already held) or a gap (an earlier chunk is missing).
            resp.next_offset = in.bytes.size();
            resp.rejected = req.offset > in.bytes.size();
            send(req.from, std::move(resp));
            return;
        }
        in.bytes.insert(in.bytes.end(), req.data.span().begin(), req.data.span().end());
        in.running_crc = wire::crc32c(req.data.span(), in.running_crc); // (the chunk is hot)
        if (in.bytes.size() < in.total_size) {
            resp.next_offset = in.bytes.size();
            send(req.from, std::move(resp));
            return;
        }
        install_snapshot(req.from, std::move(resp));
    }

    void reject_snapshot(node_id leader, snapshot_chunk_response resp, std::string_view why) {
        ++counters_.snapshots_rejected;
        last_snapshot_rejection_ = errc::corrupt_snapshot;
        note(log_level::error, why, {{"index", resp.last_included_index.value()}});
        resp.rejected = true;
        resp.next_offset = 0;
        send(leader, std::move(resp));
    }

    void install_snapshot(node_id leader, snapshot_chunk_response resp) {
        incoming_snapshot in = std::move(*incoming_);
        incoming_.reset();
        if (in.running_crc != in.crc) {
            return reject_snapshot(leader, std::move(resp),
                                   "assembled snapshot failed its checksum");
        }
        snapshot image{{in.last_index, in.last_term, std::move(in.config)},
                       shared_bytes(byte_span(in.bytes))};
        in.bytes = byte_vector{};
        if (machine_.restore(image.data.span())) {
            return reject_snapshot(leader, std::move(resp), "state machine refused a snapshot");
        }
        // "If existing log entry has same index and term as snapshot's last included entry,
        // retain log entries following it and reply"; otherwise discard the entire log.
        if (log_.term_at(image.meta.last_index) != image.meta.last_term &&
            log_.last_index() >= image.meta.last_index) {
            truncate_from(image.meta.last_index);
        }
        if (stopped_) {
            return;
        }
        if (auto ec = log_.save_snapshot(image)) {
            return fail_storage(ec);
        }
        ++writes_;
        snapshot_index_ = image.meta.last_index;
        // Installing compacts at once: the log would otherwise not answer for the snapshot's
        // position. The log store makes the compaction durable only after the snapshot.
        compact_log(image.meta.last_index);
        if (stopped_) {
            return;
        }
        applied_ = image.meta.last_index;
        commit_ = std::max(commit_, image.meta.last_index);
        applied_config_ = image.meta.config;
        applied_bytes_since_snapshot_ = 0;
        if (auto ec = reload_membership()) {
            return fail_storage(ec);
        }
        ++counters_.snapshots_installed;
        last_snapshot_rejection_.clear();
        // Forwarded proposals inside the snapshot committed (or not) out of sight.
        while (!awaiting_apply_.empty() && awaiting_apply_.begin()->first <= applied_) {
            complete_later(std::move(awaiting_apply_.begin()->second.done), errc::outcome_unknown,
                           awaiting_apply_.begin()->first);
            awaiting_apply_.erase(awaiting_apply_.begin());
        }
        if (cfg_.on_applied) {
            cfg_.on_applied(applied_);
        }
        note(log_level::info, "snapshot installed", {{"index", image.meta.last_index.value()}});
        resp.next_offset = image.data.size();
        resp.done = true;
        send_when_durable(leader, std::move(resp), image.meta.last_index, writes_);
        schedule_io();
    }

    // --- linearizable reads (thesis §6.4) --------------------------------------------------

    /// A read on the leader waiting for its confirmation round (`round` 0: not sent yet),
    /// from this node (`done`) or from a follower (`remote`, `remote_id`).
    struct leader_read {
        log_index index;
        std::uint64_t round = 0;
        time_point deadline;
        read_completion done;
        node_id remote;
        std::uint64_t remote_id = 0;
    };
    /// A read this follower asked the leader about.
    struct remote_read {
        node_id leader;
        time_point deadline;
        read_completion done;
    };

    [[nodiscard]] time_point read_deadline() const {
        return clock_.now() + std::chrono::duration_cast<duration>(cfg_.election_timeout_max);
    }

    void want_read_round() {
        read_round_wanted_ = true;
        schedule_io();
    }

    /// Confirms leadership for every read not yet in a round, with one heartbeat broadcast.
    /// A leader whose no-op is not applied yet waits: its commit index may still be behind
    /// entries committed by earlier leaders (thesis §6.4, step 1).
    void start_read_round() {
        if (!leader_caught_up()) {
            return; // the no-op's apply calls back (see apply_committed)
        }
        read_round_wanted_ = false;
        const std::uint64_t round = rounds_ + 1;
        bool any = false;
        for (leader_read& r : reads_) {
            if (r.round == 0) {
                r.round = round;
                r.index = commit_;
                any = true;
            }
        }
        if (!any) {
            return;
        }
        ++counters_.read_index_rounds;
        broadcast_for_reads(clock_.now());
        confirm_reads();
    }

    /// One empty AppendEntries to every follower whose match the log still holds: any answer
    /// in this term confirms the reads of this round. Unlike a heartbeat it leaves the stall
    /// detection and the heartbeat schedule alone, so frequent rounds cost no resends.
    void broadcast_for_reads(time_point now) {
        if (cfg_.check_quorum) {
            broadcasts_.emplace_back(rounds_ + 1, now);
        }
        for (auto& [id, pr] : peers_) {
            if (const std::optional<term> match_term = log_.term_at(pr.match)) {
                send(id, append_request{cfg_.id,
                                        id,
                                        term_,
                                        pr.match,
                                        *match_term,
                                        std::min(commit_, pr.match),
                                        ++rounds_,
                                        {}});
            }
        }
    }

    void leadership_acknowledged() {
        confirm_reads();
        extend_lease();
    }

    /// Reads whose round a quorum has answered are confirmed: served locally once applied, or
    /// answered to the follower that asked.
    void confirm_reads() {
        while (!reads_.empty() && reads_.front().round != 0) {
            const std::uint64_t round = reads_.front().round;
            const bool confirmed = has_quorum(config_, [&](node_id id) {
                if (id == cfg_.id) {
                    return true;
                }
                const progress* pr = find_peer(id);
                return pr != nullptr && pr->acked_round >= round;
            });
            if (!confirmed) {
                break;
            }
            leader_read r = std::move(reads_.front());
            reads_.pop_front();
            if (r.remote != no_node) {
                send(r.remote,
                     read_index_response{cfg_.id, r.remote, term_, r.remote_id, r.index, true});
            } else {
                reads_ready_.emplace(r.index, std::move(r.done));
            }
        }
        settle_reads();
    }

    /// Thesis §6.4.1: a quorum answered a broadcast sent at `t`, so none of them will vote
    /// for another leader before `t + election_timeout_min` (check-quorum's lease); minus the
    /// drift bound, this leader may serve reads alone until then.
    void extend_lease() {
        if (!cfg_.check_quorum || clock_.now() < lease_blocked_until_) {
            return;
        }
        const log_index acked = quorum_index(
            config_,
            [&](node_id id) {
                if (id == cfg_.id) {
                    return log_index{rounds_};
                }
                const progress* pr = find_peer(id);
                return log_index{pr != nullptr ? pr->acked_round : 0};
            },
            scratch_indexes_);
        std::optional<time_point> start;
        while (!broadcasts_.empty() && broadcasts_.front().first <= acked.value()) {
            start = broadcasts_.front().second;
            broadcasts_.pop_front();
        }
        if (start) {
            lease_until_ = std::max(lease_until_, *start + duration(cfg_.election_timeout_min) -
                                                      duration(cfg_.lease_clock_drift));
        }
    }

    /// Completes confirmed reads whose index this node has applied.
    void settle_reads() {
        while (!reads_ready_.empty() && reads_ready_.begin()->first <= applied_) {
            ++counters_.reads_served;
            finish_read(std::move(reads_ready_.begin()->second), {}, reads_ready_.begin()->first);
            reads_ready_.erase(reads_ready_.begin());
        }
    }

    void ask_leader_for_read(read_completion done) {
        const std::uint64_t id = ++read_requests_;
        remote_reads_.emplace(id, remote_read{leader_, read_deadline(), std::move(done)});
        send(leader_, read_index_request{cfg_.id, leader_, term_, id});
        arm_timer();
    }

    void handle(const read_index_request& m) {
        if (role_ != role::leader) {
            return send(m.from,
                        read_index_response{cfg_.id, m.from, term_, m.request_id, {}, false});
        }
        reads_.push_back({log_index{}, 0, read_deadline(), {}, m.from, m.request_id});
        want_read_round();
    }

    void handle(const read_index_response& m) {
        auto it = remote_reads_.find(m.request_id);
        if (it == remote_reads_.end() || it->second.leader != m.from) {
            return drop(drop_reason::unexpected, m);
        }
        read_completion done = std::move(it->second.done);
        remote_reads_.erase(it);
        if (!m.success) {
            return finish_read(std::move(done), errc::not_leader, log_index{});
        }
        reads_ready_.emplace(m.read_index, std::move(done));
        settle_reads();
    }

    void expire_reads(time_point now) {
        while (!reads_.empty() && reads_.front().deadline <= now) {
            fail_leader_read(reads_.front(), errc::stale_read);
            reads_.pop_front();
        }
        for (auto it = remote_reads_.begin(); it != remote_reads_.end();) {
            if (it->second.deadline <= now) {
                finish_read(std::move(it->second.done), errc::stale_read, log_index{});
                it = remote_reads_.erase(it);
            } else {
                ++it;
            }
        }
    }

    [[nodiscard]] std::optional<time_point> earliest_read_deadline() const {
        std::optional<time_point> at;
        if (!reads_.empty()) {
            at = reads_.front().deadline;
        }
        if (!remote_reads_.empty()) {
            const time_point r = remote_reads_.begin()->second.deadline; // ids grow with time
            at = at ? std::min(*at, r) : r;
        }
        return at;
    }

    void fail_leader_read(leader_read& r, errc why) {
        if (r.remote != no_node) {
            send(r.remote, read_index_response{cfg_.id, r.remote, term_, r.remote_id, {}, false});
        } else {
            finish_read(std::move(r.done), why, log_index{});
        }
    }

    /// Fails reads not yet confirmed (with `all`, confirmed ones too, and the follower's).
    void fail_reads(errc why, bool all) {
        for (leader_read& r : reads_) {
            fail_leader_read(r, why);
        }
        reads_.clear();
        read_round_wanted_ = false;
        if (all) {
            for (auto& [id, r] : remote_reads_) {
                finish_read(std::move(r.done), why, log_index{});
            }
            remote_reads_.clear();
            for (auto& [index, done] : reads_ready_) {
                finish_read(std::move(done), why, log_index{});
            }
            reads_ready_.clear();
        }
    }

    void finish_read(read_completion done, std::error_code ec, log_index index) {
        if (ec) {
            ++counters_.reads_failed;
        }
        scheduler_.post([done = std::move(done), r = read_result{ec, index, leader_}]() mutable {
            done(std::move(r));
        });
    }

    // --- proposal forwarding (config::forward_proposals) ------------------------------------

    struct appended {
        bool refused = false;
        rejection reason{};
        errc why{};
        log_index index;
    };

    /// The leader's admission of a proposal, its own or forwarded: size and uncommitted-bytes
    /// limits, then the append.
    appended append_proposal(shared_bytes payload) {
        if (payload.size() > cfg_.max_proposal_bytes) {
            return {true, rejection::too_large, errc::proposal_too_large, {}};
        }
        log_entry entry{term_, log_.last_index() + 1, entry_kind::normal, std::move(payload)};
        const std::size_t cost = entry_cost(entry);
        if (uncommitted_bytes_ > 0 && uncommitted_bytes_ + cost > cfg_.max_uncommitted_bytes) {
            return {true, rejection::uncommitted_limit, errc::uncommitted_limit, {}};
        }
        const log_index index = entry.index;
        if (auto ec = append_as_leader(std::move(entry))) {
            return ec == errc::disk_full
                       ? appended{true, rejection::disk_full, errc::disk_full, {}}
                       : appended{true, rejection::stopped, errc::storage_failure, {}};
        }
        return {false, {}, {}, index};
    }

    void forward(shared_bytes payload, completion done) {
        const std::uint64_t id = ++forward_requests_;
        ++counters_.proposals_forwarded;
        const time_point deadline =
            clock_.now() + std::chrono::duration_cast<duration>(cfg_.election_timeout_max);
        forwarded_.emplace(id, forwarded_proposal{leader_, deadline, std::move(done)});
        send(leader_, proposal_forward{cfg_.id, leader_, term_, id, std::move(payload)});
        arm_timer();
    }

    void handle(proposal_forward& m) {
        proposal_forward_response resp{cfg_.id, m.from, term_, m.request_id, log_index{}, 0};
        if (role_ != role::leader) {
            resp.error = static_cast<std::uint32_t>(leader_ == no_node ? errc::leader_unknown
                                                                       : errc::not_leader);
        } else if (transfer_) {
            resp.error = static_cast<std::uint32_t>(errc::transfer_in_progress);
        } else {
            const appended a = append_proposal(std::move(m.payload));
            if (a.refused) {
                ++counters_.proposals_rejected[static_cast<std::size_t>(a.reason)];
                resp.error = static_cast<std::uint32_t>(a.why);
            } else {
                resp.index = a.index;
            }
        }
        send(m.from, std::move(resp));
    }

    void handle(const proposal_forward_response& m) {
        auto it = forwarded_.find(m.request_id);
        if (it == forwarded_.end() || it->second.leader != m.from) {
            return drop(drop_reason::unexpected, m);
        }
        completion done = std::move(it->second.done);
        forwarded_.erase(it);
        if (m.error != 0) {
            // Only refusals are legitimate answers; anything else leaves the outcome open.
            const auto why = static_cast<errc>(m.error);
            const bool refusal = why == errc::not_leader || why == errc::leader_unknown ||
                                 why == errc::proposal_too_large ||
                                 why == errc::uncommitted_limit || why == errc::disk_full ||
                                 why == errc::transfer_in_progress || why == errc::storage_failure;
            return complete_later(std::move(done), refusal ? why : errc::outcome_unknown,
                                  log_index{});
        }
        if (m.index <= applied_) {
            // Applied before the answer arrived: committed, but its result is gone.
            return complete_later(std::move(done), errc::outcome_unknown, m.index);
        }
        awaiting_apply_.emplace(m.index, awaiting_proposal{m.term, std::move(done)});
    }

    /// Completes forwarded proposals waiting for `e`'s index (and any the node skipped).
    void settle_forwarded(const log_entry& e, std::optional<result_type>& value) {
        while (!awaiting_apply_.empty() && awaiting_apply_.begin()->first <= e.index) {
            auto waiting = awaiting_apply_.extract(awaiting_apply_.begin());
            awaiting_proposal& a = waiting.mapped();
            if (waiting.key() == e.index && a.entry_term == e.term && value.has_value()) {
                finished_.push_back(
                    {std::move(a.done), result{{}, e.index, leader_, std::move(value)}});
                value.reset();
            } else {
                // Another entry committed at that index: the proposal never will (paper §5.4).
                complete_later(std::move(a.done), errc::proposal_dropped, waiting.key());
            }
        }
    }

    void expire_forwarded(time_point now) {
        while (!forwarded_.empty() && forwarded_.begin()->second.deadline <= now) {
            complete_later(std::move(forwarded_.begin()->second.done), errc::outcome_unknown,
                           log_index{});
            forwarded_.erase(forwarded_.begin());
        }
    }

    /// Fails unanswered forwards (and, with `all`, those awaiting their apply too).
    void fail_forwarded(errc why, bool all) {
        for (auto& [id, f] : forwarded_) {
            complete_later(std::move(f.done), why, log_index{});
        }
        forwarded_.clear();
        if (all) {
            for (auto& [index, a] : awaiting_apply_) {
                complete_later(std::move(a.done), why, index);
            }
            awaiting_apply_.clear();
        }
    }

    void complete_later(completion done, errc why, log_index index) {
        scheduler_.post(
            [done = std::move(done), r = result{why, index, leader_, std::nullopt}]() mutable {
                done(std::move(r));
            });
    }

    // --- membership changes (thesis chapter 4) and leadership transfer (thesis §3.10) ------

    struct pending_change {
        change_completion done;
        /// Index of the C_new entry once appended (0 while joint).
        log_index final_index;
    };
    struct pending_transfer {
        node_id target;
        time_point deadline;
        bool sent = false;
        change_completion done;
        term in_term;
    };

    static std::vector<node_id> without(std::vector<node_id> ids, node_id id) {
        ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
        return ids;
    }

    [[nodiscard]] std::error_code check_change(const std::vector<node_id>& voters,
                                               const std::vector<node_id>& learners) const {
        if (stopped_) {
            return errc::storage_failure;
        }
        if (role_ != role::leader) {
            return leader_ == no_node ? errc::leader_unknown : errc::not_leader;
        }
        // One change at a time: the last one must be committed and out of its joint phase.
        if (change_ || config_.is_joint() || config_index_ > commit_) {
            return errc::change_in_progress;
        }
        if (voters.empty()) {
            return errc::invalid_argument;
        }
        std::vector<node_id> all = voters;
        all.insert(all.end(), learners.begin(), learners.end());
        std::sort(all.begin(), all.end());
        if (std::adjacent_find(all.begin(), all.end()) != all.end() ||
            std::find(all.begin(), all.end(), no_node) != all.end()) {
            return errc::invalid_argument; // a node listed twice (or as both), or no_node
        }
        for (node_id v : voters) {
            if (config_.is_voter(v)) {
                continue;
            }
            if (!config_.is_learner(v)) {
                return errc::unknown_node; // new voters join as learners first
            }
            const progress* pr = find_peer(v);
            if (pr == nullptr || pr->match + cfg_.promotion_max_lag < log_.last_index()) {
                return errc::learner_behind;
            }
        }
        return {};
    }

    /// Appends a configuration entry as leader; it takes effect at once (thesis §4.1).
    std::error_code append_config(const membership& next) {
        log_entry e{term_, log_.last_index() + 1, entry_kind::config,
                    wire::encode_membership(next)};
        if (auto ec = append_as_leader(e)) {
            return ec;
        }
        ++counters_.membership_changes;
        config_ = next;
        config_index_ = e.index;
        sync_peers();
        note(log_level::info,
             next.is_joint() ? "joint configuration appended" : "configuration appended",
             {{"index", e.index.value()}});
        return {};
    }

    /// Progress for every member of the configuration in force, and none for others.
    void sync_peers() {
        const std::vector<node_id> members = config_.members();
        std::erase_if(peers_, [&](const auto& p) {
            return !std::binary_search(members.begin(), members.end(), p.first);
        });
        for (node_id id : members) {
            if (id != cfg_.id && find_peer(id) == nullptr) {
                peers_.emplace_back(id, progress(log_.last_index(), cfg_.max_inflight_appends,
                                                 cfg_.max_inflight_bytes));
            }
        }
        std::sort(peers_.begin(), peers_.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
    }

    /// Runs at the end of a leader's turn (never under a handler holding a progress): leaves
    /// a committed joint configuration for C_new, completes a change whose C_new committed,
    /// and steps down if this leader is no longer a voter (thesis §4.2.2).
    void advance_membership() {
        if (config_.is_joint() && commit_ >= config_index_) {
            const membership final_config(config_.voters(), config_.learners());
            if (append_config(final_config)) {
                return; // disk full: retried next turn with the next write
            }
            if (change_) {
                change_->final_index = config_index_;
            }
        }
        if (change_ && change_->final_index != log_index{} && commit_ >= change_->final_index) {
            finish_change(std::move(change_->done), {});
            change_.reset();
        }
        if (!config_.is_joint() && commit_ >= config_index_ && !config_.is_voter(cfg_.id)) {
            note(log_level::info, "not a voter of the committed configuration; stepping down",
                 {{"term", term_.value()}});
            become_follower(term_, no_node);
        }
    }

    void maybe_send_timeout_now() {
        if (!transfer_ || transfer_->sent || role_ != role::leader) {
            return;
        }
        const progress* pr = find_peer(transfer_->target);
        if (pr != nullptr && pr->match == log_.last_index()) {
            transfer_->sent = true;
            // The target's election asks voters to set their lease promise aside (thesis
            // §3.10), so this leader's lease ends now, and earns nothing until that election,
            // however late TimeoutNow arrives, is surely over.
            lease_until_ = time_point{};
            lease_blocked_until_ =
                clock_.now() + 2 * std::chrono::duration_cast<duration>(cfg_.election_timeout_max);
            send(transfer_->target, timeout_now{cfg_.id, transfer_->target, term_});
        }
    }

    void fail_changes(errc why) {
        if (change_) {
            finish_change(std::move(change_->done), why);
            change_.reset();
        }
        if (transfer_) {
            finish_change(std::move(transfer_->done), why);
            transfer_.reset();
        }
    }

    void finish_change(change_completion done, std::error_code ec) {
        scheduler_.post([done = std::move(done), ec]() mutable { done(ec); });
    }

    // --- messages this build does not handle yet ---------------------------------------------

    /// Thesis §3.10: the leader hands over; campaign at once, without pre-vote, and tell
    /// voters to ignore their leader lease for this election.
    void handle(const timeout_now& m) {
        if (role_ == role::leader || m.from != leader_ || !config_.is_voter(cfg_.id)) {
            return drop(drop_reason::unexpected, m);
        }
        note(log_level::info, "leadership handed over; campaigning", {{"from", m.from.value()}});
        transfer_campaign_ = true;
        reset_election_deadline(clock_.now(), true);
        become_candidate();
    }

    // --- membership ------------------------------------------------------------------------

    /// The configuration in force is the last one in the log (thesis §4.1: a server uses the
    /// latest configuration in its log, committed or not), else the snapshot's, else the
    /// initial one.
    std::error_code reload_membership() {
        config_ = cfg_.initial_membership;
        config_index_ = log_index{};
        if (auto snap = log_.latest_snapshot()) {
            config_ = snap->meta.config;
            config_index_ = snap->meta.last_index;
        }
        std::vector<log_entry> batch;
        for (log_index i = log_.first_index(); i <= log_.last_index(); i = i + batch.size()) {
            batch.clear();
            if (auto ec = log_.entries(i, log_.last_index() + 1, std::size_t{1} << 20, batch)) {
                return ec;
            }
            for (const log_entry& e : batch) {
                if (e.kind == entry_kind::config) {
                    if (auto ec = adopt_config_entry(e)) {
                        return ec;
                    }
                }
            }
        }
        return {};
    }

    std::error_code adopt_config_entry(const log_entry& e) {
        auto decoded = wire::decode_membership(e.payload.span());
        if (!decoded) {
            note(log_level::error, "undecodable configuration entry", {{"index", e.index.value()}});
            return errc::corrupt_storage;
        }
        config_ = std::move(decoded).value();
        config_index_ = e.index;
        return {};
    }

    [[nodiscard]] std::vector<node_id> all_voters() const {
        std::vector<node_id> ids = config_.voters();
        ids.insert(ids.end(), config_.outgoing_voters().begin(), config_.outgoing_voters().end());
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        return ids;
    }

    // --- persistence and group commit (thesis §10.2.1) -----------------------------------

    void persist_hard_state() {
        if (auto ec = log_.save_hard_state(hard_state{term_, voted_for_, commit_})) {
            return fail_storage(ec);
        }
        ++writes_;
        hard_state_writes_ = writes_;
        saved_commit_ = commit_;
        schedule_io();
    }

    /// Sends `m` — a vote or an acknowledgement, a promise made in the current term — once
    /// the hard state of that term and the entries through `needs_index` are durable.
    void send_when_durable(node_id to, message m, log_index needs_index,
                           std::uint64_t needs_writes_at_least = 0) {
        const std::uint64_t needs_writes = std::max(hard_state_writes_, needs_writes_at_least);
        if (durable_index_ >= needs_index && durable_writes_ >= needs_writes) {
            send(to, std::move(m));
        } else {
            deferred_.push_back({needs_index, needs_writes, term_, to, std::move(m)});
        }
    }

    void release_deferred() {
        std::size_t kept = 0;
        for (auto& d : deferred_) {
            if (d.in_term != term_) {
                continue; // a promise made in an older term
            }
            if (durable_index_ >= d.needs_index && durable_writes_ >= d.needs_writes) {
                send(d.to, std::move(d.msg));
            } else {
                deferred_[kept++] = std::move(d);
            }
        }
        deferred_.resize(kept);
    }

    /// Runs the end-of-turn work once per turn: replicate what the leader appended, and start
    /// a flush covering every write made so far.
    void schedule_io() {
        if (io_scheduled_) {
            return;
        }
        io_scheduled_ = true;
        scheduler_.post(guarded<&node::run_io>());
    }

    void run_io() {
        io_scheduled_ = false;
        if (stopped_) {
            return;
        }
        if (replicate_pending_ && role_ == role::leader) {
            replicate_pending_ = false;
            replicate_to_all();
        }
        if (read_round_wanted_ && role_ == role::leader) {
            start_read_round();
        }
        if (role_ == role::leader) {
            advance_membership();
        }
        start_flush();
        check_invariants();
    }

    void start_flush() {
        if (flushes_.size() >= cfg_.max_flushes_in_flight || durable_writes_ == writes_ ||
            (!flushes_.empty() && flushes_.back().writes == writes_)) {
            return;
        }
        if (commit_ != saved_commit_) {
            // The commit index rides along with a flush that happens anyway; it is a hint for
            // restarts and need not be durable before anything else.
            if (auto ec = log_.save_hard_state(hard_state{term_, voted_for_, commit_})) {
                return fail_storage(ec);
            }
            ++writes_;
            saved_commit_ = commit_;
        }
        const std::uint64_t id = ++flush_ids_;
        flushes_.push_back({id, writes_, log_.last_index()});
        ++counters_.flushes;
        log_.flush([life = std::weak_ptr<node*>(lifetime_), id](std::error_code ec) {
            if (auto self = life.lock(); self && *self) {
                (*self)->on_flushed(id, ec);
            }
        });
    }

    void on_flushed(std::uint64_t id, std::error_code ec) {
        const auto it = std::find_if(flushes_.begin(), flushes_.end(),
                                     [id](const pending_flush& f) { return f.id == id; });
        SYNOD_ASSERT(it != flushes_.end(), "a flush completed twice");
        const pending_flush done = *it;
        flushes_.erase(it);
        if (stopped_) {
            return;
        }
        if (ec) {
            ++counters_.flush_failures;
            return fail_storage(ec);
        }
        durable_writes_ = std::max(durable_writes_, done.writes);
        durable_index_ = std::max(durable_index_, done.index);
        if (compaction_pending_ && durable_writes_ >= compaction_needs_writes_) {
            compaction_pending_ = false; // the snapshot is durable: its prefix may go
            compact_log(compaction_upto_);
            if (stopped_) {
                return;
            }
        }
        release_deferred();
        count_self_vote_if_durable();
        maybe_commit();
        schedule_apply();
        if (durable_writes_ != writes_) {
            schedule_io();
        }
        check_invariants();
    }

    /// A write or flush failed: the durable state is unknown, so the node stops for good
    /// (it answers nothing, votes for no one, applies nothing more).
    void fail_storage(std::error_code ec) {
        if (stopped_) {
            return;
        }
        stopped_ = true;
        note(log_level::error, "storage failed; node stopped",
             {{"errc", static_cast<std::uint64_t>(ec.value())}});
        role_ = role::follower;
        peers_.clear();
        deferred_.clear();
        fail_pending(errc::storage_failure);
        fail_forwarded(errc::storage_failure, true);
        fail_reads(errc::storage_failure, true);
        fail_changes(errc::storage_failure);
        set_leader(no_node); // observers (a coordinator's director) learn it leads no more
        if (timer_armed_) {
            scheduler_.cancel(timer_);
            timer_armed_ = false;
        }
    }

    // --- applying (paper Figure 2, "all servers") ---------------------------------------

    void schedule_apply() {
        if (apply_scheduled_ || applied_ >= std::min(commit_, durable_index_)) {
            return;
        }
        apply_scheduled_ = true;
        scheduler_.post(guarded<&node::apply_committed>());
    }

    /// "If commitIndex > lastApplied: increment lastApplied, apply log[lastApplied] to state
    /// machine", in index order, at most `max_apply_batch` entries per turn.
    void apply_committed() {
        apply_scheduled_ = false;
        if (stopped_) {
            return;
        }
        const log_index limit = std::min(commit_, durable_index_);
        if (applied_ >= limit) {
            return;
        }
        apply_batch_.clear();
        const log_index hi = std::min(limit + 1, applied_ + 1 + cfg_.max_apply_batch);
        if (auto ec = log_.entries(applied_ + 1, hi, SIZE_MAX, apply_batch_)) {
            return fail_storage(ec);
        }
        finished_.clear();
        for (const log_entry& e : apply_batch_) {
            SYNOD_ASSERT(e.index == applied_ + 1, "entries must be applied in index order");
            applied_ = e.index;
            ++counters_.entries_applied;
            applied_bytes_since_snapshot_ += entry_cost(e);
            std::optional<result_type> value;
            if (e.kind == entry_kind::normal) {
                value.emplace(machine_.apply(e));
            } else if (e.kind == entry_kind::config) {
                auto decoded = wire::decode_membership(e.payload.span());
                if (!decoded) {
                    return fail_storage(errc::corrupt_storage);
                }
                applied_config_ = std::move(decoded).value();
            }
            if (!awaiting_apply_.empty() && awaiting_apply_.begin()->first <= e.index) {
                settle_forwarded(e, value);
            }
            if (!pending_.empty() && pending_.front().index == e.index) {
                SYNOD_ASSERT(e.term == term_ && role_ == role::leader,
                             "a pending proposal outlived its leadership");
                if (!value) {
                    value.emplace(); // a non-normal entry proposed by the node itself
                }
                finished_.push_back({std::move(pending_.front().done),
                                     result{{}, e.index, cfg_.id, std::move(value)}});
                pending_.pop_front();
            }
        }
        maybe_take_snapshot();
        schedule_apply();
        settle_reads();
        if (read_round_wanted_ && leader_caught_up()) {
            schedule_io(); // reads waited for this leader's no-op
        }
        check_invariants();
        settle_reads();
        if (cfg_.on_applied) {
            cfg_.on_applied(applied_);
        }
        // Completions run last, with the node consistent: one may propose again, or even
        // destroy the node, which ends this loop's use of it.
        auto finished = std::move(finished_);
        finished_.clear();
        const std::shared_ptr<node*> life = lifetime_;
        for (auto& [done, r] : finished) {
            done(std::move(r));
        }
        if (*life != nullptr) {
            finished_ = std::move(finished); // keep the capacity
        }
    }

    /// Completes every pending proposal with `why`, each posted: they fail in the middle of
    /// a role change, where user code must not run.
    void fail_pending(errc why) {
        auto failing = std::move(pending_);
        pending_.clear();
        for (auto& p : failing) {
            scheduler_.post([done = std::move(p.done),
                             r = result{why, p.index, leader_, std::nullopt}]() mutable {
                done(std::move(r));
            });
        }
    }

    void refuse(rejection reason, errc why, completion done) {
        ++counters_.proposals_rejected[static_cast<std::size_t>(reason)];
        scheduler_.post([done = std::move(done), why, hint = leader_]() mutable {
            done(result{why, log_index{}, hint, std::nullopt});
        });
    }

    // --- time (paper §5.2) ----------------------------------------------------------------

    /// Restarts the election timeout from `now`. The timeout is drawn afresh from
    /// [min, max) on role and term changes (`redraw`); hearing from the leader or granting a
    /// vote keeps the current draw, so the deadline only moves later between draws.
    void reset_election_deadline(time_point now, bool redraw) {
        if (redraw || election_timeout_ == duration::zero()) {
            const auto lo = std::chrono::duration_cast<duration>(cfg_.election_timeout_min);
            const auto hi = std::chrono::duration_cast<duration>(cfg_.election_timeout_max);
            const auto span = static_cast<std::uint64_t>((hi - lo).count());
            election_timeout_ = lo + duration(static_cast<typename duration::rep>(rng_() % span));
        }
        election_deadline_ = now + election_timeout_;
        arm_timer();
    }

    [[nodiscard]] time_point next_deadline() const {
        time_point at = role_ != role::leader ? election_deadline_
                        : cfg_.check_quorum ? std::min(heartbeat_deadline_, quorum_check_deadline_)
                                            : heartbeat_deadline_;
        if (!forwarded_.empty()) {
            at = std::min(at, forwarded_.begin()->second.deadline);
        }
        if (auto r = earliest_read_deadline()) {
            at = std::min(at, *r);
        }
        if (transfer_) {
            at = std::min(at, transfer_->deadline);
        }
        return at;
    }

    /// One timer serves every deadline. A timer that fires before the current deadline simply
    /// re-arms; it is replaced only when a deadline moves earlier than the armed one (a fresh
    /// random election timeout can be shorter than the last).
    void arm_timer() {
        if (stopped_) {
            return;
        }
        const time_point at = next_deadline();
        if (timer_armed_) {
            if (timer_at_ <= at) {
                return;
            }
            scheduler_.cancel(timer_);
        }
        timer_armed_ = true;
        timer_at_ = at;
        timer_ = scheduler_.schedule_at(at, guarded<&node::on_timer>());
    }

    void on_timer() {
        timer_armed_ = false;
        if (stopped_) {
            return;
        }
        const time_point now = clock_.now();
        expire_forwarded(now);
        expire_reads(now);
        if (transfer_ && now >= transfer_->deadline) {
            // Thesis §3.10: the target did not take over in an election timeout; resume.
            ++counters_.transfers_failed;
            note(log_level::warning, "leadership transfer timed out",
                 {{"to", transfer_->target.value()}});
            finish_change(std::move(transfer_->done), errc::timeout);
            transfer_.reset();
        }
        if (role_ == role::leader) {
            if (cfg_.check_quorum && now >= quorum_check_deadline_) {
                check_quorum(now);
            }
            if (role_ == role::leader && now >= heartbeat_deadline_) {
                heartbeat(now);
            }
        } else if (now >= election_deadline_) {
            if (config_.is_voter(cfg_.id)) {
                note(log_level::info, "election timeout", {{"term", term_.value()}});
                start_election(now);
            } else {
                reset_election_deadline(now, true);
            }
        }
        arm_timer();
        check_invariants();
    }

    /// Thesis §6.2: a leader that has not heard from a quorum within an election timeout
    /// steps down, so clients are not stuck with a leader that cannot commit.
    void check_quorum(time_point now) {
        const bool ok = has_quorum(config_, [&](node_id id) {
            if (id == cfg_.id) {
                return true;
            }
            const progress* pr = find_peer(id);
            return pr != nullptr && pr->recently_active;
        });
        for (auto& [id, pr] : peers_) {
            pr.recently_active = false;
        }
        quorum_check_deadline_ = now + duration(cfg_.election_timeout_min);
        if (!ok) {
            ++counters_.check_quorum_step_downs;
            note(log_level::warning, "lost contact with a quorum; stepping down",
                 {{"term", term_.value()}});
            become_follower(term_, no_node);
        }
    }

    // --- plumbing ------------------------------------------------------------------------------

    /// A callback for a policy that calls `Method` on this node if the node still exists:
    /// it holds the node's lifetime token weakly, so callbacks outliving the node do nothing.
    template <auto Method>
    auto guarded() const {
        return [life = std::weak_ptr<node*>(lifetime_)](auto&&... args) {
            if (auto self = life.lock(); self && *self) {
                ((*self)->*Method)(std::forward<decltype(args)>(args)...);
            }
        };
    }

    template <class M>
    void send(node_id to, M&& m) {
        ++counters_.messages_sent;
        transport_.send(to, message(std::forward<M>(m)));
    }

    template <class M>
    void drop(drop_reason why, const M& m) {
        ++counters_.messages_dropped[static_cast<std::size_t>(why)];
        if (cfg_.sink) {
            const log_field fields[] = {{"reason", static_cast<std::uint64_t>(why)},
                                        {"from", get_from(m).value()}};
            cfg_.sink(log_level::debug, "message dropped", fields);
        }
    }

    static node_id get_from(const message& m) { return message_from(m); }
    template <class M>
    static node_id get_from(const M& m) {
        return m.from;
    }

    void note(log_level level, std::string_view what, std::initializer_list<log_field> fields) {
        if (cfg_.sink) {
            std::vector<log_field> all{{"node", cfg_.id.value()}};
            all.insert(all.end(), fields.begin(), fields.end());
            cfg_.sink(level, what, all);
        }
    }

    progress* find_peer(node_id id) {
        for (auto& [peer, pr] : peers_) {
            if (peer == id) {
                return &pr;
            }
        }
        return nullptr;
    }
    const progress* find_peer(node_id id) const {
        return const_cast<node*>(this)->find_peer(id); // NOLINT: same lookup, const view
    }

    /// Cheap structural checks after every state change; the simulator's checker adds the
    /// cluster-wide ones.
    void check_invariants() const {
        SYNOD_ASSERT(applied_ <= commit_, "applied beyond the commit index");
        SYNOD_ASSERT(applied_ <= std::max(durable_index_, snapshot_index_),
                     "applied an entry that is not durable here");
        SYNOD_ASSERT(log_.first_index() - 1 <= snapshot_index_,
                     "compacted entries that no snapshot covers");
        SYNOD_ASSERT(durable_index_ <= log_.last_index(), "durable index beyond the log");
        SYNOD_ASSERT(role_ != role::leader || leader_ == cfg_.id, "a leader must know itself");
        SYNOD_ASSERT(voted_for_ == no_node || role_ != role::candidate || voted_for_ == cfg_.id,
                     "a candidate votes for itself");
    }

    raft::config cfg_;
    Log& log_;
    Transport& transport_;
    const Clock& clock_;
    Scheduler& scheduler_;
    Machine& machine_;
    std::mt19937_64 rng_;
    /// Points at this node until it is destroyed; callbacks hold it weakly.
    std::shared_ptr<node*> lifetime_;

    raft::role role_ = role::follower;
    /// \invariant never decreases; persisted before any message of this term leaves.
    term term_;
    /// \invariant at most one vote per term, persisted before the vote is granted.
    node_id voted_for_;
    node_id leader_;
    membership config_;
    /// Index of the entry `config_` came from (0: initial or snapshot).
    log_index config_index_;

    /// \invariant applied_ <= commit_; commit_ never decreases.
    log_index commit_;
    log_index applied_;
    /// \invariant every entry at or below it is durable in the log and unchanged since.
    log_index durable_index_;
    log_index saved_commit_;

    /// Writes made to the log (appends, truncations, hard-state saves), and how many of them
    /// the last completed flush covered. \invariant durable_writes_ <= writes_.
    std::uint64_t writes_ = 0;
    std::uint64_t durable_writes_ = 0;
    /// The write that last changed term or vote.
    std::uint64_t hard_state_writes_ = 0;
    /// A flush under way: what it makes durable once it completes. The writes it covers
    /// never fall (later flushes cover more), its index may (a truncation removed entries).
    struct pending_flush {
        std::uint64_t id = 0;
        std::uint64_t writes = 0;
        log_index index;
    };
    /// \invariant size() <= cfg_.max_flushes_in_flight; `writes` strictly increase.
    std::vector<pending_flush> flushes_;
    std::uint64_t flush_ids_ = 0;
    bool io_scheduled_ = false;
    bool replicate_pending_ = false;
    bool apply_scheduled_ = false;
    bool stopped_ = false;

    std::vector<deferred_message> deferred_;
    /// Votes received in the current (pre-)election: voter and whether it granted.
    std::vector<std::pair<node_id, bool>> votes_;
    std::uint64_t self_vote_writes_ = 0;

    /// On a leader: every other member's progress.
    std::vector<std::pair<node_id, progress>> peers_;
    /// On a leader: its proposals awaiting apply, in index order.
    std::deque<pending_proposal> pending_;
    /// On a leader: entries of its term above the commit index, and their summed cost.
    std::deque<uncommitted_entry> uncommitted_;
    std::size_t uncommitted_bytes_ = 0;
    std::uint64_t rounds_ = 0;

    time_point election_deadline_{};
    /// The current draw of the randomized election timeout (paper §5.2).
    duration election_timeout_{};
    time_point heartbeat_deadline_{};
    time_point quorum_check_deadline_{};
    time_point last_leader_contact_{};
    typename Scheduler::timer_handle timer_{};
    time_point timer_at_{};
    bool timer_armed_ = false;

    raft::counters counters_;
    std::vector<log_entry> apply_batch_;
    std::vector<std::pair<completion, result>> finished_;
    std::vector<log_index> scratch_indexes_;

    /// A snapshot arriving from the leader, assembled in order.
    struct incoming_snapshot {
        log_index last_index;
        term last_term;
        membership config;
        std::uint64_t total_size = 0;
        std::uint32_t crc = 0;
        /// \invariant bytes.size() <= total_size.
        byte_vector bytes;
        /// CRC32C of `bytes`, extended chunk by chunk.
        std::uint32_t running_crc = 0;
    };
    std::optional<incoming_snapshot> incoming_;
    std::error_code last_snapshot_rejection_;

    /// Last index of the log's latest snapshot. \invariant first_index() - 1 <= snapshot_index_.
    log_index snapshot_index_;
    /// Membership in force at `applied_` (what a snapshot taken now records).
    membership applied_config_;
    std::uint64_t applied_bytes_since_snapshot_ = 0;
    /// A snapshot was saved; once the flush covering write `compaction_needs_writes_` completes,
    /// entries through `compaction_upto_` are removed.
    bool compaction_pending_ = false;
    log_index compaction_upto_;
    std::uint64_t compaction_needs_writes_ = 0;
    std::optional<std::pair<log_index, std::uint32_t>> checksum_cache_;

    std::optional<pending_change> change_;
    std::optional<pending_transfer> transfer_;
    /// This election was started by TimeoutNow: vote requests say so (thesis §3.10).
    bool transfer_campaign_ = false;

    /// On a leader: index of its term's first entry (the no-op).
    log_index term_start_index_;

    /// Proposals forwarded to the leader and not answered yet, by request id (so by deadline).
    struct forwarded_proposal {
        node_id leader;
        time_point deadline;
        completion done;
    };
    std::map<std::uint64_t, forwarded_proposal> forwarded_;
    std::uint64_t forward_requests_ = 0;
    /// Forwarded proposals the leader appended, by index, waiting for this node to apply them.
    struct awaiting_proposal {
        term entry_term;
        completion done;
    };
    std::multimap<log_index, awaiting_proposal> awaiting_apply_;

    /// On a leader: reads awaiting their confirmation round, in round order (unsent last).
    std::deque<leader_read> reads_;
    bool read_round_wanted_ = false;
    /// Confirmed reads (leader's or follower's), waiting until their index is applied here.
    std::multimap<log_index, read_completion> reads_ready_;
    /// On a follower: reads it asked the leader about, by request id.
    std::map<std::uint64_t, remote_read> remote_reads_;
    std::uint64_t read_requests_ = 0;
    /// On a leader: (first round, time) of heartbeat broadcasts not yet acknowledged by a
    /// quorum, and the end of the lease they earned. \invariant rounds increase.
    std::deque<std::pair<std::uint64_t, time_point>> broadcasts_;
    time_point lease_until_{};
    /// No lease is earned before this (after a TimeoutNow was sent).
    time_point lease_blocked_until_{};
};

} // namespace synod::raft
