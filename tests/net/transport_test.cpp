// net::tcp_transport: delivery and coalescing, the handshake's refusals, hostile bytes on a
// node's port, bounded queues, reconnection, and shutdown.

#include "net/net_testing.hpp"

#include <doctest/doctest.h>

#include <synod/net/tcp_transport.hpp>
#include <synod/wire/frame.hpp>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace synod;
using net::close_reason;
using net::tcp_transport;
using test::raw_client;
using test::run_for;
using test::run_until;

namespace {

constexpr std::uint64_t cluster = 77;

/// Two transports, nodes 1 and 2, in one io_context. Node 1 dials (the smaller id dials).
struct pair_fixture {
    boost::asio::io_context io;
    std::vector<message> at1;
    std::vector<message> at2;
    std::unique_ptr<tcp_transport> t1;
    std::unique_ptr<tcp_transport> t2;

    explicit pair_fixture(net::transport_config base = {}) {
        base.cluster_id = cluster;
        base.handshake_timeout = 300ms;
        auto c2 = base;
        c2.self = node_id{2};
        c2.peers = {{node_id{1}, "127.0.0.1", 1}}; // node 2 never dials node 1
        t2 = std::make_unique<tcp_transport>(io.get_executor(), c2);
        REQUIRE_FALSE(t2->start());
        t2->on_receive([this](message m) { at2.push_back(std::move(m)); });
        auto c1 = base;
        c1.self = node_id{1};
        c1.peers = {{node_id{2}, "127.0.0.1", t2->local_port()}};
        t1 = std::make_unique<tcp_transport>(io.get_executor(), c1);
        REQUIRE_FALSE(t1->start());
        t1->on_receive([this](message m) { at1.push_back(std::move(m)); });
    }

    bool connect() {
        return run_until(io,
                         [&] { return t1->connected(node_id{2}) && t2->connected(node_id{1}); });
    }

    /// Node 2 still works with node 1: a message each way arrives.
    bool healthy() {
        const std::size_t before1 = at1.size();
        const std::size_t before2 = at2.size();
        t1->send(node_id{2}, heartbeat(node_id{1}, node_id{2}));
        t2->send(node_id{1}, heartbeat(node_id{2}, node_id{1}));
        return run_until(io, [&] { return at1.size() > before1 && at2.size() > before2; });
    }

    static message heartbeat(node_id from, node_id to, std::uint64_t t = 1) {
        append_request r;
        r.from = from;
        r.to = to;
        r.term = term{t};
        return r;
    }
};

byte_vector hello(std::uint64_t cluster_id, node_id from, node_id to,
                  std::uint16_t version = net::protocol_version) {
    auto b = net::encode_handshake(net::handshake{net::handshake_kind::hello, close_reason::none,
                                                  version, cluster_id, from, to});
    return byte_vector(b.begin(), b.end());
}

/// Connects to node 2 as node 1 (node 2 adopts the newer connection, as from a restarted
/// peer) and returns the client once node 2 has accepted the hello.
std::unique_ptr<raw_client> impersonate_node_1(pair_fixture& f) {
    auto c = std::make_unique<raw_client>(f.t2->local_port());
    c->write(hello(cluster, node_id{1}, node_id{2}));
    net::handshake answer;
    std::thread reader([&] { (void)c->read_handshake(answer); });
    run_for(f.io, 50ms);
    reader.join();
    REQUIRE(answer.kind == net::handshake_kind::accept);
    return c;
}

} // namespace

TEST_CASE("transport: messages arrive in order, with their fields, both ways") {
    pair_fixture f;
    REQUIRE(f.connect());
    for (std::uint64_t i = 1; i <= 50; ++i) {
        f.t1->send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}, i));
    }
    vote_request v;
    v.from = node_id{2};
    v.to = node_id{1};
    v.term = term{9};
    v.last_log_index = log_index{4};
    f.t2->send(node_id{1}, v);
    REQUIRE(run_until(f.io, [&] { return f.at2.size() == 50 && f.at1.size() == 1; }));
    for (std::uint64_t i = 0; i < 50; ++i) {
        CHECK(message_term(f.at2[i]) == term{i + 1});
    }
    REQUIRE(std::holds_alternative<vote_request>(f.at1[0]));
    CHECK(std::get<vote_request>(f.at1[0]).last_log_index == log_index{4});
}

