// The coordinator on the simulator: readiness, epochs, the director's lifecycle, the gateway
// API from leader and followers, and watchers (seed 000, issue "The coordinator").

#include "support/coordinator_cluster.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using coord::readiness;
using machines::service_endpoint;
using test::coordinator_cluster;

std::optional<node_id> wait_ready(coordinator_cluster& c, sim::duration limit = 10s) {
    return c.wait_ready(limit);
}

node_id some_follower(coordinator_cluster& c, node_id leader) {
    for (node_id id : c.ids()) {
        if (id != leader && c.is_up(id)) {
            return id;
        }
    }
    return no_node;
}

/// Runs a write and returns its result.
template <class Start>
coord::write_result wait_write(coordinator_cluster& c, Start&& start) {
    std::optional<coord::write_result> out;
    start([&](coord::write_result r) { out = std::move(r); });
    REQUIRE(c.run_until([&] { return out.has_value(); }, 5s));
    return *out;
}

TEST_SUITE("coord") {

    TEST_CASE("coordinator: a freshly elected leader with no client traffic becomes leader_ready "
              "and starts the director with epoch 1 and the directory") {
        coordinator_cluster c(3, 1);
        c.start_all();
        const auto leader = wait_ready(c);
        REQUIRE(leader);
        auto& co = c.at_node(*leader);
        CHECK(co.readiness() == readiness::leader_ready);
        CHECK(co.current_epoch() == epoch{1});
        REQUIRE(c.timeline().starts.size() == 1);
        CHECK(c.timeline().starts[0].node == *leader);
        CHECK(c.timeline().starts[0].e == epoch{1});
        CHECK(c.timeline().running.at(*leader) == epoch{1});
        for (node_id id : c.ids()) {
            if (id != *leader) {
                CHECK(c.at_node(id).readiness() == readiness::not_leader);
            }
        }
    }

    TEST_CASE("coordinator: after the leader is lost a new leader's director starts with a larger "
              "epoch and the complete directory; the old director was stopped first") {
        coordinator_cluster c(3, 2);
        c.start_all();
        const node_id first = *wait_ready(c);
        auto r = wait_write(c, [&](auto done) {
            c.at_node(first).register_gateway(node_id{7}, {{"log-1", "log", "10.0.0.7:9000"}},
                                              {"log", "storage"}, std::move(done));
        });
        REQUIRE_FALSE(r.error);
        CHECK(r.changed);
        c.crash(first);
        CHECK(c.timeline().running.count(first) == 0); // stopped with its coordinator
        const auto second = wait_ready(c);
        REQUIRE(second);
        REQUIRE(*second != first);
        const auto& last = c.timeline().starts.back();
        CHECK(last.node == *second);
        CHECK(last.e == epoch{2});
        REQUIRE(last.view.services.size() == 1);
        CHECK(last.view.services[0].id == "log-1");
        CHECK(last.view.services[0].capabilities == std::vector<std::string>{"log", "storage"});
    }

    TEST_CASE("coordinator: a gateway registering on a follower gets the leader's reply; with no "
              "leader it gets leader_unknown at once") {
        coordinator_cluster c(3, 3);
        SUBCASE("through a follower") {
            c.start_all();
            const node_id leader = *wait_ready(c);
            const node_id follower = some_follower(c, leader);
            auto r = wait_write(c, [&](auto done) {
                c.at_node(follower).register_services({{"store-1", "storage", node_id{4}, "a:1"}},
                                                      std::move(done));
            });
            CHECK_FALSE(r.error);
            CHECK(r.changed);
            CHECK(r.revision == 1);
            // The reply comes from the follower's own apply: its replica holds the write.
            CHECK(c.at_node(follower).stale_directory().revision() >= 1);
            // A conflicting registration is refused with the directory's errc, through the follower.
            auto conflict = wait_write(c, [&](auto done) {
                c.at_node(follower).register_services({{"store-1", "storage", node_id{5}, "b:1"}},
                                                      std::move(done));
            });
            CHECK(conflict.error == errc::conflicting_service);
            CHECK_FALSE(conflict.changed);
        }
        SUBCASE("no leader") {
            c.start(node_id{1}); // alone of three: it can never be elected
            std::optional<coord::write_result> out;
            c.at_node(node_id{1})
                .register_services({{"x", "log", node_id{1}, "a"}},
                                   [&](coord::write_result r) { out = std::move(r); });
            c.run_for(1ms);
            REQUIRE(out.has_value());
            CHECK(out->error == errc::leader_unknown);
        }
    }

    TEST_CASE("coordinator: reads are linearizable from any node; the stale read is named so") {
        coordinator_cluster c(3, 4);
        c.start_all();
        const node_id leader = *wait_ready(c);
        const node_id follower = some_follower(c, leader);
        auto w = wait_write(c, [&](auto done) {
            c.at_node(leader).register_gateway(node_id{2}, {{"res-1", "resolution", "r:1"}},
                                               {"resolution"}, std::move(done));
        });
        REQUIRE_FALSE(w.error);
        for (node_id reader : {leader, follower}) {
            std::optional<result<coord::directory_view>> read;
            c.at_node(reader).read_directory([&](result<coord::directory_view> r) { read = r; });
            REQUIRE(c.run_until([&] { return read.has_value(); }, 5s));
            REQUIRE(read->has_value());
            CHECK((*read)->revision >= w.revision);
            REQUIRE((*read)->services.size() == 1);
            CHECK((*read)->services[0].id == "res-1");
        }
        CHECK(c.at_node(follower).stale_directory_view().revision <= w.revision);
    }

    TEST_CASE("coordinator: watchers see every directory change in order and every readiness "
              "change; the running director is told about directory changes") {
        coordinator_cluster c(3, 5);
        c.start_all();
        const node_id leader = *wait_ready(c);
        const node_id follower = some_follower(c, leader);
        std::vector<std::uint64_t> seen;
        c.at_node(follower).watch_directory(
            [&](const machines::directory_change& ch) { seen.push_back(ch.revision); });
        std::vector<coord::readiness_event> events;
        c.at_node(follower).watch_readiness(
            [&](const coord::readiness_event& ev) { events.push_back(ev); });
        const std::size_t updates_before = c.timeline().directory_updates;
        for (int i = 0; i < 3; ++i) {
            auto r = wait_write(c, [&](auto done) {
                c.at_node(leader).register_services(
                    {{"svc-" + std::to_string(i), "log", node_id{9}, "h:" + std::to_string(i)}},
                    std::move(done));
            });
            REQUIRE_FALSE(r.error);
        }
        // Registering the same thing again changes nothing and notifies no one.
        auto same = wait_write(c, [&](auto done) {
            c.at_node(leader).register_services({{"svc-2", "log", node_id{9}, "h:2"}},
                                                std::move(done));
        });
        CHECK_FALSE(same.changed);
        REQUIRE(c.run_until([&] { return seen.size() == 3; }, 2s));
        c.run_for(50ms);
        CHECK(seen == std::vector<std::uint64_t>{1, 2, 3});
        CHECK(c.timeline().directory_updates - updates_before == 3);

        CHECK(events.empty()); // nothing changed for the follower while the leader stayed

        c.crash(leader);
        const node_id next = *wait_ready(c);
        c.run_for(10ms);
        REQUIRE_FALSE(events.empty());
        CHECK(events.front().leader == no_node); // it noticed the old leader was gone
        if (next == follower) {
            CHECK(events.back().readiness == readiness::leader_ready);
            CHECK(events.back().current_epoch == epoch{2});
        } else {
            CHECK(events.back().readiness == readiness::not_leader);
            CHECK(events.back().leader == next);
        }
    }

    TEST_CASE("coordinator: a watcher may unwatch itself from inside its call") {
        coordinator_cluster c(3, 7);
        c.start_all();
        const node_id leader = *wait_ready(c);
        auto& co = c.at_node(leader);
        int calls = 0;
        std::uint64_t id = 0;
        id = co.watch_directory([&](const machines::directory_change&) {
            ++calls;
            co.unwatch(id);
        });
        int other_calls = 0;
        co.watch_directory([&](const machines::directory_change&) { ++other_calls; });
        for (int i = 0; i < 2; ++i) {
            auto r = wait_write(c, [&](auto done) {
                co.register_services({{"w" + std::to_string(i), "log", node_id{3}, "a"}},
                                     std::move(done));
            });
            REQUIRE_FALSE(r.error);
        }
        c.run_for(10ms);
        CHECK(calls == 1);
        CHECK(other_calls == 2);
    }

    TEST_CASE("coordinator: a failed director is stopped, the leader records recovery_failed, and "
              "after a back-off the director restarts with a fresh, larger epoch") {
        coordinator_cluster c(3, 6);
        c.start_all();
        const node_id leader = *wait_ready(c);
        auto& co = c.at_node(leader);
        const epoch first = co.current_epoch();
        std::vector<readiness> states;
        co.watch_readiness(
            [&](const coord::readiness_event& ev) { states.push_back(ev.readiness); });
        co.report_director_failure(first, make_error_code(errc::timeout));
        CHECK(co.readiness() == readiness::recovery_failed);
        CHECK(c.timeline().running.count(leader) == 0);
        REQUIRE(c.run_until([&] { return co.readiness() == readiness::leader_ready; }, 2s));
        CHECK(co.current_epoch() > first);
        CHECK(c.timeline().running.at(leader) == co.current_epoch());
        CHECK(co.supervisor().failures() == 1);
        // A report about an old epoch changes nothing.
        co.report_director_failure(first, make_error_code(errc::timeout));
        CHECK(co.readiness() == readiness::leader_ready);
        c.run_for(10ms);
        INFO("states seen: " << states.size());
        CHECK(states ==
              std::vector<readiness>{readiness::recovery_failed, readiness::leader_ready});

        // A director whose start fails is retried the same way.
        c.director_of(leader).fail_next_start = make_error_code(errc::timeout);
        co.report_director_failure(co.current_epoch(), make_error_code(errc::timeout));
        REQUIRE(c.run_until(
            [&] {
                return co.readiness() == readiness::leader_ready && co.supervisor().failures() == 3;
            },
            5s));
        CHECK(c.timeline().running.at(leader) == co.current_epoch());
    }

    /// SYNOD_COORD_SEEDS sets how many seeds each size runs (default 2).
    std::uint64_t coord_seeds() {
        const char* env = std::getenv("SYNOD_COORD_SEEDS");
        return env != nullptr ? std::strtoull(env, nullptr, 10) : 2;
    }

    TEST_CASE("coordinator: through 200 leader changes with crashes, partitions and pauses, epochs "
              "are strictly increasing and never reused, no two directors ever share an epoch, and "
              "the fence admits no older epoch after a newer one") {
        for (std::size_t size : {3, 5}) {
            for (std::uint64_t seed = 1; seed <= coord_seeds(); ++seed) {
                CAPTURE(size);
                CAPTURE(seed);
                INFO("replay: SYNOD_COORD_SEEDS=" << seed
                                                  << " synod_tests -tc='*200 leader changes*'");
                coordinator_cluster c(size, 1000 * size + seed);
                c.start_all();
                std::mt19937_64 rng(seed);
                std::size_t changes = 0;
                epoch last_issued;
                for (int round = 0; round < 400 && changes < 200; ++round) {
                    auto leader = wait_ready(c, 20s);
                    REQUIRE(leader);
                    auto& co = c.at_node(*leader);
                    CHECK(co.current_epoch() > last_issued);
                    last_issued = co.current_epoch();
                    if (rng() % 3 == 0) {
                        std::optional<coord::write_result> w;
                        co.register_gateway(node_id{100 + rng() % 5},
                                            {{"s" + std::to_string(rng() % 20), "log", "x"}},
                                            {"log"}, [&](coord::write_result r) { w = r; });
                        c.run_until([&] { return w.has_value(); }, 2s);
                    }
                    switch (rng() % 3) {
                    case 0: // crash the leader; restart it a little later
                        c.crash(*leader);
                        c.run_for(std::chrono::milliseconds(50 + rng() % 300));
                        REQUIRE_FALSE(c.start(*leader));
                        break;
                    case 1: // cut the leader off, then heal
                        for (node_id id : c.ids()) {
                            c.network().disconnect(*leader, id);
                        }
                        c.run_for(std::chrono::milliseconds(400 + rng() % 400));
                        c.network().heal();
                        break;
                    default: // freeze its process past the election timeout
                        c.pause(*leader, std::chrono::milliseconds(400 + rng() % 200));
                        c.run_for(std::chrono::milliseconds(700));
                        break;
                    }
                    ++changes;
                }
                CHECK(changes == 200);
                // The ledger's epochs: one per start or retry, strictly increasing, none reused
                // (checked at every start by the timeline).
                CHECK(c.timeline().starts.size() >= 100);
                for (std::size_t k = 1; k < c.timeline().starts.size(); ++k) {
                    CHECK(c.timeline().starts[k].e != c.timeline().starts[k - 1].e);
                }
            }
        }
    }

} // TEST_SUITE

} // namespace
