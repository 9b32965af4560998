#include <doctest/doctest.h>

#include <synod/sim/sweep.hpp>

#include <cstdlib>

namespace {

using namespace synod;
using namespace std::chrono_literals;

TEST_CASE("sweep: seeds pass every oracle, and a replay gives the same trace") {
    sim::sweep_options o;
    o.faulty_time = 10s;
    o.min_operations = 100;
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        auto r = sim::run_sweep(seed, o);
        INFO("seed " << seed << ": " << r.failure);
        CHECK(r.passed);
        CHECK(r.operations >= 100);
        auto again = sim::run_sweep(seed, o);
        CHECK(again.trace_hash == r.trace_hash);
    }
}

} // namespace
