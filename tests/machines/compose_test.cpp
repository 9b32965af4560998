#include "support/machine_testing.hpp"

#include <doctest/doctest.h>

#include <synod/machines/admission_queue.hpp>
#include <synod/machines/compose.hpp>
#include <synod/machines/detail/encoding.hpp>
#include <synod/machines/epoch_ledger.hpp>
#include <synod/machines/service_directory.hpp>

#include <cstdint>
#include <random>
#include <vector>

namespace {

TEST_SUITE_BEGIN("machines");

using namespace synod;
using namespace synod::machines;
using synod::test::command_entry;

using coordinator_state = compose<service_directory, epoch_ledger>;

// A machine that cannot be copied (the composition must restore it all-or-nothing without
// copies): it counts the bytes of the commands it applied.
struct byte_counter {
    using result_type = std::uint64_t;

    byte_counter() = default;
    byte_counter(const byte_counter&) = delete;
    byte_counter& operator=(const byte_counter&) = delete;
    byte_counter(byte_counter&&) = default;
    byte_counter& operator=(byte_counter&&) = default;
    ~byte_counter() = default;

    result_type apply(const log_entry& e) { return total += e.payload.size(); }
    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer(out).put(total);
        return shared_bytes(byte_span(out));
    }
    std::error_code restore(byte_span b) {
        wire::byte_reader r(b);
        const auto loaded = r.get<std::uint64_t>();
        if (!r.ok() || r.remaining() != 0) {
            return errc::corrupt_snapshot;
        }
        total = loaded;
        return {};
    }

    std::uint64_t total = 0;
};

static_assert(state_machine<coordinator_state>);
static_assert(state_machine<compose<byte_counter, epoch_ledger>>);
static_assert(state_machine<compose<coordinator_state, byte_counter>>); // compositions nest

// Each machine type once: a type that appears twice could not be told apart by its commands.
template <class... M>
concept can_compose = requires {
    typename compose<M...>;
};
static_assert(can_compose<epoch_ledger>);
static_assert(!can_compose<epoch_ledger, epoch_ledger>);
static_assert(!can_compose<service_directory, epoch_ledger, service_directory>);
static_assert(!can_compose<>);

static_assert(coordinator_state::index_of<service_directory> == 0);
static_assert(coordinator_state::index_of<epoch_ledger> == 1);

shared_bytes register_n1(const std::string& id) {
    return coordinator_state::encode<service_directory>(
        service_directory::encode_register_gateway(node_id{1}, {{id, "log", "x:1"}}, {"log"}));
}
shared_bytes issue_epoch() {
    return coordinator_state::encode<epoch_ledger>(
        epoch_ledger::encode_issue_epoch(node_id{1}, term{1}));
}

TEST_CASE("compose: a command's tag routes it to its machine and only that one") {
    coordinator_state m;
    auto r = m.apply(command_entry(register_n1("a")));
    CHECK_FALSE(r.routing_error);
    REQUIRE(r.get_if<service_directory>() != nullptr);
    CHECK(r.get_if<epoch_ledger>() == nullptr);
    CHECK(r.get_if<service_directory>()->revision == 1);
    CHECK(m.get<service_directory>().find("a"));
    CHECK(m.get<epoch_ledger>().last_issued() == no_epoch);

    // By position as well as by type.
    r = m.apply(command_entry(
        coordinator_state::encode<1>(epoch_ledger::encode_issue_epoch(node_id{2}, term{5}))));
    REQUIRE(r.get_if<1>() != nullptr);
    CHECK(r.get_if<1>()->grant == epoch_grant{epoch{1}, node_id{2}, term{5}});
    CHECK(&m.get<1>() == &m.get<epoch_ledger>());
    CHECK(m.get<service_directory>().revision() == 1);

    // The tag is the machine's position, and the rest is the machine's own payload.
    const shared_bytes inner = epoch_ledger::encode_issue_epoch(node_id{2}, term{5});
    const shared_bytes outer = coordinator_state::encode<epoch_ledger>(inner);
    CHECK(outer.size() == inner.size() + 1);
    CHECK(outer.data()[0] == std::byte{1});
    CHECK(shared_bytes(outer.span().subspan(1)) == inner);
}

TEST_CASE("compose: a machine's own rejection comes back as its result, not a routing error") {
    coordinator_state m;
    const auto r = m.apply(command_entry(coordinator_state::encode<epoch_ledger>(
        epoch_ledger::encode_issue_epoch(no_node, term{1}))));
    CHECK_FALSE(r.routing_error);
    REQUIRE(r.get_if<epoch_ledger>() != nullptr);
    CHECK(r.get_if<epoch_ledger>()->error == errc::missing_field);
}

