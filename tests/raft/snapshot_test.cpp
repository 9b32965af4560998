// Snapshots, log compaction and InstallSnapshot (paper §7, thesis chapter 5) on the simulator.
// The invariant checker runs after every event, so each scenario also checks that snapshots
// hold committed state only, that snapshots at one index are identical everywhere, and that
// no entry leaves a log (or its disk) before a snapshot covers it.

#include "support/append_machine.hpp"

#include <doctest/doctest.h>

#include <synod/sim/cluster.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using cluster = sim::cluster<test::append_machine>;
using raft::role;

const node_id n1{1};
const node_id n2{2};
const node_id n3{3};

/// Snapshots every 20 entries, keeps 5 behind, and sends them in 64-byte chunks so a
/// transfer spans many messages.
sim::cluster_options compacting(std::uint64_t seed, std::size_t size = 3) {
    sim::cluster_options o;
    o.size = size;
    o.seed = seed;
    o.node_config.snapshot_after_entries = 20;
    o.node_config.snapshot_keep_entries = 5;
    o.node_config.snapshot_chunk_bytes = 64;
    if (std::getenv("SYNOD_DEBUG") != nullptr) { // SYNOD_DEBUG=1 prints each node's notes
        o.node_config.sink = [](raft::log_level, std::string_view what,
                                std::span<const raft::log_field> fields) {
            std::string line(what);
            for (const auto& f : fields) {
                line += " " + std::string(f.key) + "=" + std::to_string(f.value);
            }
            std::fprintf(stderr, "%s\n", line.c_str());
        };
    }
    return o;
}

/// Proposes `count` entries through the leader, one after another.
void write(cluster& c, int count, const std::string& prefix = "v") {
    for (int i = 0; i < count; ++i) {
        auto r = c.propose_and_wait(prefix + std::to_string(i));
        REQUIRE(r.has_value());
        REQUIRE_FALSE(r->error);
    }
}

/// A follower of the current leader.
node_id follower_of(cluster&, node_id leader) {
    return leader == n3 ? n2 : n3;
}

/// Cuts `id` off from everyone (and tells the cluster not to wait for it), and back.
void cut_off(cluster& c, node_id id) {
    c.network().isolate(id, c.ids());
    c.set_partitioned(id, true);
}
void reconnect(cluster& c, node_id id) {
    c.network().heal();
    c.set_partitioned(id, false);
}

bool caught_up(cluster& c, node_id id, node_id leader) {
    return c.is_up(id) && c.node(id).applied_index() == c.node(leader).applied_index();
}

TEST_CASE("paper §7: a follower cut off while the leader compacts catches up through a snapshot "
          "and then applies the same entries as everyone else") {
    cluster c(compacting(1));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id lagging = follower_of(c, leader);
    cut_off(c, lagging);
    write(c, 100);
    CHECK(c.node(leader).status().first_index > c.node(lagging).status().last_index);
    CHECK(c.node(leader).counters().snapshots_taken >= 4);

    reconnect(c, lagging);
    REQUIRE(c.run_until([&] { return caught_up(c, lagging, leader); }, 5s));
    CHECK(c.node(lagging).counters().snapshots_installed >= 1);
    CHECK(c.node(leader).counters().snapshot_transfers_started >= 1);
    CHECK(c.node(leader).counters().snapshot_chunks_sent > 1); // 64-byte chunks
    CHECK(c.machine(lagging).applied == c.machine(leader).applied);
    CHECK(c.machine(lagging).applied.size() == 100);

    // After the snapshot it follows through the log like any follower.
    write(c, 30, "w");
    REQUIRE(c.run_until([&] { return caught_up(c, lagging, leader); }, 5s));
    CHECK(c.machine(lagging).applied == c.machine(leader).applied);
    const raft::status st = c.node(leader).status();
    for (const auto& f : st.followers) {
        CHECK(f.state != raft::replication_state::snapshot);
    }
}

