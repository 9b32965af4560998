// Admission queue cycle cost (issue 11). For each backlog size n (1,000 .. 1,000,000 pending
// executions), one run measures, on the same pre-generated items:
//   heap     a bare std::priority_queue of (priority, sequence, index): push one item, pop one
//   heap+    the same heap carrying what the queue carries per execution: the item also holds
//            its id (a std::string copied in) and its payload (a shared_bytes reference), and
//            the popped item is moved out and dropped
//   queue    machines::admission_queue used standalone: submit one execution (it queues
//            behind the n pending), complete the running one — which dispatches the front at
//            once (auto_dispatch, max_running 1) — so each cycle is submit → dispatch →
//            complete, with n pending throughout
//   apply    the same cycle through the replicated path: encode_submit / encode_complete /
//            encode_dispatch decoded by `apply` (dispatch an explicit command), as a follower
//            applies committed entries
// Items: ids "exec-<number>", 1,000 users, priorities drawn uniformly from 0..4, 64-byte
// payloads shared by reference. Caps are raised so that nothing is rejected; retention of
// finished decisions stays at its default (100,000), so forgetting the oldest is part of the
// steady state. Prints ns per cycle, the ratio to the heap, and growth against log2 n
// relative to the smallest size (1.0 = exactly logarithmic).
//
// Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID where available), not wall time:
// on a shared machine the process is descheduled for long stretches, which wall time charges
// at random to whichever side ran then.
//
// Usage: synod_admission_bench [cycles per size] [largest size] [retained decisions]
//        (defaults 200,000, 1,000,000, 100,000 — the config's default retention)

#include <synod/machines/admission_queue.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace synod;
using namespace synod::machines;
/// The calling thread's CPU time (steady wall time where that clock is missing).
struct bench_clock {
    using time_point = std::chrono::nanoseconds;
    static time_point now() noexcept {
#if defined(CLOCK_THREAD_CPUTIME_ID)
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
#else
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::steady_clock::now().time_since_epoch());
#endif
    }
};

struct workload {
    std::vector<std::string> ids;
    std::vector<std::string> users;
    std::vector<std::uint8_t> priorities;
    std::vector<std::uint16_t> user_of;
    shared_bytes payload;
};

workload make_workload(std::size_t count) {
    workload w;
    std::mt19937_64 rng(42);
    w.ids.reserve(count);
    w.priorities.reserve(count);
    w.user_of.reserve(count);
    for (int u = 0; u < 1000; ++u) {
        w.users.push_back("user-" + std::to_string(u));
    }
    for (std::size_t i = 0; i < count; ++i) {
        w.ids.push_back("exec-" + std::to_string(i));
        w.priorities.push_back(static_cast<std::uint8_t>(rng() % 5));
        w.user_of.push_back(static_cast<std::uint16_t>(rng() % 1000));
    }
    w.payload = shared_bytes(std::string(64, 'p'));
    return w;
}

double seconds_since(bench_clock::time_point start) {
    return std::chrono::duration<double>(bench_clock::now() - start).count();
}

/// Bare heap: push (priority, sequence, index), pop the least.
double heap_ns(const workload& w, std::size_t n, std::size_t cycles) {
    struct item {
        std::uint8_t priority;
        std::uint64_t seq;
        std::uint32_t index;
    };
    struct later {
        bool operator()(const item& a, const item& b) const noexcept {
            return a.priority != b.priority ? a.priority > b.priority : a.seq > b.seq;
        }
    };
    std::vector<item> storage;
    storage.reserve(n + 1);
    std::priority_queue<item, std::vector<item>, later> heap(later{}, std::move(storage));
    std::uint64_t seq = 0;
    for (std::size_t i = 0; i < n; ++i, ++seq) {
        heap.push({w.priorities[i], seq, static_cast<std::uint32_t>(i)});
    }
    std::uint64_t checksum = 0;
    const auto start = bench_clock::now();
    for (std::size_t c = 0; c < cycles; ++c, ++seq) {
        const std::size_t i = n + c;
        heap.push({w.priorities[i], seq, static_cast<std::uint32_t>(i)});
        checksum += heap.top().index;
        heap.pop();
    }
    const double s = seconds_since(start);
    if (checksum == 42) {
        std::puts(""); // keep the loop
    }
    return s * 1e9 / static_cast<double>(cycles);
}

/// The heap again, its items carrying the execution's id and payload as the queue does.
double heap_with_data_ns(const workload& w, std::size_t n, std::size_t cycles) {
    struct item {
        std::uint8_t priority;
        std::uint64_t seq;
        std::string id;
        shared_bytes payload;
    };
    struct later {
        bool operator()(const item& a, const item& b) const noexcept {
            return a.priority != b.priority ? a.priority > b.priority : a.seq > b.seq;
        }
    };
    // std::push_heap / pop_heap on a reserved vector: what std::priority_queue does (its
    // constructor from a container trips a GCC 12 false -Waggressive-loop-optimizations here).
    std::vector<item> heap;
    heap.reserve(n + 1);
    std::uint64_t seq = 0;
    for (std::size_t i = 0; i < n; ++i, ++seq) {
        heap.push_back({w.priorities[i], seq, w.ids[i], w.payload});
        std::push_heap(heap.begin(), heap.end(), later{});
    }
    std::uint64_t checksum = 0;
    const auto start = bench_clock::now();
    for (std::size_t c = 0; c < cycles; ++c, ++seq) {
        const std::size_t i = n + c;
        heap.push_back({w.priorities[i], seq, w.ids[i], w.payload});
        std::push_heap(heap.begin(), heap.end(), later{});
        std::pop_heap(heap.begin(), heap.end(), later{});
        const item top = std::move(heap.back());
        heap.pop_back();
        checksum += top.id.size();
    }
    const double s = seconds_since(start);
    if (checksum == 42) {
        std::puts(""); // keep the loop
    }
    return s * 1e9 / static_cast<double>(cycles);
}

