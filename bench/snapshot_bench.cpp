// Snapshots (issue "Snapshots, log compaction, and chunked InstallSnapshot"):
//
// (a) InstallSnapshot throughput on the simulator: a 3-node cluster whose state machine holds a
//     large opaque state (64 MiB by default). One follower is cut off while the leader snapshots
//     and compacts its whole log; the clock runs from the heal until the follower has received,
//     verified and restored the snapshot and applied as far as the leader. Reported beside
//     memcpy and CRC32C of the same bytes in the same run.
// (b) Restoring a 1,000,000-entry key-value state from its snapshot versus replaying the same
//     1,000,000 entries from a log, for the state machine alone and for a whole `raft::node`
//     starting from a memory log.
//
// Usage: synod_snapshot_bench [snapshot-MiB] [entries] [repeats]   (default 64 1000000 3)
// MB are 10^6 bytes; MiB are 2^20.

#include <synod/sim/cluster.hpp>
#include <synod/sim/kv_machine.hpp>
#include <synod/storage/memory_log.hpp>
#include <synod/wire/crc32c.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace synod;
using namespace std::chrono_literals;
using bench_clock = std::chrono::steady_clock;

volatile std::uint64_t g_sink = 0; // keeps measured work observable

double seconds_since(bench_clock::time_point start) {
    return std::chrono::duration<double>(bench_clock::now() - start).count();
}

double mb_per_s(std::size_t bytes, double seconds) {
    return static_cast<double>(bytes) / 1e6 / seconds;
}

// --- (a) transfer throughput -------------------------------------------------------------------

/// A state machine whose state is one opaque buffer: `snapshot()` hands out the buffer itself
/// (no serialization cost), `restore()` checks the size and copies, as any restore that keeps
/// the bytes must.
struct blob_machine {
    using result_type = std::uint64_t;

    shared_bytes state;
    std::uint64_t applied = 0;

    result_type apply(const log_entry&) { return ++applied; }
    [[nodiscard]] shared_bytes snapshot() const { return state; }
    std::error_code restore(byte_span bytes) {
        if (bytes.size() != state.size()) {
            return errc::corrupt_snapshot;
        }
        state = shared_bytes(bytes);
        return {};
    }
};

static_assert(state_machine<blob_machine>);

shared_bytes make_blob(std::size_t size) {
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    return shared_bytes::build(size, [&](std::span<std::byte> out) {
        for (std::size_t i = 0; i + 8 <= out.size(); i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            std::memcpy(out.data() + i, &x, 8);
        }
    });
}

struct transfer_result {
    double seconds = 0;
    std::uint64_t chunks = 0;
    std::uint64_t bytes_sent = 0;
    bool ok = false;
};

transfer_result measure_transfer(const shared_bytes& blob, std::size_t chunk_bytes) {
    sim::cluster_options o;
    o.size = 3;
    o.seed = 7;
    o.min_latency = sim::duration::zero();
    o.max_latency = sim::duration::zero();
    o.check_invariants = false; // the checker hashes every snapshot
    o.node_config.snapshot_after_entries = 10;
    o.node_config.snapshot_after_bytes = 0;
    o.node_config.snapshot_keep_entries = 0;
    o.node_config.snapshot_chunk_bytes = chunk_bytes;
    sim::cluster<blob_machine> c(o, [&] { return blob_machine{blob, 0}; });
    c.start_all();
    const auto leader = c.wait_for_leader();
    if (!leader) {
        return {};
    }
    const node_id lagging = *leader == node_id{3} ? node_id{2} : node_id{3};
    c.network().isolate(lagging, c.ids());
    c.set_partitioned(lagging, true);
    for (int i = 0; i < 25; ++i) {
        auto r = c.propose_and_wait("x");
        if (!r || r->error) {
            return {};
        }
    }
    if (c.node(*leader).status().first_index <= c.node(lagging).status().last_index) {
        std::fprintf(stderr, "the leader did not compact past the lagging follower\n");
        return {};
    }
    const auto sent_before = c.node(*leader).counters();

    c.network().heal();
    c.set_partitioned(lagging, false);
    const auto start = bench_clock::now();
    const bool done = c.run_until(
        [&] {
            return c.node(lagging).counters().snapshots_installed > 0 &&
                   c.node(lagging).applied_index() == c.node(*leader).applied_index();
        },
        60s);
    transfer_result r;
    r.seconds = seconds_since(start);
    const auto& after = c.node(*leader).counters();
    r.chunks = after.snapshot_chunks_sent - sent_before.snapshot_chunks_sent;
    r.bytes_sent = after.snapshot_bytes_sent - sent_before.snapshot_bytes_sent;
    r.ok = done && c.machine(lagging).state == blob; // compares the bytes
    return r;
}

