// Membership changes through joint consensus, learners, and leadership transfer (thesis
// chapter 4 and §3.10). The invariant checker runs after every event: at most one leader per
// term, log matching, leader completeness, state machine safety, through every change.

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
using raft::role;

sim::cluster_options opts(std::uint64_t seed, std::size_t size, std::size_t initial_voters) {
    sim::cluster_options o;
    o.size = size;
    o.seed = seed;
    o.initial_voters = initial_voters;
    return o;
}

std::vector<node_id> ids(std::initializer_list<std::uint64_t> v) {
    std::vector<node_id> out;
    for (auto i : v) {
        out.push_back(node_id{i});
    }
    return out;
}

/// Runs a change through the current leader and waits for its completion.
template <class Start>
std::error_code change(cluster& c, Start&& start, sim::duration limit = 5s) {
    auto out = std::make_shared<std::optional<std::error_code>>();
    start(c.node(*c.leader()), [out](std::error_code ec) { *out = ec; });
    REQUIRE(c.run_until([&] { return out->has_value(); }, limit));
    return **out;
}

/// Writes through whichever node leads, retrying refusals, and returns the acknowledged ones.
std::vector<std::string> keep_writing(cluster& c, int count, const std::string& prefix) {
    std::vector<std::string> acked;
    for (int i = 0; i < count; ++i) {
        const std::string payload = prefix + std::to_string(i);
        for (int attempt = 0; attempt < 20; ++attempt) {
            auto l = c.wait_for_leader(2s);
            if (!l) {
                continue;
            }
            auto r = c.propose_and_wait(payload, 2s);
            if (r && !r->error) {
                acked.push_back(payload);
                break;
            }
        }
    }
    return acked;
}

bool holds_all(const std::vector<std::string>& applied, const std::vector<std::string>& want) {
    for (const auto& w : want) {
        if (std::find(applied.begin(), applied.end(), w) == applied.end()) {
            return false;
        }
    }
    return true;
}

TEST_CASE("thesis §4.2.1: replace a failed node: add a learner, let it catch up, promote it, "
          "remove the dead one; writes continue and nothing acknowledged is lost") {
    cluster c(opts(1, 4, 3));
    c.start_all(); // node 4 starts with no configuration: it waits to be added
    REQUIRE(c.wait_for_leader());
    auto before = keep_writing(c, 20, "a");
    node_id dead = *c.leader() == node_id{3} ? node_id{2} : node_id{3};
    c.crash(dead);
    c.set_partitioned(dead, true);
    REQUIRE(c.wait_for_leader());

    CHECK_FALSE(change(c, [](auto& n, auto done) { n.add_learner(node_id{4}, std::move(done)); }));
    CHECK(c.node(*c.leader()).config().is_learner(node_id{4}));
    auto during = keep_writing(c, 20, "b");
    REQUIRE(c.run_until(
        [&] { return c.node(node_id{4}).applied_index() >= c.node(*c.leader()).commit_index(); },
        5s));
    CHECK_FALSE(change(c, [](auto& n, auto done) { n.promote(node_id{4}, std::move(done)); }));
    CHECK_FALSE(change(c, [&](auto& n, auto done) { n.remove(dead, std::move(done)); }));
    const membership final_config = c.node(*c.leader()).config();
    CHECK(final_config == membership(final_config.voters()));
    CHECK(final_config.is_voter(node_id{4}));
    CHECK_FALSE(final_config.is_member(dead));
    CHECK_FALSE(final_config.is_joint());
    auto after = keep_writing(c, 10, "c");
    for (node_id id : final_config.voters()) {
        REQUIRE(c.run_until(
            [&] { return c.node(id).applied_index() >= c.node(*c.leader()).commit_index(); }, 5s));
        CHECK(holds_all(c.machine(id).applied, before));
        CHECK(holds_all(c.machine(id).applied, during));
        CHECK(holds_all(c.machine(id).applied, after));
    }
}

TEST_CASE("thesis §4.3: grow 3 -> 5 and shrink 5 -> 3 through the joint configuration") {
    cluster c(opts(2, 5, 3));
    c.start_all();
    REQUIRE(c.wait_for_leader());
    keep_writing(c, 5, "x");
    for (std::uint64_t n : {4, 5}) {
        CHECK_FALSE(
            change(c, [n](auto& l, auto done) { l.add_learner(node_id{n}, std::move(done)); }));
    }
    REQUIRE(c.run_until(
        [&] {
            const auto last = c.node(*c.leader()).status().last_index;
            return c.node(node_id{4}).status().last_index == last &&
                   c.node(node_id{5}).status().last_index == last;
        },
        5s));
    // Both at once: one joint change C_{1,2,3},{1..5}.
    CHECK_FALSE(change(c, [](auto& l, auto done) {
        l.change_membership(ids({1, 2, 3, 4, 5}), {}, std::move(done));
    }));
    CHECK(c.node(*c.leader()).config().voters() == ids({1, 2, 3, 4, 5}));
    CHECK(c.node(*c.leader()).counters().membership_changes >= 2); // joint, then C_new
    keep_writing(c, 5, "y");

    // Shrink to three of the new ones; the leader may be among the removed.
    CHECK_FALSE(change(c, [](auto& l, auto done) {
        l.change_membership(ids({3, 4, 5}), {}, std::move(done));
    }));
    REQUIRE(c.run_until(
        [&] {
            auto l = c.leader();
            return l && c.node(*l).config().voters() == ids({3, 4, 5});
        },
        5s));
    auto tail = keep_writing(c, 5, "z");
    CHECK(tail.size() == 5);
    for (std::uint64_t n : {1, 2}) {
        CHECK(c.node(node_id{n}).role() != role::leader);
    }
}

