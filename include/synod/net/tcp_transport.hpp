#pragma once

/// \file
/// `net::tcp_transport`: the `transport` policy over TCP (Boost.Asio), and
/// `basic_tcp_transport<Security>`, the same over any stream security policy (`plain_tcp`
/// here, mutual TLS in tls_transport.hpp).
///
/// - One connection per peer pair: of each pair the node with the smaller id dials, the other
///   accepts, and both send over that connection. A dialer reconnects with exponential
///   backoff and jitter; an acceptor adopts a newer connection from the same peer (the peer
///   restarted) and closes the old one.
/// - Every connection opens with a handshake (handshake.hpp) carrying cluster id, node ids and
///   protocol version; a mismatch closes the connection with a logged reason.
/// - Frames (wire/frame.hpp) are read into a reused buffer; a frame that fails any check —
///   size over `max_frame_size`, version, type, CRC, body, a sender other than the
///   connection's peer — closes that connection only.
/// - `send` encodes at once and queues; the queue is written on the next turn of the
///   executor, all queued frames in one gathered write. The queue is bounded in messages and
///   bytes; overflow drops the *oldest* messages (Raft resends what matters) and counts them.
///
/// Threading: the transport runs on one executor — the node's (an `io_context` run by one
/// thread, or a strand). `send`, `on_receive` and the destructor are called there; received
/// messages are handed to the receiver there.
///
/// \warning Destroy the transport before its `io_context`. After the destructor returns no
/// receiver or log callback runs again: sockets are closed, and handlers still queued find
/// the transport shut down.

#include <synod/core/bytes.hpp>
#include <synod/core/concepts/transport.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/messages.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/net/handshake.hpp>
#include <synod/wire/frame.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

namespace synod::net {

struct peer_address {
    node_id id;
    std::string host; ///< a numeric address or a name to resolve
    std::uint16_t port = 0;
};

/// A connection event, for the host's log.
struct transport_event {
    std::string_view what; ///< fixed text; valid during the call
    node_id self;
    node_id peer; ///< `no_node` when the other side never said who it is
    close_reason reason = close_reason::none;
    std::uint64_t value = 0; ///< a count or an error code, depending on `what`
    bool warning = false;    ///< something went wrong (as opposed to routine news)
};
using transport_log = std::function<void(const transport_event&)>;

struct transport_config {
    std::uint64_t cluster_id = 0;
    node_id self;
    /// Where this node listens for its peers. Port 0 picks a free port (`local_port()`).
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 0;
    /// Every other member, with the address it listens on.
    std::vector<peer_address> peers;
    /// Largest frame accepted from (and sent to) a peer; larger ones close the connection.
    std::size_t max_frame_size = wire::default_max_frame_size;
    /// The send queue of each peer holds at most this many messages and bytes; beyond
    /// either, the oldest queued messages are dropped.
    std::size_t max_queued_messages = 16384;
    std::size_t max_queued_bytes = std::size_t{256} << 20;
    /// At most this many bytes go into one gathered write.
    std::size_t max_write_bytes = std::size_t{4} << 20;
    /// Reconnect delays double from `reconnect_min` to `reconnect_max`; each wait is drawn
    /// from [delay / 2, delay] so that restarted nodes do not dial in lockstep.
    std::chrono::milliseconds reconnect_min{20};
    std::chrono::milliseconds reconnect_max{1000};
    /// A connection must finish connecting and its handshakes (TLS and synod's) within this.
    std::chrono::milliseconds handshake_timeout{2000};
    /// Inbound connections still in their handshake; more are closed at once.
    std::size_t max_pending_handshakes = 64;
    std::uint64_t random_seed = 0;
    /// Connection events: established, closed (with the reason), queue overflow. Called on
    /// the executor.
    transport_log log{};

    /// `invalid_argument` when: `cluster_id` is 0, `self` is `no_node`, a peer is `self` or
    /// `no_node` or listed twice, or has port 0; `max_frame_size` is below a frame header;
    /// a queue or write limit is 0; reconnect delays are not 0 < min <= max; the handshake
    /// timeout is not positive.
    [[nodiscard]] std::error_code validate() const {
        std::vector<node_id> ids;
        for (const peer_address& p : peers) {
            if (p.id == no_node || p.id == self || p.port == 0 || p.host.empty()) {
                return errc::invalid_argument;
            }
            ids.push_back(p.id);
        }
        std::sort(ids.begin(), ids.end());
        if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
            return errc::invalid_argument;
        }
        if (cluster_id == 0 || self == no_node || max_frame_size < wire::frame_header_size ||
            max_queued_messages == 0 || max_queued_bytes == 0 || max_write_bytes == 0 ||
            max_pending_handshakes == 0 || reconnect_min.count() <= 0 ||
            reconnect_max < reconnect_min || handshake_timeout.count() <= 0) {
            return errc::invalid_argument;
        }
        return {};
    }
};

