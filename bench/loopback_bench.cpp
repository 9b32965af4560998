// Loopback benchmark in the shape of NuRaft's raft_bench: three nodes as three processes on
// 127.0.0.1 over the TCP transport; the leader's process runs C client threads, each with K
// outstanding proposals of P bytes (K = 1: one at a time), for S seconds after a warm-up.
// Reports committed proposals per second and latency percentiles, proposal to completion.
//
//   synod_loopback_bench [--clients C] [--outstanding K] [--seconds S] [--warmup S]
//                        [--payload P] [--log memory|file] [--dir DIR] [--window W]
//                        [--client-sched batch|normal] [--preallocate BYTES] [--flushes N]
//
// --window sets raft::config::max_inflight_appends (default 1: one AppendEntries in flight
// per follower, so proposals arriving meanwhile ride in the next one, as in NuRaft; the
// library's default is 64). --client-sched batch (the default) runs the client threads under
// SCHED_BATCH, so that waking one does not preempt the node's thread that woke it; normal
// leaves them as ordinary threads. --preallocate sets file_log_options::preallocate_bytes
// (default: the library's). --flushes sets how many log flushes may be under way at once, in
// the node (raft::config::max_flushes_in_flight) and in the file log (default: the library's,
// 2 in the node and 1 in the file log; the result line shows the file log's). docs/performance.md has figures for these settings.
//
// The parent process starts the three node processes (this binary with --node), waits for
// the leader's result line, prints it, and stops the followers.

#include "tcp_node.hpp"

#include <synod/storage/file_log.hpp>
#include <synod/storage/memory_log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

using namespace synod;
using clock_type = std::chrono::steady_clock;

struct options {
    int clients = 16;
    int outstanding = 1;
    double seconds = 15;
    double warmup = 2;
    std::size_t payload = 256;
    std::string log = "memory";
    std::string dir = "/tmp/synod-loopback";
    std::size_t window = 1;
    bool batch_clients = true;
    std::optional<std::uint64_t> preallocate;
    std::optional<std::size_t> flushes; ///< both the node's and the file log's; else defaults
    // Set for the node processes by the parent.
    std::uint64_t node = 0;
    std::vector<std::uint16_t> ports;
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "synod_loopback_bench: " << why << "\n"
              << "usage: synod_loopback_bench [--clients C] [--outstanding K] [--seconds S]\n"
                 "                            [--warmup S] [--payload BYTES]\n"
                 "                            [--log memory|file] [--dir DIR] [--window W]\n"
                 "                            [--client-sched batch|normal] [--preallocate BYTES]\n"
                 "                            [--flushes N]\n";
    std::exit(2);
}

std::uint64_t number(std::string_view s) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) {
        usage("not a number: " + std::string(s));
    }
    return v;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        const std::string value = argv[i + 1];
        if (flag == "--clients") {
            o.clients = static_cast<int>(number(value));
        } else if (flag == "--outstanding") {
            o.outstanding = static_cast<int>(number(value));
        } else if (flag == "--seconds") {
            o.seconds = std::stod(value);
        } else if (flag == "--warmup") {
            o.warmup = std::stod(value);
        } else if (flag == "--payload") {
            o.payload = number(value);
        } else if (flag == "--log") {
            o.log = value;
        } else if (flag == "--dir") {
            o.dir = value;
        } else if (flag == "--preallocate") {
            o.preallocate = number(value);
        } else if (flag == "--flushes") {
            o.flushes = number(value);
            if (*o.flushes == 0 || *o.flushes > 64) {
                usage("--flushes takes 1 to 64");
            }
        } else if (flag == "--window") {
            o.window = number(value);
        } else if (flag == "--client-sched") {
            if (value != "batch" && value != "normal") {
                usage("--client-sched takes batch or normal");
            }
            o.batch_clients = value == "batch";
        } else if (flag == "--node") {
            o.node = number(value);
        } else if (flag == "--ports") {
            for (std::size_t start = 0; start <= value.size();) {
                auto comma = value.find(',', start);
                if (comma == std::string::npos) {
                    comma = value.size();
                }
                o.ports.push_back(
                    static_cast<std::uint16_t>(number(value.substr(start, comma - start))));
                start = comma + 1;
            }
        } else {
            usage("unknown flag " + std::string(flag));
        }
    }
    if (argc % 2 == 0) {
        usage("flags take values");
    }
    if (o.clients < 1 || o.outstanding < 1 || o.seconds <= 0 || o.payload == 0 || o.window == 0 ||
        (o.log != "memory" && o.log != "file")) {
        usage("bad option value");
    }
    return o;
}