TEST_CASE("transport: messages sent in one turn share one gathered write") {
    pair_fixture f;
    REQUIRE(f.connect());
    const auto writes_before = f.t1->counters().writes;
    for (std::uint64_t i = 1; i <= 100; ++i) {
        f.t1->send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}, i));
    }
    REQUIRE(run_until(f.io, [&] { return f.at2.size() == 100; }));
    CHECK(f.t1->counters().writes - writes_before == 1);
    CHECK(f.t1->counters().messages_sent >= 100);
}

TEST_CASE("transport: large messages (a 1 MiB entry) cross intact") {
    pair_fixture f;
    REQUIRE(f.connect());
    append_request r;
    r.from = node_id{1};
    r.to = node_id{2};
    r.term = term{1};
    std::string big(1 << 20, 'x');
    big[12345] = 'y';
    r.entries.push_back(log_entry{term{1}, log_index{1}, entry_kind::normal, shared_bytes(big)});
    f.t1->send(node_id{2}, r);
    REQUIRE(run_until(f.io, [&] { return f.at2.size() == 1; }));
    const auto& got = std::get<append_request>(f.at2[0]);
    REQUIRE(got.entries.size() == 1);
    CHECK(got.entries[0].payload == shared_bytes(big));
}

TEST_CASE("transport: a hello from another cluster is refused with the reason, and the node "
          "keeps working") {
    pair_fixture f;
    REQUIRE(f.connect());
    raw_client c(f.t2->local_port());
    c.write(hello(cluster + 1, node_id{1}, node_id{2}));
    net::handshake answer;
    std::thread reader([&] { (void)c.read_handshake(answer); });
    run_for(f.io, 100ms);
    reader.join();
    CHECK(answer.kind == net::handshake_kind::reject);
    CHECK(answer.reason == close_reason::wrong_cluster);
    CHECK(f.t2->counters().closed_for(close_reason::wrong_cluster) == 1);
    CHECK(f.healthy());
}

TEST_CASE("transport: each handshake refusal has its reason") {
    struct refusal {
        const char* name;
        byte_vector bytes;
        close_reason why;
    };
    std::vector<refusal> cases = {
        {"garbage", byte_vector(net::handshake_size, std::byte{0x5a}), close_reason::not_a_peer},
        {"wrong version", hello(cluster, node_id{1}, node_id{2}, 99), close_reason::wrong_version},
        {"unknown node", hello(cluster, node_id{5}, node_id{2}), close_reason::unknown_node},
        {"other recipient", hello(cluster, node_id{1}, node_id{3}), close_reason::wrong_recipient},
    };
    auto flipped = hello(cluster, node_id{1}, node_id{2});
    flipped[10] ^= std::byte{1};
    cases.push_back({"corrupt", flipped, close_reason::corrupt_handshake});

    for (const refusal& r : cases) {
        CAPTURE(std::string(r.name));
        pair_fixture f;
        REQUIRE(f.connect());
        raw_client c(f.t2->local_port());
        c.write(r.bytes);
        bool closed = false;
        std::thread reader([&] { closed = c.closed_by_peer(); });
        REQUIRE(run_until(f.io, [&] { return f.t2->counters().closed_for(r.why) == 1; }));
        run_for(f.io, 20ms);
        reader.join();
        CHECK(closed);
        CHECK(f.healthy());
    }
}

TEST_CASE("transport: a connection that never completes its handshake is closed at the "
          "timeout") {
    pair_fixture f;
    REQUIRE(f.connect());
    raw_client c(f.t2->local_port());
    const auto partial = hello(cluster, node_id{1}, node_id{2});
    c.write(byte_span(partial).first(10));
    REQUIRE(run_until(
        f.io, [&] { return f.t2->counters().closed_for(close_reason::handshake_timeout) == 1; }));
    CHECK(f.healthy());
}

