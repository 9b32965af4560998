// Proposal forwarding (config::forward_proposals): a follower hands proposals to its leader
// and reports the outcome from its own apply. Every outcome a caller can see is shown here.

#include "support/append_machine.hpp"

#include <doctest/doctest.h>

#include <synod/sim/cluster.hpp>

#include <chrono>
#include <string>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using cluster = sim::cluster<test::append_machine>;

sim::cluster_options forwarding(std::uint64_t seed) {
    sim::cluster_options o;
    o.seed = seed;
    o.node_config.forward_proposals = true;
    return o;
}

node_id other_follower(node_id leader, node_id follower) {
    for (std::uint64_t i = 1; i <= 3; ++i) {
        if (node_id{i} != leader && node_id{i} != follower) {
            return node_id{i};
        }
    }
    return no_node;
}

TEST_CASE("forwarding: a proposal made on a follower commits through the leader and completes "
          "with the follower's own apply result") {
    cluster c(forwarding(1));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    auto first = c.propose(follower, "a");
    auto second = c.propose(follower, "b");
    REQUIRE(c.run_until([&] { return first->has_value() && second->has_value(); }, 2s));
    REQUIRE_FALSE((*first)->error);
    REQUIRE_FALSE((*second)->error);
    CHECK((*first)->value == 1u); // append_machine answers the list length after the apply
    CHECK((*second)->value == 2u);
    CHECK((*second)->index == (*first)->index + 1);
    CHECK(c.node(follower).counters().proposals_forwarded == 2);
    REQUIRE(c.run_until([&] { return c.machine(leader).applied.size() == 2; }, 1s));
    CHECK(c.machine(leader).applied == std::vector<std::string>{"a", "b"});
}

TEST_CASE("forwarding: without a known leader a follower refuses at once with leader_unknown; "
          "without forwarding it refuses with not_leader") {
    SUBCASE("no leader yet") {
        cluster c(forwarding(2));
        c.start_all();
        auto r = c.propose(node_id{1}, "x");
        c.run_for(1ms); // completions are posted, never run inside propose
        REQUIRE(r->has_value());
        CHECK((*r)->error == errc::leader_unknown);
    }
    SUBCASE("forwarding off") {
        auto o = forwarding(3);
        o.node_config.forward_proposals = false;
        cluster c(o);
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
        auto r = c.propose(follower, "x");
        c.run_for(1ms);
        REQUIRE(r->has_value());
        CHECK((*r)->error == errc::not_leader);
        CHECK((*r)->leader_hint == leader);
    }
}

TEST_CASE("forwarding: a forward the leader never answers completes with outcome_unknown after "
          "an election timeout (it may have been appended)") {
    cluster c(forwarding(4));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    c.network().set_filter([](node_id, node_id, const message& m) {
        return !std::holds_alternative<proposal_forward_response>(m);
    });
    auto r = c.propose(follower, "x");
    REQUIRE(c.run_until([&] { return r->has_value(); }, 1s));
    CHECK((*r)->error == errc::outcome_unknown);
    // It was appended and commits anyway: the reason the outcome is "unknown", not "failed".
    REQUIRE(c.run_until([&] { return c.machine(leader).applied.size() == 1; }, 1s));
}

TEST_CASE("forwarding: an appended forward that a new leader overwrites completes with "
          "proposal_dropped (paper §5.4: another entry committed at its index)") {
    cluster c(forwarding(5));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    // The leader answers the forward but its appends reach no one.
    c.network().set_filter([leader](node_id from, node_id, const message& m) {
        return from != leader || !std::holds_alternative<append_request>(m);
    });
    auto r = c.propose(follower, "lost");
    REQUIRE(c.run_until([&] { return c.node(follower).counters().proposals_forwarded == 1; }, 1s));
    c.run_for(5ms); // the answer (appended at some index) arrives
    CHECK_FALSE(r->has_value());
    c.crash(leader);
    c.set_partitioned(leader, true);
    c.network().set_filter({});
    REQUIRE(c.run_until([&] { return r->has_value(); }, 3s));
    CHECK((*r)->error == errc::proposal_dropped);
    CHECK((*r)->index > log_index{});
    const node_id survivor = other_follower(leader, follower);
    CHECK(c.machine(survivor).applied.empty());
}

TEST_CASE("forwarding: the leader's refusals reach the follower's caller unchanged") {
    auto o = forwarding(6);
    o.node_config.max_proposal_bytes = 4;
    cluster c(o);
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    // Too large is refused by the follower itself, before anything is sent.
    auto big = c.propose(follower, "too large");
    c.run_for(1ms);
    REQUIRE(big->has_value());
    CHECK((*big)->error == errc::proposal_too_large);
    CHECK(c.node(follower).counters().proposals_forwarded == 0);
    // A full disk at the leader refuses the forwarded proposal there.
    c.log(leader).set_disk_full(true);
    auto refused = c.propose(follower, "ok");
    REQUIRE(c.run_until([&] { return refused->has_value(); }, 1s));
    CHECK((*refused)->error == errc::disk_full);
    CHECK(c.node(follower).counters().proposals_forwarded == 1);
    c.log(leader).set_disk_full(false);
    auto accepted = c.propose(follower, "ok");
    REQUIRE(c.run_until([&] { return accepted->has_value(); }, 1s));
    CHECK_FALSE((*accepted)->error);
}

} // namespace
