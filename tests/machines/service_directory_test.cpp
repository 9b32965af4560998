#include "support/machine_testing.hpp"

#include <doctest/doctest.h>

#include <synod/machines/detail/encoding.hpp>
#include <synod/machines/service_directory.hpp>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

TEST_SUITE_BEGIN("machines");

using namespace synod;
using namespace synod::machines;
using synod::test::command_entry;
using dir = service_directory;

constexpr node_id n1{1};
constexpr node_id n2{2};

dir::result_type apply(dir& d, const shared_bytes& payload) {
    return d.apply(command_entry(payload));
}

dir::result_type gateway(dir& d, node_id node, const std::vector<service_endpoint>& services,
                         const std::vector<std::string>& capabilities = {}) {
    return apply(d, dir::encode_register_gateway(node, services, capabilities));
}

dir::result_type upsert(dir& d, const std::vector<service>& services) {
    return apply(d, dir::encode_register_services(services));
}

dir::result_type deregister(dir& d, const std::vector<std::string>& ids) {
    return apply(d, dir::encode_deregister_services(ids));
}

std::vector<std::string> ids_of(const std::vector<service_record>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) {
        out.push_back(r.id);
    }
    return out;
}

using strings = std::vector<std::string>;

TEST_CASE("service_directory: register_gateway replaces the node's services and capabilities") {
    dir d;
    auto r =
        gateway(d, n1, {{"log-1", "log", "10.0.0.1:7000"}, {"st-1", "storage", "10.0.0.1:7001"}},
                {"storage", "log"});
    CHECK_FALSE(r.error);
    CHECK(r.changed);
    CHECK(r.revision == 1);
    CHECK(ids_of(d.on_node(n1).value) == strings{"log-1", "st-1"});
    CHECK(d.capabilities_of(n1).value == strings{"log", "storage"}); // kept sorted

    // The second registration lists st-1 (moved port) and res-1 but not log-1: log-1 goes.
    r = gateway(d, n1,
                {{"st-1", "storage", "10.0.0.1:7002"}, {"res-1", "resolver", "10.0.0.1:7003"}},
                {"resolution"});
    CHECK(r.changed);
    CHECK(r.revision == 2);
    CHECK(ids_of(d.on_node(n1).value) == strings{"res-1", "st-1"});
    CHECK(d.find("st-1")->value.address == "10.0.0.1:7002");
    CHECK(d.find("log-1").error() == errc::unknown_service);
    CHECK(d.capabilities_of(n1).value == strings{"resolution"});

    // Registering nothing forgets the node entirely.
    r = gateway(d, n1, {}, {});
    CHECK(r.changed);
    CHECK(d.all().value.empty());
    CHECK(d.capabilities_of(n1).value.empty());
    CHECK(d.well_formed());
}

TEST_CASE("service_directory: register_services upserts by id and leaves other services alone") {
    dir d;
    REQUIRE_FALSE(gateway(d, n1, {{"a", "log", "x:1"}, {"b", "log", "x:2"}}, {"log"}).error);
    auto r = upsert(d, {{"b", "storage", n1, "x:3"}, {"c", "log", n2, "y:1"}});
    CHECK_FALSE(r.error);
    CHECK(r.changed);
    CHECK(r.revision == 2);
    CHECK(ids_of(d.all().value) == strings{"a", "b", "c"});
    CHECK(d.find("b")->value ==
          service_record{"b", "storage", n1, "x:3", {"log"}}); // the node's capabilities join
    CHECK(d.find("c")->value == service_record{"c", "log", n2, "y:1", {}});
    // Upserting does not touch capabilities.
    CHECK(d.capabilities_of(n1).value == strings{"log"});
    CHECK(d.well_formed());
}

TEST_CASE("service_directory: deregister removes the ids; unknown ids are ignored") {
    dir d;
    REQUIRE_FALSE(upsert(d, {{"a", "log", n1, "x:1"}, {"b", "log", n2, "y:1"}}).error);
    auto r = deregister(d, {"a", "never-registered"});
    CHECK_FALSE(r.error);
    CHECK(r.changed);
    CHECK(r.revision == 2);
    CHECK(ids_of(d.all().value) == strings{"b"});
    CHECK(d.on_node(n1).value.empty());

    // A retried deregistration (or one of unknown ids only) is a successful no-op.
    r = deregister(d, {"a"});
    CHECK_FALSE(r.error);
    CHECK_FALSE(r.changed);
    CHECK(r.revision == 2);
    CHECK(d.well_formed());
}

