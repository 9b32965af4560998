#pragma once

/// \file
/// `epoch`: the fencing token of the single active director. The coordinator issues epochs
/// through consensus (`machines::epoch_ledger`), each strictly greater than every earlier one,
/// and resources fence on them (`coord::epoch_fence`). A strong integer, so an epoch is never
/// mixed up with the Raft `term` it is usually issued in.

#include <synod/core/strong_integer.hpp>

namespace synod {

struct epoch_tag {
    static constexpr const char* prefix = "e";
};

/// A director's fencing token. 0 (`no_epoch`) means "none issued"; the first issued is 1.
using epoch = strong_integer<epoch_tag>;

inline constexpr epoch no_epoch{};

} // namespace synod
