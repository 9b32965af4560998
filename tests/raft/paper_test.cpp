// The rules of the Raft paper (Ongaro & Ousterhout 2014) §5.1–§5.4, one test per rule, each
// quoting the sentence it checks. A single node is driven by hand; its peers are played by
// the test.

#include "support/node_harness.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <set>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using raft::role;
using test::node_harness;

const node_id n1{1};
const node_id n2{2};
const node_id n3{3};

append_request heartbeat_from(node_id leader, std::uint64_t t, std::uint64_t prev = 0,
                              std::uint64_t prev_term = 0, std::uint64_t commit = 0) {
    return append_request{leader, n1, term{t}, log_index{prev}, term{prev_term}, log_index{commit},
                          0,      {}};
}

log_entry entry(std::uint64_t index, std::uint64_t t, std::string_view payload = "x") {
    return log_entry{term{t}, log_index{index}, entry_kind::normal, shared_bytes(payload)};
}

// --- §5.1 -------------------------------------------------------------------------------------

TEST_CASE("paper §5.1: a server that sees a larger term updates its current term and becomes "
          "follower, from every role") {
    for (int start_role = 0; start_role < 3; ++start_role) {
        CAPTURE(start_role);
        node_harness h(n1);
        h.start();
        if (start_role == 1) {
            h.node->campaign();
            h.settle();
            REQUIRE(h.node->role() == role::candidate);
        } else if (start_role == 2) {
            h.elect();
        }
        h.deliver(vote_response{n2, n1, term{9}, false, false});
        CHECK(h.node->current_term() == term{9});
        CHECK(h.node->role() == role::follower);
        CHECK(h.log.durable_hard_state().current_term == term{9}); // persisted (§5.1, Fig. 2)
    }
}

TEST_CASE("paper §5.1: 'If a candidate or leader discovers that its term is out of date, it "
          "immediately reverts to follower state' — a leader hearing a newer leader") {
    node_harness h(n1);
    h.start();
    h.elect();
    const term t = h.node->current_term();
    h.deliver(heartbeat_from(n2, t.value() + 1));
    CHECK(h.node->role() == role::follower);
    CHECK(h.node->leader() == n2);
}

TEST_CASE("paper §5.1: 'If a server receives a request with a stale term number, it rejects "
          "the request'") {
    node_harness h(n1);
    h.preload({}, 5);
    h.start();
    h.deliver(heartbeat_from(n2, 4));
    auto replies = h.take<append_response>();
    REQUIRE(replies.size() == 1);
    CHECK_FALSE(replies[0].success);
    CHECK(replies[0].term == term{5}); // tells the stale leader the current term
    CHECK(h.node->leader() == no_node);

    h.deliver(vote_request{n3, n1, term{4}, log_index{9}, term{4}, false, false});
    auto votes = h.take<vote_response>();
    REQUIRE(votes.size() == 1);
    CHECK_FALSE(votes[0].granted);
    CHECK(votes[0].term == term{5});
}

// --- §5.2 -------------------------------------------------------------------------------------

TEST_CASE("paper §5.2: 'If a follower receives no communication over a period of time called "
          "the election timeout, then it ... begins an election': it increments its term, "
          "votes for itself and issues RequestVote to every other server") {
    node_harness h(n1);
    h.start();
    h.advance(300ms); // the timeout is drawn from [150, 300) ms
    CHECK(h.node->role() == role::candidate);
    CHECK(h.node->current_term() == term{1});
    CHECK(h.log.durable_hard_state().voted_for == n1);
    auto requests = h.take<vote_request>();
    REQUIRE(requests.size() == 2);
    for (const auto& r : requests) {
        CHECK(r.term == term{1});
        CHECK_FALSE(r.pre_vote);
    }
    CHECK(requests[0].to != requests[1].to);
}

TEST_CASE("paper §5.2: election timeouts are 'chosen randomly from a fixed interval'") {
    std::set<std::int64_t> elapsed;
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        node_harness h(n1);
        h.config.random_seed = seed;
        h.start();
        const auto start = h.world.now();
        h.world.run_until([&] { return h.node->role() == role::candidate; }, 1s);
        const auto waited =
            std::chrono::duration_cast<std::chrono::milliseconds>(h.world.now() - start).count();
        CHECK(waited >= 150);
        CHECK(waited < 300);
        elapsed.insert(waited);
    }
    CHECK(elapsed.size() > 5); // different seeds, different timeouts
}

