// Raft core throughput: a 3-node cluster on the simulator with no I/O or network delay, on one
// thread, 256-byte proposals with up to 1,024 outstanding. Reports committed entries per
// second, nanoseconds per entry and heap allocations per entry (issue "Raft core" target:
// at least 1,000,000 committed entries/s).
//
// Usage: synod_raft_bench [entries]   (default 1,000,000)

#include "support/append_machine.hpp"

#include <synod/sim/cluster.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {

std::atomic<std::uint64_t> g_allocations{0};

} // namespace

// Counting replacement of the global allocator. GCC cannot see that these replacements pair
// malloc with free on purpose.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace {

using namespace synod;

/// Discards payloads: the benchmark measures the protocol, not a state machine.
struct null_machine {
    using result_type = std::uint64_t;
    std::uint64_t count = 0;
    result_type apply(const log_entry&) { return ++count; }
    [[nodiscard]] shared_bytes snapshot() const { return {}; }
    std::error_code restore(byte_span) { return {}; }
};

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t target = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
    constexpr std::uint64_t outstanding = 1024;

    sim::cluster_options o;
    o.size = 3;
    o.seed = 1;
    o.min_latency = sim::duration::zero();
    o.max_latency = sim::duration::zero();
    o.check_invariants = false;
    o.node_config.max_entries_per_append = 1024;
    o.node_config.max_inflight_appends = 256;
    sim::cluster<null_machine> c(o);
    c.start_all();
    const auto leader = c.wait_for_leader();
    if (!leader) {
        std::fprintf(stderr, "no leader elected\n");
        return 1;
    }
    auto& node = c.node(*leader);
    const std::string payload(256, 'p');

    std::uint64_t proposed = 0;
    std::uint64_t committed = 0;
    std::uint64_t failed = 0;
    unique_function<void()> propose_one;
    auto on_done = [&](const auto& r) {
        if (r.error) {
            ++failed;
        } else {
            ++committed;
        }
        if (proposed < target) {
            propose_one();
        }
    };
    propose_one = [&] {
        ++proposed;
        // A fresh payload per proposal, as a client's request would bring.
        node.propose(shared_bytes(payload), [&](auto r) { on_done(r); });
    };

    const auto allocations_before = g_allocations.load();
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < outstanding && proposed < target; ++i) {
        propose_one();
    }
    while (committed + failed < target && c.world().step()) {
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const auto allocations = g_allocations.load() - allocations_before;

    const double seconds = std::chrono::duration<double>(elapsed).count();
    const double rate = static_cast<double>(committed) / seconds;
    std::printf("3 nodes, 256 B proposals, %llu outstanding: %llu committed, %llu failed in "
                "%.3f s\n",
                static_cast<unsigned long long>(outstanding),
                static_cast<unsigned long long>(committed), static_cast<unsigned long long>(failed),
                seconds);
    std::printf("  %.0f committed entries/s, %.0f ns/entry, %.2f heap allocations/entry\n", rate,
                1e9 * seconds / static_cast<double>(committed),
                static_cast<double>(allocations) / static_cast<double>(committed));
    std::printf("  target >= 1,000,000 entries/s: %s\n", rate >= 1e6 ? "met" : "NOT MET");
    return failed == 0 && committed == target ? 0 : 1;
}
