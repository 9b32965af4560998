// Client sessions (Raft thesis §6.3) on a simulated cluster: a client whose proposal's outcome
// it never learned retries through the next leader and the command applies exactly once;
// session state survives snapshots and restarts; sessions expire by leader-stamped time.

#include "support/counter_machine.hpp"

#include <doctest/doctest.h>

#include <synod/machines/client_sessions.hpp>
#include <synod/sim/cluster.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

TEST_SUITE_BEGIN("machines");

using namespace synod;
using namespace std::chrono_literals;
using machine = machines::client_sessions<test::counter_machine>;
using cluster = sim::cluster<machine>;

/// Replicated time as a leader would stamp it: the simulated clock, in milliseconds.
std::uint64_t now_ms(cluster& c) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(c.world().now().time_since_epoch())
            .count());
}

std::optional<cluster::result> propose(cluster& c, const shared_bytes& command) {
    return c.propose_and_wait(command.str(), 5s);
}

std::uint64_t register_session(cluster& c) {
    const auto r = propose(c, machine::encode_register_session(now_ms(c)));
    REQUIRE(r);
    REQUIRE_FALSE(r->error);
    REQUIRE(r->value);
    REQUIRE_FALSE(r->value->error);
    return r->value->session;
}

std::vector<node_id> others(const cluster& c, node_id leader) {
    std::vector<node_id> out;
    for (node_id id : c.ids()) {
        if (id != leader) {
            out.push_back(id);
        }
    }
    return out;
}

TEST_CASE("thesis §6.3: a client whose proposal's outcome is unknown retries through the new "
          "leader after a failover; the command applies once and the retry gets the original "
          "result") {
    for (const bool first_attempt_reached_followers : {true, false}) {
        INFO("first attempt reached the followers: " << first_attempt_reached_followers);
        sim::cluster_options o;
        o.seed = first_attempt_reached_followers ? 11 : 12;
        cluster c(o);
        c.start_all();
        const node_id old_leader = *c.wait_for_leader();
        machines::session_client client(register_session(c));

        // The followers hear the leader but their acknowledgements never reach it, so the
        // leader never learns the entry committed and the client never hears back.
        const auto followers = others(c, old_leader);
        for (node_id f : followers) {
            c.network().cut(f, old_leader);
            if (!first_attempt_reached_followers) {
                c.network().cut(old_leader, f);
            }
        }
        const auto add = test::counter_machine::encode_add(5);
        const auto request = client.next(now_ms(c), add);
        const auto first = c.propose(old_leader, request.command.str());
        const log_index appended_at = c.log(old_leader).last_index();
        c.run_for(200ms);
        CHECK_FALSE(first->has_value()); // the client's timeout
        if (first_attempt_reached_followers) {
            for (node_id f : followers) {
                CHECK(c.log(f).last_index() >= appended_at);
            }
        }

        // The leader dies; a follower takes over (and commits the entry, if it has it, with its
        // term's no-op).
        c.crash(old_leader);
        c.network().heal();
        const auto new_leader = c.wait_for_leader();
        REQUIRE(new_leader);
        REQUIRE(*new_leader != old_leader);

        // The retry: same session and sequence, through the new leader.
        const auto retry = propose(c, client.retry(request.sequence, now_ms(c), add));
        REQUIRE(retry);
        REQUIRE_FALSE(retry->error);
        REQUIRE(retry->value);
        CHECK_FALSE(retry->value->error);
        REQUIRE(retry->value->inner);
        CHECK(retry->value->inner->value == 5);
        // Served from the cache exactly when the first attempt committed.
        CHECK(retry->value->cached == first_attempt_reached_followers);
        client.completed(request.sequence);

        // The old leader comes back and converges: 5 was added once, everywhere.
        REQUIRE_FALSE(c.start(old_leader));
        REQUIRE(c.run_until(
            [&] {
                for (node_id id : c.ids()) {
                    if (c.machine(id).inner().value != 5) {
                        return false;
                    }
                }
                return true;
            },
            5s));
        for (node_id id : c.ids()) {
            CHECK(c.machine(id).inner().applied == 1);
        }

        // The session carries on.
        const auto next = propose(c, client.next(now_ms(c), add).command);
        REQUIRE(next);
        REQUIRE(next->value);
        CHECK(next->value->inner->value == 10);
    }
}