TEST_CASE("paper §7: compaction keeps a tail, so a follower that lags a little is served from "
          "the log") {
    auto o = compacting(2);
    o.node_config.snapshot_keep_entries = 50;
    cluster c(o);
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id lagging = follower_of(c, leader);
    write(c, 30);
    cut_off(c, lagging);
    write(c, 20); // the leader snapshots but keeps 50 entries behind its snapshot
    CHECK(c.node(leader).counters().snapshots_taken >= 2);
    reconnect(c, lagging);
    REQUIRE(c.run_until([&] { return caught_up(c, lagging, leader); }, 5s));
    CHECK(c.node(leader).counters().snapshot_transfers_started == 0);
    CHECK(c.node(lagging).counters().snapshots_installed == 0);
    CHECK(c.machine(lagging).applied == c.machine(leader).applied);
}

TEST_CASE("thesis §5.1: a node restarts from its snapshot plus the log suffix and reaches the "
          "same state as nodes that never restarted") {
    cluster c(compacting(3));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id restarted = follower_of(c, leader);
    write(c, 57);
    REQUIRE(c.run_until([&] { return caught_up(c, restarted, leader); }, 5s));
    const log_index snapshot_before = c.node(restarted).snapshot_index();
    CHECK(snapshot_before > log_index{});
    CHECK(c.log(restarted).first_index() > log_index{1});

    REQUIRE_FALSE(c.restart(restarted));
    // Right after start: the state machine holds the snapshot, the suffix is being applied.
    CHECK(c.node(restarted).snapshot_index() == snapshot_before);
    CHECK(c.node(restarted).applied_index() == snapshot_before);
    REQUIRE(c.run_until([&] { return caught_up(c, restarted, leader); }, 5s));
    CHECK(c.machine(restarted).applied == c.machine(leader).applied);
    CHECK(c.node(restarted).counters().snapshots_installed == 0); // its own snapshot sufficed

    // The whole cluster restarted gives the same state too.
    for (node_id id : c.ids()) {
        c.crash(id);
    }
    c.start_all();
    const node_id again = *c.wait_for_leader();
    write(c, 3, "after");
    for (node_id id : c.ids()) {
        REQUIRE(c.run_until([&] { return caught_up(c, id, again); }, 5s));
        CHECK(c.machine(id).applied.size() == 60);
        CHECK(c.machine(id).applied == c.machine(again).applied);
    }
}

TEST_CASE("paper §7: a node that starts with an empty log after the others compacted catches up "
          "by snapshot, then by log") {
    cluster c(compacting(4));
    c.start(n1);
    c.start(n2);
    REQUIRE(c.wait_for_leader());
    write(c, 80);
    const node_id leader = *c.leader();
    REQUIRE(c.log(leader).first_index() > log_index{1});
    REQUIRE_FALSE(c.start(n3));
    REQUIRE(c.run_until([&] { return caught_up(c, n3, leader); }, 5s));
    CHECK(c.node(n3).counters().snapshots_installed == 1);
    CHECK(c.machine(n3).applied == c.machine(leader).applied);
    CHECK(c.log(n3).first_index() > log_index{1});
}

TEST_CASE("paper §7: a leader change in the middle of a snapshot transfer; the new leader's "
          "transfer completes and the follower installs a verified snapshot") {
    auto o = compacting(5);
    o.node_config.snapshot_chunk_bytes = 16;
    o.node_config.max_inflight_appends = 1; // one chunk at a time: a long transfer
    cluster c(o);
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id lagging = follower_of(c, leader);
    cut_off(c, lagging);
    write(c, 60);
    reconnect(c, lagging);
    // Wait until part of the snapshot has arrived, then crash the leader.
    REQUIRE(c.run_until([&] { return c.node(lagging).status().incoming_snapshot_bytes > 64; }, 5s));
    CHECK(c.node(lagging).counters().snapshots_installed == 0);
    c.crash(leader);
    const node_id survivor = leader == n1 ? n2 : n1;
    c.set_partitioned(leader, true);
    REQUIRE(c.run_until(
        [&] {
            return c.leader() && c.leader() != leader &&
                   c.node(lagging).counters().snapshots_installed >= 1 &&
                   c.node(lagging).applied_index() == c.node(*c.leader()).applied_index();
        },
        10s));
    const node_id new_leader = *c.leader();
    CHECK(c.machine(lagging).applied == c.machine(new_leader).applied);
    CHECK(c.machine(lagging).applied == c.machine(survivor).applied);
    CHECK(c.machine(lagging).applied.size() == 60);
}

