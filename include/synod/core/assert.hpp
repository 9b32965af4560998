#pragma once

/// \file
/// `SYNOD_ASSERT(cond, msg)`: the check for broken invariants. Always on, in every build type,
/// because a Raft node that carries on past a broken invariant can lose committed data;
/// stopping loudly is the only safe response. Expected failures are `std::error_code`s instead.

#include <cstdio>
#include <cstdlib>

namespace synod::detail {

[[noreturn]] inline void assertion_failed(const char* expr, const char* msg, const char* file,
                                          int line) noexcept {
    std::fprintf(stderr, "%s:%d: synod assertion failed: %s\n  %s\n", file, line, expr, msg);
    std::fflush(stderr);
    std::abort();
}

} // namespace synod::detail

#define SYNOD_ASSERT(cond, msg)                                                                    \
    ((cond) ? static_cast<void>(0)                                                                 \
            : ::synod::detail::assertion_failed(#cond, (msg), __FILE__, __LINE__))
