// Whole-cluster scenarios on the simulator. The invariant checker runs after every event, so
// each scenario also checks election safety, log matching, leader completeness, state machine
// safety and durability throughout.

#include "support/append_machine.hpp"

#include <doctest/doctest.h>

#include <synod/sim/cluster.hpp>
#include <synod/wire/frame.hpp>

#include <chrono>
#include <string>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using cluster = sim::cluster<test::append_machine>;
using raft::role;

sim::cluster_options options(std::uint64_t seed, std::size_t size = 3) {
    sim::cluster_options o;
    o.size = size;
    o.seed = seed;
    o.node_config.pre_vote = true;
    o.node_config.check_quorum = true;
    return o;
}

/// Writes `terms` durably into a node's log before it starts.
void preload(storage::memory_log& log, const std::vector<std::uint64_t>& terms,
             std::uint64_t current_term) {
    std::vector<log_entry> entries;
    for (std::size_t i = 0; i < terms.size(); ++i) {
        entries.push_back(
            log_entry{term{terms[i]}, log_index{i + 1}, entry_kind::normal,
                      shared_bytes("t" + std::to_string(terms[i]) + "i" + std::to_string(i + 1))});
    }
    REQUIRE_FALSE(log.append(entries));
    REQUIRE_FALSE(log.save_hard_state(hard_state{term{current_term}, no_node, log_index{}}));
    log.flush([](std::error_code) {});
}

std::vector<term> terms_of(storage::memory_log& log) {
    std::vector<term> out;
    for (log_index i{1}; i <= log.last_index(); ++i) {
        out.push_back(*log.term_at(i));
    }
    return out;
}

