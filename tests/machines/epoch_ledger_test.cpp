#include "support/machine_testing.hpp"

#include <doctest/doctest.h>

#include <synod/machines/detail/encoding.hpp>
#include <synod/machines/epoch_ledger.hpp>

#include <cstdint>
#include <limits>
#include <set>

namespace {

TEST_SUITE_BEGIN("machines");

using namespace synod;
using namespace synod::machines;
using synod::test::command_entry;

epoch_ledger::result_type issue(epoch_ledger& l, node_id leader, term t) {
    return l.apply(command_entry(epoch_ledger::encode_issue_epoch(leader, t)));
}

TEST_CASE("epoch_ledger: epochs start at 1 and every grant is strictly greater") {
    epoch_ledger l;
    CHECK(l.last_issued() == no_epoch);
    CHECK(l.last_grant() == epoch_grant{});

    auto r = issue(l, node_id{1}, term{3});
    CHECK_FALSE(r.error);
    CHECK(r.grant == epoch_grant{epoch{1}, node_id{1}, term{3}});
    r = issue(l, node_id{2}, term{4});
    CHECK(r.grant.epoch == epoch{2});
    CHECK(l.last_grant() == epoch_grant{epoch{2}, node_id{2}, term{4}});
}

TEST_CASE("epoch_ledger: a director restarted within the same term gets a new epoch") {
    epoch_ledger l;
    std::set<epoch> issued;
    for (int restart = 0; restart < 5; ++restart) {
        const auto r = issue(l, node_id{1}, term{7});
        REQUIRE_FALSE(r.error);
        CHECK(issued.insert(r.grant.epoch).second);
        CHECK(r.grant.epoch == l.last_issued());
    }
    CHECK(issued.size() == 5);
    CHECK(*issued.rbegin() == epoch{5});
}

TEST_CASE("epoch_ledger: epochs keep increasing across snapshot and restore") {
    epoch_ledger l;
    REQUIRE_FALSE(issue(l, node_id{1}, term{1}).error);
    REQUIRE_FALSE(issue(l, node_id{1}, term{1}).error);
    REQUIRE_FALSE(issue(l, node_id{3}, term{2}).error);

    // Every node restarts from the snapshot: the next epoch is still new.
    epoch_ledger restarted;
    REQUIRE_FALSE(restarted.restore(l.snapshot()));
    CHECK(restarted == l);
    CHECK(restarted.last_grant() == epoch_grant{epoch{3}, node_id{3}, term{2}});
    const auto r = issue(restarted, node_id{3}, term{2});
    CHECK(r.grant.epoch == epoch{4});

    // The empty ledger round-trips too.
    epoch_ledger fresh;
    REQUIRE_FALSE(restarted.restore(fresh.snapshot()));
    CHECK(restarted == fresh);
}

TEST_CASE("epoch_ledger: a damaged or truncated snapshot is refused and changes nothing") {
    epoch_ledger l;
    REQUIRE_FALSE(issue(l, node_id{1}, term{1}).error);
    epoch_ledger other;
    REQUIRE_FALSE(issue(other, node_id{2}, term{9}).error);
    REQUIRE_FALSE(issue(other, node_id{2}, term{9}).error);
    synod::test::check_refuses_damaged_snapshots(l, other.snapshot());
    CHECK(l.last_grant() == epoch_grant{epoch{1}, node_id{1}, term{1}});
}

shared_bytes forged_snapshot(std::uint64_t e, std::uint64_t leader, std::uint64_t t) {
    byte_vector out;
    wire::byte_writer w(out);
    w.put(epoch_ledger::snapshot_version);
    w.put(e);
    w.put(leader);
    w.put(t);
    return machines::detail::seal(out);
}

TEST_CASE("epoch_ledger: a sealed snapshot that no command could produce is refused") {
    epoch_ledger l;
    CHECK(l.restore(forged_snapshot(5, 0, 1)) == errc::corrupt_snapshot); // granted to nobody
    CHECK(l.restore(forged_snapshot(0, 1, 1)) == errc::corrupt_snapshot); // no epoch, a leader
    CHECK(l == epoch_ledger{});
    CHECK_FALSE(l.restore(forged_snapshot(5, 1, 1)));
    CHECK(l.last_issued() == epoch{5});
}

TEST_CASE("epoch_ledger: once the last epoch is issued, further requests fail") {
    epoch_ledger l;
    constexpr auto last = std::numeric_limits<std::uint64_t>::max();
    REQUIRE_FALSE(l.restore(forged_snapshot(last - 1, 1, 1)));
    CHECK(issue(l, node_id{1}, term{2}).grant.epoch == epoch{last});
    const auto r = issue(l, node_id{1}, term{2});
    CHECK(r.error == errc::value_out_of_range);
    CHECK(l.last_issued() == epoch{last});
}

TEST_CASE("epoch_ledger: malformed commands give error results and issue nothing") {
    epoch_ledger l;
    REQUIRE_FALSE(issue(l, node_id{1}, term{1}).error);
    const epoch_ledger before = l;
    auto refused = [&](const shared_bytes& payload) {
        const auto r = l.apply(command_entry(payload));
        CHECK(l == before);
        return r.error;
    };

    CHECK(refused(epoch_ledger::encode_issue_epoch(no_node, term{1})) == errc::missing_field);
    const shared_bytes good = epoch_ledger::encode_issue_epoch(node_id{1}, term{2});
    for (std::size_t n = 0; n < good.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK(refused(shared_bytes(good.span().first(n))) == errc::truncated_input);
    }
    byte_vector bytes(good.data(), good.data() + good.size());
    bytes.push_back(std::byte{0});
    CHECK(refused(shared_bytes(byte_span(bytes))) == errc::length_mismatch);
    bytes.pop_back();
    bytes[0] = std::byte{2};
    CHECK(refused(shared_bytes(byte_span(bytes))) == errc::unknown_version);
    bytes[0] = std::byte{1};
    bytes[1] = std::byte{9};
    CHECK(refused(shared_bytes(byte_span(bytes))) == errc::unknown_message_type);
}

TEST_SUITE_END();

} // namespace