/// Applies nothing but a count: the benchmark measures replication, not a state machine.
struct counting_machine {
    using result_type = std::uint64_t;
    std::uint64_t applied = 0;
    result_type apply(const log_entry&) { return ++applied; }
    [[nodiscard]] shared_bytes snapshot() const { return shared_bytes(std::to_string(applied)); }
    std::error_code restore(byte_span b) {
        applied = std::stoull(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
        return {};
    }
};

/// A client's outstanding-proposal budget. A mutex and condition variable rather than
/// std::counting_semaphore: libstdc++'s semaphore spins with sched_yield before it sleeps,
/// and sixteen spinning clients on two cores starve the threads doing the work.
class permits {
public:
    explicit permits(int n)
        : available_(n) {}
    void acquire() {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return available_ > 0; });
        --available_;
    }
    void release() {
        {
            std::lock_guard lock(mutex_);
            ++available_;
        }
        ready_.notify_one();
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    int available_;
};

/// The leader's clients. Latencies are recorded on the io thread (the completions run there),
/// so only the semaphores cross threads.
template <class Node>
class load {
public:
    load(boost::asio::io_context& io, Node& node, const options& o)
        : io_(io)
        , node_(node)
        , options_(o) {
        for (int i = 0; i < o.clients; ++i) {
            permits_.push_back(std::make_unique<permits>(o.outstanding));
        }
        latencies_.reserve(4'000'000);
    }

    void run() {
        const auto start = clock_type::now();
        const auto measure_from = start + std::chrono::duration_cast<clock_type::duration>(
                                              std::chrono::duration<double>(options_.warmup));
        const auto end = measure_from + std::chrono::duration_cast<clock_type::duration>(
                                            std::chrono::duration<double>(options_.seconds));
        std::vector<std::thread> threads;
        for (int c = 0; c < options_.clients; ++c) {
            threads.emplace_back([this, c, measure_from, end] { client(c, measure_from, end); });
        }
        for (auto& t : threads) {
            t.join();
        }
        // Let the last completions arrive before reading the figures on the io thread.
        for (auto& p : permits_) {
            for (int k = 0; k < options_.outstanding; ++k) {
                p->acquire();
            }
        }
        std::promise<void> read;
        boost::asio::post(io_, [&] {
            report(measure_from, end);
            read.set_value();
        });
        read.get_future().wait();
    }

private:
    void client(int c, clock_type::time_point measure_from, clock_type::time_point end) {
        if (options_.batch_clients) {
            sched_param none{};
            if (int err = pthread_setschedparam(pthread_self(), SCHED_BATCH, &none)) {
                std::cerr << "client " << c << ": SCHED_BATCH refused: " << std::strerror(err)
                          << "\n";
            }
        }
        std::string text(options_.payload, 'x');
        std::uint64_t n = 0;
        while (true) {
            permits_[c]->acquire();
            const auto now = clock_type::now();
            if (now >= end) {
                permits_[c]->release();
                return;
            }
            // A fresh payload each time, as a real client's would be.
            std::snprintf(text.data(), text.size(), "%d:%llu", c,
                          static_cast<unsigned long long>(++n));
            boost::asio::post(
                io_, [this, c, now, measure_from, end, payload = shared_bytes(text)]() mutable {
                    node_.propose(std::move(payload),
                                  [this, c, now, measure_from, end](typename Node::result r) {
                                      const auto done = clock_type::now();
                                      if (now >= measure_from && done <= end) {
                                          if (r.error) {
                                              ++errors_;
                                          } else {
                                              latencies_.push_back(done - now);
                                          }
                                      }
                                      permits_[c]->release();
                                  });
                });
        }
    }