TEST_CASE("service_directory: registering the same thing again does not bump the revision") {
    dir d;
    const std::vector<service_endpoint> services{{"a", "log", "x:1"}, {"b", "storage", "x:2"}};
    REQUIRE(gateway(d, n1, services, {"log", "storage"}).revision == 1);
    const shared_bytes before = d.snapshot();

    // Same set; capabilities in another order and repeated: still the same set.
    auto r = gateway(d, n1, {services[1], services[0]}, {"storage", "log", "log"});
    CHECK_FALSE(r.error);
    CHECK_FALSE(r.changed);
    CHECK(r.revision == 1);
    r = upsert(d, {{"a", "log", n1, "x:1"}});
    CHECK_FALSE(r.changed);
    CHECK(r.revision == 1);
    CHECK(d.snapshot() == before); // not even the history grew

    // A real change to one field does bump it.
    r = upsert(d, {{"a", "log", n1, "x:9"}});
    CHECK(r.changed);
    CHECK(r.revision == 2);
    // So does a capability change alone.
    r = gateway(d, n1, {{"a", "log", "x:9"}, services[1]}, {"log"});
    CHECK(r.changed);
    CHECK(r.revision == 3);
    REQUIRE(d.changes_since(2));
    CHECK(d.changes_since(2)->value == std::vector<directory_change>{{3, {}, {}, {{n1, {"log"}}}}});
}

TEST_CASE("service_directory: queries answer with the revision they were read at") {
    dir d;
    REQUIRE_FALSE(
        gateway(d, n1, {{"l1", "log", "a:1"}, {"s1", "storage", "a:2"}}, {"coordination", "log"})
            .error);
    REQUIRE_FALSE(gateway(d, n2, {{"l2", "log", "b:1"}}, {"log"}).error);
    CHECK(d.revision() == 2);
    CHECK(d.all().revision == 2);
    CHECK(d.find("l2")->revision == 2);
    CHECK(ids_of(d.of_kind("log").value) == strings{"l1", "l2"});
    CHECK(d.of_kind("log").revision == 2);
    CHECK(ids_of(d.of_kind("resolver").value).empty());
    CHECK(ids_of(d.with_capability("coordination").value) == strings{"l1", "s1"});
    CHECK(ids_of(d.with_capability("log").value) == strings{"l1", "l2", "s1"});
    CHECK(d.with_capability("log").revision == 2);
    CHECK(ids_of(d.on_node(n2).value) == strings{"l2"});
    CHECK(d.on_node(node_id{9}).value.empty());
    CHECK(d.capabilities_of(n2) == directory_read<strings>{{"log"}, 2});
    CHECK(d.nodes() == directory_read<std::vector<node_capabilities>>{
                           {{n1, {"coordination", "log"}}, {n2, {"log"}}}, 2});
    CHECK(d.find("missing").error() == errc::unknown_service);
}

// A watcher's copy of the directory, kept current only from changes_since.
struct watcher_copy {
    std::map<std::string, service> services;
    std::map<node_id, strings> capabilities;
    std::uint64_t revision = 0;

    void apply(const directory_change& c) {
        REQUIRE(c.revision == revision + 1);
        for (const auto& id : c.removed) {
            REQUIRE(services.erase(id) == 1);
        }
        for (const auto& s : c.upserted) {
            services[s.id] = s;
        }
        for (const auto& nc : c.capabilities) {
            capabilities[nc.node] = nc.capabilities;
        }
        revision = c.revision;
    }

    [[nodiscard]] std::vector<service_record> records() const {
        std::vector<service_record> out;
        for (const auto& [id, s] : services) {
            const auto it = capabilities.find(s.node);
            out.push_back({s.id, s.kind, s.node, s.address,
                           it == capabilities.end() ? strings{} : it->second});
        }
        return out;
    }
};

