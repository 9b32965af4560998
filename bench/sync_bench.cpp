// What the disk allows a write-ahead log: small appends, each followed by fdatasync, from P
// processes at once (three Raft nodes on one machine share one disk), on files that grow with
// every write, on zero-filled files (what file_log's preallocate_bytes keeps ahead of the
// records), and on fallocate'd ones. With --threads T, each process appends from T threads at
// once, each write at the next offset and followed by its own fdatasync, so up to T syncs of
// one file overlap (file_log's max_flushes_in_flight). Prints syncs per second for each
// process (all its threads together) and the mean time one sync took.
//
//   synod_sync_bench [--mode grow|zeroed|fallocated] [--processes P] [--threads T]
//                    [--writes N] [--bytes B] [--dir DIR]
//
// docs/performance.md ("Loopback", "Why fsync caps the file log") has the figures.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct options {
    std::string mode = "grow";
    int processes = 3;
    int threads = 1;
    long writes = 3000;      ///< per process
    std::size_t bytes = 600; // about the records of one loopback round: a few 256 B entries
    std::string dir = "/tmp/synod-sync-bench";
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "synod_sync_bench: %s\nusage: synod_sync_bench [--mode grow|zeroed|fallocated] "
                 "[--processes P] [--threads T] [--writes N] [--bytes B] [--dir DIR]\n",
                 why);
    std::exit(2);
}

[[noreturn]] void die(const std::string& what) {
    std::perror(what.c_str());
    std::exit(1);
}

/// The file a process appends to, prepared as the mode says, and synced.
int prepare(const options& o, const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        die("open " + path);
    }
    const std::size_t total = static_cast<std::size_t>(o.writes) * o.bytes;
    if (o.mode == "zeroed") {
        const std::vector<char> zeros(std::size_t{1} << 20, 0);
        for (std::size_t at = 0; at < total; at += zeros.size()) {
            if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)) < 0) {
                die("pwrite zeros");
            }
        }
    } else if (o.mode == "fallocated") {
        if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(total))) {
            errno = err;
            die("posix_fallocate");
        }
    }
    if (::fsync(fd) != 0) {
        die("fsync");
    }
    return fd;
}

struct rates {
    double syncs_per_second = 0;
    double mean_sync_ms = 0;
};

/// Appends and syncs from `o.threads` threads, each write at the next free offset.
rates run(const options& o, int fd) {
    const std::string record(o.bytes, 'r');
    std::atomic<long> next{0};
    std::atomic<long long> sync_nanoseconds{0};
    auto append = [&] {
        for (long i = next++; i < o.writes; i = next++) {
            const auto at = static_cast<off_t>(static_cast<std::size_t>(i) * o.bytes);
            if (::pwrite(fd, record.data(), record.size(), at) != static_cast<ssize_t>(o.bytes)) {
                die("pwrite");
            }
            const auto before = std::chrono::steady_clock::now();
            if (::fdatasync(fd) != 0) {
                die("fdatasync");
            }
            sync_nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - before)
                                    .count();
        }
    };
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 1; t < o.threads; ++t) {
        threads.emplace_back(append);
    }
    append();
    for (std::thread& t : threads) {
        t.join();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return {static_cast<double>(o.writes) / seconds,
            static_cast<double>(sync_nanoseconds.load()) / 1e6 / static_cast<double>(o.writes)};
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        const char* value = argv[i + 1];
        if (flag == "--mode") {
            o.mode = value;
        } else if (flag == "--processes") {
            o.processes = std::atoi(value);
        } else if (flag == "--threads") {
            o.threads = std::atoi(value);
        } else if (flag == "--writes") {
            o.writes = std::atol(value);
        } else if (flag == "--bytes") {
            o.bytes = static_cast<std::size_t>(std::atol(value));
        } else if (flag == "--dir") {
            o.dir = value;
        } else {
            usage("unknown flag");
        }
    }
    if (argc % 2 == 0 || o.processes < 1 || o.threads < 1 || o.threads > 64 || o.writes < 1 ||
        o.bytes == 0 || (o.mode != "grow" && o.mode != "zeroed" && o.mode != "fallocated")) {
        usage("bad arguments");
    }
    if (::mkdir(o.dir.c_str(), 0755) != 0 && errno != EEXIST) {
        die("mkdir " + o.dir);
    }
    // Every file is prepared before any process starts syncing, so they sync together.
    std::vector<int> files;
    for (int p = 0; p < o.processes; ++p) {
        files.push_back(prepare(o, o.dir + "/file" + std::to_string(p)));
    }
    std::vector<pid_t> children;
    for (int p = 0; p < o.processes; ++p) {
        const pid_t pid = ::fork();
        if (pid < 0) {
            die("fork");
        }
        if (pid == 0) {
            const rates r = run(o, files[static_cast<std::size_t>(p)]);
            std::printf("mode=%s processes=%d threads=%d bytes=%zu process=%d syncs_per_s=%.0f "
                        "mean_sync_ms=%.3f\n",
                        o.mode.c_str(), o.processes, o.threads, o.bytes, p, r.syncs_per_second,
                        r.mean_sync_ms);
            std::fflush(stdout);
            std::_Exit(0);
        }
        children.push_back(pid);
    }
    int failed = 0;
    for (const pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        failed += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    for (int p = 0; p < o.processes; ++p) {
        ::close(files[static_cast<std::size_t>(p)]);
        ::unlink((o.dir + "/file" + std::to_string(p)).c_str());
    }
    return failed == 0 ? 0 : 1;
}
