#pragma once

/// \file
/// The state a Raft server must persist before it answers (paper Figure 2, "persistent state").

#include <synod/core/ids.hpp>

namespace synod {

struct hard_state {
    /// Latest term this server has seen. \invariant never decreases across the server's life.
    term current_term;
    /// Candidate that received this server's vote in `current_term`, or `no_node`.
    /// \invariant at most one vote per term: changes only together with `current_term`.
    node_id voted_for;
    /// Highest index known committed. Persisted so a restart can apply without waiting for a
    /// leader; it may lag the true commit index, never lead it.
    log_index commit;

    friend bool operator==(const hard_state&, const hard_state&) = default;
};

} // namespace synod