TEST_CASE("paper §7: duplicated, reordered and lost chunks still assemble into the one snapshot") {
    auto o = compacting(6);
    o.node_config.snapshot_chunk_bytes = 32;
    o.min_latency = 1ms;
    o.max_latency = 9ms; // messages overtake each other
    cluster c(o);
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id lagging = follower_of(c, leader);
    cut_off(c, lagging);
    write(c, 80);
    sim::network_faults faults;
    faults.duplicate = 0.2;
    faults.drop = 0.1;
    c.network().set_faults(faults);
    reconnect(c, lagging);
    REQUIRE(c.run_until([&] { return caught_up(c, lagging, leader); }, 20s));
    c.network().set_faults({});
    CHECK(c.node(lagging).counters().snapshots_installed >= 1);
    CHECK(c.machine(lagging).applied == c.machine(leader).applied);
}

/// Holds the first snapshot chunk to `to` carrying data, so the test can deliver a damaged copy.
struct chunk_interceptor {
    std::optional<snapshot_chunk_request> caught;
    bool armed = true;
};

void intercept_first_chunk(cluster& c, node_id to, chunk_interceptor& ic) {
    c.network().set_filter([&ic, to](node_id, node_id dst, const message& m) {
        const auto* chunk = std::get_if<snapshot_chunk_request>(&m);
        if (ic.armed && dst == to && chunk != nullptr && chunk->data.size() > 0) {
            ic.caught = *chunk;
            ic.armed = false;
            return false;
        }
        return true;
    });
}

shared_bytes flip_first_bit(const shared_bytes& data) {
    byte_vector bytes(data.span().begin(), data.span().end());
    bytes[0] ^= std::byte{1};
    return shared_bytes(byte_span(bytes));
}

/// Leaves `lagging` behind while the leader compacts, then reconnects it and holds back the
/// first chunk of the snapshot sent to it.
void catch_first_chunk(cluster& c, node_id lagging, chunk_interceptor& ic) {
    cut_off(c, lagging);
    write(c, 60);
    intercept_first_chunk(c, lagging, ic);
    reconnect(c, lagging);
    REQUIRE(c.run_until([&] { return ic.caught.has_value(); }, 5s));
}

TEST_CASE("paper §7: a chunk whose checksum fails is refused with bad_crc, resent, and never "
          "restored") {
    cluster c(compacting(7));
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id lagging = follower_of(c, leader);
    chunk_interceptor ic;
    catch_first_chunk(c, lagging, ic);
    snapshot_chunk_request damaged = *ic.caught;
    damaged.data = flip_first_bit(damaged.data); // chunk_crc still describes the original
    c.network().send(leader, lagging, damaged);
    REQUIRE(
        c.run_until([&] { return c.node(lagging).counters().snapshot_chunks_corrupt > 0; }, 5s));
    CHECK(c.node(lagging).status().last_snapshot_rejection == errc::bad_crc);
    REQUIRE(c.run_until([&] { return caught_up(c, lagging, leader); }, 10s));
    CHECK(c.node(lagging).counters().snapshots_installed >= 1);
    CHECK(c.node(lagging).counters().snapshots_rejected == 0);
    CHECK(c.machine(lagging).applied == c.machine(leader).applied);
    CHECK_FALSE(c.node(lagging).status().last_snapshot_rejection); // cleared by the install
}