TEST_CASE("thesis §4.2.2: a leader that removes itself keeps leading until C_new commits, then "
          "steps down; the rest elect a leader without it") {
    cluster c(opts(3, 3, 3));
    c.start_all();
    const node_id old_leader = *c.wait_for_leader();
    std::vector<node_id> rest;
    for (node_id id : c.ids()) {
        if (id != old_leader) {
            rest.push_back(id);
        }
    }
    CHECK_FALSE(change(c, [&](auto& l, auto done) { l.remove(old_leader, std::move(done)); }));
    c.set_partitioned(old_leader, true);
    REQUIRE(c.run_until(
        [&] {
            auto l = c.leader();
            return l && *l != old_leader;
        },
        5s));
    CHECK(c.node(old_leader).role() != role::leader);
    CHECK(keep_writing(c, 5, "after").size() == 5);
    // The removed server cannot disrupt the others (thesis §4.2.3): terms stay put.
    const term t = c.node(*c.leader()).current_term();
    c.run_for(2s);
    CHECK(c.node(*c.leader()).current_term() == t);
}

TEST_CASE("thesis §4.2.1: a learner receives the log but never votes, never counts toward "
          "commitment, and never becomes leader") {
    cluster c(opts(4, 3, 2));
    c.start_all();
    REQUIRE(c.wait_for_leader());
    CHECK_FALSE(change(c, [](auto& l, auto done) { l.add_learner(node_id{3}, std::move(done)); }));
    keep_writing(c, 5, "l");
    REQUIRE(c.run_until([&] { return c.machine(node_id{3}).applied.size() == 5; }, 5s));
    // With the other voter down, the leader and the learner are no majority of {1, 2}.
    const node_id leader = *c.leader();
    const node_id other = leader == node_id{1} ? node_id{2} : node_id{1};
    c.crash(other);
    c.set_partitioned(other, true);
    auto r = c.propose(leader, "never");
    c.run_for(1s);
    const bool committed = r->has_value() && !(*r)->error;
    CHECK_FALSE(committed);
    // The leader steps down (check-quorum); the learner never campaigns.
    c.run_for(2s);
    CHECK(c.node(node_id{3}).counters().elections_started == 0);
    CHECK(c.node(node_id{3}).counters().pre_votes_started == 0);
    CHECK(c.node(node_id{3}).role() == role::follower);
}

TEST_CASE("thesis §4.1: bad change requests get an errc and change nothing") {
    cluster c(opts(5, 4, 3));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    auto& l = c.node(leader);
    const membership before = l.config();
    auto ec = [&](auto&& start) {
        std::optional<std::error_code> out;
        start([&](std::error_code e) { out = e; });
        c.run_for(1ms);
        REQUIRE(out.has_value());
        return *out;
    };
    CHECK(ec([&](auto d) { l.change_membership({}, {}, std::move(d)); }) == errc::invalid_argument);
    CHECK(ec([&](auto d) {
              l.change_membership(ids({1, 2, 2}), {}, std::move(d));
          }) == errc::invalid_argument);
    CHECK(ec([&](auto d) {
              l.change_membership(ids({1, 2}), ids({2}), std::move(d));
          }) == errc::invalid_argument);
    CHECK(ec([&](auto d) {
              l.change_membership(ids({1, 2, 3, 9}), {}, std::move(d));
          }) == errc::unknown_node);
    CHECK(ec([&](auto d) { l.remove(node_id{9}, std::move(d)); }) == errc::unknown_node);
    CHECK(ec([&](auto d) { l.promote(node_id{1}, std::move(d)); }) == errc::unknown_node);
    CHECK(ec([&](auto d) { l.add_learner(node_id{1}, std::move(d)); }) == errc::already_exists);
    const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    CHECK(ec([&](auto d) { c.node(follower).add_learner(node_id{4}, std::move(d)); }) ==
          errc::not_leader);
    // One change at a time.
    std::optional<std::error_code> first;
    l.add_learner(node_id{4}, [&](std::error_code e) { first = e; });
    CHECK(ec([&](auto d) { l.remove(node_id{3}, std::move(d)); }) == errc::change_in_progress);
    CHECK(l.status().membership_change_in_flight);
    REQUIRE(c.run_until([&] { return first.has_value(); }, 2s));
    CHECK_FALSE(*first);
    // A learner that lags is not promoted.
    c.crash(node_id{4});
    c.set_partitioned(node_id{4}, true);
    keep_writing(c, 100, "lag");
    CHECK(ec([&](auto d) { c.node(*c.leader()).promote(node_id{4}, std::move(d)); }) ==
          errc::learner_behind);
    CHECK(before.voters() == c.node(*c.leader()).config().voters());
}

