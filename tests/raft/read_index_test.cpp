// Linearizable reads (thesis §6.4): ReadIndex on the leader, follower reads, lease reads.
// The append_machine's state is the list of applied payloads, so "a read observes a write"
// means the list seen inside the read's completion holds it.

#include "support/append_machine.hpp"

#include <doctest/doctest.h>

#include <synod/sim/cluster.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using cluster = sim::cluster<test::append_machine>;
using raft::read_result;

sim::cluster_options opts(std::uint64_t seed, std::size_t size = 3) {
    sim::cluster_options o;
    o.size = size;
    o.seed = seed;
    return o;
}

node_id follower_of(node_id leader) {
    return leader == node_id{1} ? node_id{2} : node_id{1};
}

/// What a read saw: its result and the machine's applied list inside the completion.
struct observed {
    std::optional<read_result> result;
    std::vector<std::string> state;
};

std::shared_ptr<observed> read(cluster& c, node_id at, bool lease = false) {
    auto out = std::make_shared<observed>();
    auto done = [&c, at, out](read_result r) {
        out->result = r;
        if (!r.error) {
            out->state = c.machine(at).applied;
        }
    };
    if (lease) {
        c.node(at).read_under_lease(done);
    } else {
        c.node(at).read_index(done);
    }
    return out;
}

TEST_CASE("thesis §6.4: a read issued after a write completed observes it, on the leader and on "
          "a follower") {
    cluster c(opts(1));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id follower = follower_of(leader);
    for (int i = 0; i < 5; ++i) {
        auto w = c.propose_and_wait("w" + std::to_string(i));
        REQUIRE(w);
        REQUIRE_FALSE(w->error);
        auto on_leader = read(c, leader);
        auto on_follower = read(c, follower);
        REQUIRE(c.run_until(
            [&] { return on_leader->result.has_value() && on_follower->result.has_value(); }, 2s));
        REQUIRE_FALSE(on_leader->result->error);
        REQUIRE_FALSE(on_follower->result->error);
        CHECK(on_leader->result->index >= w->index);
        CHECK(on_follower->result->index >= w->index);
        CHECK(on_leader->state.size() == static_cast<std::size_t>(i + 1));
        CHECK(on_follower->state.size() == static_cast<std::size_t>(i + 1));
        CHECK(on_follower->state.back() == "w" + std::to_string(i));
    }
}

TEST_CASE("thesis §6.4: concurrent reads on the leader share one confirmation round") {
    cluster c(opts(2));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    c.run_for(100ms);
    const auto rounds = c.node(leader).counters().read_index_rounds;
    std::vector<std::shared_ptr<observed>> reads;
    for (int i = 0; i < 20; ++i) {
        reads.push_back(read(c, leader));
    }
    REQUIRE(c.run_until(
        [&] {
            for (auto& r : reads) {
                if (!r->result) {
                    return false;
                }
            }
            return true;
        },
        1s));
    for (auto& r : reads) {
        CHECK_FALSE(r->result->error);
    }
    CHECK(c.node(leader).counters().read_index_rounds == rounds + 1);
    CHECK(c.node(leader).counters().reads_served >= 20);
}

TEST_CASE("thesis §6.4: a deposed leader cut off on the minority side serves no read, by ReadIndex "
          "or lease, while the majority elects a leader that serves the new data") {
    cluster c(opts(3, 5));
    c.start_all();
    const node_id old_leader = *c.wait_for_leader();
    REQUIRE_FALSE(c.propose_and_wait("before")->error);
    // Isolate the old leader; let it keep believing it leads for a while.
    c.network().isolate(old_leader, c.ids());
    c.set_partitioned(old_leader, true);
    c.run_for(1ms);
    auto stale_index = read(c, old_leader);
    auto stale_lease = read(c, old_leader, true);
    // The majority elects a new leader and commits a write the old one never sees.
    REQUIRE(c.run_until(
        [&] {
            auto l = c.leader();
            return l && *l != old_leader;
        },
        5s));
    const node_id new_leader = *c.leader();
    auto w = c.propose(new_leader, "after");
    REQUIRE(c.run_until([&] { return w->has_value(); }, 2s));
    REQUIRE_FALSE((*w)->error);
    auto fresh = read(c, new_leader);
    REQUIRE(c.run_until([&] { return fresh->result && stale_index->result && stale_lease->result; },
                        5s));
    CHECK(stale_index->result->error == errc::stale_read);
    CHECK(stale_lease->result->error == errc::stale_read);
    REQUIRE_FALSE(fresh->result->error);
    CHECK(fresh->state.back() == "after");
    // Later reads on the deposed side fail too, and never return the old state.
    auto later = read(c, old_leader, true);
    REQUIRE(c.run_until([&] { return later->result.has_value(); }, 2s));
    CHECK(later->result->error);
}

