// synod_sim: the randomized fault sweep driver.
//
//   synod_sim [--first N] [--count N] [--seconds S] [--ops N] [--size N] [--quiet]
//   synod_sim --seed S            replay one seed, printing its trace hash
//   --report FILE                 write the HTML report of a failing seed (or of --seed S)
//   --log memory|file             the nodes' log: memory_log (default) or the durable file log
//                                 on the simulated file system (sim/disk.hpp)
//
// Runs seeds first..first+count-1 (default 1..2000, or SYNOD_SIM_SEEDS), each with every fault
// class, `--seconds` of faulty simulated time (default 60) and at least `--ops` client operations
// (default 200). Prints the hits per fault class, operations checked and seeds per second;
// fails if any seed fails an oracle or any fault class was never hit. A failing seed prints
// the exact command that replays it.

#include <synod/sim/report.hpp>
#include <synod/sim/sweep.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace {

using namespace synod;

struct arguments {
    std::uint64_t first = 1;
    std::uint64_t count = 2000;
    std::uint64_t seconds = 60;
    std::size_t ops = 200;
    std::size_t size = 0;
    bool quiet = false;
    bool replay = false;
    sim::log_kind log = sim::log_kind::memory;
    std::string report; ///< where to write the HTML report of a failing (or replayed) seed
};

bool parse(int argc, char** argv, arguments& a) {
    if (const char* env = std::getenv("SYNOD_SIM_SEEDS")) {
        a.count = std::strtoull(env, nullptr, 10);
    }
    for (int i = 1; i < argc; ++i) {
        auto next = [&]() -> std::uint64_t {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "synod_sim: %s needs a value\n", argv[i]);
                std::exit(2);
            }
            return std::strtoull(argv[++i], nullptr, 10);
        };
        if (std::strcmp(argv[i], "--first") == 0) {
            a.first = next();
        } else if (std::strcmp(argv[i], "--count") == 0) {
            a.count = next();
        } else if (std::strcmp(argv[i], "--seed") == 0) {
            a.first = next();
            a.count = 1;
            a.replay = true;
        } else if (std::strcmp(argv[i], "--seconds") == 0) {
            a.seconds = next();
        } else if (std::strcmp(argv[i], "--ops") == 0) {
            a.ops = next();
        } else if (std::strcmp(argv[i], "--size") == 0) {
            a.size = next();
        } else if (std::strcmp(argv[i], "--report") == 0 && i + 1 < argc) {
            a.report = argv[++i];
        } else if (std::strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            ++i;
            if (std::strcmp(argv[i], "file") == 0) {
                a.log = sim::log_kind::file;
            } else if (std::strcmp(argv[i], "memory") == 0) {
                a.log = sim::log_kind::memory;
            } else {
                std::fprintf(stderr, "synod_sim: --log takes memory or file, not %s\n", argv[i]);
                return false;
            }
        } else if (std::strcmp(argv[i], "--quiet") == 0) {
            a.quiet = true;
        } else {
            std::fprintf(stderr, "synod_sim: unknown argument %s\n", argv[i]);
            return false;
        }
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    arguments a;
    if (!parse(argc, argv, a)) {
        return 2;
    }
    sim::sweep_options options;
    options.faulty_time = std::chrono::seconds(a.seconds);
    options.min_operations = a.ops;
    options.cluster_size = a.size;
    options.log = a.log;

    sim::fault_hits total;
    std::size_t operations = 0;
    std::size_t unknown = 0;
    std::size_t failed = 0;
    std::uint64_t snapshot_chunks = 0;
    std::uint64_t snapshot_installs = 0;
    std::uint64_t membership_changes = 0;
    std::uint64_t transfers = 0;
    std::uint64_t index_reads = 0;
    std::uint64_t lease_reads = 0;
    double simulated = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t seed = a.first; seed < a.first + a.count; ++seed) {
        sim::sweep_result r = sim::run_sweep(seed, options);
        total += r.hits;
        operations += r.operations;
        unknown += r.unknown_operations;
        snapshot_chunks += r.snapshot_chunks;
        snapshot_installs += r.snapshot_installs;
        membership_changes += r.membership_changes;
        transfers += r.transfers;
        (r.read_mode == 2 ? lease_reads : index_reads) += r.read_mode == 0 ? 0 : r.reads_served;
        simulated += std::chrono::duration<double>(r.simulated).count();
        if (a.replay || !a.quiet) {
            std::printf("seed %llu: %zu nodes, %zu operations (%zu unknown), trace %016llx: %s\n",
                        static_cast<unsigned long long>(seed), r.cluster_size, r.operations,
                        r.unknown_operations, static_cast<unsigned long long>(r.trace_hash),
                        r.passed ? "ok" : "FAILED");
        }
        if (!a.report.empty() && (a.replay || !r.passed)) {
            std::ofstream file(a.report);
            sim::write_html_report(r, file);
            std::printf("report: %s\n", a.report.c_str());
        }
        if (!r.passed) {
            ++failed;
            std::printf(
                "FAILED seed %llu: %s\n  replay: %s --seed %llu --seconds %llu --ops %zu%s%s\n",
                static_cast<unsigned long long>(seed), r.failure.c_str(), argv[0],
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(a.seconds),
                a.ops, a.size != 0 ? (" --size " + std::to_string(a.size)).c_str() : "",
                a.log == sim::log_kind::file ? " --log file" : "");
        }
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (a.log == sim::log_kind::file) {
        std::printf("\nnodes on the file log (recording_files)");
    }
    std::printf("\n%llu seeds, %.0f s simulated, %zu operations checked (%zu with unknown "
                "outcome), %.2f seeds/s\n",
                static_cast<unsigned long long>(a.count), simulated, operations, unknown,
                static_cast<double>(a.count) / wall);
    std::printf("fault hits:\n");
    std::size_t never = 0;
    for (std::size_t i = 0; i < sim::fault_count; ++i) {
        const auto f = static_cast<sim::fault>(i);
        std::printf("  %-20s %10llu\n", std::string(sim::to_string(f)).c_str(),
                    static_cast<unsigned long long>(total[f]));
        never += total[f] == 0 ? 1 : 0;
    }
    if (never > 0 && !a.replay) {
        std::printf("%zu fault classes were never hit: the sweep did not test them\n", never);
    }
    std::printf("InstallSnapshot: %llu chunks sent, %llu snapshots installed\n",
                static_cast<unsigned long long>(snapshot_chunks),
                static_cast<unsigned long long>(snapshot_installs));
    std::printf("reads checked for linearizability: %llu by ReadIndex, %llu under a lease\n",
                static_cast<unsigned long long>(index_reads),
                static_cast<unsigned long long>(lease_reads));
    std::printf("reconfiguration: %llu membership changes and %llu leadership transfers "
                "completed\n",
                static_cast<unsigned long long>(membership_changes),
                static_cast<unsigned long long>(transfers));
    // A sweep of any size should move followers through snapshots; if none did, the
    // compaction settings stopped exercising that path.
    const bool snapshots_untested =
        (snapshot_installs == 0 || membership_changes == 0 || transfers == 0) && a.count >= 50 &&
        !a.replay;
    if (snapshots_untested) {
        std::printf("no snapshot install, membership change or transfer completed: the sweep "
                    "did not test them\n");
    }
    std::printf("%zu seeds passed, %zu seeds failed\n", static_cast<std::size_t>(a.count) - failed,
                failed);
    return failed > 0 || (never > 0 && !a.replay) || snapshots_untested ? 1 : 0;
}