TEST_CASE("thesis §4: membership changes under a partition that splits old and new majorities "
          "keep at most one leader per term") {
    for (std::uint64_t seed = 10; seed < 16; ++seed) {
        CAPTURE(seed);
        cluster c(opts(seed, 5, 3));
        c.start_all();
        REQUIRE(c.wait_for_leader());
        for (std::uint64_t n : {4, 5}) {
            change(c, [n](auto& l, auto done) { l.add_learner(node_id{n}, std::move(done)); });
        }
        c.run_for(200ms);
        auto started = std::make_shared<std::optional<std::error_code>>();
        c.node(*c.leader()).change_membership(ids({3, 4, 5}), {}, [started](std::error_code e) {
            *started = e;
        });
        // Cut {1, 2} from {3, 4, 5} while the change is in flight.
        for (std::uint64_t a : {1, 2}) {
            for (std::uint64_t b : {3, 4, 5}) {
                c.network().disconnect(node_id{a}, node_id{b});
            }
        }
        c.run_for(3s);
        c.network().heal();
        c.run_for(3s);
        REQUIRE(c.wait_for_leader(5s));
        CHECK(keep_writing(c, 3, "p").size() == 3); // the checker ran after every event
    }
}

TEST_CASE("thesis §3.10: leadership transfer to an up-to-date follower, to a lagging one (caught "
          "up first), and to a partitioned one (times out; the old leader resumes)") {
    SUBCASE("up to date") {
        cluster c(opts(6, 3, 3));
        c.start_all();
        const node_id old_leader = *c.wait_for_leader();
        keep_writing(c, 3, "t");
        const node_id target = old_leader == node_id{3} ? node_id{2} : node_id{3};
        c.run_for(100ms);
        CHECK_FALSE(
            change(c, [&](auto& l, auto done) { l.transfer_leadership(target, std::move(done)); }));
        REQUIRE(c.run_until([&] { return c.leader() == target; }, 2s));
        CHECK(keep_writing(c, 3, "u").size() == 3);
    }
    SUBCASE("lagging") {
        cluster c(opts(7, 3, 3));
        c.start_all();
        const node_id old_leader = *c.wait_for_leader();
        const node_id target = old_leader == node_id{3} ? node_id{2} : node_id{3};
        c.network().hold(old_leader, target);
        keep_writing(c, 10, "lag");
        auto done = std::make_shared<std::optional<std::error_code>>();
        c.node(old_leader).transfer_leadership(target, [done](std::error_code e) { *done = e; });
        // Proposals are refused while the transfer runs.
        auto refused = c.propose(old_leader, "paused");
        c.run_for(1ms);
        REQUIRE(refused->has_value());
        CHECK((*refused)->error == errc::transfer_in_progress);
        c.network().release(old_leader, target);
        REQUIRE(c.run_until([&] { return done->has_value(); }, 2s));
        CHECK_FALSE(**done);
        REQUIRE(c.run_until([&] { return c.leader() == target; }, 2s));
        const auto old_applied = c.machine(old_leader).applied;
        REQUIRE(c.run_until([&] { return c.machine(target).applied.size() >= old_applied.size(); },
                            2s));
        CHECK(holds_all(c.machine(target).applied, old_applied)); // it was caught up first
    }
    SUBCASE("partitioned") {
        cluster c(opts(8, 3, 3));
        c.start_all();
        const node_id old_leader = *c.wait_for_leader();
        const node_id target = old_leader == node_id{3} ? node_id{2} : node_id{3};
        c.network().disconnect(old_leader, target);
        auto done = std::make_shared<std::optional<std::error_code>>();
        c.node(old_leader).transfer_leadership(target, [done](std::error_code e) { *done = e; });
        REQUIRE(c.run_until([&] { return done->has_value(); }, 2s));
        CHECK(**done == errc::timeout);
        CHECK(c.node(old_leader).role() == role::leader);
        CHECK(c.node(old_leader).status().transfer_target == no_node);
        auto r = c.propose_and_wait("resumed");
        REQUIRE(r);
        CHECK_FALSE(r->error);
    }
    SUBCASE("bad requests") {
        cluster c(opts(9, 3, 3));
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        std::optional<std::error_code> a, b;
        c.node(leader).transfer_leadership(leader, [&](std::error_code e) { a = e; });
        c.node(leader).transfer_leadership(node_id{9}, [&](std::error_code e) { b = e; });
        c.run_for(1ms);
        CHECK(a == errc::invalid_argument);
        CHECK(b == errc::unknown_node);
    }
}

} // namespace