void catch_up(watcher_copy& w, const dir& d) {
    auto changes = d.changes_since(w.revision);
    REQUIRE(changes);
    for (const auto& c : changes->value) {
        w.apply(c);
    }
    CHECK(w.revision == changes->revision);
    CHECK(w.revision == d.revision());
    CHECK(w.records() == d.all().value);
}

TEST_CASE("service_directory: changes_since lets a watcher catch up from any retained revision") {
    dir d;
    watcher_copy w;
    catch_up(w, d); // nothing yet
    REQUIRE_FALSE(gateway(d, n1, {{"a", "log", "x:1"}, {"b", "log", "x:2"}}, {"log"}).error);
    REQUIRE_FALSE(upsert(d, {{"c", "storage", n2, "y:1"}}).error);
    catch_up(w, d);
    REQUIRE_FALSE(gateway(d, n1, {{"b", "log", "x:3"}}, {"log", "storage"}).error);
    REQUIRE_FALSE(deregister(d, {"c"}).error);
    catch_up(w, d);

    auto since1 = d.changes_since(1);
    REQUIRE(since1);
    CHECK(since1->revision == 4);
    REQUIRE(since1->value.size() == 3);
    // Revision 3: a removed (not relisted), b moved, n1's capabilities replaced.
    CHECK(since1->value[1] ==
          directory_change{3, {{"b", "log", n1, "x:3"}}, {"a"}, {{n1, {"log", "storage"}}}});
    CHECK(since1->value[2] == directory_change{4, {}, {"c"}, {}});
    CHECK(d.changes_since(4)->value.empty());
    CHECK(d.changes_since(5).error() == errc::revision_not_reached);
}

TEST_CASE("service_directory: a watcher behind the bounded history is told to resync") {
    dir d(/*history_budget=*/4);
    // Three items at revision 1, then one per revision.
    REQUIRE_FALSE(upsert(d, {{"a", "k", n1, "x"}, {"b", "k", n1, "x"}, {"c", "k", n1, "x"}}).error);
    CHECK(d.oldest_reachable_revision() == 0);
    REQUIRE_FALSE(upsert(d, {{"a", "k", n1, "y"}}).error); // 4 items: still within budget
    CHECK(d.oldest_reachable_revision() == 0);
    REQUIRE_FALSE(upsert(d, {{"a", "k", n1, "z"}}).error); // 5: revision 1's change goes
    CHECK(d.oldest_reachable_revision() == 1);
    CHECK(d.changes_since(0).error() == errc::revision_compacted);
    CHECK(d.changes_since(1)->value.size() == 2);

    // The latest change is kept even when it alone exceeds the budget.
    std::vector<service> many;
    for (int i = 0; i < 10; ++i) {
        many.push_back({"m" + std::to_string(i), "k", n2, "x"});
    }
    REQUIRE_FALSE(upsert(d, many).error);
    CHECK(d.revision() == 4);
    CHECK(d.oldest_reachable_revision() == 3);
    CHECK(d.changes_since(2).error() == errc::revision_compacted);
    CHECK(d.changes_since(3)->value.size() == 1);
    CHECK(d.well_formed());

    // The resync: read everything, then watch from that read's revision.
    watcher_copy w;
    const auto everything = d.all();
    for (const auto& r : everything.value) {
        w.services[r.id] = {r.id, r.kind, r.node, r.address};
    }
    w.revision = everything.revision;
    REQUIRE_FALSE(deregister(d, {"m3"}).error);
    catch_up(w, d);
}

TEST_CASE("service_directory: a service id hosted by another node is rejected, nothing changes") {
    dir d;
    REQUIRE_FALSE(gateway(d, n1, {{"a", "log", "x:1"}}, {"log"}).error);
    const shared_bytes before = d.snapshot();

    auto r = gateway(d, n2, {{"b", "log", "y:1"}, {"a", "log", "y:2"}}, {"log"});
    CHECK(r.error == errc::conflicting_service);
    CHECK_FALSE(r.changed);
    CHECK(r.revision == 1);
    r = upsert(d, {{"c", "log", n2, "y:3"}, {"a", "log", n2, "y:2"}});
    CHECK(r.error == errc::conflicting_service);
    CHECK(r.revision == 1);
    // All-or-nothing: neither b nor c, the valid parts, were registered.
    CHECK(d.snapshot() == before);
    CHECK(d.find("b").error() == errc::unknown_service);

    // Moving a service: deregister it first, then register it on the new node.
    REQUIRE_FALSE(deregister(d, {"a"}).error);
    r = upsert(d, {{"a", "log", n2, "y:2"}});
    CHECK_FALSE(r.error);
    CHECK(d.find("a")->value.node == n2);
}

