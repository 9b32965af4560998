// file_log throughput, each beside the raw file-system operation it is built on, measured in
// the same run on the same disk, so the ratios travel across machines:
//
// - append + flush of 256-byte entries, 1, 8, 64 and 512 entries per flush, beside raw
//   pwrite + fdatasync of exactly the bytes the log wrote per flush (the disk's limit for that
//   write pattern);
// - group commit with an I/O thread: a flush requested after every append, coalesced by the log;
// - recovery (open + verify every record) beside a raw sequential read of the same files, with
//   the segments verified on two threads (the default for a log this size) and on one.
//
// Targets (issue "Durable file log"): at 64 entries per flush or more, at least 80% of the raw
// write + fdatasync bandwidth; recovery at least 50% of the raw read speed.
//
// Usage: synod_file_log_bench [directory] [seconds-per-measurement] [recovery-MiB]
//        (defaults: a new directory under $TMPDIR or /tmp, 1.0, 256; seconds 0 measures
//        recovery only)

#include <synod/storage/file_log.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace synod;
using bench_clock = std::chrono::steady_clock;

constexpr std::size_t payload_size = 256;
double g_seconds = 1.0;

double seconds_since(bench_clock::time_point start) {
    return std::chrono::duration<double>(bench_clock::now() - start).count();
}

std::vector<shared_bytes> make_payloads(std::size_t count) {
    std::mt19937_64 rng(1);
    std::vector<shared_bytes> out;
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back(shared_bytes::build(payload_size, [&](std::span<std::byte> bytes) {
            for (auto& b : bytes) {
                b = static_cast<std::byte>(rng());
            }
        }));
    }
    return out;
}

std::uint64_t directory_bytes(const std::string& dir) {
    std::uint64_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.is_regular_file()) {
            total += e.file_size();
        }
    }
    return total;
}

struct append_result {
    double entries_per_second = 0;
    double disk_bytes_per_second = 0; ///< everything the log wrote: records, headers
    std::uint64_t bytes_per_flush = 0;
};

/// Appends `per_flush` entries and flushes (inline), for about g_seconds.
append_result run_log(const std::string& dir, std::size_t per_flush,
                      const std::vector<shared_bytes>& payloads) {
    std::filesystem::remove_all(dir);
    storage::file_log_options o;
    o.directory = dir;
    storage::file_log log(std::move(o));
    if (auto ec = log.recover()) {
        std::fprintf(stderr, "recover: %s\n", log.last_error_detail().c_str());
        std::exit(1);
    }
    std::vector<log_entry> batch(per_flush);
    std::uint64_t next = 1;
    std::uint64_t flushes = 0;
    const auto start = bench_clock::now();
    do {
        for (std::size_t k = 0; k < per_flush; ++k) {
            batch[k] = log_entry{term{1}, log_index{next}, entry_kind::normal,
                                 payloads[next % payloads.size()]};
            ++next;
        }
        if (log.append(batch)) {
            std::exit(1);
        }
        log.flush([](std::error_code ec) {
            if (ec) {
                std::fprintf(stderr, "flush failed: %s\n", ec.message().c_str());
                std::exit(1);
            }
        });
        ++flushes;
    } while (seconds_since(start) < g_seconds);
    const double secs = seconds_since(start);
    const std::uint64_t bytes = directory_bytes(dir);
    return {static_cast<double>(next - 1) / secs, static_cast<double>(bytes) / secs,
            bytes / flushes};
}

/// Raw pwrite + fdatasync of `bytes_per_sync` at the end of a growing file, for about
/// g_seconds: what the disk gives this write pattern.
double run_raw_write(const std::string& dir, std::uint64_t bytes_per_sync) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/raw";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        std::perror("open");
        std::exit(1);
    }
    std::vector<char> buf(bytes_per_sync, 'r');
    std::uint64_t offset = 0;
    const auto start = bench_clock::now();
    do {
        if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(offset)) !=
                static_cast<ssize_t>(buf.size()) ||
            ::fdatasync(fd) != 0) {
            std::perror("pwrite/fdatasync");
            std::exit(1);
        }
        offset += buf.size();
    } while (seconds_since(start) < g_seconds);
    const double secs = seconds_since(start);
    ::close(fd);
    return static_cast<double>(offset) / secs;
}

