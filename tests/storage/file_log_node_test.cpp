// raft::node on file_log: the log the node will run on in production, with its flush work
// deferred to the simulated disk and completions posted to the node's scheduler.

#include <doctest/doctest.h>

#include "storage/file_log_fixtures.hpp"
#include "support/append_machine.hpp"

#include <synod/raft/node.hpp>
#include <synod/sim/process.hpp>
#include <synod/sim/world.hpp>
#include <synod/storage/file_log.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace synod;
using namespace std::chrono_literals;

struct null_transport {
    void send(node_id, message) {}
};

using node_type = raft::node<storage::file_log, null_transport, sim::virtual_clock,
                             sim::process_scheduler, test::append_machine>;

/// One life of a single-node group on `directory`: starts, waits for leadership, proposes
/// `proposals` payloads, and returns the state machine's history.
std::vector<std::string> run_life(const std::string& directory, int life, int proposals,
                                  bool compact = false) {
    sim::world world;
    sim::virtual_clock clock(world);
    const std::uint32_t owner = world.add_owner();
    sim::process_scheduler scheduler(world, owner);
    storage::file_log_options o;
    o.directory = directory;
    o.segment_bytes = 4096;
    o.cache_bytes = 1024;
    // The disk takes 2 ms per flush; its completion comes back through the scheduler.
    o.io_executor = [&](unique_function<void()> job) {
        world.schedule(world.now() + 2ms, owner, std::move(job));
    };
    o.post = [&](unique_function<void()> fn) { scheduler.post(std::move(fn)); };
    o.on_error = [](std::error_code ec, std::string_view detail) {
        FAIL_CHECK("file_log error " << ec.message() << ": " << std::string(detail));
    };
    storage::file_log log(std::move(o));
    null_transport transport;
    test::append_machine machine;
    raft::config cfg;
    cfg.id = node_id{1};
    cfg.initial_membership = membership({node_id{1}});
    cfg.random_seed = 7 + static_cast<std::uint64_t>(life);
    if (compact) {
        cfg.snapshot_after_entries = 16;
        cfg.snapshot_keep_entries = 4;
    } else {
        cfg.snapshot_after_entries = 0;
        cfg.snapshot_after_bytes = 0;
    }
    auto node = std::make_unique<node_type>(cfg, log, transport, clock, scheduler, machine);
    REQUIRE_FALSE(node->start());
    REQUIRE(world.run_until([&] { return node->status().role == raft::role::leader; }, 5s));
    int completed = 0;
    for (int i = 0; i < proposals; ++i) {
        node->propose(shared_bytes("life " + std::to_string(life) + " #" + std::to_string(i)),
                      [&](node_type::result r) {
                          CHECK_FALSE(r.error);
                          ++completed;
                      });
        if (i % 7 == 0) {
            world.run_for(1ms); // several flushes, each covering a batch
        }
    }
    REQUIRE(world.run_until([&] { return completed == proposals; }, 5s));
    CHECK(log.durable_last_index() == log.last_index());
    CHECK(node->status().commit_index == log.last_index());
    CHECK_FALSE(node->status().stopped);
    if (compact) {
        // Paper §7: the log starts after a snapshot, which covers everything compacted.
        CHECK(node->snapshot_index() > log_index{});
        CHECK(log.first_index() > log_index{1});
        CHECK(log.first_index() - 1 <= node->snapshot_index());
        CHECK(log.latest_snapshot()->meta.last_index == node->snapshot_index());
    }
    node.reset();
    return machine.applied;
}

TEST_CASE("file_log under raft::node: a one-node group commits through the file log, and after "
          "a restart from the directory applies everything it committed again") {
    test::temp_directory dir;
    const auto first = run_life(dir.path(), 1, 40);
    REQUIRE(first.size() == 40);
    const auto second = run_life(dir.path(), 2, 10);
    REQUIRE(second.size() == 50);
    CHECK(std::equal(first.begin(), first.end(), second.begin()));
    CHECK(second.back() == "life 2 #9");
}

TEST_CASE("file_log under raft::node: with compaction the node snapshots into the file log, whole "
          "segments go, and each restart resumes from the durable snapshot plus the log suffix "
          "(paper §7)") {
    test::temp_directory dir;
    std::vector<std::string> expected;
    for (int life = 1; life <= 3; ++life) {
        const auto applied = run_life(dir.path(), life, 60, true);
        for (int i = 0; i < 60; ++i) {
            expected.push_back("life " + std::to_string(life) + " #" + std::to_string(i));
        }
        CHECK(applied == expected);
    }
    // 180 entries of ~40 bytes in 4 KiB segments: without compaction some 3 dozen segments.
    std::size_t segments = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        segments += entry.path().extension() == ".log" ? 1 : 0;
    }
    CHECK(segments <= 4);
}

} // namespace