TEST_CASE("service_directory: each kind of bad input gets its errc and changes nothing") {
    dir d;
    REQUIRE_FALSE(gateway(d, n1, {{"a", "log", "x:1"}}, {"log"}).error);
    const shared_bytes before = d.snapshot();

    const std::string long_id(dir::max_id_bytes + 1, 'i');
    const std::string long_kind(dir::max_kind_bytes + 1, 'k');
    const std::string long_address(dir::max_address_bytes + 1, 'a');
    const std::string long_capability(dir::max_capability_bytes + 1, 'c');
    std::vector<service> too_many_services;
    for (std::size_t i = 0; i <= dir::max_services_per_command; ++i) {
        too_many_services.push_back({"s" + std::to_string(i), "k", n2, "x"});
    }
    strings too_many_capabilities;
    for (std::size_t i = 0; i <= dir::max_capabilities; ++i) {
        too_many_capabilities.push_back("c" + std::to_string(i));
    }
    strings too_many_ids;
    for (std::size_t i = 0; i <= dir::max_services_per_command; ++i) {
        too_many_ids.push_back("s" + std::to_string(i));
    }

    struct bad_case {
        const char* what;
        shared_bytes command;
        errc expected;
    };
    const std::vector<bad_case> cases{
        {"gateway: node 0", dir::encode_register_gateway(no_node, {{"b", "log", "y"}}, {}),
         errc::missing_field},
        {"gateway: empty id", dir::encode_register_gateway(n2, {{"", "log", "y"}}, {}),
         errc::missing_field},
        {"gateway: empty kind", dir::encode_register_gateway(n2, {{"b", "", "y"}}, {}),
         errc::missing_field},
        {"gateway: empty address", dir::encode_register_gateway(n2, {{"b", "log", ""}}, {}),
         errc::missing_field},
        {"gateway: id too long", dir::encode_register_gateway(n2, {{long_id, "log", "y"}}, {}),
         errc::field_too_large},
        {"gateway: kind too long", dir::encode_register_gateway(n2, {{"b", long_kind, "y"}}, {}),
         errc::field_too_large},
        {"gateway: address too long",
         dir::encode_register_gateway(n2, {{"b", "log", long_address}}, {}), errc::field_too_large},
        {"gateway: too many capabilities",
         dir::encode_register_gateway(n2, {}, too_many_capabilities), errc::field_too_large},
        {"gateway: upper-case capability", dir::encode_register_gateway(n2, {}, {"Log"}),
         errc::invalid_capability},
        {"gateway: empty capability", dir::encode_register_gateway(n2, {}, {""}),
         errc::invalid_capability},
        {"gateway: capability with a space", dir::encode_register_gateway(n2, {}, {"a b"}),
         errc::invalid_capability},
        {"gateway: capability too long", dir::encode_register_gateway(n2, {}, {long_capability}),
         errc::invalid_capability},
        {"gateway: duplicate id",
         dir::encode_register_gateway(n2, {{"b", "log", "y"}, {"b", "log", "z"}}, {}),
         errc::duplicate_service},
        {"gateway: id of another node", dir::encode_register_gateway(n2, {{"a", "log", "y"}}, {}),
         errc::conflicting_service},
        {"services: node 0", dir::encode_register_services({{"b", "log", no_node, "y"}}),
         errc::missing_field},
        {"services: empty id", dir::encode_register_services({{"", "log", n2, "y"}}),
         errc::missing_field},
        {"services: id too long", dir::encode_register_services({{long_id, "log", n2, "y"}}),
         errc::field_too_large},
        {"services: too many", dir::encode_register_services(too_many_services),
         errc::field_too_large},
        {"services: duplicate id",
         dir::encode_register_services({{"b", "log", n2, "y"}, {"b", "log", n2, "y"}}),
         errc::duplicate_service},
        {"services: id of another node", dir::encode_register_services({{"a", "log", n2, "y"}}),
         errc::conflicting_service},
        {"deregister: empty id", dir::encode_deregister_services({"a", ""}), errc::missing_field},
        {"deregister: id too long", dir::encode_deregister_services({long_id}),
         errc::field_too_large},
        {"deregister: too many", dir::encode_deregister_services(too_many_ids),
         errc::field_too_large},
        {"deregister: duplicate id", dir::encode_deregister_services({"a", "a"}),
         errc::duplicate_service},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        const auto r = apply(d, c.command);
        CHECK(r.error == c.expected);
        CHECK_FALSE(r.changed);
        CHECK(r.revision == 1);
        CHECK(d.snapshot() == before);
    }
    CHECK(dir::valid_capability("storage.v2_fast-path"));
    CHECK(dir::valid_capability(std::string(dir::max_capability_bytes, 'z')));
}

