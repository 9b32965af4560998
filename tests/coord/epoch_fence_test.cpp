#include <doctest/doctest.h>

#include <synod/coord/epoch_fence.hpp>

namespace {

TEST_SUITE_BEGIN("coord");

using namespace synod;
using synod::coord::epoch_fence;

TEST_CASE("epoch_fence: admits the highest epoch seen or newer, refuses older ones") {
    epoch_fence fence;
    CHECK(fence.highest_seen() == no_epoch);
    CHECK_FALSE(fence.admit(epoch{2}));
    CHECK(fence.highest_seen() == epoch{2});
    CHECK_FALSE(fence.admit(epoch{2})); // the same director's next command
    CHECK(fence.admit(epoch{1}) == errc::stale_epoch);
    CHECK(fence.highest_seen() == epoch{2}); // refused commands record nothing
    CHECK_FALSE(fence.admit(epoch{5}));      // a newer director supersedes silently
    CHECK(fence.admit(epoch{2}) == errc::stale_epoch);
    CHECK(fence.would_admit(epoch{5}));
    CHECK_FALSE(fence.would_admit(epoch{4}));
    CHECK(fence.highest_seen() == epoch{5}); // would_admit records nothing either
}

TEST_CASE("epoch_fence: locking for recovery needs a strictly newer epoch and fences older ones") {
    epoch_fence fence;
    CHECK_FALSE(fence.admit(epoch{3}));
    CHECK(fence.lock_for_recovery(epoch{3}) == errc::stale_epoch); // not strictly newer
    CHECK(fence.lock_for_recovery(epoch{2}) == errc::stale_epoch);
    CHECK(fence.locked_by() == no_epoch);

    CHECK_FALSE(fence.lock_for_recovery(epoch{4}));
    CHECK(fence.locked_by() == epoch{4});
    CHECK(fence.highest_seen() == epoch{4});
    CHECK_FALSE(fence.admit(epoch{4}));                            // the locking director drives it
    CHECK(fence.admit(epoch{3}) == errc::stale_epoch);             // its predecessor is fenced
    CHECK(fence.lock_for_recovery(epoch{4}) == errc::stale_epoch); // no second holder
    CHECK(fence.locked_by() == epoch{4});

    CHECK_FALSE(fence.lock_for_recovery(epoch{6}));
    CHECK(fence.locked_by() == epoch{6});
    CHECK(fence.admit(epoch{4}) == errc::stale_epoch);
}

TEST_CASE("epoch_fence: a fence rebuilt from the persisted highest epoch keeps fencing") {
    epoch_fence before;
    REQUIRE_FALSE(before.lock_for_recovery(epoch{7}));
    epoch_fence after(before.highest_seen()); // what a resource reloads on restart
    CHECK(after.admit(epoch{6}) == errc::stale_epoch);
    CHECK(after.lock_for_recovery(epoch{7}) == errc::stale_epoch);
    CHECK_FALSE(after.admit(epoch{7}));
}

TEST_SUITE_END();

} // namespace