TEST_CASE("paper §5.2: 'A candidate wins an election if it receives votes from a majority' "
          "and then 'sends heartbeat messages to all of the other servers'") {
    node_harness h(n1);
    h.start();
    h.node->campaign();
    h.settle();
    h.sent.clear();
    h.deliver(vote_response{n2, n1, term{1}, true, false});
    CHECK(h.node->role() == role::leader);
    auto appends = h.take<append_request>();
    CHECK(appends.size() == 2); // to n2 and n3, carrying the new leader's no-op
    h.advance(50ms);
    CHECK(h.take<append_request>().size() >= 2); // periodic heartbeats
}

TEST_CASE("paper §5.2: 'Each server will vote for at most one candidate in a given term, on a "
          "first-come-first-served basis'") {
    node_harness h(n1);
    h.start();
    h.deliver(vote_request{n2, n1, term{1}, log_index{}, term{}, false, false});
    h.deliver(vote_request{n3, n1, term{1}, log_index{}, term{}, false, false});
    h.deliver(vote_request{n2, n1, term{1}, log_index{}, term{}, false, false}); // retry
    auto votes = h.take<vote_response>();
    REQUIRE(votes.size() == 3);
    CHECK(votes[0].granted);
    CHECK_FALSE(votes[1].granted);
    CHECK(votes[2].granted); // the same candidate asking again
    CHECK(h.log.durable_hard_state().voted_for == n2);
}

TEST_CASE("paper §5.2: 'If the leader's term ... is at least as large as the candidate's "
          "current term, then the candidate recognizes the leader as legitimate and returns to "
          "follower state'") {
    node_harness h(n1);
    h.start();
    h.node->campaign();
    h.settle();
    REQUIRE(h.node->role() == role::candidate);
    h.deliver(heartbeat_from(n2, 1));
    CHECK(h.node->role() == role::follower);
    CHECK(h.node->leader() == n2);
    CHECK(h.node->current_term() == term{1});
}

TEST_CASE("paper §5.2: with a split vote 'each candidate will time out and start a new election "
          "by incrementing its term'") {
    node_harness h(n1);
    h.start();
    h.node->campaign();
    h.settle();
    h.deliver(vote_response{n2, n1, term{1}, false, false});
    h.advance(300ms);
    CHECK(h.node->role() == role::candidate);
    CHECK(h.node->current_term() >= term{2});
}

// --- §5.3 -------------------------------------------------------------------------------------

TEST_CASE("paper §5.3: the leader 'appends the command to its log as a new entry, then issues "
          "AppendEntries RPCs in parallel'; once committed it 'applies the entry to its state "
          "machine and returns the result of that execution to the client'") {
    node_harness h(n1);
    h.start();
    h.elect();
    h.ack(n2, 1); // the no-op; both followers now in replicate state
    h.ack(n3, 1);
    std::optional<node_harness::node_type::result> outcome;
    h.node->propose(shared_bytes("cmd"), [&](auto r) { outcome = std::move(r); });
    h.settle();
    auto appends = h.take<append_request>();
    REQUIRE(appends.size() == 2);
    for (const auto& a : appends) {
        REQUIRE_FALSE(a.entries.empty());
        CHECK(a.entries.back().payload.str() == "cmd");
    }
    CHECK_FALSE(outcome.has_value()); // not committed yet
    h.ack(n3, 2);
    REQUIRE(outcome.has_value());
    CHECK_FALSE(outcome->error);
    CHECK(outcome->index == log_index{2});
    CHECK(*outcome->value == 1U);
    CHECK(h.machine.applied == std::vector<std::string>{"cmd"});
}

TEST_CASE("paper §5.3: 'If the follower does not find an entry in its log with the same index "
          "and term, then it refuses the new entries'") {
    node_harness h(n1);
    h.preload({1, 1, 2}, 2);
    h.start();
    SUBCASE("missing entry") {
        auto req = heartbeat_from(n2, 3, 5, 2);
        req.entries.push_back(entry(6, 3));
        h.deliver(req);
        auto r = h.take<append_response>();
        REQUIRE(r.size() == 1);
        CHECK_FALSE(r[0].success);
        CHECK(r[0].conflict_term == term{});        // no entry there at all
        CHECK(r[0].conflict_index == log_index{4}); // resume after my last entry
    }
    SUBCASE("entry of another term: the hint names that term and its first index") {
        auto req = heartbeat_from(n2, 3, 3, 3);
        h.deliver(req);
        auto r = h.take<append_response>();
        REQUIRE(r.size() == 1);
        CHECK_FALSE(r[0].success);
        CHECK(r[0].conflict_term == term{2});
        CHECK(r[0].conflict_index == log_index{3});
    }
    CHECK(h.log.last_index() == log_index{3}); // nothing appended
}

