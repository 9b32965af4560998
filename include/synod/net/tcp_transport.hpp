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

#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

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
    /// Inbound connections still in their handshake; beyond this the oldest is closed.
    std::size_t max_pending_handshakes = 64;
    /// A peer that stops acknowledging (its host vanished without closing the connection) is
    /// noticed within about this long: TCP keepalive probes on idle connections and a bound
    /// on unacknowledged data (Linux), after which the connection closes and is redialed.
    std::chrono::milliseconds dead_peer_timeout{5000};
    std::uint64_t random_seed = 0;
    /// Connection events: established, closed (with the reason), failed connects, the start
    /// of each overflow episode of a send queue. Called on the executor.
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
            max_pending_handshakes == 0 || dead_peer_timeout.count() <= 0 ||
            reconnect_min.count() <= 0 || reconnect_max < reconnect_min ||
            handshake_timeout.count() <= 0) {
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
    std::uint64_t dropped_unknown_peer = 0; ///< sent to an id that is not (or no longer) a peer
    std::uint64_t dropped_too_large = 0;    ///< a frame over `max_frame_size`, never sent
    std::uint64_t dropped_in_flight = 0;    ///< lost in a write when its connection closed
    std::uint64_t connections_established = 0;
    std::uint64_t dial_attempts = 0;
    std::uint64_t dropped_shut_down = 0; ///< sent after the transport was shut down
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

    /// Whether the other side may be `claimed`. Plain TCP cannot tell: anyone who reaches the
    /// port and knows the cluster id can claim any id. Use TLS where that matters.
    [[nodiscard]] bool verify_identity(stream_type&, node_id /*claimed*/) const { return true; }
};

