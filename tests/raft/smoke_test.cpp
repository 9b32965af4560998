#include "support/append_machine.hpp"

#include <doctest/doctest.h>

#include <synod/sim/cluster.hpp>

namespace {

using namespace synod;
using cluster = sim::cluster<test::append_machine>;

TEST_CASE("raft smoke: a 3-node cluster elects one leader and commits a proposal everywhere") {
    cluster c({.size = 3, .seed = 7});
    c.start_all();
    auto leader = c.wait_for_leader();
    REQUIRE(leader.has_value());
    auto r = c.propose_and_wait("hello");
    REQUIRE(r.has_value());
    CHECK_FALSE(r->error);
    CHECK(r->value == 1U);
    c.run_for(std::chrono::milliseconds(200));
    for (node_id id : c.ids()) {
        REQUIRE(c.machine(id).applied.size() == 1);
        CHECK(c.machine(id).applied[0] == "hello");
    }
}

} // namespace