/// Monotonic counters, for `counters()`.
struct transport_counters {
    std::uint64_t messages_sent = 0;     ///< handed to a socket write
    std::uint64_t messages_received = 0; ///< decoded and handed to the receiver
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t writes = 0;           ///< gathered writes (messages_sent / writes = coalescing)
    std::uint64_t dropped_overflow = 0; ///< oldest messages dropped from a full queue
    std::uint64_t dropped_unknown_peer = 0; ///< sent to an id that is not a peer
    std::uint64_t dropped_too_large = 0;    ///< a frame over `max_frame_size`, never sent
    std::uint64_t dropped_in_flight = 0;    ///< lost in a write when its connection closed
    std::uint64_t connections_established = 0;
    std::uint64_t dial_attempts = 0;
    /// Inbound connections closed at once because `max_pending_handshakes` were pending.
    std::uint64_t refused_pending_limit = 0;
    /// Connections closed, by `close_reason`.
    std::array<std::uint64_t, close_reason_count> closed{};

    [[nodiscard]] std::uint64_t closed_for(close_reason r) const noexcept {
        return closed[static_cast<std::size_t>(r)];
    }
};

/// The stream security policy for plain TCP. A security policy names the stream type over a
/// connected socket and runs its handshake (TLS's, or none).
struct plain_tcp {
    using stream_type = boost::asio::ip::tcp::socket;

    [[nodiscard]] stream_type wrap(boost::asio::ip::tcp::socket s) const { return s; }
    static boost::asio::ip::tcp::socket& socket(stream_type& s) noexcept { return s; }

    template <class Handler>
    void handshake(stream_type& s, bool /*client*/, Handler&& h) const {
        boost::asio::post(s.get_executor(), [h = std::forward<Handler>(h)]() mutable {
            h(boost::system::error_code{});
        });
    }
};

namespace transport_detail {

template <class Security>
class state : public std::enable_shared_from_this<state<Security>> {
    using tcp = boost::asio::ip::tcp;
    using stream_type = typename Security::stream_type;
    using error_code = boost::system::error_code;

    struct connection {
        connection(stream_type s, const boost::asio::any_io_executor& ex, bool in)
            : stream(std::move(s))
            , deadline(ex)
            , inbound(in) {}
        stream_type stream;
        boost::asio::steady_timer deadline;
        const bool inbound;
        /// Set once the handshake names the peer (at once for a dialed connection).
        node_id peer;
        bool open = true;
        bool established = false;
        handshake_bytes handshake_buffer{};
        byte_vector read_buffer;
        /// \invariant bytes [0, read_length) of read_buffer are received, not yet parsed.
        std::size_t read_length = 0;
        /// Frames handed to the current gathered write; empty when no write is in flight.
        std::vector<byte_vector> in_flight;
        bool writing = false;
    };
    using connection_ptr = std::shared_ptr<connection>;

    struct peer_state {
        peer_state(peer_address a, const boost::asio::any_io_executor& ex, bool dial)
            : address(std::move(a))
            , we_dial(dial)
            , retry_timer(ex) {}
        peer_address address;
        /// Of each pair the smaller id dials.
        const bool we_dial;
        /// The established connection, if any.
        connection_ptr conn;
        std::deque<byte_vector> queue;
        /// \invariant the sum of the sizes of `queue`'s frames.
        std::size_t queued_bytes = 0;
        bool write_posted = false;
        bool dialing = false;
        std::chrono::milliseconds backoff{0};
        boost::asio::steady_timer retry_timer;
    };

public:
    using receiver = unique_function<void(message)>;

    state(boost::asio::any_io_executor ex, transport_config cfg, Security security)
        : executor_(std::move(ex))
        , cfg_(std::move(cfg))
        , security_(std::move(security))
        , acceptor_(executor_)
        , accept_retry_(executor_)
        , resolver_(executor_)
        , rng_(cfg_.random_seed ^ (cfg_.self.value() * 0x9e3779b97f4a7c15ULL)) {
        for (const peer_address& p : cfg_.peers) {
            peers_.emplace(std::piecewise_construct, std::forward_as_tuple(p.id),
                           std::forward_as_tuple(p, executor_, cfg_.self < p.id));
        }
    }

