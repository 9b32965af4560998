// synod_node: one member of a Raft group as a process, over the Asio runtime — a replicated
// key-value store that a script can drive.
//
//   synod_node --id 1 --cluster 7 --listen 127.0.0.1:7001 --client 127.0.0.1:8001
//              --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 [--log file --data DIR]
//
// Client protocol (--client, one text line per request and per answer, in order):
//   put <key> <value>   ->  ok <index>            | err <code> <text> leader=<id>
//   get <key>           ->  value <value> | missing | err <code> <text> leader=<id>
//   status              ->  role=<r> term=<t> leader=<id> commit=<c> applied=<a> last=<l>
// `put` goes through Raft (a follower forwards it to the leader); `get` is linearizable
// (ReadIndex: confirmed with a quorum, then served from this node's applied state).
//
// Standard output: "listening peers=<port> clients=<port>", then "leader <id> term <t>" at
// each leader change this node sees, "exiting" on SIGTERM or SIGINT (exit status 0).

#include "tcp_node.hpp"

#include <synod/net/tls_transport.hpp>

#include <synod/sim/kv_machine.hpp>
#include <synod/storage/file_log.hpp>
#include <synod/storage/memory_log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <istream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace synod;
using boost::asio::ip::tcp;

struct options {
    node_id id;
    std::uint64_t cluster = 1;
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 0;
    std::string client_host = "127.0.0.1";
    std::uint16_t client_port = 0;
    std::vector<net::peer_address> peers;
    std::string log_kind = "memory";
    std::string data_dir;
    int election_ms = 300;
    std::uint64_t snapshot_after = 100000;
    net::tls_files tls;
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "synod_node: " << why << "\n"
              << "usage: synod_node --id N --listen HOST:PORT --client HOST:PORT\n"
                 "                  [--peer ID=HOST:PORT]... [--cluster N]\n"
                 "                  [--log memory|file --data DIR] [--election-ms N]\n"
                 "                  [--snapshot-after N]\n"
                 "                  [--tls-ca FILE --tls-cert FILE --tls-key FILE]\n";
    std::exit(2);
}

std::uint64_t number(std::string_view text, const char* what) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        usage(std::string("bad ") + what + ": " + std::string(text));
    }
    return v;
}

std::pair<std::string, std::uint16_t> host_port(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        usage("expected HOST:PORT, got " + std::string(text));
    }
    const auto port = number(text.substr(colon + 1), "port");
    if (port > 65535) {
        usage("port out of range: " + std::string(text));
    }
    return {std::string(text.substr(0, colon)), static_cast<std::uint16_t>(port)};
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) {
            usage("missing value for " + std::string(flag));
        }
        const std::string_view value = argv[++i];
        if (flag == "--id") {
            o.id = node_id{number(value, "id")};
        } else if (flag == "--cluster") {
            o.cluster = number(value, "cluster");
        } else if (flag == "--listen") {
            std::tie(o.listen_host, o.listen_port) = host_port(value);
        } else if (flag == "--client") {
            std::tie(o.client_host, o.client_port) = host_port(value);
        } else if (flag == "--peer") {
            const auto eq = value.find('=');
            if (eq == std::string_view::npos) {
                usage("expected ID=HOST:PORT, got " + std::string(value));
            }
            auto [host, port] = host_port(value.substr(eq + 1));
            o.peers.push_back({node_id{number(value.substr(0, eq), "peer id")}, host, port});
        } else if (flag == "--log") {
            o.log_kind = value;
        } else if (flag == "--data") {
            o.data_dir = value;
        } else if (flag == "--election-ms") {
            o.election_ms = static_cast<int>(number(value, "election-ms"));
        } else if (flag == "--snapshot-after") {
            o.snapshot_after = number(value, "snapshot-after");
        } else if (flag == "--tls-ca") {
            o.tls.ca_file = value;
        } else if (flag == "--tls-cert") {
            o.tls.certificate_file = value;
        } else if (flag == "--tls-key") {
            o.tls.private_key_file = value;
        } else {
            usage("unknown flag " + std::string(flag));
        }
    }
    if (o.id == no_node) {
        usage("--id is required");
    }
    if (o.log_kind != "memory" && o.log_kind != "file") {
        usage("--log is memory or file");
    }
    if (o.log_kind == "file" && o.data_dir.empty()) {
        usage("--log file needs --data DIR");
    }
    const int tls_files =
        !o.tls.ca_file.empty() + !o.tls.certificate_file.empty() + !o.tls.private_key_file.empty();
    if (tls_files != 0 && tls_files != 3) {
        usage("TLS needs all of --tls-ca, --tls-cert and --tls-key");
    }
    if (o.election_ms < 20) {
        usage("--election-ms is at least 20");
    }
    return o;
}

