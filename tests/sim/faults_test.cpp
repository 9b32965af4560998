// The simulator's fault injectors, each shown to do what it claims and to be counted.

#include "support/append_machine.hpp"
#include "support/node_harness.hpp"

#include <doctest/doctest.h>

#include <synod/sim/cluster.hpp>
#include <synod/sim/kv_machine.hpp>
#include <synod/sim/process.hpp>

namespace {

using namespace synod;
using namespace std::chrono_literals;

TEST_CASE("world: a paused process's events wait until the pause ends") {
    sim::world w;
    auto owner = w.add_owner();
    sim::process_scheduler s(w, owner);
    const auto t0 = w.now();
    sim::time_point ran_at{};
    s.schedule_at(t0 + 1ms, [&] { ran_at = w.now(); });
    w.pause(owner, t0 + 10ms);
    w.run_for(20ms);
    CHECK(ran_at == t0 + 10ms);
}

TEST_CASE("world: resume ends a pause early; the deferred events run at once, in order") {
    sim::world w;
    auto owner = w.add_owner();
    sim::process_scheduler s(w, owner);
    const auto t0 = w.now();
    std::vector<int> order;
    s.schedule_at(t0 + 1ms, [&] { order.push_back(1); });
    s.schedule_at(t0 + 2ms, [&] { order.push_back(2); });
    w.pause(owner, t0 + 1h);
    w.run_for(5ms); // both are due, both wait
    CHECK(order.empty());
    w.resume(owner);
    w.run_for(0ms);
    CHECK(order == std::vector<int>{1, 2});
    CHECK(w.now() == t0 + 5ms);
}

TEST_CASE("process_time: jumps forward, drifts, stays monotonic, and timers follow local time") {
    sim::world w;
    sim::process_time t(w);
    const auto t0 = t.now();
    t.jump(5s);
    CHECK(t.now() == t0 + 5s);
    t.set_rate(2.0);
    w.run_for(1s);
    CHECK(t.now() == t0 + 7s); // 1 s of world time reads as 2 s
    auto owner = w.add_owner();
    sim::process_scheduler s(w, owner, &t);
    bool fired = false;
    s.schedule_at(t.now() + 2s, [&] { fired = true; }); // 2 s local = 1 s world
    w.run_for(999ms);
    CHECK_FALSE(fired);
    w.run_for(2ms);
    CHECK(fired);
}

TEST_CASE("network faults: drop, duplicate, replay, long delays, reorder and clog are applied "
          "and counted") {
    sim::world w;
    sim::network net(w, 3);
    sim::fault_hits hits;
    net.count_faults_in(&hits);
    int delivered = 0;
    net.attach(node_id{2}, w.add_owner(), [&](message) { ++delivered; });
    net.set_latency(1ms, 5ms);
    net.set_faults({.drop = 0.2, .duplicate = 0.2, .replay = 0.1, .long_delay = 0.1});
    net.clog(node_id{2}, 3ms);
    for (int i = 0; i < 1000; ++i) {
        net.send(node_id{1}, node_id{2}, timeout_now{node_id{1}, node_id{2}, term{1}});
    }
    w.run_for(10s);
    for (auto f : {sim::fault::drop, sim::fault::duplicate, sim::fault::replay, sim::fault::delay,
                   sim::fault::reorder, sim::fault::clog}) {
        CHECK_MESSAGE(hits[f] > 0, "never hit " << sim::to_string(f));
    }
    CHECK(delivered == static_cast<int>(net.delivered()));
    CHECK(net.delivered() > 800); // duplicates and replays make up for drops
}

TEST_CASE("memory_log storage faults: torn crash keeps a prefix of unflushed writes; disk full "
          "writes nothing; a flipped bit is reported as corrupt_storage") {
    storage::memory_log log(storage::flush_mode::held);
    std::vector<log_entry> es;
    for (std::uint64_t i = 1; i <= 6; ++i) {
        es.push_back(log_entry{term{1}, log_index{i}, entry_kind::normal, shared_bytes("v")});
    }
    REQUIRE_FALSE(log.append(std::span(es).first(2)));
    log.flush([](std::error_code) {});
    log.release_flushes();
    REQUIRE_FALSE(log.append(std::span(es).subspan(2, 2)));
    REQUIRE_FALSE(log.append(std::span(es).subspan(4, 2)));
    log.crash_torn(1, 1); // the first unflushed append survives, and half of the second
    CHECK(log.last_index() == log_index{5});

    log.set_disk_full(true);
    CHECK(log.append(std::span(es).subspan(5, 1)) == errc::disk_full);
    CHECK(log.last_index() == log_index{5});
    log.set_disk_full(false);

    log.flush([](std::error_code) {});
    log.release_flushes();
    REQUIRE(log.corrupt_durable_entry(log_index{3}, 3));
    std::vector<log_entry> out;
    CHECK(log.entries(log_index{1}, log_index{6}, SIZE_MAX, out) == errc::corrupt_storage);
    CHECK_FALSE(log.entries(log_index{1}, log_index{3}, SIZE_MAX, out)); // before the damage
    log.crash();
    CHECK(log.recover() == errc::corrupt_storage);
    CHECK(es[2].payload.str() == "v"); // the shared original payload is untouched
}

TEST_CASE("disk full (thesis §10.2.1 contract): the leader refuses proposals with disk_full and "
          "keeps leading; a follower acknowledges nothing it could not write") {
    sim::cluster_options o;
    o.seed = 21;
    sim::cluster<test::append_machine> c(o);
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    c.log(*leader).set_disk_full(true);
    auto refused = c.propose(*leader, "x");
    c.run_for(5ms);
    REQUIRE(refused->has_value());
    CHECK((*refused)->error == errc::disk_full);
    CHECK(c.node(*leader).role() == raft::role::leader);
    CHECK(c.node(*leader).counters().rejected(raft::rejection::disk_full) == 1);
    c.log(*leader).set_disk_full(false);

    const node_id follower = *leader == node_id{1} ? node_id{2} : node_id{1};
    c.log(follower).set_disk_full(true);
    auto ok = c.propose_and_wait("y");
    REQUIRE(ok);
    CHECK_FALSE(ok->error); // the other follower and the leader form a quorum
    CHECK(c.node(follower).counters().appends_refused_disk_full > 0);
    CHECK(c.node(follower).status().last_index < c.node(*leader).status().last_index);
    c.log(follower).set_disk_full(false);
    c.run_for(1s);
    CHECK(c.node(follower).status().last_index == c.node(*leader).status().last_index);
}

TEST_CASE("corruption: a node whose log is damaged refuses to start, and the cluster carries on "
          "without it") {
    sim::cluster_options o;
    o.seed = 22;
    sim::cluster<test::append_machine> c(o);
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader);
    REQUIRE(c.propose_and_wait("a"));
    REQUIRE(c.propose_and_wait("b"));
    c.run_for(200ms);
    const node_id victim = *leader == node_id{1} ? node_id{2} : node_id{1};
    c.crash(victim);
    REQUIRE(c.log(victim).corrupt_durable_entry(log_index{2}, 0));
    CHECK(c.start(victim) == errc::corrupt_storage);
    CHECK_FALSE(c.is_up(victim));
    auto r = c.propose_and_wait("c");
    REQUIRE(r);
    CHECK_FALSE(r->error);
}

