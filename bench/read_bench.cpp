// Read throughput beside write throughput (issue 9): a 3-node cluster on the simulator, one
// thread, a fixed one-way latency, check-quorum on (lease reads need it). One run measures, in
// turn:
//   writes          proposals of 64 B through the leader, `outstanding` in flight
//   ReadIndex       `read_index` on the leader, `outstanding` in flight, so the reads of one
//                   turn share one heartbeat round (thesis §6.4)
//   follower reads  `read_index` on a follower: each asks the leader for a read index
//   lease reads     `read_under_lease` on the leader: no round trip while the lease holds
//   mixed           writes and ReadIndex reads at once, `outstanding` of each
// Each completed read looks at the state machine, as a real read would. For each phase it
// prints operations per wall-clock second (the cost of the protocol on one core) and per
// simulated second (what the latency allows; meaningful because the simulator charges only the
// configured latency).
//
// Usage: synod_read_bench [operations per phase] [outstanding] [latency in microseconds]
//        (defaults 200,000, 1,024, 100)

#include <synod/sim/cluster.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using namespace synod;

/// Counts commands; reads look at the count.
struct null_machine {
    using result_type = std::uint64_t;
    std::uint64_t count = 0;
    result_type apply(const log_entry&) { return ++count; }
    [[nodiscard]] shared_bytes snapshot() const { return {}; }
    std::error_code restore(byte_span) { return {}; }
};

using cluster = sim::cluster<null_machine>;

struct phase_result {
    std::uint64_t done = 0;
    std::uint64_t failed = 0;
    double wall_seconds = 0;
    double sim_seconds = 0;
};

/// Keeps `outstanding` operations in flight until `target` have completed. `issue(on_done)`
/// starts one operation whose completion must call `on_done(ok)`.
template <class Issue>
phase_result run_phase(cluster& c, std::uint64_t target, std::uint64_t outstanding, Issue issue) {
    phase_result out;
    std::uint64_t issued = 0;
    unique_function<void()> issue_one;
    auto on_done = [&](bool ok) {
        ++(ok ? out.done : out.failed);
        if (issued < target) {
            issue_one();
        }
    };
    issue_one = [&] {
        ++issued;
        issue(on_done);
    };
    const auto sim_start = c.world().now();
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < outstanding && issued < target; ++i) {
        issue_one();
    }
    while (out.done + out.failed < target && c.world().step()) {
    }
    out.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.sim_seconds = std::chrono::duration<double>(c.world().now() - sim_start).count();
    return out;
}