void say(const std::string& line) {
    std::cout << line << std::endl; // flushed: a script waits for these lines
}

std::string error_text(std::error_code ec, node_id leader) {
    std::ostringstream out;
    out << "err " << ec.value() << ' ' << ec.message() << " leader=" << leader.value();
    return out.str();
}

template <class Log, class Security>
class server {
public:
    using tcp_node = examples::tcp_node<sim::kv_machine, Log, Security>;
    using node_type = typename tcp_node::node_type;

    server(boost::asio::io_context& io, const options& o, Log& log, Security security)
        : clients_(io) {
        raft::config cfg;
        cfg.id = o.id;
        std::vector<node_id> voters{o.id};
        for (const auto& p : o.peers) {
            voters.push_back(p.id);
        }
        cfg.initial_membership = membership(voters);
        cfg.election_timeout_min = std::chrono::milliseconds(o.election_ms);
        cfg.election_timeout_max = std::chrono::milliseconds(o.election_ms * 2);
        cfg.heartbeat_interval = std::chrono::milliseconds(std::max(o.election_ms / 6, 5));
        cfg.lease_clock_drift = std::chrono::milliseconds(std::max(o.election_ms / 10, 1));
        cfg.forward_proposals = true;
        cfg.snapshot_after_entries = o.snapshot_after;
        cfg.random_seed =
            static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        cfg.on_leader_change = [](node_id leader, term t) {
            say("leader " + std::to_string(leader.value()) + " term " + std::to_string(t.value()));
        };
        net::transport_config tcfg;
        tcfg.cluster_id = o.cluster;
        tcfg.self = o.id;
        tcfg.listen_host = o.listen_host;
        tcfg.listen_port = o.listen_port;
        tcfg.peers = o.peers;
        tcfg.random_seed = cfg.random_seed;
        tcfg.log = [](const net::transport_event& e) {
            if (e.warning) {
                std::cerr << "transport: peer " << e.peer.value() << ": " << e.what << "\n";
            }
        };
        node_ = std::make_unique<tcp_node>(io.get_executor(), std::move(cfg), std::move(tcfg), log,
                                           machine_, std::move(security));
        const tcp::endpoint ep(boost::asio::ip::make_address(o.client_host), o.client_port);
        clients_.open(ep.protocol());
        clients_.set_option(tcp::acceptor::reuse_address(true));
        clients_.bind(ep);
        clients_.listen();
    }

    std::error_code start() {
        if (auto ec = node_->start()) {
            return ec;
        }
        say("listening peers=" + std::to_string(node_->transport().local_port()) +
            " clients=" + std::to_string(clients_.local_endpoint().port()));
        accept();
        return {};
    }

    void stop() {
        boost::system::error_code ignored;
        clients_.close(ignored);
        for (const auto& s : sessions_) {
            s->socket.close(ignored);
        }
        sessions_.clear();
        node_.reset();
    }

private:
    struct session {
        explicit session(tcp::socket s)
            : socket(std::move(s))
            , input(max_line) {}
        static constexpr std::size_t max_line = 64 * 1024;
        tcp::socket socket;
        boost::asio::streambuf input;
        std::string reply;
    };
    using session_ptr = std::shared_ptr<session>;