TEST_CASE("paper §5.3: 'If an existing entry conflicts with a new one (same index but different "
          "terms), delete the existing entry and all that follow it; append any new entries "
          "not already in the log'") {
    node_harness h(n1);
    h.preload({1, 1, 2, 2}, 2);
    h.start();
    auto req = heartbeat_from(n2, 3, 2, 1);
    req.entries = {entry(3, 3, "new3"), entry(4, 3, "new4"), entry(5, 3, "new5")};
    h.deliver(req);
    auto r = h.take<append_response>();
    REQUIRE(r.size() == 1);
    CHECK(r[0].success);
    CHECK(r[0].match_index == log_index{5});
    CHECK(h.log.last_index() == log_index{5});
    CHECK(*h.log.term_at(log_index{3}) == term{3});
    CHECK(*h.log.term_at(log_index{5}) == term{3});
}

TEST_CASE("paper §5.3 (Figure 2, AppendEntries rule 3): a delayed, shorter AppendEntries never "
          "truncates entries that match") {
    node_harness h(n1);
    h.start();
    auto longer = heartbeat_from(n2, 1, 0, 0);
    longer.entries = {entry(1, 1), entry(2, 1), entry(3, 1)};
    auto shorter = heartbeat_from(n2, 1, 0, 0);
    shorter.entries = {entry(1, 1)};
    h.deliver(longer);
    h.deliver(shorter); // arrives late
    CHECK(h.log.last_index() == log_index{3});
    auto r = h.take<append_response>();
    REQUIRE(r.size() == 2);
    CHECK(r[1].success);
    CHECK(r[1].match_index == log_index{1}); // acknowledges only what that request covered
}

TEST_CASE("paper §5.3: 'After a rejection, the leader decrements nextIndex and retries the "
          "AppendEntries RPC' — with the conflict hint, by a whole term at a time") {
    node_harness h(n1);
    h.preload({1, 1, 1, 4, 4, 5, 5, 6, 6, 6}, 7);
    h.start();
    h.elect();       // term 8; log gains the no-op at 11
    h.advance(50ms); // a heartbeat re-sends the probe to n2; answers must name its round
    auto probe = h.take<append_request>();
    auto to_n2 = [&] {
        for (const auto& p : probe) {
            if (p.to == n2) {
                return p;
            }
        }
        FAIL("no probe to n2");
        return probe.front();
    };
    // Follower n2 holds [1 1 1 4 4 4 4] (figure 7 (f)-like): rejects prev 11 with "no entry".
    h.deliver(
        append_response{n2, n1, term{8}, false, log_index{7}, term{}, log_index{8}, to_n2().round});
    probe = h.take<append_request>();
    REQUIRE(probe.size() == 1);
    CHECK(probe[0].prev_log_index == log_index{7});
    // At 7 it has term 4 where the leader has term 5: hint (term 4, first index 4). The leader
    // has term 4 up to index 5, so it retries after 5 without visiting 6.
    h.deliver(append_response{n2, n1, term{8}, false, log_index{7}, term{4}, log_index{4},
                              probe[0].round});
    probe = h.take<append_request>();
    REQUIRE(probe.size() == 1);
    CHECK(probe[0].prev_log_index == log_index{5});
    CHECK(probe[0].prev_log_term == term{4});
    CHECK(probe[0].entries.front().index == log_index{6});
    // A duplicate of the first rejection is stale: it names an old probe and changes nothing.
    h.deliver(append_response{n2, n1, term{8}, false, log_index{7}, term{}, log_index{8},
                              probe[0].round - 1});
    CHECK(h.take<append_request>().empty());
}

TEST_CASE("paper §5.3: the follower sets 'commitIndex = min(leaderCommit, index of last new "
          "entry)' and applies committed entries in order") {
    node_harness h(n1);
    h.start();
    auto req = heartbeat_from(n2, 1, 0, 0, 5);
    req.entries = {entry(1, 1, "a"), entry(2, 1, "b")};
    h.deliver(req);
    CHECK(h.node->commit_index() == log_index{2});
    CHECK(h.machine.applied == std::vector<std::string>{"a", "b"});
    h.deliver(heartbeat_from(n2, 1, 2, 1, 1)); // a smaller leaderCommit never lowers it
    CHECK(h.node->commit_index() == log_index{2});
}

