// net::tls_tcp_transport: members with certificates from the cluster's CA talk; a peer with a
// certificate from another CA, without a certificate, or without TLS cannot connect.

#include "net/net_testing.hpp"

#include <doctest/doctest.h>

#include <synod/net/tls_transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace synod;
using net::close_reason;
using net::tls_tcp_transport;
using test::run_for;
using test::run_until;

namespace {

/// Throw-away certificates made with the openssl command: a cluster CA with two members, and
/// a rogue CA with one "member".
class certificates {
public:
    certificates() {
        dir_ = std::filesystem::temp_directory_path() /
               ("synod-tls-" + std::to_string(::getpid()) + "-" +
                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
        std::filesystem::create_directories(dir_);
        make_ca("ca");
        make_ca("rogue-ca");
        make_member("node1", "ca");
        make_member("node2", "ca");
        make_member("rogue", "rogue-ca");
    }
    ~certificates() {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    certificates(const certificates&) = delete;
    certificates& operator=(const certificates&) = delete;

    [[nodiscard]] std::string path(const std::string& name) const { return (dir_ / name).string(); }

    [[nodiscard]] net::tls_files member(const std::string& name,
                                        const std::string& ca = "ca") const {
        return {path(ca + ".crt"), path(name + ".crt"), path(name + ".key")};
    }

private:
    void run(const std::string& command) const {
        const std::string line = "cd '" + dir_.string() + "' && " + command + " >/dev/null 2>&1";
        REQUIRE_MESSAGE(std::system(line.c_str()) == 0, line);
    }
    void make_ca(const std::string& name) const {
        run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
            name + ".key -out " + name + ".crt -days 2 -subj /CN=" + name);
    }
    void make_member(const std::string& name, const std::string& ca) const {
        run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name +
            ".key -out " + name + ".csr -subj /CN=" + name);
        run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
            ".key -CAcreateserial -out " + name + ".crt -days 2");
    }
    std::filesystem::path dir_;
};

constexpr std::uint64_t cluster = 9;

net::transport_config config(node_id self, node_id peer, std::uint16_t peer_port) {
    net::transport_config c;
    c.cluster_id = cluster;
    c.self = self;
    c.peers = {{peer, "127.0.0.1", peer_port}};
    c.handshake_timeout = 500ms;
    c.reconnect_min = 20ms;
    c.reconnect_max = 50ms;
    return c;
}

message ping(node_id from, node_id to) {
    append_request r;
    r.from = from;
    r.to = to;
    r.term = term{3};
    return r;
}

} // namespace

TEST_CASE("tls: members with certificates from the cluster CA connect and exchange messages") {
    certificates certs;
    boost::asio::io_context io;
    auto sec2 = net::mutual_tls::from_files(certs.member("node2"));
    auto sec1 = net::mutual_tls::from_files(certs.member("node1"));
    REQUIRE(sec1);
    REQUIRE(sec2);
    tls_tcp_transport t2(io.get_executor(), config(node_id{2}, node_id{1}, 1), *sec2);
    REQUIRE_FALSE(t2.start());
    std::vector<message> at2;
    t2.on_receive([&](message m) { at2.push_back(std::move(m)); });
    tls_tcp_transport t1(io.get_executor(), config(node_id{1}, node_id{2}, t2.local_port()), *sec1);
    REQUIRE_FALSE(t1.start());
    t1.send(node_id{2}, ping(node_id{1}, node_id{2}));
    REQUIRE(run_until(io, [&] { return at2.size() == 1; }));
    CHECK(message_term(at2[0]) == term{3});
    CHECK(t2.connected(node_id{1}));
}

TEST_CASE("tls: a peer whose certificate comes from another CA cannot connect") {
    certificates certs;
    boost::asio::io_context io;
    auto sec2 = net::mutual_tls::from_files(certs.member("node2"));
    // The rogue trusts the real CA (so it would accept node 2) but holds a rogue certificate.
    auto rogue = net::mutual_tls::from_files(
        {certs.path("ca.crt"), certs.path("rogue.crt"), certs.path("rogue.key")});
    REQUIRE(sec2);
    REQUIRE(rogue);
    tls_tcp_transport t2(io.get_executor(), config(node_id{2}, node_id{1}, 1), *sec2);
    REQUIRE_FALSE(t2.start());
    std::vector<message> at2;
    t2.on_receive([&](message m) { at2.push_back(std::move(m)); });
    tls_tcp_transport t1(io.get_executor(), config(node_id{1}, node_id{2}, t2.local_port()),
                         *rogue);
    REQUIRE_FALSE(t1.start());
    t1.send(node_id{2}, ping(node_id{1}, node_id{2}));
    REQUIRE(
        run_until(io, [&] { return t2.counters().closed_for(close_reason::tls_failure) >= 2; }));
    run_for(io, 50ms);
    CHECK(at2.empty());
    CHECK_FALSE(t2.connected(node_id{1}));
    CHECK(t1.counters().connections_established == 0);
}