TEST_CASE("thesis §6.3: cached results survive snapshots and restarts of every node") {
    sim::cluster_options o;
    o.seed = 21;
    o.node_config.snapshot_after_entries = 8;
    o.node_config.snapshot_keep_entries = 0;
    cluster c(o);
    c.start_all();
    c.wait_for_leader();
    machines::session_client client(register_session(c));

    // Ten commands answered but never acknowledged: the machine must keep all their results.
    std::vector<test::counter_machine::result_type> originals;
    std::vector<std::uint64_t> sequences;
    for (std::uint64_t n = 1; n <= 10; ++n) {
        const auto request = client.next(now_ms(c), test::counter_machine::encode_add(n));
        const auto r = propose(c, request.command);
        REQUIRE(r);
        REQUIRE(r->value);
        REQUIRE(r->value->inner);
        originals.push_back(*r->value->inner);
        sequences.push_back(request.sequence);
    }
    // Enough other traffic that every node snapshots past those entries.
    machines::session_client other(register_session(c));
    for (int i = 0; i < 20; ++i) {
        REQUIRE(propose(c, other.next(now_ms(c), test::counter_machine::encode_add(0)).command));
        other.completed(other.next_sequence() - 1);
    }
    c.run_for(100ms);
    for (node_id id : c.ids()) {
        INFO("node " << id.value());
        REQUIRE(c.log(id).latest_snapshot());
        CHECK(c.log(id).first_index() > log_index{12});
    }

    // Every node restarts from its snapshot.
    for (node_id id : c.ids()) {
        c.crash(id);
    }
    c.start_all();
    REQUIRE(c.wait_for_leader());

    for (std::size_t i = 0; i < sequences.size(); ++i) {
        INFO("sequence " << sequences[i]);
        const auto r = propose(
            c, client.retry(sequences[i], now_ms(c), test::counter_machine::encode_add(i + 1)));
        REQUIRE(r);
        REQUIRE(r->value);
        CHECK(r->value->cached);
        REQUIRE(r->value->inner);
        CHECK(*r->value->inner == originals[i]);
    }
    for (node_id id : c.ids()) {
        c.run_until([&] { return c.machine(id).inner().applied == 30; }, 2s);
        CHECK(c.machine(id).inner().value == 55);
        CHECK(c.machine(id).inner().applied == 30);
    }
}

TEST_CASE("thesis §6.3: an idle session expires by leader-stamped time; its next command gets "
          "session_expired, an active one lives on") {
    sim::cluster_options o;
    o.seed = 31;
    cluster c(o, [] { return machine({.session_timeout = 2000ms}); });
    c.start_all();
    c.wait_for_leader();
    const std::uint64_t idle = register_session(c);
    machines::session_client active(register_session(c));
    const auto add = test::counter_machine::encode_add(1);

    // The active client sends a command every half second for five seconds.
    for (int i = 0; i < 10; ++i) {
        c.run_for(500ms);
        const auto request = active.next(now_ms(c), add);
        const auto r = propose(c, request.command);
        REQUIRE(r);
        REQUIRE(r->value);
        CHECK_FALSE(r->value->error);
        active.completed(request.sequence);
    }
    const auto late = propose(c, machine::encode_command(idle, 1, 1, now_ms(c), add));
    REQUIRE(late);
    REQUIRE(late->value);
    CHECK(late->value->error == errc::session_expired);
    c.run_for(100ms);
    for (node_id id : c.ids()) {
        CHECK_FALSE(c.machine(id).find(idle));
        CHECK(c.machine(id).find(active.session()));
        CHECK(c.machine(id).inner().value == 10);
    }
}

TEST_SUITE_END();

} // namespace