TEST_CASE("transport: hostile frames after a valid handshake close that connection only") {
    auto frame_of = [](const message& m) { return wire::encode_frame(m); };
    struct attack {
        const char* name;
        byte_vector bytes;
        close_reason why;
    };
    std::vector<attack> attacks;
    attacks.push_back({"garbage", byte_vector(64, std::byte{0xee}), close_reason::bad_frame});
    {
        auto b = frame_of(pair_fixture::heartbeat(node_id{1}, node_id{2}));
        b[20] ^= std::byte{0x40};
        attacks.push_back({"bad crc", b, close_reason::bad_frame});
    }
    {
        auto b = frame_of(pair_fixture::heartbeat(node_id{1}, node_id{2}));
        b[0] = std::byte{0xff};
        b[1] = std::byte{0xff};
        b[2] = std::byte{0xff};
        b[3] = std::byte{0x7f}; // a 2 GiB body: over max_frame_size, refused before allocating
        attacks.push_back({"oversized length", b, close_reason::bad_frame});
    }
    attacks.push_back({"spoofed sender", frame_of(pair_fixture::heartbeat(node_id{3}, node_id{2})),
                       close_reason::spoofed_sender});
    {
        auto b = frame_of(pair_fixture::heartbeat(node_id{1}, node_id{2}));
        b.resize(b.size() - 3); // truncated, then the connection ends
        attacks.push_back({"truncated frame", b, close_reason::peer_closed});
    }

    for (const attack& a : attacks) {
        CAPTURE(std::string(a.name));
        // The real node 1 waits a while before redialing, so the impostor keeps the slot
        // until its attack is read.
        net::transport_config slow_redial;
        slow_redial.reconnect_min = 500ms;
        slow_redial.reconnect_max = 500ms;
        pair_fixture f(slow_redial);
        REQUIRE(f.connect());
        const auto delivered = f.at2.size();
        {
            auto c = impersonate_node_1(f);
            c->write(a.bytes);
            if (a.why == close_reason::peer_closed) {
                c->close();
            }
            REQUIRE(run_until(f.io, [&] { return f.t2->counters().closed_for(a.why) >= 1; }));
        }
        CHECK(f.at2.size() == delivered); // nothing from the hostile connection was delivered
        // The real node 1 lost its connection when the impostor replaced it; it redials.
        REQUIRE(f.connect());
        CHECK(f.healthy());
    }
}

TEST_CASE("transport: a full send queue drops its oldest messages and counts them") {
    boost::asio::io_context io;
    net::transport_config cfg;
    cfg.cluster_id = cluster;
    cfg.self = node_id{1};
    cfg.peers = {{node_id{2}, "127.0.0.1", 9}}; // the discard port: nobody listens here
    cfg.max_queued_messages = 10;
    tcp_transport t(io.get_executor(), cfg);
    REQUIRE_FALSE(t.start());
    for (std::uint64_t i = 1; i <= 100; ++i) {
        t.send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}, i));
    }
    CHECK(t.queued(node_id{2}) == 10);
    CHECK(t.counters().dropped_overflow == 90);
    t.send(node_id{9}, pair_fixture::heartbeat(node_id{1}, node_id{9}));
    CHECK(t.counters().dropped_unknown_peer == 1);
}

TEST_CASE("transport: the byte bound applies too, and the newest message is always kept") {
    boost::asio::io_context io;
    net::transport_config cfg;
    cfg.cluster_id = cluster;
    cfg.self = node_id{1};
    cfg.peers = {{node_id{2}, "127.0.0.1", 9}};
    cfg.max_queued_bytes = 1000;
    tcp_transport t(io.get_executor(), cfg);
    REQUIRE_FALSE(t.start());
    append_request r;
    r.from = node_id{1};
    r.to = node_id{2};
    r.term = term{1};
    r.entries.push_back(
        log_entry{term{1}, log_index{1}, entry_kind::normal, shared_bytes(std::string(4000, 'a'))});
    t.send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}));
    t.send(node_id{2}, r);
    CHECK(t.queued(node_id{2}) == 1);
    CHECK(t.counters().dropped_overflow == 1);
}