TEST_CASE("tls: a client without a certificate, or without TLS, cannot connect") {
    certificates certs;
    boost::asio::io_context io;
    auto sec2 = net::mutual_tls::from_files(certs.member("node2"));
    REQUIRE(sec2);
    tls_tcp_transport t2(io.get_executor(), config(node_id{2}, node_id{1}, 1), *sec2);
    REQUIRE_FALSE(t2.start());

    SUBCASE("TLS without a client certificate") {
        bool handshake_failed = false;
        const std::uint16_t port = t2.local_port();
        std::thread client([&] {
            boost::asio::io_context cio;
            boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
            ctx.load_verify_file(certs.path("ca.crt"));
            boost::asio::ssl::stream<boost::asio::ip::tcp::socket> s(cio, ctx);
            s.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
            boost::system::error_code ec;
            s.handshake(boost::asio::ssl::stream_base::client, ec);
            if (!ec) {
                // TLS 1.3 reports the missing certificate on the first read instead.
                std::array<char, 1> b{};
                s.read_some(boost::asio::buffer(b), ec);
            }
            handshake_failed = static_cast<bool>(ec);
        });
        REQUIRE(run_until(
            io, [&] { return t2.counters().closed_for(close_reason::tls_failure) == 1; }));
        run_for(io, 50ms);
        client.join();
        CHECK(handshake_failed);
    }
    SUBCASE("a plain synod hello") {
        test::raw_client c(t2.local_port());
        auto h = net::encode_handshake(net::handshake{net::handshake_kind::hello,
                                                      close_reason::none, net::protocol_version,
                                                      cluster, node_id{1}, node_id{2}});
        c.write(byte_span(h));
        REQUIRE(run_until(
            io, [&] { return t2.counters().closed_for(close_reason::tls_failure) == 1; }));
    }
    CHECK_FALSE(t2.connected(node_id{1}));
}

TEST_CASE("tls: missing or mismatched files are reported by from_files") {
    certificates certs;
    CHECK_FALSE(net::mutual_tls::from_files(
        {certs.path("nope.crt"), certs.path("node1.crt"), certs.path("node1.key")}));
    CHECK_FALSE(net::mutual_tls::from_files(
        {certs.path("ca.crt"), certs.path("node1.crt"), certs.path("node2.key")}));
    CHECK(net::mutual_tls::from_files(certs.member("node1")));
}

TEST_CASE("tls: with an identity rule, a member cannot claim another member's id") {
    certificates certs;
    boost::asio::io_context io;
    auto names = [](node_id id) { return "node" + std::to_string(id.value()); };
    auto sec2 = net::mutual_tls::from_files(certs.member("node2"), names);
    // Node 1's process holding node 2's (valid, CA-signed) certificate.
    auto impostor = net::mutual_tls::from_files(certs.member("node2"), names);
    auto honest = net::mutual_tls::from_files(certs.member("node1"), names);
    REQUIRE(sec2);
    REQUIRE(impostor);
    REQUIRE(honest);
    tls_tcp_transport t2(io.get_executor(), config(node_id{2}, node_id{1}, 1), *sec2);
    REQUIRE_FALSE(t2.start());
    std::vector<message> at2;
    t2.on_receive([&](message m) { at2.push_back(std::move(m)); });
    {
        tls_tcp_transport t1(io.get_executor(), config(node_id{1}, node_id{2}, t2.local_port()),
                             *impostor);
        REQUIRE_FALSE(t1.start());
        t1.send(node_id{2}, ping(node_id{1}, node_id{2}));
        REQUIRE(run_until(
            io, [&] { return t2.counters().closed_for(close_reason::wrong_identity) >= 1; }));
        CHECK(at2.empty());
    }
    tls_tcp_transport t1(io.get_executor(), config(node_id{1}, node_id{2}, t2.local_port()),
                         *honest);
    REQUIRE_FALSE(t1.start());
    t1.send(node_id{2}, ping(node_id{1}, node_id{2}));
    REQUIRE(run_until(io, [&] { return at2.size() == 1; }));
}