TEST_CASE("service_directory: malformed commands give error results and change nothing") {
    dir d;
    REQUIRE_FALSE(gateway(d, n1, {{"a", "log", "x:1"}}, {"log"}).error);
    const shared_bytes before = d.snapshot();
    auto check_refused = [&](byte_span payload, std::error_code expected) {
        const auto r = d.apply(command_entry(shared_bytes(payload)));
        CHECK(r.error == expected);
        CHECK_FALSE(r.changed);
        CHECK(d.snapshot() == before);
    };

    // Every proper prefix of each kind of command is refused.
    for (const shared_bytes& good : {dir::encode_register_gateway(n2, {{"b", "log", "y"}}, {"log"}),
                                     dir::encode_register_services({{"b", "log", n2, "y"}}),
                                     dir::encode_deregister_services({"a"})}) {
        for (std::size_t n = 0; n < good.size(); ++n) {
            INFO("prefix of " << n << " bytes");
            const auto r = d.apply(command_entry(shared_bytes(good.span().first(n))));
            CHECK(r.error);
            CHECK(d.snapshot() == before);
        }
        byte_vector extra(good.data(), good.data() + good.size());
        extra.push_back(std::byte{0});
        check_refused(extra, errc::length_mismatch);
        byte_vector other_version(good.data(), good.data() + good.size());
        other_version[0] = std::byte{2};
        check_refused(other_version, errc::unknown_version);
    }
    check_refused({}, errc::truncated_input);
    const std::byte unknown_op[] = {std::byte{1}, std::byte{9}};
    check_refused(unknown_op, errc::unknown_message_type);
    // A count no input could hold is refused before anything is allocated for it.
    const std::byte huge_count[] = {std::byte{1},    std::byte{3},    std::byte{0xff},
                                    std::byte{0xff}, std::byte{0xff}, std::byte{0xff}};
    check_refused(huge_count, errc::length_mismatch);
    // A string length beyond the input.
    const std::byte long_string[] = {std::byte{1}, std::byte{3}, std::byte{1},    std::byte{0},
                                     std::byte{0}, std::byte{0}, std::byte{0xff}, std::byte{0},
                                     std::byte{0}, std::byte{0}, std::byte{'a'}};
    check_refused(long_string, errc::truncated_input);
}

TEST_CASE("service_directory: decode returns the command an encoder wrote") {
    const auto cmd = dir::decode(
        dir::encode_register_gateway(n1, {{"a", "log", "x"}}, {"log", "storage"}).span());
    REQUIRE(cmd);
    CHECK(std::get<dir::register_gateway_command>(*cmd) ==
          dir::register_gateway_command{n1, {{"a", "log", "x"}}, {"log", "storage"}});
    const auto del = dir::decode(dir::encode_deregister_services({"a", "b"}).span());
    REQUIRE(del);
    CHECK(std::get<dir::deregister_services_command>(*del).ids == strings{"a", "b"});
}

