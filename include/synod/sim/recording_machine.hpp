#pragma once

/// \file
/// Wraps a state machine so the invariant checker sees every entry it applies.

#include <synod/core/concepts/state_machine.hpp>
#include <synod/sim/invariant_checker.hpp>

#include <utility>

namespace synod::sim {

template <state_machine Machine>
class recording_machine {
public:
    using result_type = typename Machine::result_type;

    recording_machine(Machine inner, invariant_checker* checker, node_id id)
        : inner_(std::move(inner))
        , checker_(checker)
        , id_(id) {}

    result_type apply(const log_entry& e) {
        if (checker_ != nullptr) {
            checker_->on_apply(id_, e);
        }
        return inner_.apply(e);
    }
    [[nodiscard]] shared_bytes snapshot() const { return inner_.snapshot(); }
    std::error_code restore(byte_span b) { return inner_.restore(b); }

    [[nodiscard]] Machine& inner() noexcept { return inner_; }
    [[nodiscard]] const Machine& inner() const noexcept { return inner_; }

private:
    Machine inner_;
    invariant_checker* checker_;
    node_id id_;
};

} // namespace synod::sim