TEST_CASE("thesis §6.4.1: under a valid lease the leader serves reads without a message; without "
          "check-quorum the lease read falls back to ReadIndex") {
    SUBCASE("lease") {
        cluster c(opts(4));
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        REQUIRE_FALSE(c.propose_and_wait("x")->error);
        c.run_for(60ms); // a heartbeat round has been answered: the lease holds
        const auto sent = c.node(leader).counters().messages_sent;
        auto r = read(c, leader, true);
        c.run_for(1us);
        REQUIRE(r->result.has_value());
        CHECK_FALSE(r->result->error);
        CHECK(r->state == std::vector<std::string>{"x"});
        CHECK(c.node(leader).counters().lease_reads == 1);
        CHECK(c.node(leader).counters().messages_sent == sent);
    }
    SUBCASE("no check-quorum") {
        auto o = opts(5);
        o.node_config.check_quorum = false;
        cluster c(o);
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        c.run_for(60ms);
        const auto rounds = c.node(leader).counters().read_index_rounds;
        auto r = read(c, leader, true);
        REQUIRE(c.run_until([&] { return r->result.has_value(); }, 1s));
        CHECK_FALSE(r->result->error);
        CHECK(c.node(leader).counters().lease_reads == 0);
        CHECK(c.node(leader).counters().read_index_rounds == rounds + 1);
    }
}

TEST_CASE("thesis §3.10, §6.4.1: once a leadership transfer sends TimeoutNow the leader serves "
          "no read under its lease (voters set their lease promise aside for the target)") {
    cluster c(opts(9));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id target = follower_of(leader);
    REQUIRE_FALSE(c.propose_and_wait("x")->error);
    c.run_for(60ms);
    // The target never answers, so the transfer stays under way until it times out.
    c.network().set_filter(
        [target](node_id from, node_id, const message&) { return from != target; });
    std::optional<std::error_code> transferred;
    c.node(leader).transfer_leadership(target, [&](std::error_code e) { transferred = e; });
    c.run_for(1ms);
    auto r = read(c, leader, true);
    REQUIRE(c.run_until([&] { return r->result.has_value(); }, 1s));
    CHECK(c.node(leader).counters().lease_reads == 0); // served by ReadIndex, if at all
    REQUIRE(c.run_until([&] { return transferred.has_value(); }, 2s));
    CHECK(*transferred == errc::timeout);
}

TEST_CASE("thesis §6.4: reads get a clear error without a leader, and a follower whose leader "
          "stops answering gets stale_read") {
    SUBCASE("no leader") {
        cluster c(opts(6));
        c.start(node_id{1});
        auto r = read(c, node_id{1});
        c.run_for(1ms);
        REQUIRE(r->result.has_value());
        CHECK(r->result->error == errc::leader_unknown);
    }
    SUBCASE("leader unreachable") {
        cluster c(opts(7));
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        const node_id follower = follower_of(leader);
        c.network().cut(leader, follower); // requests arrive, answers do not
        auto r = read(c, follower);
        REQUIRE(c.run_until([&] { return r->result.has_value(); }, 2s));
        CHECK(r->result->error == errc::stale_read);
    }
}

TEST_CASE("thesis §6.4: a single-node group confirms reads by itself") {
    cluster c(opts(8, 1));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    REQUIRE_FALSE(c.propose_and_wait("solo")->error);
    auto r = read(c, leader);
    REQUIRE(c.run_until([&] { return r->result.has_value(); }, 1s));
    CHECK_FALSE(r->result->error);
    CHECK(r->state == std::vector<std::string>{"solo"});
}

TEST_CASE("raft config: a lease drift bound at or above the election timeout is refused") {
    raft::config cfg;
    cfg.id = node_id{1};
    cfg.lease_clock_drift = cfg.election_timeout_min;
    CHECK(cfg.validate() == errc::invalid_argument);
}

} // namespace