TEST_CASE("transport: messages queued while the peer is down are sent once it is up, and a "
          "restarted peer is redialed") {
    boost::asio::io_context io;
    std::vector<message> at2;
    // Find a free port for node 2, then close it again.
    std::uint16_t port = 0;
    {
        net::transport_config c2;
        c2.cluster_id = cluster;
        c2.self = node_id{2};
        c2.peers = {{node_id{1}, "127.0.0.1", 1}};
        tcp_transport probe(io.get_executor(), c2);
        REQUIRE_FALSE(probe.start());
        port = probe.local_port();
    }
    run_for(io, 10ms);
    net::transport_config c1;
    c1.cluster_id = cluster;
    c1.self = node_id{1};
    c1.peers = {{node_id{2}, "127.0.0.1", port}};
    c1.reconnect_min = 5ms;
    c1.reconnect_max = 40ms;
    tcp_transport t1(io.get_executor(), c1);
    REQUIRE_FALSE(t1.start());
    t1.send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}, 1));
    run_for(io, 100ms);
    CHECK(t1.counters().dial_attempts >= 2);

    for (int incarnation = 0; incarnation < 2; ++incarnation) {
        CAPTURE(incarnation);
        net::transport_config c2;
        c2.cluster_id = cluster;
        c2.self = node_id{2};
        c2.listen_port = port;
        c2.peers = {{node_id{1}, "127.0.0.1", 1}};
        tcp_transport t2(io.get_executor(), c2);
        REQUIRE_FALSE(t2.start());
        t2.on_receive([&](message m) { at2.push_back(std::move(m)); });
        const std::size_t before = at2.size();
        if (incarnation == 1) {
            // Sent before node 1 notices the old connection died, it could vanish with it
            // (TCP accepts writes to a closed peer); Raft would resend. Wait for the notice.
            REQUIRE(run_until(io, [&] { return !t1.connected(node_id{2}); }));
            t1.send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}, 2));
        }
        REQUIRE(run_until(io, [&] { return at2.size() == before + 1; }));
        CHECK(message_term(at2.back()) == term{std::uint64_t(incarnation + 1)});
    }
}

TEST_CASE("transport: nothing is delivered after the transport is destroyed") {
    pair_fixture f;
    REQUIRE(f.connect());
    bool delivered_late = false;
    f.t2->on_receive([&](message) { delivered_late = true; });
    for (std::uint64_t i = 1; i <= 20; ++i) {
        f.t1->send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}, i));
    }
    f.t2.reset();
    run_for(f.io, 50ms);
    CHECK_FALSE(delivered_late);
    f.t1.reset();
    f.io.run(); // nothing keeps it busy
}

TEST_CASE("transport: bad configuration is refused with invalid_argument") {
    boost::asio::io_context io;
    auto base = [] {
        net::transport_config c;
        c.cluster_id = cluster;
        c.self = node_id{1};
        c.peers = {{node_id{2}, "127.0.0.1", 4000}};
        return c;
    };
    CHECK_FALSE(base().validate());
    std::vector<std::pair<const char*, net::transport_config>> bad;
    bad.emplace_back("cluster 0", base());
    bad.back().second.cluster_id = 0;
    bad.emplace_back("self 0", base());
    bad.back().second.self = no_node;
    bad.emplace_back("self as peer", base());
    bad.back().second.peers.push_back({node_id{1}, "127.0.0.1", 4001});
    bad.emplace_back("duplicate peer", base());
    bad.back().second.peers.push_back({node_id{2}, "127.0.0.1", 4001});
    bad.emplace_back("peer port 0", base());
    bad.back().second.peers[0].port = 0;
    bad.emplace_back("tiny frames", base());
    bad.back().second.max_frame_size = 4;
    bad.emplace_back("queue 0", base());
    bad.back().second.max_queued_messages = 0;
    bad.emplace_back("dead peer timeout 0", base());
    bad.back().second.dead_peer_timeout = 0ms;
    bad.emplace_back("pending handshakes 0", base());
    bad.back().second.max_pending_handshakes = 0;
    bad.emplace_back("reconnect inverted", base());
    bad.back().second.reconnect_max = 1ms;
    for (auto& entry : bad) {
        const std::string name = entry.first;
        const net::transport_config& cfg = entry.second;
        CAPTURE(name);
        CHECK(cfg.validate() == errc::invalid_argument);
        tcp_transport t(io.get_executor(), cfg);
        CHECK(t.start() == errc::invalid_argument);
    }
    auto not_an_address = base();
    not_an_address.listen_host = "not-an-address";
    tcp_transport t(io.get_executor(), not_an_address);
    CHECK(t.start() == errc::invalid_argument);
}

TEST_CASE("transport: a port in use is reported by start") {
    boost::asio::io_context io;
    net::transport_config c;
    c.cluster_id = cluster;
    c.self = node_id{1};
    tcp_transport first(io.get_executor(), c);
    REQUIRE_FALSE(first.start());
    c.listen_port = first.local_port();
    tcp_transport second(io.get_executor(), c);
    CHECK(second.start() == std::errc::address_in_use);
}