TEST_CASE("paper §5.3, Figure 7: a new leader repairs each of the follower logs (a)-(f)") {
    const std::vector<std::uint64_t> leader_log{1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
    const std::vector<std::vector<std::uint64_t>> followers{
        {1, 1, 1, 4, 4, 5, 5, 6, 6},          // (a) missing one entry
        {1, 1, 1, 4},                         // (b) missing many
        {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},    // (c) one extra uncommitted entry
        {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, // (d) extra entries of a later term
        {1, 1, 1, 4, 4, 4, 4},                // (e) missing and extra
        {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},    // (f) a whole divergent history
    };
    const char* names = "abcdef";
    for (std::size_t k = 0; k < followers.size(); ++k) {
        CAPTURE(names[k]);
        // n1 leads with the figure's log; n2 holds the same log and votes for it; n3 is the
        // follower under repair. Term 7 has passed, so n1 campaigns for term 8.
        cluster c(options(100 + k));
        preload(c.log(node_id{1}), leader_log, 7);
        preload(c.log(node_id{2}), leader_log, 7);
        preload(c.log(node_id{3}), followers[k], 7);
        c.start_all();
        c.node(node_id{1}).campaign();
        c.run_until([&] { return c.leader() == node_id{1}; }, 2s);
        REQUIRE(c.leader() == node_id{1});
        c.run_until(
            [&] {
                return c.node(node_id{3}).commit_index() == c.node(node_id{1}).status().last_index;
            },
            2s);
        CHECK(terms_of(c.log(node_id{3})) == terms_of(c.log(node_id{1})));
        CHECK(c.node(node_id{1}).current_term() == term{8});
        // Repair costs round trips per divergent term, not per entry.
        CHECK(c.network().sent() < 40);
    }
}

TEST_CASE("thesis §9.6 (pre-vote): a follower partitioned away and rejoining does not depose a "
          "healthy leader") {
    cluster c(options(3));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    const term t = c.node(*leader).current_term();
    const node_id loner = *leader == node_id{3} ? node_id{2} : node_id{3};
    c.network().isolate(loner, c.ids());
    c.set_partitioned(loner, true);
    c.run_for(5s);                            // many election timeouts
    CHECK(c.node(loner).current_term() == t); // pre-votes failed, so its term never grew
    CHECK(c.node(loner).counters().pre_votes_started > 5);
    CHECK(c.node(loner).counters().elections_started == 0);
    c.network().heal();
    c.set_partitioned(loner, false);
    c.run_for(2s);
    CHECK(c.leader() == leader);
    CHECK(c.node(*leader).current_term() == t);
    CHECK(c.node(loner).leader() == *leader);
}

TEST_CASE("thesis §6.2 (check-quorum): a leader cut off from the majority steps down within two "
          "election timeouts, and the majority elects a new leader") {
    cluster c(options(4));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    c.network().isolate(*leader, c.ids());
    c.set_partitioned(*leader, true);
    const auto cut_at = c.world().now();
    REQUIRE(c.run_until([&] { return c.node(*leader).role() != role::leader; }, 2s));
    const auto took = c.world().now() - cut_at;
    CHECK(took <= 2 * 300ms); // two maximum election timeouts
    CHECK(c.node(*leader).counters().check_quorum_step_downs == 1);
    auto next = c.wait_for_leader(3s);
    REQUIRE(next);
    CHECK(*next != *leader);
}

TEST_CASE("partial connectivity: a follower cut off from the leader only, still connected to "
          "the other follower, does not unseat the leader, and the cluster keeps committing") {
    cluster c(options(5));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    const term t = c.node(*leader).current_term();
    const node_id cut = *leader == node_id{3} ? node_id{2} : node_id{3};
    c.network().disconnect(*leader, cut);
    c.set_partitioned(cut, true);
    const auto changes_before = c.node(*leader).counters().leader_changes;
    int committed = 0;
    for (int i = 0; i < 200; ++i) {
        auto slot = c.propose(*leader, "w" + std::to_string(i));
        c.run_until([&] { return slot->has_value(); }, 1s);
        REQUIRE(slot->has_value());
        if (!(*slot)->error) {
            ++committed;
        }
        c.run_for(25ms); // 200 x 25 ms: many election timeouts of the cut follower
    }
    CHECK(committed == 200);
    CHECK(c.leader() == leader);
    CHECK(c.node(*leader).current_term() == t);
    CHECK(c.node(*leader).counters().leader_changes == changes_before);
    CHECK(c.node(cut).current_term() == t); // its pre-votes are refused by the leased follower
}

TEST_CASE("thesis §10.2.1: a leader crash mid-replication with unflushed entries loses nothing "
          "that was acknowledged") {
    auto o = options(6);
    o.flush_delay = 5ms; // writes sit unflushed for a while
    o.min_latency = 1ms;
    o.max_latency = 3ms;
    cluster c(o);
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    std::vector<std::shared_ptr<std::optional<cluster::result>>> slots;
    std::vector<std::string> payloads;
    for (int i = 0; i < 60; ++i) {
        payloads.push_back("v" + std::to_string(i));
        slots.push_back(c.propose(*leader, payloads.back()));
        c.run_for(1ms);
    }
    // Crash while the last proposals are still being flushed and replicated.
    const log_index durable_before = c.log(*leader).durable_last_index();
    CHECK(c.node(*leader).status().last_index > durable_before); // something is unflushed
    c.crash(*leader);
    std::vector<std::string> acknowledged;
    for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i]->has_value() && !(**slots[i]).error) {
            acknowledged.push_back(payloads[i]);
        }
    }
    CHECK_FALSE(acknowledged.empty());
    auto next = c.wait_for_leader(3s);
    REQUIRE(next);
    REQUIRE(c.propose_and_wait("after")); // commits everything before it
    c.start(*leader);
    c.run_for(2s);
    for (node_id id : c.ids()) {
        const auto& applied = c.machine(id).applied;
        for (const auto& a : acknowledged) {
            CHECK_MESSAGE(std::find(applied.begin(), applied.end(), a) != applied.end(),
                          "node " << id << " lost acknowledged " << a);
        }
    }
}

/// Runs a fixed scenario and hashes every message sent, in order, as wire bytes.
std::uint64_t trace_hash(std::uint64_t seed) {
    auto o = options(seed, 5);
    o.min_latency = 1ms;
    o.max_latency = 10ms;
    cluster c(o);
    std::uint64_t hash = 1469598103934665603ULL;
    c.network().set_filter([&](node_id, node_id, const message& m) {
        for (std::byte b : wire::encode_frame(m)) {
            hash = (hash ^ static_cast<std::uint64_t>(b)) * 1099511628211ULL;
        }
        return true;
    });
    c.start_all();
    c.wait_for_leader();
    for (int i = 0; i < 20; ++i) {
        if (auto l = c.leader()) {
            c.propose(*l, "x" + std::to_string(i));
        }
        c.run_for(20ms);
        if (i == 10) {
            c.crash(*c.leader());
        }
    }
    c.run_for(1s);
    return hash;
}

TEST_CASE("determinism (design principle 1): the same seed gives a byte-identical trace") {
    const auto a = trace_hash(77);
    const auto b = trace_hash(77);
    CHECK(a == b);
    CHECK(trace_hash(78) != a);
}