    /// Whole run, warm-up included: entries each follower received per message from the
    /// leader (heartbeats count as messages), i.e. how well the leader batched.
    [[nodiscard]] double entries_per_message() const {
        const auto& c = node_.counters();
        return c.messages_sent == 0 ? 0.0
                                    : 2.0 * static_cast<double>(c.entries_applied) /
                                          static_cast<double>(c.messages_sent);
    }

    void report(clock_type::time_point from, clock_type::time_point to) {
        std::sort(latencies_.begin(), latencies_.end());
        auto pct = [&](double q) {
            if (latencies_.empty()) {
                return 0.0;
            }
            const auto i =
                std::min(latencies_.size() - 1,
                         static_cast<std::size_t>(q * static_cast<double>(latencies_.size())));
            return std::chrono::duration<double, std::milli>(latencies_[i]).count();
        };
        const double seconds = std::chrono::duration<double>(to - from).count();
        std::printf("clients=%d outstanding=%d payload=%zu log=%s seconds=%.1f committed=%zu "
                    "ops_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%llu window=%zu "
                    "client_sched=%s entries_per_message=%.1f flushes=%zu\n",
                    options_.clients, options_.outstanding, options_.payload, options_.log.c_str(),
                    seconds, latencies_.size(), static_cast<double>(latencies_.size()) / seconds,
                    pct(0.50), pct(0.99), pct(0.999), static_cast<unsigned long long>(errors_),
                    options_.window, options_.batch_clients ? "batch" : "normal",
                    entries_per_message(),
                    options_.flushes.value_or(storage::file_log_options{}.max_flushes_in_flight));
        std::fflush(stdout);
    }

    boost::asio::io_context& io_;
    Node& node_;
    const options& options_;
    std::vector<std::unique_ptr<permits>> permits_;
    std::vector<clock_type::duration> latencies_; // io thread only
    std::uint64_t errors_ = 0;                    // io thread only
};