TEST_CASE("kv_machine: commands round-trip, apply with kv_model semantics, and snapshots "
          "restore; a malformed command is an error result") {
    using sim::kv_model;
    sim::kv_machine m;
    auto apply = [&](kv_model::input in) {
        return m.apply(
            log_entry{term{1}, log_index{1}, entry_kind::normal, sim::kv_machine::encode(in)});
    };
    auto decoded =
        sim::kv_machine::decode(sim::kv_machine::encode({kv_model::kind::cas, "k", "new", "old"}));
    REQUIRE(decoded);
    CHECK(decoded->expected == "old");
    CHECK(apply({kv_model::kind::put, "k", "1", {}}).output.ok);
    CHECK(apply({kv_model::kind::get, "k", {}, {}}).output.value == "1");
    CHECK_FALSE(apply({kv_model::kind::cas, "k", "2", "9"}).output.ok);
    CHECK(apply({kv_model::kind::cas, "k", "2", "1"}).output.ok);
    CHECK(apply({kv_model::kind::get, "missing", {}, {}}).output.value == std::nullopt);
    auto bad = m.apply(log_entry{term{1}, log_index{1}, entry_kind::normal, shared_bytes("zz")});
    CHECK(bad.error == errc::invalid_argument);

    sim::kv_machine copy;
    REQUIRE_FALSE(copy.restore(m.snapshot().span()));
    CHECK(copy.data() == m.data());
    CHECK(copy.restore(as_bytes("garbage")) == errc::corrupt_snapshot);
    CHECK(copy.data() == m.data()); // unchanged on error
}

} // namespace