TEST_CASE("bad input: unknown senders, misaddressed and stale messages and absurd indexes are "
          "dropped, counted, and change nothing") {
    cluster c(options(8));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    REQUIRE(c.propose_and_wait("a"));
    auto& l = c.node(*leader);
    const auto before = l.status();
    const term t = before.current_term;
    const node_id follower = *leader == node_id{1} ? node_id{2} : node_id{1};

    l.receive(append_request{
        node_id{99}, *leader, term{t.value() + 5}, log_index{}, term{}, log_index{}, 0, {}});
    CHECK(l.counters().dropped(raft::drop_reason::unknown_sender) == 1);

    l.receive(vote_request{follower, node_id{7}, t, log_index{}, term{}, false, false});
    l.receive(vote_request{*leader, *leader, t, log_index{}, term{}, false, false});
    CHECK(l.counters().dropped(raft::drop_reason::wrong_recipient) == 2);

    l.receive(append_response{follower, *leader, term{t.value() - 1}, true, log_index{1}, term{},
                              log_index{}, 0});
    CHECK(l.counters().dropped(raft::drop_reason::stale_term) == 1);

    l.receive(
        append_response{follower, *leader, t, true, log_index{1'000'000}, term{}, log_index{}, 0});
    CHECK(l.counters().dropped(raft::drop_reason::index_out_of_range) == 1);

    // Nobody asked. (Late votes from the election this leader already won count here too.)
    const auto unexpected = l.counters().dropped(raft::drop_reason::unexpected);
    l.receive(vote_response{follower, *leader, t, true, false});
    CHECK(l.counters().dropped(raft::drop_reason::unexpected) == unexpected + 1);

    // TimeoutNow is for followers, from their leader (thesis §3.10); a leader ignores it.
    l.receive(timeout_now{follower, *leader, t});
    CHECK(l.counters().dropped(raft::drop_reason::unexpected) == unexpected + 2);

    // A higher-term vote request while the leader is healthy: ignored (thesis §4.2.3).
    l.receive(
        vote_request{follower, *leader, term{t.value() + 3}, log_index{1000}, t, false, false});
    CHECK(l.counters().dropped(raft::drop_reason::leader_lease) == 1);

    const auto after = l.status();
    CHECK(after.role == role::leader);
    CHECK(after.current_term == t);
    CHECK(after.commit_index == before.commit_index);
    CHECK(after.last_index == before.last_index);
    REQUIRE(c.propose_and_wait("b")); // still works
}

TEST_CASE("propose outcomes: not_leader with a hint on a follower; outcome_unknown when "
          "leadership is lost after append") {
    cluster c(options(9));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    const node_id follower = *leader == node_id{1} ? node_id{2} : node_id{1};
    auto refused = c.propose(follower, "x");
    c.run_for(1ms);
    REQUIRE(refused->has_value());
    CHECK((*refused)->error == errc::not_leader);
    CHECK((*refused)->leader_hint == *leader);
    CHECK((*refused)->index == log_index{});
    CHECK(c.node(follower).counters().rejected(raft::rejection::not_leader) == 1);

    c.network().isolate(*leader, c.ids());
    c.set_partitioned(*leader, true);
    auto orphan = c.propose(*leader, "orphan");
    c.run_until([&] { return orphan->has_value(); }, 2s);
    REQUIRE(orphan->has_value());
    CHECK((*orphan)->error == errc::outcome_unknown);
    CHECK((*orphan)->index > log_index{});
}

TEST_CASE("flow control: the inflight window bounds appends to a silent follower, and the "
          "uncommitted-bytes cap refuses proposals with an errc instead of queueing them") {
    auto o = options(10);
    o.node_config.max_inflight_appends = 3;
    o.node_config.max_entries_per_append = 4;
    o.node_config.max_uncommitted_bytes = 64 * 1024;
    o.node_config.check_quorum = false;
    cluster c(o);
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    REQUIRE(c.propose_and_wait("warm-up"));
    std::vector<node_id> followers;
    for (node_id id : c.ids()) {
        if (id != *leader) {
            followers.push_back(id);
            c.network().hold(*leader, id); // nothing reaches them, nothing is acknowledged
        }
    }
    // 200 proposals within 20 ms, well inside an election timeout, so leadership is stable.
    std::size_t refused = 0;
    std::size_t accepted = 0;
    for (int i = 0; i < 200; ++i) {
        auto slot = c.propose(*leader, std::string(1000, 'p'));
        c.run_for(100us);
        if (!slot->has_value()) {
            ++accepted; // appended, waiting for a quorum that cannot answer
        } else {
            REQUIRE((*slot)->error == errc::uncommitted_limit);
            ++refused;
        }
    }
    CHECK(refused > 0);
    CHECK(accepted < 70); // ~64 KiB of 1 KiB entries
    CHECK(c.node(*leader).counters().rejected(raft::rejection::uncommitted_limit) == refused);
    for (const auto& f : c.node(*leader).status().followers) {
        CHECK(f.inflight <= 3);
    }
    // Held links carry at most the window's appends plus heartbeats, not one per proposal.
    CHECK(c.network().held_count() < 200);
    for (node_id id : followers) {
        c.network().release(*leader, id);
    }
    c.run_for(2s);
    CHECK(c.node(followers[0]).commit_index() == c.node(*leader).status().last_index);
}

