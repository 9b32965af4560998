#pragma once

/// \file
/// The `scheduler` policy: the single context on which a node runs (design principle 2), and
/// its timers. Everything that reaches a node — messages, flush completions, timer expiries,
/// client calls — arrives through `post` or a timer, so a node needs no locks.
///
/// Requirements, for `s` an `S&`, `f` a move-only `void()` callable, `at` an
/// `S::time_point`, `h` an `S::timer_handle`:
///
/// | expression | result | notes |
/// |---|---|---|
/// | `S::time_point` | type | the same type as the node's `Clock::time_point` |
/// | `S::timer_handle` | type | copyable; default-constructed names no timer |
/// | `s.post(f)` | (ignored) | runs `f` later on the context, never inside `post`; FIFO among posts |
/// | `s.schedule_at(at, f)` | `S::timer_handle` | runs `f` on the context once the clock reaches `at` |
/// | `s.cancel(h)` | `bool` | true: `f` had not run and never will; false: it ran, is running, or `h` names no timer |
///
/// Context: all calls are made from the scheduler's own context. A scheduler may be driven by
/// several threads (an Asio strand) as long as the callables it runs never overlap.

#include <synod/core/concepts/archetypes.hpp>

#include <concepts>
#include <utility>

namespace synod {

template <class S>
concept scheduler = std::copyable<typename S::timer_handle> &&
    std::default_initializable<typename S::timer_handle> &&
    requires(S& s, typename S::time_point at, typename S::timer_handle h,
             concepts_detail::nullary_callback f) {
    s.post(std::move(f));
    { s.schedule_at(at, std::move(f)) } -> std::same_as<typename S::timer_handle>;
    { s.cancel(h) } -> std::same_as<bool>;
};

} // namespace synod