TEST_CASE("paper §5.3, Figure 3 'Leader Append-Only: a leader never overwrites or deletes "
          "entries in its own log'") {
    node_harness h(n1);
    h.preload({1, 2}, 2);
    h.start();
    h.elect();
    const log_index last = h.log.last_index();
    // A follower claiming a conflict cannot make the leader drop anything.
    h.deliver(append_response{n2, n1, h.node->current_term(), false, log_index{1}, term{1},
                              log_index{1}, 0});
    CHECK(h.log.last_index() == last);
    CHECK(*h.log.term_at(log_index{2}) == term{2});
}

// --- §5.4 -------------------------------------------------------------------------------------

TEST_CASE("paper §5.4.1: 'the voter denies its vote if its own log is more up-to-date than that "
          "of the candidate' — by last term, then by length") {
    node_harness h(n1);
    h.preload({1, 2, 2}, 2);
    h.start();
    struct ask {
        std::uint64_t last_index, last_term;
        bool granted;
    };
    for (auto [index, t, granted] : {ask{9, 1, false}, ask{2, 2, false}, ask{3, 2, true}}) {
        node_harness fresh(n1);
        fresh.preload({1, 2, 2}, 2);
        fresh.start();
        fresh.deliver(vote_request{n2, n1, term{3}, log_index{index}, term{t}, false, false});
        auto v = fresh.take<vote_response>();
        REQUIRE(v.size() == 1);
        CHECK(v[0].granted == granted);
    }
    h.deliver(vote_request{n2, n1, term{3}, log_index{1}, term{3}, false, false});
    auto v = h.take<vote_response>();
    REQUIRE(v.size() == 1);
    CHECK(v[0].granted); // a later last term wins even with a shorter log
}

TEST_CASE("paper §5.4.2, Figure 8: 'Raft never commits log entries from previous terms by "
          "counting replicas'") {
    // The leader of term 4 holds [1@t1, 2@t2] (Figure 8 (c): S1 after re-election).
    node_harness h(n1, {n1, n2, node_id{3}, node_id{4}, node_id{5}});
    h.preload({1, 2}, 3, 1);
    h.start();
    h.node->campaign();
    h.settle();
    h.deliver(vote_response{n2, n1, term{4}, true, false});
    h.deliver(vote_response{n3, n1, term{4}, true, false});
    REQUIRE(h.node->role() == role::leader);
    REQUIRE(h.log.last_index() == log_index{3}); // its no-op of term 4
    // Index 2 (term 2) now sits on S1, S2, S3: a majority, yet it must not commit.
    h.ack(n2, 2);
    h.ack(n3, 2);
    CHECK(h.node->commit_index() == log_index{1});
    // Once an entry of term 4 is on a majority, it and everything before it commit.
    h.ack(n2, 3);
    h.ack(n3, 3);
    CHECK(h.node->commit_index() == log_index{3});
}

// --- persistence (thesis §10.2.1 and Figure 2 "updated on stable storage before responding")

TEST_CASE("thesis §10.2.1: a vote leaves only after the hard state recording it is durable") {
    node_harness h(n1);
    h.start();
    h.log.set_flush_mode(storage::flush_mode::held);
    h.deliver(vote_request{n2, n1, term{1}, log_index{}, term{}, false, false});
    CHECK(h.take<vote_response>().empty());
    h.log.release_flushes();
    h.settle();
    auto v = h.take<vote_response>();
    REQUIRE(v.size() == 1);
    CHECK(v[0].granted);
}

TEST_CASE("thesis §10.2.1: a follower acknowledges entries only once they are durable, and a "
          "crash before the flush loses them unacknowledged") {
    node_harness h(n1);
    h.start();
    h.log.set_flush_mode(storage::flush_mode::held);
    auto req = heartbeat_from(n2, 1, 0, 0);
    req.entries = {entry(1, 1), entry(2, 1)};
    h.deliver(req);
    CHECK(h.take<append_response>().empty());
    h.log.crash();
    CHECK(h.log.last_index() == log_index{}); // the unflushed entries are gone
}

