#pragma once

/// \file
/// The `clock` policy: where a node reads the time. Raft needs time only for timeouts, so a
/// monotonic clock is all it asks for; the simulator substitutes virtual time.
///
/// Requirements, for `c` a `const C&`, `t` a `C::time_point`, `d` a `C::duration`:
///
/// | expression      | result                 | notes                                          |
/// |-----------------|------------------------|------------------------------------------------|
/// | `C::time_point` | type                   | regular, totally ordered                       |
/// | `C::duration`   | type                   | `std::chrono::duration`; milliseconds convert  |
/// | `c.now()`       | `C::time_point`        | monotonic: never smaller than a previous call  |
/// | `t + d`         | `C::time_point`        |                                                |
/// | `t - t`         | convertible to `C::duration` |                                          |
///
/// Context: called on the node's scheduler context only; need not be thread-safe.

#include <chrono>
#include <concepts>

namespace synod {

template <class C>
concept clock = requires(const C& c, typename C::time_point t, typename C::duration d) {
    { c.now() } -> std::same_as<typename C::time_point>;
    { t + d } -> std::same_as<typename C::time_point>;
    { t - t } -> std::convertible_to<typename C::duration>;
}
&&std::totally_ordered<typename C::time_point>&& std::regular<typename C::time_point>&&
    std::convertible_to<std::chrono::milliseconds, typename C::duration>;

} // namespace synod