    std::error_code start() {
        if (started_ || closed_) {
            return errc::invalid_argument;
        }
        if (auto ec = cfg_.validate()) {
            return ec;
        }
        error_code ec;
        const auto address = boost::asio::ip::make_address(cfg_.listen_host, ec);
        if (ec) {
            return errc::invalid_argument;
        }
        const tcp::endpoint endpoint(address, cfg_.listen_port);
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) {
            acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        }
        if (!ec) {
            acceptor_.bind(endpoint, ec);
        }
        if (!ec) {
            acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            error_code ignored;
            acceptor_.close(ignored);
            return std::error_code(ec.value(), std::system_category());
        }
        started_ = true;
        accept_next();
        for (auto& [id, p] : peers_) {
            if (p.we_dial) {
                dial(p);
            }
        }
        return {};
    }

    void set_receiver(receiver r) { receiver_ = std::move(r); }

    [[nodiscard]] std::uint16_t local_port() const {
        error_code ec;
        auto ep = acceptor_.local_endpoint(ec);
        return ec ? 0 : ep.port();
    }

    [[nodiscard]] const transport_counters& counters() const noexcept { return counters_; }

    [[nodiscard]] bool connected(node_id id) const {
        auto it = peers_.find(id);
        return it != peers_.end() && it->second.conn != nullptr;
    }

    [[nodiscard]] std::size_t queued(node_id id) const {
        auto it = peers_.find(id);
        return it == peers_.end() ? 0 : it->second.queue.size();
    }

    void send(node_id to, const message& m) {
        auto it = peers_.find(to);
        if (it == peers_.end() || closed_) {
            ++counters_.dropped_unknown_peer;
            return;
        }
        peer_state& p = it->second;
        byte_vector frame = take_buffer();
        wire::encode_frame(m, frame);
        if (frame.size() > cfg_.max_frame_size) {
            ++counters_.dropped_too_large;
            log(true, "message larger than max_frame_size dropped", to, frame.size());
            return recycle(std::move(frame));
        }
        p.queued_bytes += frame.size();
        p.queue.push_back(std::move(frame));
        std::uint64_t dropped = 0;
        while (p.queue.size() > 1 && (p.queue.size() > cfg_.max_queued_messages ||
                                      p.queued_bytes > cfg_.max_queued_bytes)) {
            p.queued_bytes -= p.queue.front().size();
            recycle(std::move(p.queue.front()));
            p.queue.pop_front();
            ++dropped;
        }
        if (dropped != 0) {
            if (counters_.dropped_overflow == 0) {
                log(true, "send queue full: oldest messages dropped", to, dropped);
            }
            counters_.dropped_overflow += dropped;
        }
        if (p.conn && !p.conn->writing && !p.write_posted) {
            // Written on the next turn: everything the node sends in this one goes in the
            // same gathered write.
            p.write_posted = true;
            boost::asio::post(executor_, [self = this->shared_from_this(), id = to] {
                if (self->closed_) {
                    return;
                }
                peer_state& q = self->peers_.at(id);
                q.write_posted = false;
                self->start_write(q);
            });
        }
    }

    void shutdown() {
        if (closed_) {
            return;
        }
        closed_ = true;
        receiver_ = nullptr;
        error_code ignored;
        acceptor_.close(ignored);
        accept_retry_.cancel();
        resolver_.cancel();
        for (auto& [id, p] : peers_) {
            p.retry_timer.cancel();
            p.queue.clear();
            p.queued_bytes = 0;
        }
        // Copy: close() erases from open_.
        const std::vector<connection_ptr> open(open_.begin(), open_.end());
        for (const connection_ptr& c : open) {
            close(c, close_reason::shutdown);
        }
        cfg_.log = nullptr;
    }

private:
    // --- connection setup ------------------------------------------------------------------

