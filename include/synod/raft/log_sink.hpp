#pragma once

/// \file
/// Structured diagnostics from a node: a level, a fixed message and numeric fields. Silent by
/// default; a host that sets a sink sees why a node did what it did (why it started an
/// election, stepped down, dropped a message).

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string_view>

namespace synod::raft {

enum class log_level : std::uint8_t { debug, info, warning, error };

[[nodiscard]] constexpr std::string_view to_string(log_level level) noexcept {
    switch (level) {
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warning:
        return "warning";
    case log_level::error:
        return "error";
    }
    return "?";
}

struct log_field {
    std::string_view key;
    std::uint64_t value;
};

/// Called on the node's context. `message` and `fields` are valid only during the call.
/// Copyable, so one sink can serve every node of a process through copies of a config.
using log_sink =
    std::function<void(log_level level, std::string_view message, std::span<const log_field>)>;

} // namespace synod::raft
