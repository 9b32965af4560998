// Wire codec and CRC32C throughput, each beside memcpy of the same bytes in the same run, so
// the figures can be compared across machines. Targets (issue "Foundation"): CRC32C at least
// 40% of memcpy; decode of 4 KiB entries at least 1 GB/s.
//
// Usage: synod_wire_bench [seconds-per-measurement]   (default 0.3)

#include <synod/synod.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

using namespace synod;
using bench_clock = std::chrono::steady_clock;

double g_seconds = 0.3;
volatile std::uint64_t g_sink = 0; // keeps measured work observable

/// Runs `op` repeatedly for about g_seconds; returns bytes per second for `bytes` per call.
template <class Op>
double rate(std::size_t bytes, Op&& op) {
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        std::uint64_t calls = 0;
        auto start = bench_clock::now();
        auto deadline = start + std::chrono::duration<double>(g_seconds / 3);
        bench_clock::time_point now;
        do {
            for (int i = 0; i < 8; ++i) {
                op();
            }
            calls += 8;
            now = bench_clock::now();
        } while (now < deadline);
        double secs = std::chrono::duration<double>(now - start).count();
        best = std::max(best, static_cast<double>(calls * bytes) / secs);
    }
    return best;
}

append_request make_request(std::size_t payload_size, std::size_t count) {
    std::mt19937_64 rng(1);
    append_request m{node_id{1}, node_id{2},      term{9}, log_index{1000},
                     term{9},    log_index{1000}, 1,       {}};
    for (std::size_t i = 0; i < count; ++i) {
        m.entries.push_back(log_entry{term{9}, log_index{1001 + i}, entry_kind::normal,
                                      shared_bytes::build(payload_size, [&](auto out) {
                                          for (auto& b : out) {
                                              b = static_cast<std::byte>(rng());
                                          }
                                      })});
    }
    return m;
}

double memcpy_rate(std::size_t n) {
    // Source and destination share one allocation, offset by a cache line, so that they never
    // sit a multiple of 4 KiB apart (4K aliasing would slow memcpy and flatter the ratios).
    std::vector<std::byte> buffer(2 * n + 64, std::byte{1});
    std::byte* src = buffer.data();
    std::byte* dst = buffer.data() + n + 64;
    return rate(n, [&] {
        std::memcpy(dst, src, n);
        g_sink = g_sink + static_cast<std::uint64_t>(dst[n / 2]);
    });
}

void codec_row(std::size_t payload) {
    const message m = make_request(payload, 64);
    byte_vector frame = wire::encode_frame(m);
    byte_vector out;
    out.reserve(frame.size());
    double encode = rate(frame.size(), [&] {
        out.clear();
        wire::encode_frame(m, out);
        g_sink = g_sink + out.size();
    });
    double decode = rate(frame.size(), [&] {
        auto decoded = wire::decode_frame(frame);
        g_sink = g_sink + decoded->index();
    });
    double copy = memcpy_rate(frame.size());
    std::printf("append_request 64 x %5zu B (frame %7zu B): encode %8.0f MB/s  decode %8.0f "
                "MB/s  memcpy %8.0f MB/s\n",
                payload, frame.size(), encode / 1e6, decode / 1e6, copy / 1e6);
    if (payload == 4096) {
        std::printf("  target decode >= 1000 MB/s: %s\n", decode >= 1e9 ? "met" : "NOT MET");
    }
}

void crc_row(std::size_t n) {
    std::vector<std::byte> data(n, std::byte{7});
    double crc = rate(n, [&] { g_sink = g_sink + wire::crc32c(data); });
    double portable = rate(n, [&] { g_sink = g_sink + wire::crc32c_portable(data); });
    double copy = memcpy_rate(n);
    std::printf("crc32c %7zu B: %6.2f GB/s (%s), portable %5.2f GB/s, memcpy %6.2f GB/s -> "
                "%3.0f%% of memcpy (target >= 40%%: %s)\n",
                n, crc / 1e9, wire::crc32c_uses_hardware() ? "sse4.2" : "portable", portable / 1e9,
                copy / 1e9, 100 * crc / copy, crc >= 0.4 * copy ? "met" : "NOT MET");
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1) {
        g_seconds = std::atof(argv[1]);
    }
    codec_row(256);
    codec_row(4096);
    crc_row(4096);
    crc_row(17800);  // the 64 x 256 B append_request frame
    crc_row(263560); // the 64 x 4 KiB append_request frame
    crc_row(1024 * 1024);
    return 0;
}