    void accept_next() {
        acceptor_.async_accept(
            [self = this->shared_from_this()](error_code ec, tcp::socket socket) {
                if (self->closed_) {
                    return;
                }
                if (!ec) {
                    self->adopt_inbound(std::move(socket));
                    return self->accept_next();
                }
                // Out of descriptors or buffers: accepting again at once would spin.
                self->log(true, "accept failed; retrying in 100 ms", no_node,
                          static_cast<std::uint64_t>(ec.value()));
                self->accept_retry_.expires_after(std::chrono::milliseconds(100));
                self->accept_retry_.async_wait([self](error_code wait_ec) {
                    if (!wait_ec && !self->closed_) {
                        self->accept_next();
                    }
                });
            });
    }

    void adopt_inbound(tcp::socket socket) {
        error_code ignored;
        if (pending_inbound() >= cfg_.max_pending_handshakes) {
            // Connections that have not said who they are cannot crowd out the peers.
            ++counters_.refused_pending_limit;
            socket.close(ignored);
            return;
        }
        socket.set_option(tcp::no_delay(true), ignored);
        auto c = std::make_shared<connection>(security_.wrap(std::move(socket)), executor_, true);
        open_.insert(c);
        arm_deadline(c);
        security_.handshake(c->stream, false, [self = this->shared_from_this(), c](error_code ec) {
            if (self->closed_ || !c->open) {
                return;
            }
            if (ec) {
                return self->close(c, close_reason::tls_failure);
            }
            self->read_hello(c);
        });
    }