dir populated(std::size_t history_budget = dir::default_history_budget) {
    dir d(history_budget);
    REQUIRE_FALSE(
        gateway(d, n1, {{"l1", "log", "a:1"}, {"s1", "storage", "a:2"}}, {"coordination", "log"})
            .error);
    REQUIRE_FALSE(upsert(d, {{"l2", "log", n2, "b:1"}}).error);
    REQUIRE_FALSE(gateway(d, n1, {{"s1", "storage", "a:3"}}, {"log"}).error);
    REQUIRE_FALSE(deregister(d, {"l2"}).error);
    REQUIRE_FALSE(gateway(d, n2, {}, {"storage"}).error); // capabilities, no services
    return d;
}

TEST_CASE("service_directory: snapshot and restore round-trip everything, history included") {
    const dir original = populated();
    dir copy;
    REQUIRE_FALSE(copy.restore(original.snapshot()));
    CHECK(copy == original);
    CHECK(copy.revision() == 5);
    CHECK(copy.all() == original.all());
    CHECK(copy.capabilities_of(n2).value == strings{"storage"});
    REQUIRE(copy.changes_since(0));
    CHECK(copy.changes_since(0)->value == original.changes_since(0)->value);
    CHECK(copy.snapshot() == original.snapshot());

    // Both go on the same way.
    dir a = original;
    const auto ra = upsert(a, {{"x", "log", n2, "c"}});
    const auto rb = upsert(copy, {{"x", "log", n2, "c"}});
    CHECK(ra == rb);
    CHECK(a == copy);

    // The empty directory round-trips too.
    dir empty;
    REQUIRE_FALSE(copy.restore(empty.snapshot()));
    CHECK(copy == empty);
}

TEST_CASE("service_directory: restoring keeps only as much history as this replica's budget") {
    const dir large = populated();
    dir small(/*history_budget=*/1);
    REQUIRE_FALSE(small.restore(large.snapshot()));
    CHECK(small.all() == large.all());
    CHECK(small.oldest_reachable_revision() == 4);
    CHECK(small.changes_since(3).error() == errc::revision_compacted);
    CHECK(small.well_formed());
}

TEST_CASE("service_directory: a damaged or truncated snapshot is refused and changes nothing") {
    dir d = populated();
    dir other;
    REQUIRE_FALSE(upsert(other, {{"z", "k", node_id{7}, "q"}}).error);
    synod::test::check_refuses_damaged_snapshots(d, other.snapshot());
    CHECK(d == populated());
}

// A snapshot with a valid seal, written field by field, to show that restore also checks what
// the fields say.
shared_bytes forged_snapshot(std::uint64_t revision, const std::vector<service>& services,
                             std::uint32_t history_count, std::uint8_t version = 1) {
    byte_vector out;
    wire::byte_writer w(out);
    w.put(version);
    w.put(revision);
    w.put(std::uint32_t{0}); // no capabilities
    w.put(static_cast<std::uint32_t>(services.size()));
    for (const auto& s : services) {
        machines::detail::put_string(w, s.id);
        machines::detail::put_string(w, s.kind);
        w.put(s.node.value());
        machines::detail::put_string(w, s.address);
    }
    w.put(history_count);
    for (std::uint32_t i = 0; i < history_count; ++i) {
        w.put(revision - history_count + 1 + i);
        w.put(std::uint32_t{0});
        w.put(std::uint32_t{1}); // removed: one id
        machines::detail::put_string(w, "gone");
        w.put(std::uint32_t{0});
    }
    return machines::detail::seal(out);
}

TEST_CASE("service_directory: a sealed snapshot that no command could produce is refused") {
    dir d = populated();
    const dir before = d;
    // The forger itself is right: a plausible snapshot restores.
    REQUIRE_FALSE(d.restore(forged_snapshot(3, {{"a", "log", n1, "x"}}, 1)));
    CHECK(d.find("a")->value.node == n1);
    d = before;

    CHECK(d.restore(forged_snapshot(3, {{"a", "log", n1, "x"}}, 1, 2)) == errc::corrupt_snapshot);
    CHECK(d.restore(forged_snapshot(3, {{"a", "log", no_node, "x"}}, 1)) == errc::corrupt_snapshot);
    CHECK(d.restore(forged_snapshot(3, {{"", "log", n1, "x"}}, 1)) == errc::corrupt_snapshot);
    CHECK(d.restore(forged_snapshot(3, {{"a", "log", n1, "x"}, {"a", "log", n2, "y"}}, 1)) ==
          errc::corrupt_snapshot);
    // A revision with no retained change, and a history longer than the revisions.
    CHECK(d.restore(forged_snapshot(3, {}, 0)) == errc::corrupt_snapshot);
    CHECK(d.restore(forged_snapshot(2, {}, 3)) == errc::corrupt_snapshot);
    CHECK(d == before);
}

