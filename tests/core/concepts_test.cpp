#include "support/archetypes.hpp"

#include <doctest/doctest.h>

#include <synod/core/concepts.hpp>

namespace {

using namespace synod;
using namespace synod::test;

// Positive: the archetypes, which have every required operation, model their concepts.
static_assert(synod::clock<clock_archetype<>>);
static_assert(scheduler<scheduler_archetype<>>);
static_assert(transport<transport_archetype<>>);
static_assert(log_store<log_store_archetype<>>);
static_assert(state_machine<state_machine_archetype<>>);

// Negative: a type missing any one required operation does not.
static_assert(!synod::clock<clock_archetype<clock_op::now>>);
static_assert(!synod::clock<clock_archetype<clock_op::time_point>>);
static_assert(!synod::clock<int>);

static_assert(!scheduler<scheduler_archetype<scheduler_op::post>>);
static_assert(!scheduler<scheduler_archetype<scheduler_op::schedule_at>>);
static_assert(!scheduler<scheduler_archetype<scheduler_op::cancel>>);
static_assert(!scheduler<scheduler_archetype<scheduler_op::timer_handle>>);

static_assert(!transport<transport_archetype<transport_op::send>>);

template <log_op... Ops>
constexpr bool no_partial_log_store = (!log_store<log_store_archetype<Ops>> && ...);
static_assert(
    no_partial_log_store<log_op::recover, log_op::first_index, log_op::last_index, log_op::term_at,
                         log_op::entries, log_op::append, log_op::truncate_suffix,
                         log_op::compact_prefix, log_op::save_hard_state, log_op::saved_hard_state,
                         log_op::save_snapshot, log_op::latest_snapshot, log_op::flush>);

static_assert(!state_machine<state_machine_archetype<machine_op::apply>>);
static_assert(!state_machine<state_machine_archetype<machine_op::snapshot>>);
static_assert(!state_machine<state_machine_archetype<machine_op::restore>>);
static_assert(!state_machine<state_machine_archetype<machine_op::result_type>>);

TEST_CASE("concepts: archetypes with every operation model their concept, partial ones do not") {
    // The checks above are compile-time; this records them in the test report.
    CHECK(log_store<log_store_archetype<>>);
    CHECK_FALSE(log_store<log_store_archetype<log_op::flush>>);
    CHECK(state_machine<state_machine_archetype<>>);
}

} // namespace