void transfer_benchmark(std::size_t mib, int repeats) {
    const std::size_t size = mib << 20;
    const shared_bytes blob = make_blob(size);
    std::printf("(a) InstallSnapshot of a %zu MiB snapshot, 3-node simulated cluster, no network "
                "or disk delay, invariant checker off; best of %d\n",
                mib, repeats);

    // Reference figures, same bytes, same run.
    byte_vector warm(size);
    std::memcpy(warm.data(), blob.data(), size);
    double memcpy_best = 1e9;
    for (int i = 0; i < std::max(repeats, 5); ++i) {
        const auto start = bench_clock::now();
        std::memcpy(warm.data(), blob.data(), size);
        memcpy_best = std::min(memcpy_best, seconds_since(start));
        g_sink = g_sink + static_cast<std::uint64_t>(warm[size / 2]);
    }
    double fresh_best = 1e9;
    for (int i = 0; i < std::max(repeats, 5); ++i) {
        const auto start = bench_clock::now();
        shared_bytes copy(blob.span()); // a new buffer: page faults included
        fresh_best = std::min(fresh_best, seconds_since(start));
        g_sink = g_sink + static_cast<std::uint64_t>(copy.data()[size / 2]);
    }
    double crc_best = 1e9;
    for (int i = 0; i < std::max(repeats, 5); ++i) {
        const auto start = bench_clock::now();
        g_sink = g_sink + wire::crc32c(blob.span());
        crc_best = std::min(crc_best, seconds_since(start));
    }
    std::printf("  memcpy, warm destination           %8.0f MB/s  (%6.1f ms)\n",
                mb_per_s(size, memcpy_best), memcpy_best * 1e3);
    std::printf("  memcpy into a new shared_bytes     %8.0f MB/s  (%6.1f ms)\n",
                mb_per_s(size, fresh_best), fresh_best * 1e3);
    std::printf("  CRC32C                             %8.0f MB/s  (%6.1f ms)\n",
                mb_per_s(size, crc_best), crc_best * 1e3);
    // What one transfer does to every byte: the leader checksums the snapshot once, copies
    // and checksums each chunk; the follower checksums each chunk, appends it to its
    // assembly buffer, checksums the whole, copies it into a shared_bytes for the log, and the
    // machine's restore copies it once more. Three of the copies land in fresh memory.
    const double model = 4 * crc_best + memcpy_best + 3 * fresh_best;
    std::printf(
        "  cost model: 4 CRC32C passes + 4 copies (3 into new buffers) = %.1f ms = %.0f MB/s\n",
        model * 1e3, mb_per_s(size, model));

    for (std::size_t chunk : {std::size_t{256} << 10, std::size_t{1} << 20, std::size_t{4} << 20}) {
        double best = 1e9;
        double worst = 0;
        transfer_result last;
        for (int i = 0; i < repeats; ++i) {
            last = measure_transfer(blob, chunk);
            if (!last.ok) {
                std::printf("  chunk %5zu KiB: FAILED (follower did not install the snapshot)\n",
                            chunk >> 10);
                std::exit(1);
            }
            best = std::min(best, last.seconds);
            worst = std::max(worst, last.seconds);
        }
        std::printf("  chunk %5zu KiB%s: %8.0f MB/s (worst %5.0f), %6.1f ms heal-to-installed, "
                    "%llu chunks, %.0f%% of memcpy\n",
                    chunk >> 10, chunk == (std::size_t{1} << 20) ? " (default)" : "          ",
                    mb_per_s(size, best), mb_per_s(size, worst), best * 1e3,
                    static_cast<unsigned long long>(last.chunks), 100.0 * memcpy_best / best);
    }
}