TEST_CASE("thesis §10.2.1: the leader replicates while its own flush is in flight, counts "
          "itself only once the flush completes, and shares one flush among a turn's "
          "proposals") {
    node_harness h(n1, {n1, n2, n3});
    h.start();
    h.elect();
    h.ack(n2, 1);
    h.ack(n3, 1);
    h.log.set_flush_mode(storage::flush_mode::held);
    const auto flushes_before = h.node->counters().flushes;
    int done = 0;
    for (int i = 0; i < 50; ++i) {
        h.node->propose(shared_bytes("p" + std::to_string(i)), [&](auto r) {
            CHECK_FALSE(r.error);
            ++done;
        });
    }
    h.settle();
    CHECK(h.node->counters().flushes == flushes_before + 1); // group commit
    auto appends = h.take<append_request>();
    CHECK(appends.size() == 2); // one batch per follower, sent before the flush completes
    // n2 alone acknowledging is not a quorum, since the leader's own copy is not durable.
    h.ack(n2, 51);
    CHECK(h.node->commit_index() == log_index{1});
    h.log.release_flushes();
    h.settle();
    CHECK(h.node->commit_index() == log_index{51});
    CHECK(done == 50);
}

TEST_CASE("thesis §10.2.1: with two flushes allowed in flight, proposals made while the first "
          "flush runs start a second at once; the leader counts itself for each batch only as "
          "its own flush completes") {
    node_harness h(n1, {n1, n2, n3});
    REQUIRE(h.config.max_flushes_in_flight == 2); // the default
    h.start();
    h.elect();
    h.ack(n2, 1);
    h.ack(n3, 1);
    h.log.set_flush_mode(storage::flush_mode::held);
    const auto flushes_before = h.node->counters().flushes;
    auto propose = [&](int k) {
        h.node->propose(shared_bytes("p" + std::to_string(k)),
                        [](auto r) { CHECK_FALSE(r.error); });
        h.settle();
    };
    propose(1); // index 2
    CHECK(h.log.pending_flushes() == 1);
    propose(2); // index 3: a second flush, not waiting for the first
    CHECK(h.log.pending_flushes() == 2);
    propose(3); // index 4: the limit is reached; it waits for a flush to complete
    CHECK(h.log.pending_flushes() == 2);
    CHECK(h.node->counters().flushes == flushes_before + 2);
    h.ack(n2, 4); // n2 alone is no quorum: the leader's copy of 2..4 is not durable yet
    CHECK(h.node->commit_index() == log_index{1});
    h.log.release_flushes(1); // the first flush: index 2 is durable here
    h.settle();
    CHECK(h.node->commit_index() == log_index{2});
    CHECK(h.log.pending_flushes() == 2); // the third flush started as the first completed
    h.log.release_flushes(1);
    h.settle();
    CHECK(h.node->commit_index() == log_index{3});
    h.log.release_flushes();
    h.settle();
    CHECK(h.node->commit_index() == log_index{4});
}

TEST_CASE("thesis §10.2.1 with two flushes in flight: a truncation lowers what the flushes "
          "under way will make durable, so an entry appended after it is acknowledged only "
          "once a later flush covers it") {
    node_harness h(n1);
    h.start();
    h.log.set_flush_mode(storage::flush_mode::held);
    auto first = heartbeat_from(n2, 1);
    first.entries = {entry(1, 1), entry(2, 1)};
    h.deliver(first); // flush A: entries 1..2
    auto second = heartbeat_from(n2, 1, 2, 1);
    second.entries = {entry(3, 1), entry(4, 1)};
    h.deliver(second); // flush B: entries 1..4
    CHECK(h.log.pending_flushes() == 2);
    // n3 campaigns for term 2; the vote waits for a flush slot.
    h.deliver(vote_request{n3, n1, term{2}, log_index{4}, term{1}, false, false});
    CHECK(h.log.pending_flushes() == 2);
    h.log.release_flushes(1); // A completes; flush C starts: the vote, and entries up to 4
    h.settle();
    CHECK(h.log.pending_flushes() == 2);
    (void)h.take<append_response>();
    // n3 leads term 2 with a different entry 3: entries 3..4 go, while B and C are under way.
    auto conflicting = heartbeat_from(n3, 2, 2, 1);
    conflicting.entries = {entry(3, 2, "new")};
    h.deliver(conflicting);
    auto acks_of_term_2 = [&] {
        std::vector<log_index> out;
        for (const append_response& r : h.take<append_response>()) {
            if (r.success && r.term == term{2}) {
                out.push_back(r.match_index);
            }
        }
        return out;
    };
    h.log.release_flushes(2); // B and C: the vote is durable, the new entry 3 is not
    h.settle();
    CHECK(acks_of_term_2().empty());
    CHECK(h.log.pending_flushes() == 1); // the flush that covers it
    h.log.release_flushes();
    h.settle();
    CHECK(acks_of_term_2() == std::vector<log_index>{log_index{3}});
}

