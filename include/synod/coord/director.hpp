#pragma once

/// \file
/// The `director` policy: the host's component that runs on the leader only, one at a time,
/// fenced by an epoch (design.md, seed 000). The coordinator's supervisor starts it once the
/// leader is ready and stops it before anything else when leadership is lost.
///
/// Requirements, for `d` a `D&`, `e` an `epoch`, `v` a `const directory_view&`, `c` a
/// `const machines::directory_change&`, `r` a `stop_reason`:
///
/// | expression | result | notes |
/// |---|---|---|
/// | `d.start(e, v)` | `std::error_code` | begin work as the director of epoch `e`, with the directory as of `v.revision`. An error counts as a failed start: the supervisor retries with a fresh epoch after a back-off |
/// | `d.directory_changed(c)` | (ignored) | the directory changed while the director runs |
/// | `d.stop(r)` | (ignored) | stop at once; the epoch is over. Called only on a started director |
///
/// Context: every call runs on the coordinator's scheduler context and must not call back
/// into the coordinator synchronously (post instead). A running director that fails reports
/// it with `coordinator::report_director_failure`.

#include <synod/core/epoch.hpp>
#include <synod/machines/service_directory.hpp>

#include <concepts>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <vector>

namespace synod::coord {

/// Why a director was stopped.
enum class stop_reason : std::uint8_t {
    leadership_lost, ///< this node is no longer the leader: a newer epoch may exist already
    failed,          ///< the director reported a failure; a fresh epoch follows
    shutting_down,   ///< the coordinator is being destroyed
};

[[nodiscard]] constexpr std::string_view to_string(stop_reason r) noexcept {
    switch (r) {
    case stop_reason::leadership_lost:
        return "leadership_lost";
    case stop_reason::failed:
        return "failed";
    case stop_reason::shutting_down:
        return "shutting_down";
    }
    return "?";
}

/// The whole directory at one revision: what a director starts from.
struct directory_view {
    std::vector<machines::service_record> services;
    std::vector<machines::node_capabilities> nodes;
    std::uint64_t revision = 0;

    friend bool operator==(const directory_view&, const directory_view&) = default;
};

template <class D>
concept director = requires(D& d, epoch e, const directory_view& v,
                            const machines::directory_change& c, stop_reason r) {
    { d.start(e, v) } -> std::same_as<std::error_code>;
    d.directory_changed(c);
    d.stop(r);
};

} // namespace synod::coord