    void accept() {
        clients_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
            if (ec) {
                return; // closed by stop()
            }
            auto s = std::make_shared<session>(std::move(socket));
            sessions_.insert(s);
            read(s);
            accept();
        });
    }

    void read(const session_ptr& s) {
        boost::asio::async_read_until(
            s->socket, s->input, '\n', [this, s](boost::system::error_code ec, std::size_t) {
                if (ec == boost::asio::error::not_found) {
                    return answer(s, "err invalid_argument line too long", true);
                }
                if (ec) {
                    sessions_.erase(s);
                    return;
                }
                std::istream in(&s->input);
                std::string line;
                std::getline(in, line);
                handle(s, line);
            });
    }

    void answer(const session_ptr& s, std::string text, bool close_after = false) {
        s->reply = std::move(text) + "\n";
        boost::asio::async_write(s->socket, boost::asio::buffer(s->reply),
                                 [this, s, close_after](boost::system::error_code ec, std::size_t) {
                                     if (ec || close_after || !node_) {
                                         sessions_.erase(s);
                                         return;
                                     }
                                     read(s);
                                 });
    }

    void handle(const session_ptr& s, const std::string& line) {
        if (!node_) {
            return;
        }
        std::istringstream words(line);
        std::string verb;
        std::string key;
        words >> verb >> key;
        if (verb == "status") {
            const raft::status st = node_->node().status();
            std::ostringstream out;
            out << "role=" << raft::to_string(st.role) << " term=" << st.current_term.value()
                << " leader=" << st.leader.value() << " commit=" << st.commit_index.value()
                << " applied=" << st.applied_index.value() << " last=" << st.last_index.value();
            return answer(s, out.str());
        }
        if (verb == "put" && !key.empty()) {
            std::string value;
            std::getline(words >> std::ws, value);
            sim::kv_model::input in{sim::kv_model::kind::put, key, value, {}};
            return node_->node().propose(
                sim::kv_machine::encode(in), [this, s](typename node_type::result r) {
                    if (r.error) {
                        return answer(s, error_text(r.error, r.leader_hint));
                    }
                    answer(s, "ok " + std::to_string(r.index.value()));
                });
        }
        if (verb == "get" && !key.empty()) {
            return node_->node().read_index([this, s, key](raft::read_result r) {
                if (r.error) {
                    return answer(s, error_text(r.error, r.leader_hint));
                }
                const auto& data = machine_.data();
                auto it = data.find(key);
                answer(s, it == data.end() ? "missing" : "value " + it->second);
            });
        }
        answer(s, "err invalid_argument expected: put KEY VALUE | get KEY | status");
    }

    tcp::acceptor clients_;
    sim::kv_machine machine_;
    std::unique_ptr<tcp_node> node_;
    std::set<session_ptr> sessions_;
};

template <class Log, class Security>
int serve(boost::asio::io_context& io, const options& o, Log& log, Security security) {
    server<Log, Security> s(io, o, log, std::move(security));
    // Before start: a script may send SIGTERM as soon as "listening" is printed.
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    if (auto ec = s.start()) {
        std::cerr << "synod_node: cannot start: " << ec.message() << "\n";
        return 1;
    }
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec) {
            return;
        }
        say("exiting");
        s.stop();
        io.stop();
    });
    io.run();
    return 0;
}

/// Plain TCP, or mutual TLS when the certificate files are given.
template <class Log>
int run(boost::asio::io_context& io, const options& o, Log& log) {
    if (o.tls.ca_file.empty()) {
        return serve(io, o, log, net::plain_tcp{});
    }
    // A peer's certificate must name the node id it claims: common name "node<ID>".
    auto tls = net::mutual_tls::from_files(
        o.tls, [](node_id id) { return "node" + std::to_string(id.value()); });
    if (!tls) {
        std::cerr << "synod_node: cannot load TLS files: " << tls.error().message() << "\n";
        return 1;
    }
    return serve(io, o, log, std::move(tls).value());
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    try {
        boost::asio::io_context io(1);
        if (o.log_kind == "memory") {
            storage::memory_log log;
            return run(io, o, log);
        }
        storage::file_log_options fo;
        fo.directory = o.data_dir;
        fo.own_io_thread = true; // fsyncs run there; completions come back through `io`
        fo.post = [&io](unique_function<void()> job) { boost::asio::post(io, std::move(job)); };
        fo.on_error = [](std::error_code ec, std::string_view detail) {
            std::cerr << "storage: " << ec.message() << ": " << detail << "\n";
        };
        storage::file_log log(std::move(fo));
        return run(io, o, log);
    } catch (const std::exception& e) {
        std::cerr << "synod_node: " << e.what() << "\n";
        return 1;
    }
}