    void read_hello(const connection_ptr& c) {
        boost::asio::async_read(
            c->stream, boost::asio::buffer(c->handshake_buffer),
            [self = this->shared_from_this(), c](error_code ec, std::size_t) {
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    return self->close(c, ec == boost::asio::error::eof ? close_reason::peer_closed
                                                                        : close_reason::io_error);
                }
                handshake h;
                close_reason why = decode_handshake(byte_span(c->handshake_buffer), h);
                if (why == close_reason::none) {
                    why = self->check_hello(h);
                }
                if (why != close_reason::none) {
                    return self->refuse(c, why, h.from);
                }
                c->peer = h.from;
                self->answer(c,
                             handshake{handshake_kind::accept, close_reason::none, protocol_version,
                                       self->cfg_.cluster_id, self->cfg_.self, h.from});
            });
    }

    [[nodiscard]] close_reason check_hello(const handshake& h) const {
        if (h.kind != handshake_kind::hello) {
            return close_reason::bad_handshake;
        }
        if (h.version != protocol_version) {
            return close_reason::wrong_version;
        }
        if (h.cluster != cfg_.cluster_id) {
            return close_reason::wrong_cluster;
        }
        if (h.to != cfg_.self) {
            return close_reason::wrong_recipient;
        }
        auto it = peers_.find(h.from);
        if (it == peers_.end()) {
            return close_reason::unknown_node;
        }
        if (it->second.we_dial) {
            return close_reason::wrong_direction;
        }
        return close_reason::none;
    }

    /// Tells the dialer why, then closes. The reject is best effort: the reason is logged
    /// here whether or not it arrives.
    void refuse(const connection_ptr& c, close_reason why, node_id claimed) {
        log_close(why, claimed);
        count_close(why);
        c->established = false;
        auto bytes = std::make_shared<handshake_bytes>(encode_handshake(handshake{
            handshake_kind::reject, why, protocol_version, cfg_.cluster_id, cfg_.self, claimed}));
        c->deadline.cancel();
        boost::asio::async_write(
            c->stream, boost::asio::buffer(*bytes),
            [self = this->shared_from_this(), c, bytes](error_code, std::size_t) {
                self->close(c, close_reason::none);
            });
    }

    void answer(const connection_ptr& c, const handshake& reply) {
        auto bytes = std::make_shared<handshake_bytes>(encode_handshake(reply));
        boost::asio::async_write(
            c->stream, boost::asio::buffer(*bytes),
            [self = this->shared_from_this(), c, bytes](error_code ec, std::size_t) {
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    return self->close(c, close_reason::io_error);
                }
                self->establish(c);
            });
    }

    void dial(peer_state& p) {
        p.dialing = true;
        ++counters_.dial_attempts;
        resolver_.async_resolve(p.address.host, std::to_string(p.address.port),
                                [self = this->shared_from_this(), id = p.address.id](
                                    error_code ec, const tcp::resolver::results_type& endpoints) {
                                    if (self->closed_) {
                                        return;
                                    }
                                    peer_state& q = self->peers_.at(id);
                                    if (ec) {
                                        self->log(true, "cannot resolve peer address", id, 0);
                                        return self->retry_later(q);
                                    }
                                    self->connect(q, endpoints);
                                });
    }

    void connect(peer_state& p, const tcp::resolver::results_type& endpoints) {
        auto c =
            std::make_shared<connection>(security_.wrap(tcp::socket(executor_)), executor_, false);
        c->peer = p.address.id;
        open_.insert(c);
        arm_deadline(c);
        boost::asio::async_connect(
            Security::socket(c->stream), endpoints,
            [self = this->shared_from_this(), c](error_code ec, const tcp::endpoint&) {
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    // Not counted as a close: nothing was ever open. Quietly try again.
                    return self->close(c, close_reason::none);
                }
                error_code ignored;
                Security::socket(c->stream).set_option(tcp::no_delay(true), ignored);
                self->security_.handshake(c->stream, true, [self, c](error_code tls_ec) {
                    if (self->closed_ || !c->open) {
                        return;
                    }
                    if (tls_ec) {
                        return self->close(c, close_reason::tls_failure);
                    }
                    self->send_hello(c);
                });
            });
    }

    void send_hello(const connection_ptr& c) {
        auto bytes = std::make_shared<handshake_bytes>(
            encode_handshake(handshake{handshake_kind::hello, close_reason::none, protocol_version,
                                       cfg_.cluster_id, cfg_.self, c->peer}));
        boost::asio::async_write(
            c->stream, boost::asio::buffer(*bytes),
            [self = this->shared_from_this(), c, bytes](error_code ec, std::size_t) {
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    return self->close(c, close_reason::io_error);
                }
                self->read_answer(c);
            });
    }

    void read_answer(const connection_ptr& c) {
        boost::asio::async_read(
            c->stream, boost::asio::buffer(c->handshake_buffer),
            [self = this->shared_from_this(), c](error_code ec, std::size_t) {
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    return self->close(c, ec == boost::asio::error::eof ? close_reason::peer_closed
                                                                        : close_reason::io_error);
                }
                handshake h;
                close_reason why = decode_handshake(byte_span(c->handshake_buffer), h);
                if (why == close_reason::none) {
                    if (h.kind == handshake_kind::reject) {
                        self->log(true, to_string(h.reason), c->peer, 0);
                        why = close_reason::rejected_by_peer;
                    } else if (h.kind != handshake_kind::accept) {
                        why = close_reason::bad_handshake;
                    } else if (h.version != protocol_version) {
                        why = close_reason::wrong_version;
                    } else if (h.cluster != self->cfg_.cluster_id) {
                        why = close_reason::wrong_cluster;
                    } else if (h.from != c->peer || h.to != self->cfg_.self) {
                        why = close_reason::wrong_recipient;
                    }
                }
                if (why != close_reason::none) {
                    return self->close(c, why);
                }
                self->establish(c);
            });
    }

    void establish(const connection_ptr& c) {
        c->deadline.cancel();
        c->established = true;
        peer_state& p = peers_.at(c->peer);
        if (p.conn) {
            close(p.conn, close_reason::replaced);
        }
        p.conn = c;
        p.dialing = false;
        p.backoff = std::chrono::milliseconds{0};
        ++counters_.connections_established;
        log(false, "connection established", c->peer, c->inbound ? 1 : 0);
        c->read_buffer.resize(initial_read_buffer);
        read_more(c);
        start_write(p);
    }

    void arm_deadline(const connection_ptr& c) {
        c->deadline.expires_after(cfg_.handshake_timeout);
        c->deadline.async_wait([self = this->shared_from_this(), c](error_code ec) {
            if (ec || self->closed_ || !c->open || c->established) {
                return;
            }
            self->close(c, close_reason::handshake_timeout);
        });
    }

    void retry_later(peer_state& p) {
        p.dialing = false;
        p.backoff = p.backoff.count() == 0 ? cfg_.reconnect_min
                                           : std::min(p.backoff * 2, cfg_.reconnect_max);
        std::uniform_int_distribution<std::int64_t> jitter(p.backoff.count() / 2,
                                                           p.backoff.count());
        p.retry_timer.expires_after(std::chrono::milliseconds(jitter(rng_)));
        p.dialing = true;
        p.retry_timer.async_wait(
            [self = this->shared_from_this(), id = p.address.id](error_code ec) {
                if (ec || self->closed_) {
                    return;
                }
                self->dial(self->peers_.at(id));
            });
    }

    void close(const connection_ptr& c, close_reason why) {
        if (!c->open) {
            return;
        }
        c->open = false;
        open_.erase(c);
        if (why != close_reason::none) {
            count_close(why);
            if (why != close_reason::shutdown) {
                log_close(why, c->peer);
            }
        }
        c->deadline.cancel();
        error_code ignored;
        Security::socket(c->stream).shutdown(tcp::socket::shutdown_both, ignored);
        Security::socket(c->stream).close(ignored);
        counters_.dropped_in_flight += c->in_flight.size();
        if (closed_) {
            return;
        }
        auto it = peers_.find(c->peer);
        if (it == peers_.end()) {
            return;
        }
        peer_state& p = it->second;
        const bool was_current = p.conn == c;
        if (was_current) {
            p.conn.reset();
        }
        // A dialer tries again after a failed attempt or a lost connection, not when a newer
        // connection replaced this one.
        if (p.we_dial && why != close_reason::replaced && (was_current || !c->established) &&
            !p.conn) {
            retry_later(p);
        }
    }

    [[nodiscard]] std::size_t pending_inbound() const {
        return static_cast<std::size_t>(
            std::count_if(open_.begin(), open_.end(),
                          [](const connection_ptr& c) { return c->inbound && !c->established; }));
    }

    // --- reading ---------------------------------------------------------------------------

    static constexpr std::size_t initial_read_buffer = std::size_t{64} << 10;

    void read_more(const connection_ptr& c) {
        if (c->read_buffer.size() - c->read_length < initial_read_buffer / 4) {
            c->read_buffer.resize(std::max(c->read_buffer.size() * 2, initial_read_buffer));
        }
        c->stream.async_read_some(
            boost::asio::buffer(c->read_buffer.data() + c->read_length,
                                c->read_buffer.size() - c->read_length),
            [self = this->shared_from_this(), c](error_code ec, std::size_t n) {
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    return self->close(c, ec == boost::asio::error::eof ? close_reason::peer_closed
                                                                        : close_reason::io_error);
                }
                c->read_length += n;
                self->counters_.bytes_received += n;
                if (self->parse(c)) {
                    self->read_more(c);
                }
            });
    }

    /// Hands every complete frame to the receiver. False once the connection is closed.
    bool parse(const connection_ptr& c) {
        const wire::frame_limits limits{cfg_.max_frame_size};
        std::size_t pos = 0;
        while (c->read_length - pos >= wire::frame_header_size) {
            const byte_span rest(c->read_buffer.data() + pos, c->read_length - pos);
            auto size = wire::frame_size(rest, limits);
            if (!size) {
                log(true, "bad frame header", c->peer,
                    static_cast<std::uint64_t>(size.error().value()));
                close(c, close_reason::bad_frame);
                return false;
            }
            if (*size > rest.size()) {
                if (*size > c->read_buffer.size()) {
                    c->read_buffer.resize(*size);
                }
                break;
            }
            auto m = wire::decode_frame(rest.first(*size), limits);
            if (!m) {
                log(true, "bad frame", c->peer, static_cast<std::uint64_t>(m.error().value()));
                close(c, close_reason::bad_frame);
                return false;
            }
            if (message_from(*m) != c->peer || message_to(*m) != cfg_.self) {
                close(c, close_reason::spoofed_sender);
                return false;
            }
            pos += *size;
            ++counters_.messages_received;
            if (receiver_) {
                receiver_(std::move(m).value());
            }
            if (closed_ || !c->open) {
                return false;
            }
        }
        if (pos != 0) {
            std::memmove(c->read_buffer.data(), c->read_buffer.data() + pos, c->read_length - pos);
            c->read_length -= pos;
        }
        // A large frame grew the buffer; give the memory back once it is consumed.
        if (c->read_buffer.size() > 4 * initial_read_buffer &&
            c->read_length < initial_read_buffer) {
            c->read_buffer.resize(initial_read_buffer);
            c->read_buffer.shrink_to_fit();
        }
        return true;
    }

    // --- writing ---------------------------------------------------------------------------

    void start_write(peer_state& p) {
        const connection_ptr c = p.conn;
        if (!c || c->writing || p.queue.empty()) {
            return;
        }
        std::size_t bytes = 0;
        while (!p.queue.empty() &&
               (c->in_flight.empty() || bytes + p.queue.front().size() <= cfg_.max_write_bytes)) {
            bytes += p.queue.front().size();
            p.queued_bytes -= p.queue.front().size();
            c->in_flight.push_back(std::move(p.queue.front()));
            p.queue.pop_front();
        }
        gather_.clear();
        for (const byte_vector& f : c->in_flight) {
            gather_.emplace_back(f.data(), f.size());
        }
        c->writing = true;
        ++counters_.writes;
        boost::asio::async_write(
            c->stream, gather_, [self = this->shared_from_this(), c](error_code ec, std::size_t n) {
                c->writing = false;
                if (self->closed_ || !c->open) {
                    return;
                }
                if (ec) {
                    return self->close(c, close_reason::io_error);
                }
                self->counters_.bytes_sent += n;
                self->counters_.messages_sent += c->in_flight.size();
                for (byte_vector& f : c->in_flight) {
                    self->recycle(std::move(f));
                }
                c->in_flight.clear();
                self->start_write(self->peers_.at(c->peer));
            });
    }

    byte_vector take_buffer() {
        if (spare_.empty()) {
            return {};
        }
        byte_vector b = std::move(spare_.back());
        spare_.pop_back();
        b.clear();
        return b;
    }

    void recycle(byte_vector b) {
        if (spare_.size() < max_spare_buffers && b.capacity() <= max_spare_capacity) {
            spare_.push_back(std::move(b));
        }
    }

    static constexpr std::size_t max_spare_buffers = 256;
    static constexpr std::size_t max_spare_capacity = std::size_t{64} << 10;

    // --- diagnostics -----------------------------------------------------------------------

    void count_close(close_reason why) { ++counters_.closed[static_cast<std::size_t>(why)]; }

    void log_close(close_reason why, node_id peer) {
        log(why != close_reason::replaced, to_string(why), peer, 0, why);
    }

    void log(bool warning, std::string_view what, node_id peer, std::uint64_t value,
             close_reason why = close_reason::none) {
        if (cfg_.log) {
            cfg_.log(transport_event{what, cfg_.self, peer, why, value, warning});
        }
    }

    boost::asio::any_io_executor executor_;
    transport_config cfg_;
    Security security_;
    tcp::acceptor acceptor_;
    boost::asio::steady_timer accept_retry_;
    tcp::resolver resolver_;
    std::mt19937_64 rng_;
    std::map<node_id, peer_state> peers_;
    /// Every connection not yet closed, established or not, so shutdown can close them all.
    std::unordered_set<connection_ptr> open_;
    std::vector<byte_vector> spare_;
    std::vector<boost::asio::const_buffer> gather_;
    receiver receiver_;
    transport_counters counters_;
    bool started_ = false;
    /// \invariant once true, no receiver or log callback runs again.
    bool closed_ = false;
};

} // namespace transport_detail