void print(const char* name, const phase_result& r, const std::string& extra = {}) {
    char simulated[32] = "     (no time)";
    if (r.sim_seconds > 0) {
        std::snprintf(simulated, sizeof simulated, "%14.0f",
                      static_cast<double>(r.done) / r.sim_seconds);
    }
    std::printf("  %-15s %9llu ok %5llu failed  %10.0f /s wall  %s /s simulated  "
                "(%.3f s wall, %.4f s simulated)%s\n",
                name, static_cast<unsigned long long>(r.done),
                static_cast<unsigned long long>(r.failed),
                static_cast<double>(r.done) / r.wall_seconds, simulated, r.wall_seconds,
                r.sim_seconds, extra.c_str());
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t target = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200'000;
    const std::uint64_t outstanding = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
    const std::uint64_t latency_us = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 100;

    std::printf("command:");
    for (int i = 0; i < argc; ++i) {
        std::printf(" %s", argv[i]);
    }
    std::printf("\n3 nodes, %llu operations per phase, %llu outstanding, %llu us one-way "
                "latency, 64 B writes, check_quorum on\n",
                static_cast<unsigned long long>(target),
                static_cast<unsigned long long>(outstanding),
                static_cast<unsigned long long>(latency_us));

    sim::cluster_options o;
    o.size = 3;
    o.seed = 1;
    o.min_latency = std::chrono::microseconds(latency_us);
    o.max_latency = o.min_latency;
    o.check_invariants = false;
    o.node_config.check_quorum = true;
    o.node_config.max_entries_per_append = 1024;
    o.node_config.max_inflight_appends = 256;
    cluster c(o);
    c.start_all();
    const auto found = c.wait_for_leader();
    if (!found) {
        std::fprintf(stderr, "no leader elected\n");
        return 1;
    }
    const node_id leader = *found;
    const node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    auto& lead = c.node(leader);
    auto& follow = c.node(follower);
    const std::string payload(64, 'w');
    std::uint64_t observed = 0; // what reads saw, so they are not optimized away

    auto write = [&](auto& on_done) {
        lead.propose(shared_bytes(payload), [&on_done](auto r) { on_done(!r.error); });
    };
    auto read_on = [&](auto& n, node_id at, bool lease) {
        return [&n, &c, &observed, at, lease](auto& on_done) {
            auto done = [&c, &observed, &on_done, at](raft::read_result r) {
                if (!r.error) {
                    observed += c.machine(at).count;
                }
                on_done(!r.error);
            };
            if (lease) {
                n.read_under_lease(done);
            } else {
                n.read_index(done);
            }
        };
    };

    const auto rounds = [&] { return lead.status().counters.read_index_rounds; };
    const auto per_round = [](std::uint64_t reads, std::uint64_t rounds_taken) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "  %.1f reads/round",
                      rounds_taken == 0
                          ? 0.0
                          : static_cast<double>(reads) / static_cast<double>(rounds_taken));
        return std::string(buf);
    };

    bool ok = true;
    const auto writes = run_phase(c, target, outstanding, write);
    print("writes", writes);
    ok = ok && writes.failed == 0;

    auto before = rounds();
    const auto leader_reads = run_phase(c, target, outstanding, read_on(lead, leader, false));
    print("ReadIndex", leader_reads, per_round(leader_reads.done, rounds() - before));
    ok = ok && leader_reads.failed == 0;

    before = rounds();
    const auto follower_reads = run_phase(c, target, outstanding, read_on(follow, follower, false));
    print("follower reads", follower_reads, per_round(follower_reads.done, rounds() - before));
    ok = ok && follower_reads.failed == 0;

    const auto lease_before = lead.status().counters.lease_reads;
    const auto lease_reads = run_phase(c, target, outstanding, read_on(lead, leader, true));
    const auto served_by_lease = lead.status().counters.lease_reads - lease_before;
    print("lease reads", lease_reads, "  " + std::to_string(served_by_lease) + " under the lease");
    ok = ok && lease_reads.failed == 0;

    // Mixed: writes and ReadIndex reads together, `outstanding` of each. Each stream's rate is
    // over the time until its own last completion.
    {
        phase_result mixed_writes;
        phase_result mixed_reads;
        std::uint64_t issued_writes = 0;
        std::uint64_t issued_reads = 0;
        const auto sim_start = c.world().now();
        const auto start = std::chrono::steady_clock::now();
        auto count = [&](phase_result& r, bool good) {
            ++(good ? r.done : r.failed);
            if (r.done + r.failed == target) {
                r.wall_seconds =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                r.sim_seconds = std::chrono::duration<double>(c.world().now() - sim_start).count();
            }
        };
        unique_function<void()> write_one;
        unique_function<void()> read_one;
        write_one = [&] {
            ++issued_writes;
            lead.propose(shared_bytes(payload), [&](auto r) {
                count(mixed_writes, !r.error);
                if (issued_writes < target) {
                    write_one();
                }
            });
        };
        read_one = [&] {
            ++issued_reads;
            lead.read_index([&](raft::read_result r) {
                if (!r.error) {
                    observed += c.machine(leader).count;
                }
                count(mixed_reads, !r.error);
                if (issued_reads < target) {
                    read_one();
                }
            });
        };
        for (std::uint64_t i = 0; i < outstanding && i < target; ++i) {
            write_one();
            read_one();
        }
        while ((mixed_writes.done + mixed_writes.failed < target ||
                mixed_reads.done + mixed_reads.failed < target) &&
               c.world().step()) {
        }
        print("mixed: writes", mixed_writes);
        print("mixed: reads", mixed_reads);
        ok = ok && mixed_writes.failed == 0 && mixed_reads.failed == 0;
    }

    std::printf("  (reads observed %llu)\n", static_cast<unsigned long long>(observed));
    return ok ? 0 : 1;
}
