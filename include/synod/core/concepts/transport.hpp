#pragma once

/// \file
/// The `transport` policy: how a node's messages reach its peers.
///
/// Requirements, for `t` a `T&`, `to` a `node_id`, `m` a `message` rvalue:
///
/// | expression     | result    | notes                                                      |
/// |----------------|-----------|------------------------------------------------------------|
/// | `t.send(to,m)` | (ignored) | fire-and-forget; must not block and must not call back into the
/// node |
///
/// Inbound messages are handed to the node by calling `node.receive(message)` on the node's
/// scheduler context (a transport that receives on another thread posts first).
///
/// Delivery guarantees: none. A transport may drop, duplicate, reorder or delay any message,
/// and the protocol core stays safe under all of them (liveness needs eventual delivery).
///
/// Context: `send` is called on the node's scheduler context.

#include <synod/core/ids.hpp>
#include <synod/core/messages.hpp>

#include <utility>

namespace synod {

template <class T>
concept transport = requires(T& t, node_id to, message m) {
    t.send(to, std::move(m));
};

} // namespace synod