/// A flush requested after every single append, with the flush work on the log's I/O thread:
/// the log coalesces the requests made while one flush is in flight into the next.
std::pair<double, double> run_group_commit(const std::string& dir,
                                           const std::vector<shared_bytes>& payloads) {
    std::filesystem::remove_all(dir);
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<unique_function<void()>> posted;
    storage::file_log_options o;
    o.directory = dir;
    o.own_io_thread = true;
    o.post = [&](unique_function<void()> fn) {
        {
            std::lock_guard lock(mutex);
            posted.push_back(std::move(fn));
        }
        wake.notify_one();
    };
    storage::file_log log(std::move(o));
    if (log.recover()) {
        std::exit(1);
    }
    auto drain = [&](bool wait) {
        std::deque<unique_function<void()>> ready;
        {
            std::unique_lock lock(mutex);
            if (wait) {
                wake.wait(lock, [&] { return !posted.empty(); });
            }
            ready.swap(posted);
        }
        for (auto& fn : ready) {
            fn();
        }
    };
    std::uint64_t next = 1;
    std::uint64_t completed = 0;
    const auto start = bench_clock::now();
    do {
        const log_entry e{term{1}, log_index{next}, entry_kind::normal,
                          payloads[next % payloads.size()]};
        ++next;
        if (log.append(std::span<const log_entry>(&e, 1))) {
            std::exit(1);
        }
        log.flush([&](std::error_code ec) {
            if (ec) {
                std::exit(1);
            }
            ++completed;
        });
        drain(false);
    } while (seconds_since(start) < g_seconds);
    while (completed < next - 1) {
        drain(true);
    }
    const double secs = seconds_since(start);
    // Each completed batch took one fdatasync; flushes_completed counts callbacks.
    return {static_cast<double>(next - 1) / secs, static_cast<double>(directory_bytes(dir)) / secs};
}

/// Writes about `mib` MiB of 256-byte entries, 512 per flush.
void fill_log(const std::string& dir, std::uint64_t mib,
              const std::vector<shared_bytes>& payloads) {
    std::filesystem::remove_all(dir);
    storage::file_log_options o;
    o.directory = dir;
    storage::file_log log(std::move(o));
    if (log.recover()) {
        std::exit(1);
    }
    std::vector<log_entry> batch(512);
    std::uint64_t next = 1;
    const std::uint64_t target = mib << 20;
    while (static_cast<std::uint64_t>(next) * 304 < target) {
        for (auto& e : batch) {
            e = log_entry{term{1}, log_index{next}, entry_kind::normal,
                          payloads[next % payloads.size()]};
            ++next;
        }
        if (log.append(batch)) {
            std::exit(1);
        }
        log.flush([](std::error_code ec) {
            if (ec) {
                std::exit(1);
            }
        });
    }
}

/// Seconds to recover (open and verify) the log in `dir`; returns its last index in `last`.
/// `one_thread`: without the helper thread that verifies segments from the end.
double time_recovery(const std::string& dir, std::uint64_t& last, bool one_thread = false) {
    storage::file_log_options o;
    o.directory = dir;
    if (one_thread) {
        o.parallel_recovery_bytes = UINT64_MAX;
    }
    const auto start = bench_clock::now();
    storage::file_log log(std::move(o));
    if (auto ec = log.recover()) {
        std::fprintf(stderr, "recover: %s\n", log.last_error_detail().c_str());
        std::exit(1);
    }
    const double secs = seconds_since(start);
    last = log.last_index().value();
    return secs;
}

/// Seconds to read every segment of `dir` sequentially (1 MiB preads), touching each byte.
double time_raw_read(const std::string& dir, std::uint64_t& bytes) {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() == ".log") {
            files.push_back(e.path().string());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<char> buf(std::size_t{1} << 20);
    bytes = 0;
    unsigned sum = 0;
    const auto start = bench_clock::now();
    for (const auto& f : files) {
        const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
        ssize_t n;
        off_t at = 0;
        while ((n = ::pread(fd, buf.data(), buf.size(), at)) > 0) {
            sum += static_cast<unsigned char>(buf[static_cast<std::size_t>(n) - 1]);
            at += n;
            bytes += static_cast<std::uint64_t>(n);
        }
        ::close(fd);
    }
    const double secs = seconds_since(start);
    if (sum == 1) {
        std::puts("");
    }
    return secs;
}