TEST_CASE("raft::config: max_flushes_in_flight 0 is invalid_argument") {
    raft::config c;
    c.id = n1;
    c.max_flushes_in_flight = 0;
    CHECK(c.validate() == errc::invalid_argument);
    c.max_flushes_in_flight = 1;
    CHECK_FALSE(c.validate());
}

} // namespace

namespace {

using namespace synod;
using raft::role;
using test::node_harness;

TEST_CASE("thesis §10.2.1: a candidate becomes leader only once its own term and vote are "
          "durable, even when the other voters already form a majority") {
    // Otherwise a crash could make it forget term T and win T a second time with different
    // entries (review finding: two entries at one index and term).
    node_harness h(node_id{1});
    h.start();
    h.log.set_flush_mode(storage::flush_mode::held);
    h.node->campaign();
    h.settle();
    h.deliver(vote_response{node_id{2}, node_id{1}, term{1}, true, false});
    h.deliver(vote_response{node_id{3}, node_id{1}, term{1}, true, false});
    CHECK(h.node->role() == role::candidate);
    CHECK(h.take<append_request>().empty());
    h.log.release_flushes();
    h.settle();
    CHECK(h.node->role() == role::leader);
}

TEST_CASE("thesis §10.2.1: a follower's acknowledgement in a new term waits until that term "
          "is durable, even when the entries it acknowledges already are") {
    node_harness h(node_id{1});
    h.preload({1, 1}, 1);
    h.start();
    h.log.set_flush_mode(storage::flush_mode::held);
    h.deliver(append_request{
        node_id{2}, node_id{1}, term{2}, log_index{2}, term{1}, log_index{0}, 1, {}});
    CHECK(h.take<append_response>().empty());
    h.log.release_flushes();
    h.settle();
    auto acks = h.take<append_response>();
    REQUIRE(acks.size() == 1);
    CHECK(acks[0].success);
    CHECK(acks[0].term == term{2});
}

TEST_CASE("propose: completions never run inside the call that fails them") {
    node_harness h(node_id{1});
    h.start();
    h.elect();
    bool completed = false;
    h.node->propose(shared_bytes("p"), [&](auto r) {
        CHECK(r.error == errc::outcome_unknown);
        completed = true;
    });
    h.settle();
    h.node->receive(vote_response{node_id{2}, node_id{1}, term{9}, false, false});
    CHECK(h.node->role() == role::follower);
    CHECK_FALSE(completed); // not inside receive()
    h.settle();
    CHECK(completed);
}

} // namespace

namespace {

TEST_CASE("config: a configuration that cannot run is refused by start() with invalid_argument") {
    using synod::errc;
    auto refuses = [](auto tweak) {
        node_harness h(synod::node_id{1});
        tweak(h.config);
        h.node = std::make_unique<node_harness::node_type>(h.config, h.log, h.transport(),
                                                           h.clock(), h.scheduler(), h.machine);
        return h.node->start() == errc::invalid_argument;
    };
    CHECK(refuses([](synod::raft::config& c) { c.id = synod::no_node; }));
    CHECK(refuses([](synod::raft::config& c) { c.election_timeout_max = c.election_timeout_min; }));
    CHECK(refuses([](synod::raft::config& c) { c.heartbeat_interval = c.election_timeout_min; }));
    CHECK(refuses([](synod::raft::config& c) { c.max_inflight_appends = 0; }));
    CHECK(refuses([](synod::raft::config& c) {
        c.initial_membership = synod::membership({synod::node_id{1}}, {synod::node_id{1}});
    }));
    CHECK_FALSE(refuses([](synod::raft::config&) {}));
}

TEST_CASE("propose: leader_unknown before any election, proposal_too_large on a leader") {
    node_harness h(synod::node_id{1});
    h.config.max_proposal_bytes = 16;
    h.start();
    std::error_code seen;
    h.node->propose(synod::shared_bytes("x"), [&](auto r) { seen = r.error; });
    h.settle();
    CHECK(seen == synod::errc::leader_unknown);
    h.elect();
    h.node->propose(synod::shared_bytes(std::string(17, 'x')), [&](auto r) { seen = r.error; });
    h.settle();
    CHECK(seen == synod::errc::proposal_too_large);
    CHECK(h.node->counters().rejected(synod::raft::rejection::too_large) == 1);
    CHECK(h.node->status().last_index == synod::log_index{1}); // only the no-op
}

} // namespace
