#pragma once

// Helpers for the Asio runtime's tests: run an io_context until a condition holds, and a raw
// TCP client that can say anything to a node's port.

#include <doctest/doctest.h>

#include <synod/core/bytes.hpp>
#include <synod/net/handshake.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <sys/socket.h>
#include <sys/time.h>

namespace synod::test {

/// Runs `io` until `done()` holds or `limit` passes; returns `done()`.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(std::chrono::milliseconds(5));
    }
    return done();
}

/// Runs `io` for `d`.
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
    (void)run_until(
        io, [] { return false; }, d);
}

/// A blocking client on its own io_context, to send a node's port whatever bytes a test needs.
class raw_client {
public:
    explicit raw_client(std::uint16_t port)
        : socket_(io_) {
        socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
        // A test waiting for an answer that never comes fails instead of hanging.
        const timeval limit{10, 0};
        (void)::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    }

    void write(byte_span bytes) {
        boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()));
    }

    /// Reads a handshake answer; false if the connection closed first.
    bool read_handshake(net::handshake& out) {
        net::handshake_bytes b{};
        boost::system::error_code ec;
        boost::asio::read(socket_, boost::asio::buffer(b), ec);
        return !ec && net::decode_handshake(byte_span(b), out) == net::close_reason::none;
    }

    /// True once the other side has closed the connection (reads until EOF or error).
    bool closed_by_peer() {
        std::array<std::byte, 4096> b{};
        boost::system::error_code ec;
        while (!ec) {
            socket_.read_some(boost::asio::buffer(b), ec);
        }
        return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
    }

    void close() {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

private:
    boost::asio::io_context io_;
    boost::asio::ip::tcp::socket socket_;
};

} // namespace synod::test
