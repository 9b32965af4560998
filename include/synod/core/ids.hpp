#pragma once

/// \file
/// The three counters of Raft: who (`node_id`), when (`term`), where (`log_index`).

#include <synod/core/strong_integer.hpp>

namespace synod {

struct node_id_tag {
    static constexpr const char* prefix = "n";
};
struct term_tag {
    static constexpr const char* prefix = "t";
};
struct log_index_tag {
    static constexpr const char* prefix = "i";
};

/// A server's identity. 0 is reserved for "nobody" (`no_node`): no vote cast, leader unknown.
using node_id = strong_integer<node_id_tag>;
/// Raft's logical clock (paper §5.1). Term 0 precedes every election.
using term = strong_integer<term_tag>;
/// Position in the replicated log; the first entry has index 1 and 0 means "before the log".
using log_index = strong_integer<log_index_tag>;

inline constexpr node_id no_node{};

} // namespace synod