// --- (b) restore versus replay ------------------------------------------------------------------

/// The i-th command: a put of a distinct key, keys in scattered order (not sorted).
shared_bytes put_command(std::uint64_t i, std::uint64_t n) {
    char key[24];
    char value[24];
    const std::uint64_t k = (i * 7919) % n; // 7919 is prime, so this is a permutation when n
                                            // is not a multiple of it
    std::snprintf(key, sizeof key, "k%07llu", static_cast<unsigned long long>(k));
    std::snprintf(value, sizeof value, "value-%06llu",
                  static_cast<unsigned long long>(i % 1'000'000));
    return sim::kv_machine::encode({sim::kv_model::kind::put, key, value, {}});
}

void fill_log(storage::memory_log& log, const std::vector<log_entry>& entries) {
    constexpr std::size_t batch = 4096;
    for (std::size_t i = 0; i < entries.size(); i += batch) {
        const std::size_t n = std::min(batch, entries.size() - i);
        if (log.append(std::span<const log_entry>(entries.data() + i, n))) {
            std::fprintf(stderr, "append failed\n");
            std::exit(1);
        }
    }
    log.save_hard_state({term{1}, no_node, log_index{entries.size()}});
    log.flush([](std::error_code) {});
}

using kv_cluster = sim::cluster<sim::kv_machine>;

sim::cluster_options single_node(bool snapshots) {
    sim::cluster_options o;
    o.size = 1;
    o.min_latency = sim::duration::zero();
    o.max_latency = sim::duration::zero();
    o.check_invariants = false;
    if (!snapshots) {
        o.node_config.snapshot_after_entries = 0;
        o.node_config.snapshot_after_bytes = 0;
    }
    return o;
}

struct start_result {
    double start_seconds = 0;
    double total_seconds = 0;
    std::uint64_t snapshots_taken = 0;
    bool ok = false;
};

/// Starts a one-node cluster on whatever `prepare` put in its log, and times `start()` and
/// the run until every entry is applied.
template <class Prepare>
start_result time_node_start(bool snapshots, std::uint64_t n,
                             const std::map<std::string, std::string>& expect, Prepare&& prepare) {
    kv_cluster c(single_node(snapshots));
    prepare(c.log(node_id{1}));
    start_result r;
    const auto start = bench_clock::now();
    if (c.start(node_id{1})) {
        return r;
    }
    r.start_seconds = seconds_since(start);
    auto& node = c.node(node_id{1});
    const bool done = c.run_until([&] { return node.applied_index() >= log_index{n}; }, 600s);
    r.total_seconds = seconds_since(start);
    r.snapshots_taken = node.counters().snapshots_taken;
    r.ok = done && c.machine(node_id{1}).data() == expect;
    return r;
}

