#pragma once

/// \file
/// The outcome of `node::read_index` and `node::read_under_lease`, delivered exactly once to the
/// read's completion, on the node's context. When `error` is empty the node's state machine
/// has applied at least through `index`, which covers every write committed before the read
/// was issued: read it inside the completion (thesis §6.4).
///
/// | `error` | meaning |
/// |---|---|
/// | none | safe to read the local state machine now |
/// | `errc::not_leader` | this node cannot serve it (a follower without forwarding to the leader, or the leader refused); retry at `leader_hint` |
/// | `errc::leader_unknown` | no leader known; retry after an election timeout |
/// | `errc::stale_read` | leadership could not be confirmed in time (lost, partitioned, or stepped down): the read was not served |
/// | `errc::storage_failure` | the node stopped |

#include <synod/core/ids.hpp>

#include <system_error>

namespace synod::raft {

struct read_result {
    std::error_code error;
    /// The read index: the commit index when the read was confirmed.
    log_index index;
    node_id leader_hint;
};

} // namespace synod::raft