namespace transport_detail {

/// Byte storage for a connection's reads: grows without zero-filling (a 64 MiB frame must not
/// cost a 64 MiB memset) and keeps the unparsed bytes when it is resized.
class read_buffer {
public:
    [[nodiscard]] std::byte* data() noexcept { return bytes_.get(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

    /// Reallocates to exactly `capacity`, keeping the first `keep` bytes.
    void reallocate(std::size_t capacity, std::size_t keep) {
        auto fresh = std::make_unique_for_overwrite<std::byte[]>(capacity);
        if (keep != 0) {
            std::memcpy(fresh.get(), bytes_.get(), keep);
        }
        bytes_ = std::move(fresh);
        capacity_ = capacity;
    }

private:
    std::unique_ptr<std::byte[]> bytes_;
    std::size_t capacity_ = 0;
};

template <class Security>
class state : public std::enable_shared_from_this<state<Security>> {
    using tcp = boost::asio::ip::tcp;
    using stream_type = typename Security::stream_type;
    using error_code = boost::system::error_code;
    using clock = std::chrono::steady_clock;

    struct connection {
        connection(stream_type s, const boost::asio::any_io_executor& ex, bool in,
                   std::uint64_t seq)
            : stream(std::move(s))
            , deadline(ex)
            , inbound(in)
            , sequence(seq) {}
        stream_type stream;
        boost::asio::steady_timer deadline;
        const bool inbound;
        /// Order of creation: the oldest pending inbound connection is the one crowded out.
        const std::uint64_t sequence;
        /// Set once the handshake names the peer (at once for a dialed connection).
        node_id peer;
        bool open = true;
        bool established = false;
        clock::time_point established_at{};
        handshake_bytes handshake_buffer{};
        transport_detail::read_buffer buffer;
        /// \invariant bytes [0, read_length) of `buffer` are received and not yet parsed;
        /// they are less than one frame.
        std::size_t read_length = 0;
        /// Size of the frame whose header has been read and whose body has not (0: none).
        /// \invariant `buffer.capacity() >= pending_frame`.
        std::size_t pending_frame = 0;
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
        /// Dropping for overflow since the queue was last empty (logged once per episode).
        bool overflowing = false;
        bool write_posted = false;
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
            insert_peer(p);
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

    std::error_code add_peer(const peer_address& address) {
        if (closed_ || address.id == no_node || address.id == cfg_.self || address.port == 0 ||
            address.host.empty() || peers_.count(address.id) != 0) {
            return errc::invalid_argument;
        }
        peer_state& p = insert_peer(address);
        if (started_ && p.we_dial) {
            dial(p);
        }
        return {};
    }

    std::error_code remove_peer(node_id id) {
        auto it = peers_.find(id);
        if (closed_ || it == peers_.end()) {
            return errc::unknown_node;
        }
        peer_state& p = it->second;
        p.retry_timer.cancel();
        for (byte_vector& f : p.queue) {
            recycle(std::move(f));
        }
        const connection_ptr c = p.conn;
        peers_.erase(it);
        // Handlers still in flight for this peer look it up by id and find nothing.
        for (const connection_ptr& o : std::vector<connection_ptr>(open_.begin(), open_.end())) {
            if (o->peer == id) {
                close(o, close_reason::removed);
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
        if (closed_) {
            ++counters_.dropped_shut_down;
            return;
        }
        peer_state* p = find_peer(to);
        if (p == nullptr) {
            ++counters_.dropped_unknown_peer;
            return;
        }
        byte_vector frame = take_buffer();
        wire::encode_frame(m, frame);
        if (frame.size() > cfg_.max_frame_size) {
            ++counters_.dropped_too_large;
            log(true, "message larger than max_frame_size dropped", to, frame.size());
            return recycle(std::move(frame));
        }
        p->queued_bytes += frame.size();
        p->queue.push_back(std::move(frame));
        std::uint64_t dropped = 0;
        while (p->queue.size() > 1 && (p->queue.size() > cfg_.max_queued_messages ||
                                       p->queued_bytes > cfg_.max_queued_bytes)) {
            p->queued_bytes -= p->queue.front().size();
            recycle(std::move(p->queue.front()));
            p->queue.pop_front();
            ++dropped;
        }
        if (dropped != 0) {
            if (!p->overflowing) {
                p->overflowing = true;
                log(true, "send queue full: dropping the oldest messages", to, dropped);
            }
            counters_.dropped_overflow += dropped;
        }
        if (p->conn && !p->conn->writing && !p->write_posted) {
            // Written on the next turn: everything the node sends in this one goes in the
            // same gathered write.
            p->write_posted = true;
            boost::asio::post(executor_, [self = this->shared_from_this(), id = to] {
                peer_state* q = self->closed_ ? nullptr : self->find_peer(id);
                if (q != nullptr) {
                    q->write_posted = false;
                    self->start_write(*q);
                }
            });
        }
    }

    /// Closes everything. The receiver and log callables are not destroyed here — one of them
    /// may be what is running — but are never called again.
    void shutdown() {
        if (closed_) {
            return;
        }
        closed_ = true;
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
    }

private:
    peer_state& insert_peer(const peer_address& address) {
        return peers_
            .emplace(std::piecewise_construct, std::forward_as_tuple(address.id),
                     std::forward_as_tuple(address, executor_, cfg_.self < address.id))
            .first->second;
    }

    peer_state* find_peer(node_id id) {
        auto it = peers_.find(id);
        return it == peers_.end() ? nullptr : &it->second;
    }

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
        tune(socket);
        // Connections that have not said who they are must not lock out the peers: at the
        // limit, the oldest of them makes room for the newest (a peer's hello follows its
        // connect at once, so a real peer is never the oldest for long).
        std::vector<connection_ptr> pending;
        for (const connection_ptr& o : open_) {
            if (o->inbound && !o->established) {
                pending.push_back(o);
            }
        }
        if (pending.size() >= cfg_.max_pending_handshakes) {
            auto oldest = std::min_element(pending.begin(), pending.end(),
                                           [](const connection_ptr& a, const connection_ptr& b) {
                                               return a->sequence < b->sequence;
                                           });
            close(*oldest, close_reason::crowded_out);
        }
        auto c = std::make_shared<connection>(security_.wrap(std::move(socket)), executor_, true,
                                              ++sequence_);
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

    /// Low latency (no Nagle) and dead-peer detection: keepalive probes on idle connections
    /// and a bound on unacknowledged data, so a peer host that vanished without a FIN is
    /// noticed within `dead_peer_timeout` and redialed.
    void tune(tcp::socket& socket) const {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        socket.set_option(boost::asio::socket_base::keep_alive(true), ignored);
#if defined(__linux__)
        const auto timeout_ms = static_cast<int>(cfg_.dead_peer_timeout.count());
        const int idle = std::max(1, timeout_ms / 4000);
        const int interval = std::max(1, timeout_ms / 4000);
        const int probes = 3;
        const int fd = socket.native_handle();
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
#endif
    }

    /// Reads the other side's 36 handshake bytes and hands `on` the decoded handshake, or
    /// closes the connection if it ends or fails first.
    template <class OnHandshake>
    void read_handshake(const connection_ptr& c, OnHandshake on) {
        boost::asio::async_read(c->stream, boost::asio::buffer(c->handshake_buffer),
                                [self = this->shared_from_this(), c,
                                 on = std::move(on)](error_code ec, std::size_t) mutable {
                                    if (self->closed_ || !c->open) {
                                        return;
                                    }
                                    if (ec) {
                                        // Over TLS 1.3 a refused client certificate surfaces here, on the first
                                        // read after the handshake.
                                        return self->close(c, ec == boost::asio::error::eof
                                                                  ? close_reason::peer_closed
                                                                  : close_reason::io_error);
                                    }
                                    handshake h;
                                    on(h, decode_handshake(byte_span(c->handshake_buffer), h));
                                });
    }

    /// Writes `h`; `then()` runs once it is written (not if the connection failed first).
    template <class Then>
    void write_handshake(const connection_ptr& c, const handshake& h, Then then) {
        auto bytes = std::make_shared<handshake_bytes>(encode_handshake(h));
        boost::asio::async_write(c->stream, boost::asio::buffer(*bytes),
                                 [self = this->shared_from_this(), c, bytes,
                                  then = std::move(then)](error_code ec, std::size_t) mutable {
                                     if (self->closed_ || !c->open) {
                                         return;
                                     }
                                     if (ec) {
                                         return self->close(c, close_reason::io_error);
                                     }
                                     then();
                                 });
    }

    void read_hello(const connection_ptr& c) {
        read_handshake(c, [self = this->shared_from_this(), c](const handshake& h,
                                                               close_reason why) {
            if (why == close_reason::none) {
                why = self->check_hello(h);
            }
            if (why == close_reason::none && !self->security_.verify_identity(c->stream, h.from)) {
                why = close_reason::wrong_identity;
            }
            if (why != close_reason::none) {
                return self->refuse(c, why, h.from);
            }
            c->peer = h.from;
            self->write_handshake(c,
                                  handshake{handshake_kind::accept, close_reason::none,
                                            protocol_version, self->cfg_.cluster_id,
                                            self->cfg_.self, h.from},
                                  [self, c] { self->establish(c); });
        });
    }

    [[nodiscard]] close_reason check_hello(const handshake& h) const {
        if (h.kind != handshake_kind::hello || h.reason != close_reason::none) {
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
    /// here whether or not it arrives. `claimed` is what the hello said, unverified.
    void refuse(const connection_ptr& c, close_reason why, node_id claimed) {
        log_close(why, claimed);
        count_close(why);
        auto bytes = std::make_shared<handshake_bytes>(encode_handshake(handshake{
            handshake_kind::reject, why, protocol_version, cfg_.cluster_id, cfg_.self, claimed}));
        c->deadline.cancel();
        boost::asio::async_write(
            c->stream, boost::asio::buffer(*bytes),
            [self = this->shared_from_this(), c, bytes](error_code, std::size_t) {
                if (!self->closed_) {
                    self->close(c, close_reason::none);
                }
            });
    }

    void dial(peer_state& p) {
        ++counters_.dial_attempts;
        resolver_.async_resolve(p.address.host, std::to_string(p.address.port),
                                [self = this->shared_from_this(), id = p.address.id](
                                    error_code ec, const tcp::resolver::results_type& endpoints) {
                                    peer_state* q = self->closed_ ? nullptr : self->find_peer(id);
                                    if (q == nullptr) {
                                        return;
                                    }
                                    if (ec) {
                                        self->log(true, "cannot resolve peer address", id,
                                                  static_cast<std::uint64_t>(ec.value()));
                                        return self->retry_later(*q);
                                    }
                                    self->connect(*q, endpoints);
                                });
    }

    void connect(peer_state& p, const tcp::resolver::results_type& endpoints) {
        auto c = std::make_shared<connection>(security_.wrap(tcp::socket(executor_)), executor_,
                                              false, ++sequence_);
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
                    // Nothing was ever open: not counted as a close, and routine while a peer
                    // is down; try again after the backoff.
                    self->log(false, "connect failed", c->peer,
                              static_cast<std::uint64_t>(ec.value()));
                    return self->close(c, close_reason::none);
                }
                self->tune(Security::socket(c->stream));
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
        write_handshake(c,
                        handshake{handshake_kind::hello, close_reason::none, protocol_version,
                                  cfg_.cluster_id, cfg_.self, c->peer},
                        [self = this->shared_from_this(), c] { self->read_answer(c); });
    }

    void read_answer(const connection_ptr& c) {
        read_handshake(c,
                       [self = this->shared_from_this(), c](const handshake& h, close_reason why) {
                           if (why == close_reason::none) {
                               if (h.kind == handshake_kind::reject) {
                                   self->log(true, to_string(h.reason), c->peer, 0, h.reason);
                                   why = close_reason::rejected_by_peer;
                               } else if (h.kind != handshake_kind::accept) {
                                   why = close_reason::bad_handshake;
                               } else if (h.version != protocol_version) {
                                   why = close_reason::wrong_version;
                               } else if (h.cluster != self->cfg_.cluster_id) {
                                   why = close_reason::wrong_cluster;
                               } else if (h.from != c->peer || h.to != self->cfg_.self) {
                                   why = close_reason::wrong_recipient;
                               } else if (!self->security_.verify_identity(c->stream, c->peer)) {
                                   why = close_reason::wrong_identity;
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
        peer_state* p = find_peer(c->peer);
        if (p == nullptr) {
            return close(c, close_reason::removed);
        }
        if (p->conn) {
            const connection_ptr old = p->conn; // close() resets p->conn
            close(old, close_reason::replaced);
        }
        c->established = true;
        c->established_at = clock::now();
        p->conn = c;
        ++counters_.connections_established;
        log(false, "connection established", c->peer, c->inbound ? 1 : 0);
        c->buffer.reallocate(initial_read_buffer, 0);
        read_more(c);
        start_write(*p);
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
        p.backoff = p.backoff.count() == 0 ? cfg_.reconnect_min
                                           : std::min(p.backoff * 2, cfg_.reconnect_max);
        std::uniform_int_distribution<std::int64_t> jitter(p.backoff.count() / 2,
                                                           p.backoff.count());
        p.retry_timer.expires_after(std::chrono::milliseconds(jitter(rng_)));
        p.retry_timer.async_wait(
            [self = this->shared_from_this(), id = p.address.id](error_code ec) {
                peer_state* q = ec || self->closed_ ? nullptr : self->find_peer(id);
                if (q != nullptr && !q->conn) {
                    self->dial(*q);
                }
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
        peer_state* p = find_peer(c->peer);
        if (p == nullptr) {
            return;
        }
        const bool was_current = p->conn == c;
        if (was_current) {
            p->conn.reset();
        }
        // The backoff starts over only after a connection that lasted: two processes that
        // keep replacing each other's connection (a duplicated id) must not redial in a
        // tight loop.
        if (c->established && clock::now() - c->established_at >= stable_connection) {
            p->backoff = std::chrono::milliseconds{0};
        }
        // A dialer tries again after a failed attempt or a lost connection, not when a newer
        // connection replaced this one.
        if (p->we_dial && why != close_reason::replaced && (was_current || !c->established) &&
            !p->conn) {
            retry_later(*p);
        }
    }

    static constexpr std::chrono::seconds stable_connection{1};

    // --- reading ---------------------------------------------------------------------------

    static constexpr std::size_t initial_read_buffer = std::size_t{64} << 10;

    void read_more(const connection_ptr& c) {
        c->stream.async_read_some(
            boost::asio::buffer(c->buffer.data() + c->read_length,
                                c->buffer.capacity() - c->read_length),
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

    /// Hands every complete frame to the receiver, then sizes the buffer for what is still
    /// pending. False once the connection is closed.
    bool parse(const connection_ptr& c) {
        const wire::frame_limits limits{cfg_.max_frame_size};
        std::size_t pos = 0;
        c->pending_frame = 0;
        while (c->read_length - pos >= wire::frame_header_size) {
            const byte_span rest(c->buffer.data() + pos, c->read_length - pos);
            auto size = wire::frame_size(rest, limits);
            if (!size) {
                log(true, "bad frame header", c->peer,
                    static_cast<std::uint64_t>(size.error().value()));
                close(c, close_reason::bad_frame);
                return false;
            }
            if (*size > rest.size()) {
                c->pending_frame = *size;
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
        const std::size_t left = c->read_length - pos;
        if (pos != 0 && left != 0) {
            std::memmove(c->buffer.data(), c->buffer.data() + pos, left);
        }
        c->read_length = left;
        // Exactly as large as the frame being assembled, and back to the usual size once a
        // large one is through: never a reallocation per read, never twice the frame.
        const std::size_t wanted = std::max(initial_read_buffer, c->pending_frame);
        if (c->buffer.capacity() < wanted ||
            (c->buffer.capacity() > wanted && wanted == initial_read_buffer &&
             c->buffer.capacity() > 4 * initial_read_buffer)) {
            c->buffer.reallocate(wanted, left);
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
        if (p.queue.empty()) {
            p.overflowing = false;
        }
        gather_.clear();
        for (const byte_vector& f : c->in_flight) {
            gather_.emplace_back(f.data(), f.size());
        }
        c->writing = true;
        ++counters_.writes;
        // async_write keeps its own copy of the buffer list, so gather_ can be reused.
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
                if (peer_state* p = self->find_peer(c->peer)) {
                    self->start_write(*p);
                }
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

    void count_close(close_reason why) {
        ++counters_.closed[static_cast<std::size_t>(why)];
    }

    void log_close(close_reason why, node_id peer) {
        log(why != close_reason::replaced, to_string(why), peer, 0, why);
    }

    void log(bool warning, std::string_view what, node_id peer, std::uint64_t value,
             close_reason why = close_reason::none) {
        if (cfg_.log && !closed_) {
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
    /// A map: peer_state holds timers and is never moved; references stay valid until the
    /// peer is removed.
    std::map<node_id, peer_state> peers_;
    /// Every connection not yet closed, established or not, so shutdown can close them all.
    std::unordered_set<connection_ptr> open_;
    std::uint64_t sequence_ = 0;
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

    /// Adds a member (after a membership change): `invalid_argument` for `no_node`, this
    /// node, port 0, an empty host or an id already present. Dialed at once if this node dials
    /// it and `start` has run.
    std::error_code add_peer(const peer_address& address) { return state_->add_peer(address); }

    /// Removes a member: its queue is dropped, its connection closed (`close_reason::removed`),
    /// and messages to it count as `dropped_unknown_peer`. `unknown_node` if it is not a peer.
    std::error_code remove_peer(node_id id) { return state_->remove_peer(id); }

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