TEST_CASE("storage failure: a failed flush stops the node for good, and the rest carry on") {
    cluster c(options(11));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    c.log(*leader).set_flush_mode(storage::flush_mode::held);
    auto slot = c.propose(*leader, "doomed?");
    c.run_for(1ms);
    c.log(*leader).fail_flushes();
    c.run_for(1ms);
    REQUIRE(slot->has_value());
    CHECK((*slot)->error == errc::storage_failure);
    CHECK(c.node(*leader).stopped());
    CHECK(c.node(*leader).status().stopped);
    CHECK(c.node(*leader).counters().flush_failures == 1);
    c.set_partitioned(*leader, true);
    auto next = c.wait_for_leader(3s);
    REQUIRE(next);
    CHECK(*next != *leader);
    auto r = c.propose_and_wait("after");
    REQUIRE(r);
    CHECK_FALSE(r->error);
}

TEST_CASE("status() and the log sink explain what a node did") {
    auto o = options(12);
    std::vector<std::string> lines;
    o.node_config.sink = [&](raft::log_level level, std::string_view what,
                             std::span<const raft::log_field> fields) {
        std::string line = std::string(raft::to_string(level)) + " " + std::string(what);
        for (const auto& f : fields) {
            line += " " + std::string(f.key) + "=" + std::to_string(f.value);
        }
        lines.push_back(line);
    };
    cluster c(o);
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    REQUIRE(c.propose_and_wait("s"));
    c.run_for(200ms);
    auto s = c.node(*leader).status();
    CHECK(s.role == role::leader);
    CHECK(s.leader == *leader);
    CHECK(s.commit_index == s.last_index);
    CHECK(s.applied_index == s.commit_index);
    CHECK(s.durable_index == s.last_index);
    REQUIRE(s.followers.size() == 2);
    for (const auto& f : s.followers) {
        CHECK(f.match == s.last_index);
        CHECK(f.next == s.last_index + 1);
        CHECK(f.state == raft::replication_state::replicate);
    }
    CHECK(s.counters.elections_won == 1);
    CHECK(s.counters.messages_sent > 0);
    CHECK(s.counters.entry_bytes_sent > 0);
    CHECK(s.counters.flushes > 0);
    CHECK(s.counters.entries_applied == 2); // the no-op and "s"
    bool saw_leader_line = false;
    for (const auto& line : lines) {
        saw_leader_line |= line.find("info became leader node=") == 0;
    }
    CHECK(saw_leader_line);
}

TEST_CASE("a single-node cluster elects itself and commits on its own flush") {
    cluster c(options(13, 1));
    c.start_all();
    REQUIRE(c.wait_for_leader(1s) == node_id{1});
    auto r = c.propose_and_wait("solo");
    REQUIRE(r);
    CHECK_FALSE(r->error);
    CHECK(c.machine(node_id{1}).applied == std::vector<std::string>{"solo"});
}

TEST_CASE("restart: a node recovers term, vote and log from storage and applies each entry "
          "once per start") {
    cluster c(options(14));
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    for (int i = 0; i < 10; ++i) {
        REQUIRE(c.propose_and_wait("r" + std::to_string(i)));
    }
    c.run_for(200ms);
    const node_id victim = *leader == node_id{1} ? node_id{2} : node_id{1};
    const term t = c.node(victim).current_term();
    c.restart(victim);
    CHECK(c.node(victim).current_term() == t);
    c.run_for(1s);
    CHECK(c.machine(victim).applied.size() == 10);
    CHECK(c.machine(victim).applied.front() == "r0");
}

} // namespace