template <class Log>
int run_node(const options& o, boost::asio::io_context& io, Log& log) {
    using tcp_node = examples::tcp_node<counting_machine, Log>;
    counting_machine machine;
    raft::config cfg;
    cfg.id = node_id{o.node};
    cfg.initial_membership = membership({node_id{1}, node_id{2}, node_id{3}});
    // Node 1 leads: it campaigns as soon as it can; the others would wait much longer.
    const bool leader = o.node == 1;
    cfg.election_timeout_min = std::chrono::milliseconds(leader ? 300 : 3000);
    cfg.election_timeout_max = std::chrono::milliseconds(leader ? 600 : 6000);
    cfg.heartbeat_interval = std::chrono::milliseconds(50);
    cfg.random_seed = o.node;
    cfg.max_inflight_appends = o.window;
    if (o.flushes) {
        cfg.max_flushes_in_flight = *o.flushes;
    }
    net::transport_config t;
    t.cluster_id = 3;
    t.self = cfg.id;
    t.listen_port = o.ports.at(o.node - 1);
    for (std::uint64_t j = 1; j <= 3; ++j) {
        if (j != o.node) {
            t.peers.push_back({node_id{j}, "127.0.0.1", o.ports.at(j - 1)});
        }
    }
    auto n = std::make_unique<tcp_node>(io.get_executor(), cfg, t, log, machine);
    if (auto ec = n->start()) {
        std::cerr << "node " << o.node << ": cannot start: " << ec.message() << "\n";
        return 1;
    }
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) {
            return;
        }
        if (leader) {
            std::_Exit(1); // interrupted mid-measurement: nothing worth reporting or cleaning
        }
        n.reset();
        io.stop();
    });
    if (!leader) {
        io.run();
        return 0;
    }
    // Campaign once both followers are connected, then wait for the term's entry to commit.
    boost::asio::steady_timer poll(io);
    const auto give_up = clock_type::now() + std::chrono::seconds(30);
    bool ready = false;
    std::function<void()> check = [&] {
        auto& node = n->node();
        const auto st = node.status();
        if (st.role == raft::role::leader && st.commit_index == st.last_index) {
            ready = true;
            return io.stop();
        }
        if (clock_type::now() > give_up) {
            std::cerr << "node 1: no leadership within 30 s (are the followers up?)\n";
            return io.stop();
        }
        if (st.role == raft::role::follower && n->transport().connected(node_id{2}) &&
            n->transport().connected(node_id{3})) {
            node.campaign();
        }
        poll.expires_after(std::chrono::milliseconds(20));
        poll.async_wait([&](boost::system::error_code ec) {
            if (!ec) {
                check();
            }
        });
    };
    check();
    io.run();
    if (!ready) {
        return 1;
    }
    io.restart();
    auto guard = boost::asio::make_work_guard(io);
    std::thread io_thread([&] { io.run(); });
    load<typename tcp_node::node_type> clients(io, n->node(), o);
    clients.run();
    std::promise<void> stopped;
    boost::asio::post(io, [&] {
        n->stop();
        n.reset();
        stopped.set_value();
    });
    stopped.get_future().wait();
    guard.reset();
    io.stop();
    io_thread.join();
    return 0;
}

int node_main(const options& o) {
    boost::asio::io_context io(1);
    if (o.log == "memory") {
        storage::memory_log log;
        return run_node(o, io, log);
    }
    storage::file_log_options fo;
    fo.directory = o.dir + "/node" + std::to_string(o.node);
    std::filesystem::remove_all(fo.directory);
    fo.own_io_thread = true;
    if (o.flushes) {
        fo.max_flushes_in_flight = *o.flushes;
    }
    if (o.preallocate) {
        fo.preallocate_bytes = *o.preallocate;
    }
    fo.post = [&io](unique_function<void()> job) { boost::asio::post(io, std::move(job)); };
    storage::file_log log(std::move(fo));
    return run_node(o, io, log);
}

std::vector<std::uint16_t> free_ports() {
    boost::asio::io_context io;
    std::vector<boost::asio::ip::tcp::acceptor> probes;
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 3; ++i) {
        probes.emplace_back(
            io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
        ports.push_back(probes.back().local_endpoint().port());
    }
    return ports;
}

int parent_main(int argc, char** argv) {
    const auto ports = free_ports();
    std::string port_list =
        std::to_string(ports[0]) + "," + std::to_string(ports[1]) + "," + std::to_string(ports[2]);
    std::vector<pid_t> children;
    // Followers first, so the leader finds them listening.
    for (int id : {3, 2, 1}) {
        std::vector<std::string> args(argv, argv + argc);
        args.insert(args.end(), {"--node", std::to_string(id), "--ports", port_list});
        std::vector<char*> raw;
        for (auto& a : args) {
            raw.push_back(a.data());
        }
        raw.push_back(nullptr);
        pid_t pid = 0;
        if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, raw.data(), environ) != 0) {
            std::perror("posix_spawn");
            return 1;
        }
        children.push_back(pid);
    }
    int status = 0;
    waitpid(children.back(), &status, 0); // the leader exits after reporting
    for (std::size_t i = 0; i + 1 < children.size(); ++i) {
        kill(children[i], SIGTERM);
        int ignored = 0;
        waitpid(children[i], &ignored, 0);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    return o.node == 0 ? parent_main(argc, argv) : node_main(o);
}