TEST_CASE("compose: an unknown tag or an empty command reaches no machine") {
    coordinator_state m;
    REQUIRE_FALSE(m.apply(command_entry(register_n1("a"))).routing_error);
    const shared_bytes before = m.snapshot();

    const std::byte unknown[] = {std::byte{2}, std::byte{1}, std::byte{1}};
    auto r = m.apply(command_entry(shared_bytes(byte_span(unknown))));
    CHECK(r.routing_error == errc::unknown_command_tag);
    CHECK(std::holds_alternative<std::monostate>(r.outcome));
    CHECK(r.get_if<service_directory>() == nullptr);
    CHECK(r.get_if<epoch_ledger>() == nullptr);

    r = m.apply(command_entry(shared_bytes()));
    CHECK(r.routing_error == errc::truncated_input);
    CHECK(std::holds_alternative<std::monostate>(r.outcome));
    CHECK(m.snapshot() == before);
}

TEST_CASE("compose: the snapshot holds every machine and restores them together") {
    coordinator_state m;
    REQUIRE_FALSE(m.apply(command_entry(register_n1("a"))).routing_error);
    REQUIRE_FALSE(m.apply(command_entry(issue_epoch())).routing_error);
    REQUIRE_FALSE(m.apply(command_entry(issue_epoch())).routing_error);

    coordinator_state copy;
    REQUIRE_FALSE(copy.restore(m.snapshot()));
    CHECK(copy.get<service_directory>() == m.get<service_directory>());
    CHECK(copy.get<epoch_ledger>() == m.get<epoch_ledger>());
    CHECK(copy.snapshot() == m.snapshot());

    coordinator_state other;
    REQUIRE_FALSE(other.apply(command_entry(register_n1("b"))).routing_error);
    synod::test::check_refuses_damaged_snapshots(copy, other.snapshot());
    CHECK(copy.get<epoch_ledger>().last_issued() == epoch{2});
}

// A composed snapshot with a valid seal around the given sections.
shared_bytes envelope(const std::vector<shared_bytes>& sections, std::uint8_t version = 1) {
    byte_vector out;
    wire::byte_writer w(out);
    w.put(version);
    w.put(static_cast<std::uint8_t>(sections.size()));
    for (const auto& s : sections) {
        w.put(static_cast<std::uint32_t>(s.size()));
        w.put_bytes(s.span());
    }
    return machines::detail::seal(out);
}

TEST_CASE("compose: if one machine refuses its section, no machine is restored") {
    coordinator_state m;
    REQUIRE_FALSE(m.apply(command_entry(register_n1("a"))).routing_error);
    const shared_bytes before = m.snapshot();

    service_directory newer_directory;
    REQUIRE_FALSE(newer_directory
                      .apply(command_entry(service_directory::encode_register_services(
                          {{"z", "log", node_id{3}, "q"}})))
                      .error);
    epoch_ledger ledger;
    const shared_bytes good_directory = newer_directory.snapshot();
    const shared_bytes bad_ledger("not a ledger");

    // The envelope itself is the right shape: with a good ledger section it restores.
    coordinator_state probe;
    REQUIRE_FALSE(probe.restore(envelope({good_directory, ledger.snapshot()})));
    CHECK(probe.get<service_directory>().find("z"));

    // The directory's section is fine, the ledger's is not: the directory keeps its state.
    CHECK(m.restore(envelope({good_directory, bad_ledger})) == errc::corrupt_snapshot);
    CHECK(m.restore(envelope({bad_ledger, ledger.snapshot()})) == errc::corrupt_snapshot);
    // More sections than machines, none at all, wrong version.
    CHECK(m.restore(envelope({good_directory, ledger.snapshot(), ledger.snapshot()})) ==
          errc::corrupt_snapshot);
    CHECK(m.restore(envelope({})) == errc::corrupt_snapshot);
    CHECK(m.restore(envelope({bad_ledger})) == errc::corrupt_snapshot);
    CHECK(m.restore(envelope({good_directory, ledger.snapshot()}, 2)) == errc::corrupt_snapshot);
    CHECK(m.snapshot() == before);
    CHECK(m.get<service_directory>().find("a"));
    CHECK_FALSE(m.get<service_directory>().find("z"));
}