void restore_benchmark(std::uint64_t n) {
    std::printf("(b) %llu-entry key-value state (sim::kv_machine: std::map, 8-byte keys, 12-byte "
                "values, 34-byte commands)\n",
                static_cast<unsigned long long>(n));
    std::vector<log_entry> entries;
    entries.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
        entries.push_back(
            log_entry{term{1}, log_index{i + 1}, entry_kind::normal, put_command(i, n)});
    }

    sim::kv_machine reference;
    auto start = bench_clock::now();
    for (const auto& e : entries) {
        reference.apply(e);
    }
    const double apply_direct = seconds_since(start);

    start = bench_clock::now();
    const shared_bytes image = reference.snapshot();
    const double take = seconds_since(start);

    // Replay through a log, in the node's apply batches.
    double replay = 0;
    {
        storage::memory_log log;
        fill_log(log, entries);
        sim::kv_machine replayed;
        std::vector<log_entry> batch;
        start = bench_clock::now();
        for (log_index lo{1}; lo <= log.last_index(); lo = lo + batch.size()) {
            batch.clear();
            const log_index hi = std::min(log.last_index() + 1, lo + 1024);
            if (log.entries(lo, hi, SIZE_MAX, batch)) {
                std::exit(1);
            }
            for (const auto& e : batch) {
                replayed.apply(e);
            }
        }
        replay = seconds_since(start);
        if (replayed.data() != reference.data()) {
            std::printf("  replay FAILED: state differs\n");
            std::exit(1);
        }
    }

    double restore = 0;
    {
        sim::kv_machine restored;
        start = bench_clock::now();
        const std::error_code ec = restored.restore(image.span());
        restore = seconds_since(start);
        if (ec || restored.data() != reference.data()) {
            std::printf("  restore FAILED: state differs\n");
            std::exit(1);
        }
    }
    std::printf("  machine alone: snapshot %.1f MB taken in %.0f ms; restore %.0f ms; replay of "
                "%llu entries from a memory_log %.0f ms (apply alone %.0f ms); replay / restore "
                "= %.1fx\n",
                static_cast<double>(image.size()) / 1e6, take * 1e3, restore * 1e3,
                static_cast<unsigned long long>(n), replay * 1e3, apply_direct * 1e3,
                replay / restore);

    // A whole node starting from its log.
    const membership solo({node_id{1}});
    const auto from_snapshot = time_node_start(false, n, reference.data(), [&](auto& log) {
        log.save_snapshot(snapshot{{log_index{n}, term{1}, solo}, image});
        log.compact_prefix(log_index{n});
        log.save_hard_state({term{1}, no_node, log_index{n}});
        log.flush([](std::error_code) {});
    });
    const auto from_log =
        time_node_start(false, n, reference.data(), [&](auto& log) { fill_log(log, entries); });
    entries.clear();
    entries.shrink_to_fit();
    if (!from_snapshot.ok || !from_log.ok) {
        std::printf("  node start FAILED (snapshot %d, log %d)\n", from_snapshot.ok, from_log.ok);
        std::exit(1);
    }
    std::printf("  raft::node from a snapshot:     start() %.0f ms, all applied %.0f ms\n",
                from_snapshot.start_seconds * 1e3, from_snapshot.total_seconds * 1e3);
    std::printf("  raft::node from %llu entries: start() %.0f ms, all applied %.0f ms "
                "(snapshots off); %.1fx the snapshot start\n",
                static_cast<unsigned long long>(n), from_log.start_seconds * 1e3,
                from_log.total_seconds * 1e3, from_log.total_seconds / from_snapshot.total_seconds);
}

/// The same replay with the default snapshot thresholds: the node snapshots its growing state
/// every `snapshot_after_entries` entries while it replays.
void replay_with_default_thresholds(std::uint64_t n) {
    std::vector<log_entry> entries;
    entries.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
        entries.push_back(
            log_entry{term{1}, log_index{i + 1}, entry_kind::normal, put_command(i, n)});
    }
    sim::kv_machine reference;
    for (const auto& e : entries) {
        reference.apply(e);
    }
    const auto r =
        time_node_start(true, n, reference.data(), [&](auto& log) { fill_log(log, entries); });
    if (!r.ok) {
        std::printf("  node start with default thresholds FAILED\n");
        std::exit(1);
    }
    std::printf("  raft::node from %llu entries, default thresholds (snapshot every %llu "
                "entries): all applied %.0f ms, %llu snapshots taken on the way\n",
                static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(raft::config{}.snapshot_after_entries),
                r.total_seconds * 1e3, static_cast<unsigned long long>(r.snapshots_taken));
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 64;
    const std::uint64_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
    if (mib == 0 || n == 0 || repeats <= 0) {
        std::fprintf(stderr, "usage: %s [snapshot-MiB] [entries] [repeats]\n", argv[0]);
        return 2;
    }
    std::string command;
    for (int i = 0; i < argc; ++i) {
        command += (i == 0 ? "" : " ") + std::string(argv[i]);
    }
    std::printf("command: %s\n", command.c_str());
    const auto start = bench_clock::now();
    transfer_benchmark(mib, repeats);
    restore_benchmark(n);
    replay_with_default_thresholds(n);
    std::printf("total %.1f s\n", seconds_since(start));
    return 0;
}