template <class Security = plain_tcp>
class basic_tcp_transport {
public:
    using receiver = unique_function<void(message)>;

    basic_tcp_transport(boost::asio::any_io_executor executor, transport_config cfg,
                        Security security = Security{})
        : state_(std::make_shared<transport_detail::state<Security>>(
              std::move(executor), std::move(cfg), std::move(security))) {}

    basic_tcp_transport(const basic_tcp_transport&) = delete;
    basic_tcp_transport& operator=(const basic_tcp_transport&) = delete;

    ~basic_tcp_transport() { state_->shutdown(); }

    /// Validates the configuration (`invalid_argument`), binds and listens (the socket error,
    /// e.g. address in use), then starts dialing the peers this node dials. Call once, on the
    /// executor.
    std::error_code start() { return state_->start(); }

    /// Where received messages go: usually `node.receive`. Runs on the executor.
    void on_receive(receiver r) { state_->set_receiver(std::move(r)); }

    /// Fire-and-forget: queues `m` for `to` (see the file comment for what may drop it).
    void send(node_id to, message m) { state_->send(to, m); }

    /// The listening port (useful with `listen_port` 0).
    [[nodiscard]] std::uint16_t local_port() const { return state_->local_port(); }
    [[nodiscard]] const transport_counters& counters() const noexcept { return state_->counters(); }
    /// Whether a connection to `peer` is established now.
    [[nodiscard]] bool connected(node_id peer) const { return state_->connected(peer); }
    /// Messages waiting in `peer`'s send queue.
    [[nodiscard]] std::size_t queued(node_id peer) const { return state_->queued(peer); }

private:
    std::shared_ptr<transport_detail::state<Security>> state_;
};

using tcp_transport = basic_tcp_transport<plain_tcp>;

static_assert(transport<tcp_transport>);

} // namespace synod::net