TEST_CASE("transport: connections that never say who they are cannot lock out a peer") {
    net::transport_config base;
    base.max_pending_handshakes = 2;
    pair_fixture f(base);
    REQUIRE(f.connect());
    std::vector<std::unique_ptr<raw_client>> silent;
    for (int i = 0; i < 2; ++i) {
        silent.push_back(std::make_unique<raw_client>(f.t2->local_port()));
    }
    run_for(f.io, 20ms);
    // A peer (re)connecting now still gets in: the oldest silent connection makes room.
    raw_client peer(f.t2->local_port());
    peer.write(hello(cluster, node_id{1}, node_id{2}));
    net::handshake answer;
    std::thread reader([&] { (void)peer.read_handshake(answer); });
    REQUIRE(run_until(f.io, [&] {
        return f.t2->counters().closed_for(close_reason::crowded_out) == 1 &&
               f.t2->counters().connections_established >= 2;
    }));
    run_for(f.io, 20ms);
    reader.join();
    CHECK(answer.kind == net::handshake_kind::accept);
}

TEST_CASE("transport: a large frame trickling in byte by byte is assembled once, in a buffer "
          "its own size") {
    net::transport_config slow_redial; // the real node 1 stays away while the test is node 1
    slow_redial.reconnect_min = 2000ms;
    slow_redial.reconnect_max = 2000ms;
    pair_fixture f(slow_redial);
    REQUIRE(f.connect());
    auto c = impersonate_node_1(f);
    append_request r;
    r.from = node_id{1};
    r.to = node_id{2};
    r.term = term{4};
    r.entries.push_back(log_entry{term{4}, log_index{1}, entry_kind::normal,
                                  shared_bytes(std::string(300 * 1024, 'q'))});
    const auto frame = wire::encode_frame(r);
    const std::size_t before = f.at2.size();
    std::size_t sent = 0;
    for (std::size_t piece : {std::size_t{5}, std::size_t{20}, std::size_t{1}, std::size_t{4096}}) {
        c->write(byte_span(frame).subspan(sent, piece));
        sent += piece;
        run_for(f.io, 5ms);
    }
    while (sent < frame.size()) {
        const std::size_t piece = std::min<std::size_t>(32 * 1024, frame.size() - sent);
        c->write(byte_span(frame).subspan(sent, piece));
        sent += piece;
        run_for(f.io, 1ms);
    }
    REQUIRE(run_until(f.io, [&] { return f.at2.size() == before + 1; }));
    CHECK(std::get<append_request>(f.at2.back()).entries.at(0).payload.size() == 300 * 1024);
    CHECK(f.t2->counters().closed_for(close_reason::bad_frame) == 0);
}

TEST_CASE("transport: peers added and removed after start (membership changes)") {
    boost::asio::io_context io;
    std::vector<message> at2;
    net::transport_config c2;
    c2.cluster_id = cluster;
    c2.self = node_id{2};
    tcp_transport t2(io.get_executor(), c2);
    REQUIRE_FALSE(t2.start());
    t2.on_receive([&](message m) { at2.push_back(std::move(m)); });
    net::transport_config c1;
    c1.cluster_id = cluster;
    c1.self = node_id{1};
    tcp_transport t1(io.get_executor(), c1);
    REQUIRE_FALSE(t1.start());

    // Node 2 does not know node 1 yet: refused as unknown until it is added.
    CHECK_FALSE(t1.add_peer({node_id{2}, "127.0.0.1", t2.local_port()}));
    REQUIRE(
        run_until(io, [&] { return t2.counters().closed_for(close_reason::unknown_node) >= 1; }));
    CHECK_FALSE(t2.add_peer({node_id{1}, "127.0.0.1", 1}));
    t1.send(node_id{2}, pair_fixture::heartbeat(node_id{1}, node_id{2}));
    REQUIRE(run_until(io, [&] { return at2.size() == 1; }));

    CHECK(t1.add_peer({node_id{2}, "127.0.0.1", 5}) == errc::invalid_argument);
    CHECK(t1.add_peer({node_id{1}, "127.0.0.1", 5}) == errc::invalid_argument);
    CHECK(t1.add_peer({node_id{3}, "127.0.0.1", 0}) == errc::invalid_argument);

    CHECK_FALSE(t2.remove_peer(node_id{1}));
    CHECK(t2.remove_peer(node_id{1}) == errc::unknown_node);
    CHECK(t2.counters().closed_for(close_reason::removed) == 1);
    t2.send(node_id{1}, pair_fixture::heartbeat(node_id{2}, node_id{1}));
    CHECK(t2.counters().dropped_unknown_peer == 1);
    REQUIRE(run_until(io, [&] { return !t1.connected(node_id{2}); }));
}