TEST_CASE("compose: a snapshot from before a machine was added restores it to its initial "
          "state") {
    // The coordinator's composition gained the admission queue at the end: a node restarting
    // from (or sent) a snapshot written before must still restore it.
    using older = compose<service_directory, epoch_ledger>;
    using newer = compose<service_directory, epoch_ledger, admission_queue>;
    older old;
    REQUIRE_FALSE(old.apply(command_entry(register_n1("a"))).routing_error);
    REQUIRE_FALSE(old.apply(command_entry(issue_epoch())).routing_error);

    admission_config c;
    c.max_queue_size = 7; // the machine's own configuration survives
    newer m(service_directory{}, epoch_ledger{}, admission_queue(c));
    const shared_bytes fresh = m.snapshot();
    REQUIRE_FALSE(m.get<admission_queue>()
                      .submit("x", "u", admission_priority::normal, shared_bytes("p"), 1)
                      .error);
    REQUIRE_FALSE(m.restore(old.snapshot()));
    CHECK(m.get<service_directory>() == old.get<service_directory>());
    CHECK(m.get<epoch_ledger>().last_issued() == epoch{1});
    CHECK(m.get<admission_queue>() == admission_queue(c)); // as built: empty
    CHECK(m.get<admission_queue>().config().max_queue_size == 7);
    CHECK_FALSE(m.get<admission_queue>().state_of("x"));
    // The result is what a composition that had applied the same commands holds.
    newer same(service_directory{}, epoch_ledger{}, admission_queue(c));
    REQUIRE_FALSE(same.apply(command_entry(newer::encode<service_directory>(
                                 service_directory::encode_register_gateway(
                                     node_id{1}, {{"a", "log", "x:1"}}, {"log"}))))
                      .routing_error);
    REQUIRE_FALSE(same.apply(command_entry(newer::encode<epoch_ledger>(
                                 epoch_ledger::encode_issue_epoch(node_id{1}, term{1}))))
                      .routing_error);
    CHECK(same.snapshot() == m.snapshot());
    CHECK(fresh != m.snapshot());

    // Machines that cannot be copied take the same path.
    compose<epoch_ledger, byte_counter> counted;
    REQUIRE(*counted
                 .apply(command_entry(
                     compose<epoch_ledger, byte_counter>::encode<byte_counter>(as_bytes("hello"))))
                 .get_if<byte_counter>() == 5);
    compose<epoch_ledger> ledger_only;
    REQUIRE_FALSE(counted.restore(ledger_only.snapshot()));
    CHECK(counted.get<byte_counter>().total == 0);
}

TEST_CASE("compose: machines that cannot be copied are rolled back when a later one refuses") {
    compose<byte_counter, epoch_ledger> m;
    REQUIRE(*m.apply(command_entry(compose<byte_counter, epoch_ledger>::encode<byte_counter>(
                         as_bytes("hello"))))
                 .get_if<byte_counter>() == 5);
    const shared_bytes before = m.snapshot();

    byte_counter bigger;
    bigger.total = 99;
    CHECK(m.restore(envelope({bigger.snapshot(), shared_bytes("junk")})) == errc::corrupt_snapshot);
    CHECK(m.get<byte_counter>().total == 5); // restored to 99, then put back
    CHECK(m.snapshot() == before);

    REQUIRE_FALSE(m.restore(envelope({bigger.snapshot(), epoch_ledger{}.snapshot()})));
    CHECK(m.get<byte_counter>().total == 99);
}

TEST_CASE("compose: random commands, one replica restored midway, stay identical") {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        INFO("seed " << seed);
        std::mt19937_64 rng(seed);
        coordinator_state a;
        coordinator_state b;
        const std::vector<std::string> ids{"a", "b", "c"};
        for (std::uint64_t i = 1; i <= 300; ++i) {
            const node_id node{1 + rng() % 3};
            const std::string& id = ids[rng() % ids.size()];
            shared_bytes cmd;
            switch (rng() % 5) {
            case 0:
                cmd = coordinator_state::encode<service_directory>(
                    service_directory::encode_register_gateway(node, {{id, "log", "x"}}, {"log"}));
                break;
            case 1:
                cmd = coordinator_state::encode<service_directory>(
                    service_directory::encode_register_services({{id, "storage", node, "y"}}));
                break;
            case 2:
                cmd = coordinator_state::encode<service_directory>(
                    service_directory::encode_deregister_services({id}));
                break;
            case 3:
                cmd = coordinator_state::encode<epoch_ledger>(
                    epoch_ledger::encode_issue_epoch(node, term{i / 10}));
                break;
            default: {
                byte_vector junk(rng() % 6);
                for (auto& x : junk) {
                    x = static_cast<std::byte>(rng() % 4); // tags 0..3: some route, some do not
                }
                cmd = shared_bytes(byte_span(junk));
            }
            }
            const auto ra = a.apply(command_entry(cmd, i));
            const auto rb = b.apply(command_entry(cmd, i));
            REQUIRE(ra == rb);
            if (const auto* grant = ra.get_if<epoch_ledger>(); grant && !grant->error) {
                REQUIRE(grant->grant.epoch == a.get<epoch_ledger>().last_issued());
            }
            if (i % 100 == 50) {
                coordinator_state rebuilt;
                REQUIRE_FALSE(rebuilt.restore(b.snapshot()));
                b = std::move(rebuilt);
            }
        }
        CHECK(a.get<service_directory>() == b.get<service_directory>());
        CHECK(a.get<epoch_ledger>() == b.get<epoch_ledger>());
        CHECK(a.get<epoch_ledger>().last_issued() > epoch{30});
        CHECK(a.snapshot() == b.snapshot());
    }
}

TEST_SUITE_END();

} // namespace