std::size_t retained = admission_config{}.max_retained_decisions;

admission_config config_for(std::size_t n, bool auto_dispatch) {
    admission_config c;
    c.max_retained_decisions = retained;
    c.max_queue_size = n + 16;
    c.max_per_user = n + 16;
    c.max_running = 1;
    c.stale_timeout = admission_config::max_stale_timeout;
    c.auto_dispatch = auto_dispatch;
    return c;
}

/// Standalone queue: submit, then complete the running one (which dispatches the front).
double queue_ns(const workload& w, std::size_t n, std::size_t cycles) {
    admission_queue q(config_for(n, true));
    std::string_view running;
    q.set_event_sink([&](const admission_event& e) {
        if (e.kind == admission_event_kind::dispatched) {
            running = e.execution_id; // the node lives until the execution is forgotten
        }
    });
    std::uint64_t now = 0;
    for (std::size_t i = 0; i <= n; ++i) { // n pending + 1 running
        (void)q.submit(w.ids[i], w.users[w.user_of[i]],
                       static_cast<admission_priority>(w.priorities[i]), w.payload, now);
    }
    const auto start = bench_clock::now();
    for (std::size_t c = 0; c < cycles; ++c) {
        const std::size_t i = n + 1 + c;
        ++now;
        const auto d = q.submit(w.ids[i], w.users[w.user_of[i]],
                                static_cast<admission_priority>(w.priorities[i]), w.payload, now);
        const auto ec = q.complete(running, now);
        if (d.error || ec) {
            std::fprintf(stderr, "unexpected refusal: %s / %s\n", d.error.message().c_str(),
                         ec.message().c_str());
            std::exit(1);
        }
    }
    const double s = seconds_since(start);
    if (q.pending_count() != n || q.running_count() != 1) {
        std::fprintf(stderr, "backlog drifted: %zu pending\n", q.pending_count());
        std::exit(1);
    }
    return s * 1e9 / static_cast<double>(cycles);
}

/// Replicated path: encoded commands through `apply`, with an explicit dispatch command.
double apply_ns(const workload& w, std::size_t n, std::size_t cycles) {
    admission_queue q(config_for(n, false));
    std::uint64_t index = 0;
    auto run = [&](shared_bytes cmd) {
        return q.apply(log_entry{term{1}, log_index{++index}, entry_kind::normal, std::move(cmd)});
    };
    std::uint64_t now = 0;
    for (std::size_t i = 0; i <= n; ++i) {
        (void)q.submit(w.ids[i], w.users[w.user_of[i]],
                       static_cast<admission_priority>(w.priorities[i]), w.payload, now);
    }
    std::string running(q.ready_to_dispatch(1).front());
    (void)q.dispatch(running, now);
    const auto start = bench_clock::now();
    for (std::size_t c = 0; c < cycles; ++c) {
        const std::size_t i = n + 1 + c;
        ++now;
        const auto s = run(admission_queue::encode_submit(
            w.ids[i], w.users[w.user_of[i]], static_cast<admission_priority>(w.priorities[i]),
            w.payload.span(), now));
        const auto f = run(admission_queue::encode_complete(running, now));
        running.assign(q.ready_to_dispatch(1).front());
        const auto d = run(admission_queue::encode_dispatch(running, now));
        if (s.error || f.error || d.error) {
            std::fprintf(stderr, "unexpected refusal\n");
            std::exit(1);
        }
    }
    const double s = seconds_since(start);
    return s * 1e9 / static_cast<double>(cycles);
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t cycles = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200'000;
    const std::size_t largest = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000;
    if (argc > 3) {
        retained = std::strtoull(argv[3], nullptr, 10);
    }
    std::vector<std::size_t> sizes;
    for (std::size_t n = 1'000; n <= largest; n *= 10) {
        sizes.push_back(n);
    }
    const workload w = make_workload(largest + 1 + cycles);

    std::printf("%10s %9s %9s %9s %7s %7s %9s %7s %12s %12s\n", "pending", "heap ns", "heap+ ns",
                "queue ns", "÷heap", "÷heap+", "apply ns", "÷heap", "queue/log2n", "heap/log2n");
    double queue_base = 0;
    double heap_base = 0;
    for (const std::size_t n : sizes) {
        const double heap = heap_ns(w, n, cycles);
        const double heap_plus = heap_with_data_ns(w, n, cycles);
        const double queue = queue_ns(w, n, cycles);
        const double apply = apply_ns(w, n, cycles);
        const double log_n = std::log2(static_cast<double>(n));
        if (queue_base == 0) {
            queue_base = queue / log_n;
            heap_base = heap / log_n;
        }
        std::printf("%10zu %9.1f %9.1f %9.1f %7.2f %7.2f %9.1f %7.2f %12.2f %12.2f\n", n, heap,
                    heap_plus, queue, queue / heap, queue / heap_plus, apply, apply / heap,
                    queue / log_n / queue_base, heap / log_n / heap_base);
    }
    return 0;
}
