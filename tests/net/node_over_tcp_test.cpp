// Three raft::nodes over the Asio runtime in one process: Raft paper §5.2 (a leader is elected)
// and §5.3 (entries proposed from another thread commit everywhere, in one order), with the
// io_context on its own thread as a host runs it — so ThreadSanitizer sees the hand-offs.

#include "support/append_machine.hpp"
#include "tcp_node.hpp"

#include <doctest/doctest.h>

#include <synod/storage/memory_log.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace synod;

namespace {

using test_node = examples::tcp_node<test::append_machine, storage::memory_log>;

struct member {
    storage::memory_log log;
    test::append_machine machine;
    std::unique_ptr<test_node> node;
};

/// Runs `f` on the io_context's thread and returns its result.
template <class F>
auto on_context(boost::asio::io_context& io, F f) {
    std::promise<decltype(f())> done;
    boost::asio::post(io, [&] { done.set_value(f()); });
    return done.get_future().get();
}

} // namespace

TEST_CASE("node over TCP: three nodes elect a leader (§5.2) and commit entries proposed from "
          "another thread on every node in one order (§5.3)") {
    boost::asio::io_context io(1);
    auto guard = boost::asio::make_work_guard(io);
    std::vector<std::unique_ptr<member>> members;
    members.reserve(3);
    for (int i = 0; i < 3; ++i) {
        members.push_back(std::make_unique<member>());
    }
    // Listening ports first (port 0: any free one), then the peer lists that name them.
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 3; ++i) {
        boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        ports.push_back(probe.local_endpoint().port());
    }
    for (std::uint64_t i = 0; i < 3; ++i) {
        raft::config cfg;
        cfg.id = node_id{i + 1};
        cfg.initial_membership = membership({node_id{1}, node_id{2}, node_id{3}});
        cfg.random_seed = i;
        cfg.forward_proposals = true; // a leader change mid-test must not fail proposals
        net::transport_config t;
        t.cluster_id = 5;
        t.self = cfg.id;
        t.listen_port = ports[i];
        for (std::uint64_t j = 0; j < 3; ++j) {
            if (j != i) {
                t.peers.push_back({node_id{j + 1}, "127.0.0.1", ports[j]});
            }
        }
        members[i]->node = std::make_unique<test_node>(io.get_executor(), cfg, t, members[i]->log,
                                                       members[i]->machine);
        REQUIRE_FALSE(members[i]->node->start());
    }
    std::thread runner([&] { io.run(); });
    // However the test ends (a failed REQUIRE throws), the nodes go and the thread joins.
    struct stop_on_exit {
        boost::asio::io_context& io;
        std::vector<std::unique_ptr<member>>& members;
        std::thread& runner;
        decltype(boost::asio::make_work_guard(io))& guard;
        ~stop_on_exit() {
            if (!runner.joinable()) {
                return;
            }
            boost::asio::post(io, [this] {
                for (auto& m : members) {
                    m->node.reset();
                }
            });
            guard.reset();
            runner.join();
        }
    } cleanup{io, members, runner, guard};

    std::optional<std::size_t> leader;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!leader && std::chrono::steady_clock::now() < deadline) {
        leader = on_context(io, [&]() -> std::optional<std::size_t> {
            for (std::size_t i = 0; i < 3; ++i) {
                if (members[i]->node->node().status().role == raft::role::leader) {
                    return i;
                }
            }
            return std::nullopt;
        });
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(leader);

    constexpr int proposals = 500;
    std::atomic<int> committed{0};
    std::atomic<int> failed{0};
    std::promise<void> all_done;
    for (int p = 0; p < proposals; ++p) {
        boost::asio::post(io, [&, p] {
            members[*leader]->node->node().propose(shared_bytes("entry-" + std::to_string(p)),
                                                   [&](test_node::node_type::result r) {
                                                       (r.error ? failed : committed).fetch_add(1);
                                                       if (committed + failed == proposals) {
                                                           all_done.set_value();
                                                       }
                                                   });
        });
    }
    REQUIRE(all_done.get_future().wait_for(20s) == std::future_status::ready);
    CHECK(committed == proposals);

    // Followers learn the commit index with the next append or heartbeat.
    bool same = false;
    while (!same && std::chrono::steady_clock::now() < deadline + 20s) {
        same = on_context(io, [&] {
            for (const auto& m : members) {
                if (m->machine.applied.size() < proposals) {
                    return false;
                }
            }
            return members[0]->machine.applied == members[1]->machine.applied &&
                   members[1]->machine.applied == members[2]->machine.applied;
        });
        std::this_thread::sleep_for(10ms);
    }
    CHECK(same);
    const auto sent = on_context(
        io, [&] { return members[*leader]->node->transport().counters().messages_sent; });
    CHECK(sent > 0);

    // ~stop_on_exit: io_context::run returns, nothing is left pending once the nodes are gone.
}
