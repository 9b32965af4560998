#pragma once

// One Raft node over the Asio runtime: steady_clock, asio_scheduler and tcp_transport around
// a raft::node, all on one executor. Shared by examples/synod_node.cpp and
// bench/loopback_bench.cpp; a host would write the same few lines.

#include <synod/core/concepts.hpp>
#include <synod/net.hpp>
#include <synod/raft/node.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <optional>
#include <system_error>
#include <utility>

namespace synod::examples {

template <state_machine Machine, log_store Log, class Security = net::plain_tcp>
class tcp_node {
public:
    using transport_type = net::basic_tcp_transport<Security>;
    using node_type =
        raft::node<Log, transport_type, net::steady_clock, net::asio_scheduler, Machine>;

    /// Call on the executor's thread (or before it runs).
    tcp_node(const boost::asio::any_io_executor& executor, raft::config cfg,
             net::transport_config transport, Log& log, Machine& machine,
             Security security = Security{})
        : scheduler_(executor)
        , transport_(executor, std::move(transport), std::move(security))
        , node_(std::in_place, std::move(cfg), log, transport_, clock_, scheduler_, machine) {
        transport_.on_receive([this](message m) {
            if (node_) {
                node_->receive(std::move(m));
            }
        });
    }

    /// Destroys the node but keeps the scheduler: the node's pending proposals and reads are
    /// then completed (`outcome_unknown`, `shutting_down`) by posts the host delivers by
    /// running the executor a little longer. Destroying the tcp_node without `stop` discards
    /// those completions unrun.
    void stop() { node_.reset(); }

    /// Binds the listening port, then recovers the log and starts the node.
    std::error_code start() {
        if (auto ec = transport_.start()) {
            return ec;
        }
        return node_->start();
    }

    /// \warning not after `stop()`.
    node_type& node() noexcept { return *node_; }
    transport_type& transport() noexcept { return transport_; }

private:
    // Destroyed in reverse: the node first (it cancels its timers), then the transport, then
    // the scheduler, after which nothing posted runs.
    net::steady_clock clock_;
    net::asio_scheduler scheduler_;
    transport_type transport_;
    std::optional<node_type> node_;
};

} // namespace synod::examples