/// Drops the segment files of `dir` from the page cache (they are clean: every byte was
/// synced), so the next read comes from the disk.
void evict_from_page_cache(const std::string& dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() == ".log") {
            const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
            ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            ::close(fd);
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string root;
    if (argc > 1) {
        root = argv[1];
    } else {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "synod-bench-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            std::perror("mkdtemp");
            return 1;
        }
        root = pattern;
    }
    if (argc > 2) {
        g_seconds = std::atof(argv[2]);
    }
    const std::uint64_t recovery_mib = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 256;
    const auto payloads = make_payloads(1024);
    const std::string log_dir = root + "/log";
    const std::string raw_dir = root + "/raw";

    std::printf("file_log: 256-byte entries; %s; %.1f s per measurement, best of 3\n\n",
                root.c_str(), g_seconds);
    std::printf("%-10s %12s %12s %12s %12s %12s %8s\n", "per flush", "entries/s", "payload MB/s",
                "disk MB/s", "bytes/flush", "raw MB/s", "ratio");
    for (std::size_t per_flush : {1U, 8U, 64U, 512U}) {
        if (g_seconds <= 0) {
            break;
        }
        append_result best{};
        double raw_best = 0;
        for (int round = 0; round < 3; ++round) {
            // Alternate, so that a noisy neighbour hurts both sides alike.
            const append_result r = run_log(log_dir, per_flush, payloads);
            if (r.disk_bytes_per_second > best.disk_bytes_per_second) {
                best = r;
            }
            raw_best = std::max(raw_best, run_raw_write(raw_dir, r.bytes_per_flush));
        }
        std::printf("%-10zu %12.0f %12.2f %12.2f %12llu %12.2f %7.0f%%\n", per_flush,
                    best.entries_per_second, best.entries_per_second * payload_size / 1e6,
                    best.disk_bytes_per_second / 1e6,
                    static_cast<unsigned long long>(best.bytes_per_flush), raw_best / 1e6,
                    100 * best.disk_bytes_per_second / raw_best);
    }

    if (g_seconds > 0) {
        double best_entries = 0;
        double best_bytes = 0;
        for (int round = 0; round < 3; ++round) {
            auto [entries, bytes] = run_group_commit(log_dir, payloads);
            if (entries > best_entries) {
                best_entries = entries;
                best_bytes = bytes;
            }
        }
        std::printf("\ngroup commit, I/O thread, a flush after every append: %.0f entries/s, "
                    "%.2f payload MB/s, %.2f disk MB/s\n",
                    best_entries, best_entries * payload_size / 1e6, best_bytes / 1e6);
    }

    std::printf("\nrecovery of %llu MiB (64 MiB segments), page cache warm, best of 3\n",
                static_cast<unsigned long long>(recovery_mib));
    fill_log(log_dir, recovery_mib, payloads);
    double recover_best = 1e9;
    double one_thread_best = 1e9;
    double read_best = 1e9;
    std::uint64_t bytes = 0;
    std::uint64_t last = 0;
    for (int round = 0; round < 3; ++round) {
        read_best = std::min(read_best, time_raw_read(log_dir, bytes));
        recover_best = std::min(recover_best, time_recovery(log_dir, last));
        one_thread_best = std::min(one_thread_best, time_recovery(log_dir, last, true));
    }
    std::printf("%-28s %10.0f MB/s  (%llu entries, %.3f s)\n", "recovery (verify + index)",
                static_cast<double>(bytes) / recover_best / 1e6,
                static_cast<unsigned long long>(last), recover_best);
    std::printf("%-28s %10.0f MB/s  (%.3f s)\n", "recovery on one thread",
                static_cast<double>(bytes) / one_thread_best / 1e6, one_thread_best);
    std::printf("%-28s %10.0f MB/s  (%.3f s)\n", "raw sequential read",
                static_cast<double>(bytes) / read_best / 1e6, read_best);
    std::printf("%-28s %10.0f%%  (one thread: %.0f%%)\n", "ratio", 100 * read_best / recover_best,
                100 * read_best / one_thread_best);

    std::printf("\nrecovery of the same files, page cache cold (posix_fadvise DONTNEED), best of "
                "3\n");
    double cold_recover_best = 1e9;
    double cold_read_best = 1e9;
    for (int round = 0; round < 3; ++round) {
        evict_from_page_cache(log_dir);
        cold_read_best = std::min(cold_read_best, time_raw_read(log_dir, bytes));
        evict_from_page_cache(log_dir);
        cold_recover_best = std::min(cold_recover_best, time_recovery(log_dir, last));
    }
    std::printf("%-28s %10.0f MB/s  (%.3f s)\n", "recovery (verify + index)",
                static_cast<double>(bytes) / cold_recover_best / 1e6, cold_recover_best);
    std::printf("%-28s %10.0f MB/s  (%.3f s)\n", "raw sequential read",
                static_cast<double>(bytes) / cold_read_best / 1e6, cold_read_best);
    std::printf("%-28s %10.0f%%\n", "ratio", 100 * cold_read_best / cold_recover_best);

    std::filesystem::remove_all(log_dir);
    std::filesystem::remove_all(raw_dir);
    if (argc <= 1) {
        std::filesystem::remove_all(root);
    }
    return 0;
}