TEST_CASE("paper §7: a snapshot whose chunks verify but whose whole does not is refused with "
          "corrupt_snapshot and restarted, never restored") {
    auto o = compacting(8);
    o.node_config.snapshot_chunk_bytes = 1 << 20; // one chunk holds the whole snapshot
    cluster c(o);
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    const node_id lagging = follower_of(c, leader);
    chunk_interceptor ic;
    catch_first_chunk(c, lagging, ic);
    REQUIRE(ic.caught->done);
    const std::vector<std::string> before = c.machine(lagging).applied;
    snapshot_chunk_request forged = *ic.caught;
    forged.data = flip_first_bit(forged.data);
    forged.chunk_crc = wire::crc32c(forged.data.span()); // the chunk verifies; the whole won't
    c.network().send(leader, lagging, forged);
    REQUIRE(c.run_until([&] { return c.node(lagging).counters().snapshots_rejected > 0; }, 5s));
    CHECK(c.node(lagging).status().last_snapshot_rejection == errc::corrupt_snapshot);
    CHECK(c.machine(lagging).applied == before); // nothing restored
    REQUIRE(c.run_until([&] { return caught_up(c, lagging, leader); }, 10s));
    CHECK(c.machine(lagging).applied == c.machine(leader).applied);
}

TEST_CASE("paper §7: compaction waits for the snapshot to be durable, and a crash at any moment "
          "restarts from a snapshot that covers every compacted entry") {
    auto o = compacting(9);
    o.flush_delay = 3ms; // flushes take time: the gap between save and durable is visible
    cluster c(o);
    c.start_all();
    const node_id leader = *c.wait_for_leader();
    std::size_t checks = 0;
    std::size_t compactions_seen = 0;
    log_index last_first{1};
    for (int i = 0; i < 100; ++i) {
        c.propose(leader, "x" + std::to_string(i));
        c.run_until(
            [&] {
                // After every event: the leader's compacted prefix is covered by a snapshot
                // that is already durable (it compacts its own log only then).
                auto& log = c.log(leader);
                ++checks;
                if (log.first_index() != last_first) {
                    ++compactions_seen;
                    last_first = log.first_index();
                }
                REQUIRE(log.first_index() - 1 <= log.durable_snapshot_index());
                return false;
            },
            1ms);
    }
    CHECK(checks > 100);
    CHECK(compactions_seen >= 3);
    for (int k = 0; k < 20; ++k) {
        c.crash(leader);
        REQUIRE_FALSE(c.start(leader));
        CHECK(c.log(leader).first_index() - 1 <= c.node(leader).snapshot_index());
        c.run_for(2ms);
    }
}

TEST_CASE("thesis §5.1: with compaction disabled the log keeps every entry; the byte threshold "
          "triggers snapshots on its own") {
    SUBCASE("disabled") {
        auto o = compacting(10);
        o.node_config.snapshot_after_entries = 0;
        o.node_config.snapshot_after_bytes = 0;
        cluster c(o);
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        write(c, 50);
        CHECK(c.node(leader).counters().snapshots_taken == 0);
        CHECK(c.log(leader).first_index() == log_index{1});
    }
    SUBCASE("by bytes") {
        auto o = compacting(11);
        o.node_config.snapshot_after_entries = 0;
        o.node_config.snapshot_after_bytes = 40 * (32 + 8); // about 40 entries of 8 bytes
        cluster c(o);
        c.start_all();
        const node_id leader = *c.wait_for_leader();
        write(c, 100, "payload_");
        CHECK(c.node(leader).counters().snapshots_taken >= 1);
        CHECK(c.node(leader).counters().snapshots_taken <= 3);
    }
}

TEST_CASE("a snapshot chunk config of zero bytes is refused") {
    raft::config cfg;
    cfg.id = n1;
    cfg.snapshot_chunk_bytes = 0;
    CHECK(cfg.validate() == errc::invalid_argument);
}

} // namespace
