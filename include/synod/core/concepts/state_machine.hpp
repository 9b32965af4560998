#pragma once

/// \file
/// The `state_machine` policy: the deterministic value that Raft replicates (design principle
/// 6). It knows nothing of Raft, I/O or time; time enters as a field of the command.
///
/// Requirements, for `m` an `M&`, `cm` a `const M&`, `e` a `const log_entry&`, `b` a
/// `byte_span`:
///
/// | expression | result | notes |
/// |---|---|---|
/// | `M::result_type` | movable type | what `propose`'s completion receives |
/// | `m.apply(e)` | `M::result_type` | deterministic in (state, e); called in index order, once per entry per node start, for `entry_kind::normal` entries only. Bad commands yield an error *result*, never an exception or divergence |
/// | `cm.snapshot()` | convertible to `shared_bytes` | the whole state, self-describing and versioned |
/// | `m.restore(b)` | `std::error_code` | replaces the state with a snapshot's; on error the state is unchanged |
///
/// Context: called on the node's scheduler context.

#include <synod/core/bytes.hpp>
#include <synod/core/log_entry.hpp>

#include <concepts>
#include <system_error>

namespace synod {

template <class M>
concept state_machine = std::movable<typename M::result_type> &&
    requires(M& m, const M& cm, const log_entry& e, byte_span b) {
    { m.apply(e) } -> std::same_as<typename M::result_type>;
    { cm.snapshot() } -> std::convertible_to<shared_bytes>;
    { m.restore(b) } -> std::same_as<std::error_code>;
};

} // namespace synod