// ---- Determinism: replicas that apply the same commands agree, whether or not one of them
// was rebuilt from a snapshot midway.

shared_bytes random_command(std::mt19937_64& rng) {
    // Small pools, so commands collide: conflicts, no-ops, and replacements are common.
    auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    const strings ids{"a", "b", "c", "d", "e", "f"};
    const strings kinds{"log", "storage"};
    const strings addresses{"x:1", "x:2"};
    const strings capabilities{"log", "storage", "coordination", "Bad"};
    auto some_ids = [&] {
        strings out;
        for (std::size_t i = 0, n = pick(3); i < n; ++i) {
            out.push_back(ids[pick(ids.size())]);
        }
        return out;
    };
    const node_id node{1 + pick(3)};
    switch (pick(4)) {
    case 0: {
        std::vector<service_endpoint> services;
        for (const auto& id : some_ids()) {
            services.push_back({id, kinds[pick(2)], addresses[pick(2)]});
        }
        strings caps;
        for (std::size_t i = 0, n = pick(3); i < n; ++i) {
            caps.push_back(capabilities[pick(capabilities.size())]);
        }
        return dir::encode_register_gateway(node, services, caps);
    }
    case 1: {
        std::vector<service> services;
        for (const auto& id : some_ids()) {
            services.push_back({id, kinds[pick(2)], node_id{1 + pick(3)}, addresses[pick(2)]});
        }
        return dir::encode_register_services(services);
    }
    case 2:
        return dir::encode_deregister_services(some_ids());
    default: { // garbage now and then
        byte_vector junk(pick(12));
        for (auto& b : junk) {
            b = static_cast<std::byte>(rng());
        }
        return shared_bytes(byte_span(junk));
    }
    }
}

// A watcher's loop: catch up from the history, or resync from a full read when it was
// compacted past the watcher's revision.
bool follow(watcher_copy& w, const dir& d) {
    const bool resync = d.changes_since(w.revision).error() == errc::revision_compacted;
    if (resync) {
        const auto everything = d.all();
        const auto nodes = d.nodes();
        REQUIRE(nodes.revision == everything.revision);
        w = {};
        for (const auto& r : everything.value) {
            w.services[r.id] = {r.id, r.kind, r.node, r.address};
        }
        for (const auto& nc : nodes.value) {
            w.capabilities[nc.node] = nc.capabilities;
        }
        w.revision = everything.revision;
    }
    catch_up(w, d);
    return resync;
}

TEST_CASE("service_directory: random commands, one replica restored midway, stay identical") {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        INFO("seed " << seed);
        std::mt19937_64 rng(seed);
        dir a(/*history_budget=*/6);
        dir b(/*history_budget=*/6);
        watcher_copy watcher;
        std::uint64_t changed = 0;
        int resyncs = 0;
        for (std::uint64_t i = 1; i <= 400; ++i) {
            const auto cmd = random_command(rng);
            const auto ra = a.apply(command_entry(cmd, i));
            const auto rb = b.apply(command_entry(cmd, i));
            REQUIRE(ra == rb);
            changed += ra.changed ? 1 : 0;
            REQUIRE(ra.revision == changed);
            REQUIRE(a.well_formed());
            if (i % 100 == 50) {
                dir rebuilt(/*history_budget=*/6);
                REQUIRE_FALSE(rebuilt.restore(b.snapshot()));
                b = std::move(rebuilt);
            }
            if (i % 11 == 0) {
                resyncs += follow(watcher, a) ? 1 : 0;
            }
        }
        CHECK(a == b);
        CHECK(a.snapshot() == b.snapshot());
        CHECK(changed > 50); // the workload really changes things
        CHECK(resyncs > 0);  // and sometimes outruns the watcher's history
    }
}

TEST_SUITE_END();

} // namespace
