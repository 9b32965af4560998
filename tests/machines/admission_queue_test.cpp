#include "support/machine_testing.hpp"

#include <doctest/doctest.h>

#include <synod/machines/admission_queue.hpp>
#include <synod/machines/detail/encoding.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

TEST_SUITE_BEGIN("machines");

using namespace synod;
using namespace synod::machines;
using synod::test::command_entry;
using kind = admission_event_kind;
using prio = admission_priority;

constexpr std::uint64_t second = 1000;

/// Records what a queue's sink sees.
struct recorder {
    std::vector<admission_event_record> events;
    void attach(admission_queue& q) {
        q.set_event_sink(
            [this](const admission_event& e) { events.push_back(admission_event_record::of(e)); });
    }
    [[nodiscard]] std::vector<std::string> ids_of(kind k) const {
        std::vector<std::string> out;
        for (const auto& e : events) {
            if (e.kind == k) {
                out.push_back(e.execution_id);
            }
        }
        return out;
    }
    [[nodiscard]] std::vector<std::pair<kind, std::string>> all() const {
        std::vector<std::pair<kind, std::string>> out;
        for (const auto& e : events) {
            out.emplace_back(e.kind, e.execution_id);
        }
        return out;
    }
};

admission_config manual(admission_config c = {}) {
    c.auto_dispatch = false;
    return c;
}

submit_decision submit(admission_queue& q, std::string_view id, std::string_view user,
                       prio p = prio::normal, std::uint64_t now = 0) {
    return q.submit(id, user, p, shared_bytes("payload of " + std::string(id)), now);
}

std::vector<std::string> ready(const admission_queue& q, std::size_t limit = 100) {
    std::vector<std::string> out;
    for (auto id : q.ready_to_dispatch(limit)) {
        out.emplace_back(id);
    }
    return out;
}

// ---- configuration --------------------------------------------------------------------------

TEST_CASE("admission_queue: the seed's defaults, and out-of-range config is refused") {
    const admission_config c;
    CHECK(c.max_queue_size == 10'000);
    CHECK(c.max_per_user == 100);
    CHECK(c.stale_timeout == std::chrono::seconds(3600));
    CHECK(c.max_running == admission_config::unlimited);
    CHECK(c.fairness == admission_fairness::strict_fifo);
    CHECK_FALSE(c.validate());

    auto bad = [](auto mutate) {
        admission_config b;
        mutate(b);
        CHECK(b.validate() == errc::invalid_admission_config);
        CHECK(admission_queue::create(b).error() == errc::invalid_admission_config);
    };
    bad([](admission_config& b) { b.max_queue_size = 0; });
    bad([](admission_config& b) { b.max_per_user = 0; });
    bad([](admission_config& b) { b.max_running = 0; });
    bad([](admission_config& b) { b.stale_timeout = std::chrono::milliseconds(0); });
    bad([](admission_config& b) { b.stale_timeout = std::chrono::milliseconds(-5); });
    bad([](admission_config& b) {
        b.stale_timeout = admission_config::max_stale_timeout + std::chrono::milliseconds(1);
    });
    bad([](admission_config& b) { b.fairness = static_cast<admission_fairness>(7); });
    bad([](admission_config& b) { b.max_retained_decisions = 0; });
    bad([](admission_config& b) { b.max_retained_rejections = 0; });
    bad([](admission_config& b) { b.max_held_payload_bytes = 0; });
    CHECK(admission_queue::create(admission_config{}).has_value());
}

// ---- admission ------------------------------------------------------------------------------

TEST_CASE("admission_queue: queue_full once max_queue_size executions are pending") {
    admission_config c = manual();
    c.max_queue_size = 3;
    admission_queue q(c);
    recorder rec;
    rec.attach(q);
    for (int i = 0; i < 3; ++i) {
        CHECK_FALSE(submit(q, "e" + std::to_string(i), "u" + std::to_string(i)).error);
    }
    const auto d = submit(q, "e3", "u3");
    CHECK(d.error == errc::queue_full);
    CHECK_FALSE(d.duplicate);
    CHECK(q.pending_count() == 3);
    REQUIRE(rec.events.size() == 4);
    CHECK(rec.events.back().kind == kind::rejected);
    CHECK(rec.events.back().reason == errc::queue_full);
    CHECK(rec.events.back().execution_id == "e3");

    // Running executions do not count against the queue: dispatching one makes room.
    CHECK_FALSE(q.dispatch("e0", 1));
    CHECK_FALSE(submit(q, "e4", "u4").error);
    CHECK(submit(q, "e5", "u5").error == errc::queue_full);
}

TEST_CASE("admission_queue: user_limit counts the user's pending and running executions") {
    admission_config c = manual();
    c.max_per_user = 2;
    admission_queue q(c);
    CHECK_FALSE(submit(q, "a1", "alice").error);
    CHECK_FALSE(q.dispatch("a1", 0)); // running still counts
    CHECK_FALSE(submit(q, "a2", "alice").error);
    CHECK(q.user_load("alice") == 2);
    CHECK(submit(q, "a3", "alice").error == errc::user_limit);
    CHECK_FALSE(submit(q, "b1", "bob").error); // another user is not affected
    CHECK(q.user_load("alice") == 2);

    // Finishing frees the user's slot.
    CHECK_FALSE(q.complete("a1", 1));
    CHECK(q.user_load("alice") == 1);
    CHECK_FALSE(submit(q, "a4", "alice").error);
    CHECK(submit(q, "a5", "alice").error == errc::user_limit);
    CHECK_FALSE(q.cancel("a2", 2));
    CHECK_FALSE(submit(q, "a6", "alice").error);
}

TEST_CASE("admission_queue: queue_full once the held payload bytes would pass their cap") {
    // The snapshot holds every pending and running payload: this cap bounds it.
    CHECK(admission_config{}.max_held_payload_bytes == std::size_t{1} << 30);
    admission_config c = manual();
    c.max_held_payload_bytes = 10;
    admission_queue q(c);
    const shared_bytes six("123456");
    REQUIRE_FALSE(q.submit("a", "u", prio::normal, six, 1).error);
    CHECK(q.submit("b", "v", prio::normal, six, 1).error == errc::queue_full);
    CHECK_FALSE(q.submit("c", "v", prio::normal, shared_bytes("1234"), 1).error); // exactly 10
    CHECK_FALSE(q.submit("d", "v", prio::normal, shared_bytes(), 1).error);
    REQUIRE_FALSE(q.dispatch("a", 2)); // running payloads count too
    CHECK(q.submit("e", "w", prio::normal, shared_bytes("1"), 2).error == errc::queue_full);
    REQUIRE_FALSE(q.complete("a", 3));
    CHECK_FALSE(q.submit("f", "w", prio::normal, six, 3).error);
    // A restored queue counts the same bytes.
    admission_queue restored(c);
    REQUIRE_FALSE(restored.restore(q.snapshot()));
    CHECK(restored.submit("g", "w", prio::normal, shared_bytes("1"), 4).error == errc::queue_full);
    CHECK(q.submit("g", "w", prio::normal, shared_bytes("1"), 4).error == errc::queue_full);
    CHECK(restored == q);
}

TEST_CASE("admission_queue: the queue cap is checked before the user cap") {
    admission_config c = manual();
    c.max_queue_size = 1;
    c.max_per_user = 1;
    admission_queue q(c);
    CHECK_FALSE(submit(q, "a1", "alice").error);
    CHECK(submit(q, "a2", "alice").error == errc::queue_full);
}

TEST_CASE("admission_queue: priority order, FIFO within a priority, and the true rank") {
    admission_queue q(manual());
    CHECK(submit(q, "n1", "u", prio::normal).position == 0);
    CHECK(submit(q, "b1", "u", prio::background).position == 1);
    CHECK(submit(q, "n2", "u", prio::normal).position == 1);
    CHECK(submit(q, "c1", "u", prio::critical).position == 0);
    CHECK(submit(q, "h1", "u", prio::high).position == 1);
    CHECK(submit(q, "l1", "u", prio::low).position == 4);
    CHECK(submit(q, "n3", "u", prio::normal).position == 4);
    CHECK(submit(q, "c2", "u", prio::critical).position == 1);

    const std::vector<std::string> order{"c1", "c2", "h1", "n1", "n2", "n3", "l1", "b1"};
    CHECK(ready(q) == order);
    for (std::size_t i = 0; i < order.size(); ++i) {
        CHECK(q.position(order[i]) == i);
    }
    // Dispatch follows it, one at a time from the front.
    for (const auto& id : order) {
        REQUIRE(ready(q, 1) == std::vector<std::string>{id});
        CHECK_FALSE(q.dispatch(id, 0));
        CHECK_FALSE(q.position(id));
    }
    CHECK(q.running_count() == order.size());
}

TEST_CASE("admission_queue: malformed submissions are refused, not decided, not remembered") {
    admission_queue q(manual());
    recorder rec;
    rec.attach(q);
    CHECK(submit(q, "", "u").error == errc::missing_field);
    CHECK(submit(q, "e", "").error == errc::missing_field);
    CHECK(submit(q, std::string(admission_queue::max_id_bytes + 1, 'x'), "u").error ==
          errc::field_too_large);
    CHECK(submit(q, "e", std::string(admission_queue::max_user_bytes + 1, 'x')).error ==
          errc::field_too_large);
    CHECK(q.submit("e", "u", static_cast<prio>(5), {}, 0).error == errc::invalid_priority);
    const byte_vector big(admission_queue::max_payload_bytes + 1);
    CHECK(q.submit("e", "u", prio::low, shared_bytes(byte_span(big)), 0).error ==
          errc::field_too_large);
    CHECK(rec.events.empty());
    CHECK(q == admission_queue(manual()));
    // The id was never decided: a good submission of it is accepted.
    CHECK_FALSE(submit(q, "e", "u").error);
}

// ---- dedup ----------------------------------------------------------------------------------

TEST_CASE("admission_queue: a duplicate id gets its original decision and changes nothing") {
    admission_config c = manual();
    c.max_per_user = 2;
    admission_queue q(c);
    recorder rec;
    rec.attach(q);
    CHECK(submit(q, "x", "u", prio::low).position == 0);
    CHECK(submit(q, "y", "u", prio::critical).position == 0);
    CHECK(submit(q, "z", "u").error == errc::user_limit);

    auto same = [&](std::string_view id, submit_decision expected, prio p = prio::critical) {
        const admission_queue before = q;
        const auto events = rec.events.size();
        // A duplicate with other fields (another user, priority, payload) is still the same id.
        const auto d = q.submit(id, "someone-else", p, shared_bytes("other"), q.now());
        expected.duplicate = true;
        CHECK(d == expected);
        CHECK(q == before);
        CHECK(rec.events.size() == events);
    };
    same("x", {{}, 0, true}); // pending: accepted at rank 0, although now it is rank 1
    CHECK(q.position("x") == 1);
    same("z", {make_error_code(errc::user_limit), 0, true});
    CHECK_FALSE(q.dispatch("y", 0));
    same("y", {{}, 0, true}); // running
    CHECK_FALSE(q.complete("y", 0));
    same("y", {{}, 0, true}); // finished: never dispatched again
    CHECK(q.state_of("y") == execution_state::finished);
    // A rejection stays a rejection, even once there is room.
    same("z", {make_error_code(errc::user_limit), 0, true});
    CHECK(q.user_load("u") == 1);
}

TEST_CASE("admission_queue: finished decisions are retained up to max_retained_decisions") {
    admission_config c;
    c.max_retained_decisions = 2;
    admission_queue q(c); // auto dispatch
    for (const char* id : {"a", "b", "c"}) {
        REQUIRE_FALSE(submit(q, id, "u").error);
        REQUIRE_FALSE(q.complete(id, 0));
    }
    CHECK(q.retained_count() == 2);
    // "a" is forgotten, oldest first: an unknown id again.
    CHECK_FALSE(q.state_of("a"));
    CHECK(q.complete("a", 0) == errc::unknown_execution);
    CHECK(q.state_of("b") == execution_state::finished);
    CHECK(submit(q, "b", "u").duplicate);
    // What a duplicate beyond the retention gets: a fresh decision, as a new execution.
    const auto again = submit(q, "a", "u");
    CHECK_FALSE(again.error);
    CHECK_FALSE(again.duplicate);
    CHECK(q.state_of("a") == execution_state::running);
}

TEST_CASE("admission_queue: a flood of rejections does not forget a dispatched execution") {
    // Rejections are cheap to cause; were they retained with the finished executions, a burst
    // of them would push a dispatched id out, and a resubmission of it would be dispatched
    // again.
    admission_config c = manual();
    c.max_queue_size = 1;
    c.max_retained_decisions = 4;
    c.max_retained_rejections = 3;
    admission_queue q(c);
    REQUIRE_FALSE(submit(q, "once", "u").error);
    REQUIRE_FALSE(q.dispatch("once", 1));
    REQUIRE_FALSE(q.complete("once", 2));
    REQUIRE_FALSE(submit(q, "blocker", "u").error); // the queue is full from here
    for (int i = 0; i < 50; ++i) {
        CHECK(submit(q, "flood" + std::to_string(i), "v").error == errc::queue_full);
    }
    CHECK(q.retained_rejections() == 3);
    CHECK(q.retained_count() == 4);
    CHECK(q.state_of("once") == execution_state::finished);
    REQUIRE_FALSE(q.cancel("blocker", 3));
    const auto again = submit(q, "once", "u");
    CHECK(again.duplicate);
    CHECK(q.state_of("once") == execution_state::finished);
    CHECK(q.dispatch("once", 4) == errc::execution_finished);
    // The oldest rejections went, the newest are remembered; both survive a snapshot.
    CHECK_FALSE(q.state_of("flood0"));
    CHECK(submit(q, "flood49", "v").error == errc::queue_full);
    const admission_queue copy = q;
    CHECK(copy == q);
    CHECK(copy.retained_rejections() == 3);
}

// ---- dispatch -------------------------------------------------------------------------------

TEST_CASE("admission_queue: an explicit dispatch takes the front only, once, within capacity") {
    admission_config c = manual();
    c.max_running = 2;
    admission_queue q(c);
    recorder rec;
    rec.attach(q);
    submit(q, "a", "u1");
    submit(q, "b", "u2");
    submit(q, "c", "u3");
    CHECK(ready(q) == std::vector<std::string>{"a", "b"}); // capacity for two
    CHECK(q.dispatch("b", 0) == errc::not_ready);          // not at the front
    CHECK(q.dispatch("nope", 0) == errc::unknown_execution);
    CHECK_FALSE(q.dispatch("a", 0));
    CHECK(q.dispatch("a", 0) == errc::already_dispatched);
    CHECK_FALSE(q.dispatch("b", 0));
    CHECK(ready(q).empty());
    CHECK(q.dispatch("c", 0) == errc::not_ready); // at the front, but no capacity
    CHECK_FALSE(q.complete("a", 1));
    CHECK(q.dispatch("a", 1) == errc::execution_finished); // never twice, ever
    CHECK(ready(q) == std::vector<std::string>{"c"});
    CHECK_FALSE(q.dispatch("c", 1));

    REQUIRE(rec.ids_of(kind::dispatched) == std::vector<std::string>{"a", "b", "c"});
    for (const auto& e : rec.events) {
        if (e.kind == kind::dispatched) {
            CHECK(e.payload.str() == "payload of " + e.execution_id); // the seed's create-pod
        }
    }
}

TEST_CASE("admission_queue: reactive dispatch — every freed slot dispatches the next at once") {
    admission_config c;
    c.max_running = 1;
    c.stale_timeout = std::chrono::milliseconds(10 * second);
    admission_queue q(c);
    recorder rec;
    rec.attach(q);
    // Accepted at the front with capacity free: dispatched within the same operation.
    submit(q, "a", "u", prio::normal, 0);
    CHECK(rec.all() == std::vector<std::pair<kind, std::string>>{{kind::accepted, "a"},
                                                                 {kind::dispatched, "a"}});
    submit(q, "b", "u", prio::normal, 0);
    submit(q, "c", "u", prio::normal, 0);
    submit(q, "d", "u", prio::normal, 0);
    submit(q, "e", "u", prio::normal, 0);
    CHECK(q.running_count() == 1);

    auto next_after = [&](auto&& op, const char* expected) {
        rec.events.clear();
        op();
        CHECK(rec.ids_of(kind::dispatched) == std::vector<std::string>{expected});
    };
    next_after([&] { CHECK_FALSE(q.complete("a", 1)); }, "b");
    next_after([&] { CHECK_FALSE(q.fail("b", 2)); }, "c");
    next_after([&] { CHECK_FALSE(q.cancel("c", 3)); }, "d");
    // Expiry of the running one frees its slot too ("e" was pending since 0: it expires too).
    rec.events.clear();
    q.tick(3 + 10 * second + 1);
    CHECK(rec.all() ==
          std::vector<std::pair<kind, std::string>>{{kind::expired, "e"}, {kind::expired, "d"}});
    submit(q, "f", "u", prio::normal, 20 * second);
    CHECK(q.state_of("f") == execution_state::running);
}

TEST_CASE("admission_queue: dispatch never skips the front (the per-user cap cannot block it)") {
    // The seed pops the front. The per-user cap is enforced at admission over pending and
    // running, so the front's user is never over it at dispatch: no user can be "at its cap"
    // with a pending execution that is not already counted.
    admission_config c;
    c.max_running = 2;
    c.max_per_user = 2;
    admission_queue q(c);
    recorder rec;
    rec.attach(q);
    submit(q, "a1", "alice");
    submit(q, "a2", "alice"); // alice: 2 running, at her cap
    submit(q, "b1", "bob");   // pending: the global cap is reached
    CHECK(submit(q, "a3", "alice").error == errc::user_limit);
    submit(q, "c1", "carol");
    CHECK(ready(q).empty());
    CHECK_FALSE(q.complete("a1", 1)); // frees alice's slot and a running slot: bob's turn
    CHECK(rec.ids_of(kind::dispatched) == std::vector<std::string>{"a1", "a2", "b1"});
}

// ---- fairness -------------------------------------------------------------------------------

TEST_CASE("admission_queue: round_robin_users serves one execution per user per round") {
    admission_config c = manual();
    c.fairness = admission_fairness::round_robin_users;
    admission_queue q(c);
    CHECK(submit(q, "a1", "alice").position == 0);
    CHECK(submit(q, "a2", "alice").position == 1);
    CHECK(submit(q, "a3", "alice").position == 2);
    CHECK(submit(q, "b1", "bob").position == 1); // bob's first is in round 0, after a1
    CHECK(submit(q, "c1", "carol").position == 2);
    CHECK(submit(q, "b2", "bob").position == 4); // round 1, after a2
    CHECK(submit(q, "x1", "xavier", prio::high).position == 0);
    CHECK(ready(q) == std::vector<std::string>{"x1", "a1", "b1", "c1", "a2", "b2", "a3"});

    // A user who joins later starts in the current round (the round of the last dispatch),
    // not behind everyone's backlog: dave has not been served in round 0.
    for (const char* id : {"x1", "a1", "b1", "c1"}) {
        REQUIRE_FALSE(q.dispatch(id, 0));
    }
    CHECK(submit(q, "d1", "dave").position == 0);
    CHECK(ready(q) == std::vector<std::string>{"d1", "a2", "b2", "a3"});
    // A live user's next execution goes one round past its last, even if that one was
    // cancelled: bob cannot move his backlog forward by cancelling and resubmitting.
    CHECK_FALSE(q.cancel("b2", 0));
    CHECK(submit(q, "b3", "bob").position == 3);
    CHECK(ready(q) == std::vector<std::string>{"d1", "a2", "a3", "b3"});
}

TEST_CASE("admission_queue: round_robin_users: finishing and resubmitting does not jump the "
          "round") {
    // alice queues three, bob one. Each is served in round 0 and finishes; bob resubmits at
    // once. He had his turn in round 0, so b2 goes after a2 (round 1), and so on: alice and
    // bob alternate, neither is served twice in a round.
    admission_config c = manual();
    c.fairness = admission_fairness::round_robin_users;
    admission_queue q(c);
    for (const char* id : {"a1", "a2", "a3"}) {
        REQUIRE_FALSE(submit(q, id, "alice").error);
    }
    REQUIRE_FALSE(submit(q, "b1", "bob").error);
    std::vector<std::string> served;
    for (int i = 0; i < 6 && q.pending_count() > 0; ++i) {
        const std::string front = ready(q, 1).at(0);
        REQUIRE_FALSE(q.dispatch(front, 1));
        REQUIRE_FALSE(q.complete(front, 1));
        served.push_back(front);
        if (front[0] == 'b' && served.size() < 5) {
            const std::string next = "b" + std::to_string(front[1] - '0' + 1);
            CHECK(submit(q, next, "bob").position == 1); // behind alice's next
        }
    }
    CHECK(served == std::vector<std::string>{"a1", "b1", "a2", "b2", "a3", "b3"});
    // Held state survives a snapshot, and is let go once nothing is pending.
    CHECK(q.pending_count() == 0);
    CHECK(admission_queue(q) == q);
    REQUIRE_FALSE(submit(q, "b9", "bob").error);
    REQUIRE_FALSE(submit(q, "c1", "carol").error);
    CHECK(ready(q) == std::vector<std::string>{"b9", "c1"});
}

TEST_CASE("admission_queue: strict FIFO (the default) lets one user's backlog go first") {
    admission_queue q(manual());
    submit(q, "a1", "alice");
    submit(q, "a2", "alice");
    submit(q, "b1", "bob");
    CHECK(ready(q) == std::vector<std::string>{"a1", "a2", "b1"});
}

// ---- completion, cancellation, errors -------------------------------------------------------

TEST_CASE("admission_queue: cancel pending or running; complete/fail only running ones") {
    admission_queue q(manual());
    recorder rec;
    rec.attach(q);
    submit(q, "p", "u");
    submit(q, "r", "u");
    submit(q, "s", "u");
    REQUIRE_FALSE(q.dispatch("p", 0));
    REQUIRE_FALSE(q.dispatch("r", 0));
    CHECK(q.complete("s", 0) == errc::not_running);
    CHECK(q.fail("s", 0) == errc::not_running);
    CHECK(q.complete("ghost", 0) == errc::unknown_execution);
    CHECK(q.cancel("ghost", 0) == errc::unknown_execution);

    rec.events.clear();
    CHECK_FALSE(q.cancel("s", 1)); // pending
    CHECK_FALSE(q.cancel("r", 1)); // running
    REQUIRE(rec.events.size() == 2);
    CHECK(rec.events[0].kind == kind::cancelled);
    CHECK(rec.events[0].from == execution_state::pending);
    CHECK(rec.events[1].from == execution_state::running);
    CHECK(q.pending_count() == 0);
    CHECK(q.running_count() == 1);

    // Finished ids: a distinct errc, and nothing changes.
    const admission_queue before = q;
    rec.events.clear();
    CHECK(q.cancel("s", 1) == errc::execution_finished);
    CHECK(q.complete("r", 1) == errc::execution_finished);
    CHECK(q.fail("r", 1) == errc::execution_finished);
    CHECK(q.dispatch("s", 1) == errc::execution_finished);
    CHECK(q == before);
    CHECK(rec.events.empty());

    CHECK_FALSE(q.fail("p", 2));
    CHECK(rec.ids_of(kind::failed) == std::vector<std::string>{"p"});
    CHECK(q.complete("p", 2) == errc::execution_finished);
}

// ---- stale timeout --------------------------------------------------------------------------

TEST_CASE("admission_queue: stale pending (since submit) and running (since dispatch) expire") {
    admission_config c = manual();
    c.stale_timeout = std::chrono::milliseconds(100);
    admission_queue q(c);
    recorder rec;
    rec.attach(q);
    submit(q, "old", "u", prio::low, 0);
    submit(q, "run", "u", prio::critical, 50);
    REQUIRE_FALSE(q.dispatch("run", 60));
    submit(q, "young", "u", prio::low, 90);

    q.tick(100); // nothing is older than 100 ms yet
    CHECK(rec.ids_of(kind::expired).empty());
    q.tick(101);
    CHECK(rec.ids_of(kind::expired) == std::vector<std::string>{"old"});
    q.tick(160); // "run" was dispatched at 60: exactly 100 ms is not stale
    CHECK(rec.ids_of(kind::expired) == std::vector<std::string>{"old"});
    q.tick(161);
    CHECK(rec.ids_of(kind::expired) == std::vector<std::string>{"old", "run"});
    const auto& e = rec.events.back();
    CHECK(e.from == execution_state::running);
    CHECK(e.at == 161);
    CHECK(q.complete("run", 161) == errc::execution_finished);

    // Any command moves time, so a late completion finds its execution already expired.
    q.tick(180);
    REQUIRE_FALSE(q.dispatch("young", 180));
    CHECK(q.complete("young", 281) == errc::execution_finished);
    CHECK(rec.ids_of(kind::expired).back() == "young");
    CHECK(q.user_load("u") == 0);
}

TEST_CASE("admission_queue: replicated time never goes backwards") {
    admission_config c = manual();
    c.stale_timeout = std::chrono::milliseconds(100);
    admission_queue q(c);
    submit(q, "a", "u", prio::normal, 1000);
    submit(q, "b", "u", prio::normal, 10); // a leader with a slow clock
    CHECK(q.now() == 1000);
    CHECK(q.find("b")->submitted_at == 1000);
    q.tick(1101);
    CHECK(q.pending_count() == 0);
}

// ---- apply ----------------------------------------------------------------------------------

TEST_CASE("admission_queue: commands through apply give the direct API's answers and events") {
    admission_config c = manual();
    c.max_per_user = 1;
    admission_queue q(c);
    std::uint64_t index = 0;
    auto run = [&](const shared_bytes& cmd) { return q.apply(command_entry(cmd, ++index)); };

    auto r = run(admission_queue::encode_submit("a", "u", prio::high, as_bytes("pa"), 5));
    CHECK_FALSE(r.error);
    CHECK(r.position == 0);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0] ==
          admission_event_record{
              kind::accepted, "a", "u", prio::high, 0, {}, {}, execution_state::pending, 5});
    r = run(admission_queue::encode_submit("b", "u", prio::high, as_bytes("pb"), 6));
    CHECK(r.error == errc::user_limit);
    r = run(admission_queue::encode_submit("b", "u", prio::high, as_bytes("pb"), 6));
    CHECK(r.duplicate);
    CHECK(r.events.empty());
    r = run(admission_queue::encode_dispatch("a", 7));
    CHECK_FALSE(r.error);
    REQUIRE(r.events.size() == 1);
    CHECK(r.events[0].kind == kind::dispatched);
    CHECK(r.events[0].payload.str() == "pa");
    CHECK(run(admission_queue::encode_dispatch("a", 7)).error == errc::already_dispatched);
    CHECK(run(admission_queue::encode_complete("zz", 7)).error == errc::unknown_execution);
    CHECK_FALSE(run(admission_queue::encode_fail("a", 8)).error);
    CHECK(run(admission_queue::encode_cancel("a", 8)).error == errc::execution_finished);
    CHECK(run(admission_queue::encode_submit("c", "u", static_cast<prio>(9), {}, 9)).error ==
          errc::invalid_priority);
    CHECK_FALSE(run(admission_queue::encode_submit("c", "u", prio::low, {}, 9)).error);
    CHECK_FALSE(run(admission_queue::encode_cancel("c", 9)).error);
    r = run(admission_queue::encode_tick(10 + 3'600'000));
    CHECK_FALSE(r.error);
    CHECK(q.now() == 10 + 3'600'000);
}

TEST_CASE("admission_queue: malformed commands are refused and change nothing") {
    admission_queue q(manual());
    submit(q, "a", "u");
    const admission_queue before = q;
    auto refused = [&](const shared_bytes& payload) {
        const auto r = q.apply(command_entry(payload));
        CHECK(q == before);
        CHECK(r.events.empty());
        return r.error;
    };
    const shared_bytes good = admission_queue::encode_submit("b", "u", prio::low, {}, 99);
    const byte_span g = good.span();
    CHECK(refused(shared_bytes(g.first(g.size() - 1))) == errc::truncated_input);
    CHECK(refused(shared_bytes()) == errc::truncated_input);
    byte_vector longer(g.begin(), g.end());
    longer.push_back(std::byte{0});
    CHECK(refused(shared_bytes(byte_span(longer))) == errc::length_mismatch);
    byte_vector version(g.begin(), g.end());
    version[0] = std::byte{2};
    CHECK(refused(shared_bytes(byte_span(version))) == errc::unknown_version);
    for (std::byte op : {std::byte{0}, std::byte{7}, std::byte{255}}) {
        byte_vector bad_op(g.begin(), g.end());
        bad_op[1] = op;
        CHECK(refused(shared_bytes(byte_span(bad_op))) == errc::unknown_message_type);
    }
    // A length that runs past the end.
    byte_vector huge(g.begin(), g.end());
    huge[10] = std::byte{0xff};
    CHECK(refused(shared_bytes(byte_span(huge))) == errc::truncated_input);
}

// ---- snapshots ------------------------------------------------------------------------------

/// A queue with something in every part of its state.
admission_queue busy_queue(admission_config c) {
    admission_queue q(c);
    submit(q, "p1", "alice", prio::low, 10);
    submit(q, "p2", "bob", prio::critical, 20);
    submit(q, "p3", "alice", prio::low, 30);
    submit(q, "r1", "carol", prio::critical, 40);
    REQUIRE_FALSE(q.dispatch("p2", 41));
    REQUIRE_FALSE(q.dispatch("r1", 42));
    submit(q, "f1", "dave", prio::high, 50);
    REQUIRE_FALSE(q.dispatch("f1", 50));
    REQUIRE_FALSE(q.complete("f1", 60));
    submit(q, "f2", "dave", prio::high, 61);
    REQUIRE_FALSE(q.cancel("f2", 62));
    return q;
}

TEST_CASE("admission_queue: a snapshot restores the same queue, which behaves the same") {
    for (auto fairness : {admission_fairness::strict_fifo, admission_fairness::round_robin_users}) {
        admission_config c = manual();
        c.max_per_user = 2;
        c.max_queue_size = 4;
        c.fairness = fairness;
        admission_queue q = busy_queue(c);
        CHECK(submit(q, "rej", "alice", prio::normal, 63).error == errc::user_limit);

        admission_queue restored(c);
        REQUIRE_FALSE(restored.restore(q.snapshot()));
        CHECK(restored == q);
        CHECK(restored.now() == q.now());
        CHECK(ready(restored) == ready(q));
        CHECK(restored.position("p3") == q.position("p3"));
        CHECK(restored.user_load("alice") == 2);
        CHECK(restored.running().size() == 2);
        CHECK(restored.find("r1")->payload.size() == q.find("r1")->payload.size());

        // The same commands from here give the same answers on both.
        for (admission_queue* x : {&q, &restored}) {
            CHECK(submit(*x, "rej", "zed", prio::normal, 70).error == errc::user_limit);
            CHECK(submit(*x, "f1", "zed", prio::normal, 70).duplicate);
            CHECK(submit(*x, "n1", "zed", prio::critical, 70).position == 0);
            CHECK(x->dispatch("p3", 70) == errc::not_ready);
            CHECK_FALSE(x->dispatch("n1", 70));
            CHECK_FALSE(x->complete("p2", 71));
            CHECK_FALSE(x->cancel("r1", 71));
        }
        CHECK(restored == q);

        // The empty queue round-trips too, and a copy is the same queue.
        REQUIRE_FALSE(restored.restore(admission_queue(c).snapshot()));
        CHECK(restored == admission_queue(c));
        const admission_queue copy = q;
        CHECK(copy == q);
    }
}

TEST_CASE("admission_queue: a snapshot of 1-byte ids and users and empty payloads restores") {
    // The smallest valid records: the count bound of `restore` must not refuse them.
    for (auto fairness : {admission_fairness::strict_fifo, admission_fairness::round_robin_users}) {
        admission_config c = manual();
        c.fairness = fairness;
        admission_queue q(c);
        REQUIRE_FALSE(q.submit("1", "u", prio::normal, shared_bytes(), 1).error);
        REQUIRE_FALSE(q.submit("2", "u", prio::normal, shared_bytes(), 2).error);
        admission_queue restored(c);
        REQUIRE_FALSE(restored.restore(q.snapshot()));
        CHECK(restored == q);
        CHECK(restored.pending_count() == 2);
        const admission_queue copy = q; // copies go through a snapshot too
        CHECK(copy == q);

        // Running ones too, with nothing else in the snapshot after them.
        admission_queue running(c);
        REQUIRE_FALSE(running.submit("1", "u", prio::normal, shared_bytes(), 1).error);
        REQUIRE_FALSE(running.submit("2", "v", prio::normal, shared_bytes(), 1).error);
        REQUIRE_FALSE(running.dispatch("1", 2));
        REQUIRE_FALSE(running.dispatch("2", 2));
        admission_queue restored_running(c);
        REQUIRE_FALSE(restored_running.restore(running.snapshot()));
        CHECK(restored_running == running);
        CHECK(restored_running.running_count() == 2);
    }
}

TEST_CASE("admission_queue: a damaged or truncated snapshot is refused and changes nothing") {
    admission_config c = manual();
    admission_queue q(c);
    submit(q, "mine", "me", prio::low, 5);
    admission_queue other(c);
    submit(other, "a", "u", prio::high, 1);
    submit(other, "b", "v", prio::low, 2);
    REQUIRE_FALSE(other.dispatch("a", 3));
    submit(other, "c", "u", prio::low, 4);
    REQUIRE_FALSE(other.cancel("c", 4));
    synod::test::check_refuses_damaged_snapshots(q, other.snapshot());
    CHECK(q.state_of("mine") == execution_state::pending);
    CHECK_FALSE(q.state_of("a"));
}

/// A sealed snapshot of one pending execution, with fields to forge.
struct forged {
    std::uint8_t version = admission_queue::snapshot_version;
    std::uint64_t clock = 10;
    std::uint64_t next_seq = 1;
    std::string user = "u";
    std::string listed_user = "u";
    std::uint8_t priority = 2;
    std::uint64_t round = 0;
    std::uint64_t seq = 0;
    std::uint64_t submitted_at = 5;
    std::uint32_t finished = 0;

    [[nodiscard]] shared_bytes bytes() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(version);
        w.put(clock);
        w.put(next_seq);
        for (int i = 0; i < 5; ++i) {
            w.put(std::uint64_t{0});
        }
        w.put(std::uint32_t{1});
        machines::detail::put_string(w, listed_user);
        for (int i = 0; i < 5; ++i) {
            w.put(std::uint64_t{0});
        }
        w.put(std::uint32_t{1}); // pending
        machines::detail::put_string(w, "e");
        machines::detail::put_string(w, user);
        w.put(priority);
        w.put(round);
        w.put(seq);
        w.put(submitted_at);
        w.put(std::uint64_t{0}); // dispatched_at
        w.put(std::uint64_t{0}); // position
        w.put(std::uint32_t{0}); // payload
        w.put(std::uint32_t{0}); // running
        w.put(finished);
        if (finished == 1) {
            machines::detail::put_string(w, "e"); // the same id again
            w.put(std::uint32_t{0});
            w.put(std::uint64_t{0});
            w.put(static_cast<std::uint8_t>(kind::completed));
            w.put(std::uint8_t{1});
            w.put(std::uint64_t{6});
        }
        return machines::detail::seal(out);
    }
};

TEST_CASE("admission_queue: a sealed snapshot that no commands could produce is refused") {
    admission_queue q(manual());
    REQUIRE_FALSE(q.restore(forged{}.bytes())); // the baseline is good
    CHECK(q.state_of("e") == execution_state::pending);
    const admission_queue good = q;
    auto refused = [&](auto mutate) {
        forged f;
        mutate(f);
        CHECK(q.restore(f.bytes()) == errc::corrupt_snapshot);
        CHECK(q == good);
    };
    refused([](forged& f) { f.version = 2; });
    refused([](forged& f) { f.priority = 5; });
    refused([](forged& f) { f.seq = 1; });            // not below next_seq
    refused([](forged& f) { f.submitted_at = 11; });  // in the future
    refused([](forged& f) { f.user = "nobody"; });    // a user the table does not list
    refused([](forged& f) { f.listed_user = "zz"; }); // the execution's user is not listed
    refused([](forged& f) { f.round = 3; });          // rounds only with round-robin
    refused([](forged& f) { f.finished = 1; });       // the same id twice
}

// ---- randomized comparison with a reference model -------------------------------------------

/// The seed's rules written as plainly as possible: vectors and linear scans, no indexes.
class reference_queue {
public:
    explicit reference_queue(admission_config c)
        : c_(c) {}

    admission_queue::result_type submit(const std::string& id, const std::string& user,
                                        std::uint8_t priority, const std::string& payload,
                                        std::uint64_t now) {
        admission_queue::result_type out;
        events_ = &out.events;
        advance(now);
        if (id.empty()) {
            out.error = errc::missing_field;
        } else if (id.size() > admission_queue::max_id_bytes) {
            out.error = errc::field_too_large;
        } else if (const entry* e = find(id)) {
            out.error = e->rejection;
            out.position = e->position;
            out.duplicate = true;
        } else if (user.empty()) {
            out.error = errc::missing_field;
        } else if (user.size() > admission_queue::max_user_bytes) {
            out.error = errc::field_too_large;
        } else if (priority > 4) {
            out.error = errc::invalid_priority;
        } else if (count(state::pending) >= c_.max_queue_size ||
                   held_bytes() + payload.size() > c_.max_held_payload_bytes) {
            out.error = reject(id, user, priority, errc::queue_full);
        } else if (load(user) >= c_.max_per_user) {
            out.error = reject(id, user, priority, errc::user_limit);
        } else {
            entry e;
            e.id = id;
            e.user = user;
            e.priority = priority;
            e.payload = payload;
            e.seq = next_seq_++;
            e.submitted_at = clock_;
            if (c_.fairness == admission_fairness::round_robin_users) {
                auto& rounds = rounds_[user]; // live and held users: see release_idle()
                e.round = std::max(current_round_[priority], rounds[priority]);
                rounds[priority] = e.round + 1;
            } else {
                rounds_[user];
            }
            for (const entry& other : entries_) {
                if (other.st == state::pending && before(other, e)) {
                    ++e.position;
                }
            }
            entries_.push_back(e);
            record(kind::accepted, e, execution_state::pending);
            out.position = e.position;
        }
        pump();
        events_ = nullptr;
        return out;
    }

    admission_queue::result_type dispatch(const std::string& id, std::uint64_t now) {
        return with_entry(
            now,
            [&](entry* e) -> std::error_code {
                if (e == nullptr) {
                    return errc::unknown_execution;
                }
                if (e->st == state::finished) {
                    return errc::execution_finished;
                }
                if (e->st == state::running) {
                    return errc::already_dispatched;
                }
                if (count(state::running) >= c_.max_running || front() != e) {
                    return errc::not_ready;
                }
                start(*e);
                return {};
            },
            id);
    }

    admission_queue::result_type finish_running(const std::string& id, std::uint64_t now,
                                                kind outcome) {
        return with_entry(
            now,
            [&](entry* e) -> std::error_code {
                if (e == nullptr) {
                    return errc::unknown_execution;
                }
                if (e->st == state::finished) {
                    return errc::execution_finished;
                }
                if (e->st == state::pending) {
                    return errc::not_running;
                }
                finish(*e, outcome);
                return {};
            },
            id);
    }

    admission_queue::result_type cancel(const std::string& id, std::uint64_t now) {
        return with_entry(
            now,
            [&](entry* e) -> std::error_code {
                if (e == nullptr) {
                    return errc::unknown_execution;
                }
                if (e->st == state::finished) {
                    return errc::execution_finished;
                }
                finish(*e, kind::cancelled);
                return {};
            },
            id);
    }

    admission_queue::result_type tick(std::uint64_t now) {
        return with_entry(
            now, [](entry*) { return std::error_code{}; }, "");
    }

    [[nodiscard]] std::vector<std::string> ready(std::size_t limit) const {
        std::vector<const entry*> pending;
        for (const entry& e : entries_) {
            if (e.st == state::pending) {
                pending.push_back(&e);
            }
        }
        std::sort(pending.begin(), pending.end(),
                  [](const entry* a, const entry* b) { return before(*a, *b); });
        const std::size_t running = count(state::running);
        std::size_t room = running >= c_.max_running ? 0 : c_.max_running - running;
        std::vector<std::string> out;
        for (std::size_t i = 0; i < pending.size() && out.size() < std::min(room, limit); ++i) {
            out.push_back(pending[i]->id);
        }
        return out;
    }
    [[nodiscard]] std::size_t count_pending() const { return count(state::pending); }
    [[nodiscard]] std::size_t count_running() const { return count(state::running); }
    [[nodiscard]] std::size_t count_retained() const { return finished_.size() + rejected_.size(); }

private:
    enum class state { pending, running, finished };
    struct entry {
        std::string id;
        std::string user;
        std::uint8_t priority = 0;
        std::string payload;
        std::uint64_t seq = 0;
        std::uint64_t round = 0;
        std::uint64_t submitted_at = 0;
        std::uint64_t dispatched_at = 0;
        std::uint64_t dispatch_order = 0;
        std::uint64_t position = 0;
        std::error_code rejection;
        state st = state::pending;
    };

    static bool before(const entry& a, const entry& b) {
        return std::tuple(a.priority, a.round, a.seq) < std::tuple(b.priority, b.round, b.seq);
    }

    template <class Op>
    admission_queue::result_type with_entry(std::uint64_t now, Op op, const std::string& id) {
        admission_queue::result_type out;
        events_ = &out.events;
        advance(now);
        out.error = op(find_mut(id));
        pump();
        events_ = nullptr;
        return out;
    }

    const entry* find(const std::string& id) const {
        for (const entry& e : entries_) {
            if (e.id == id) {
                return &e;
            }
        }
        for (const auto* list : {&finished_, &rejected_}) {
            for (const entry& e : *list) {
                if (e.id == id) {
                    return &e;
                }
            }
        }
        return nullptr;
    }
    entry* find_mut(const std::string& id) { return const_cast<entry*>(find(id)); }

    std::size_t count(state s) const {
        return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                      [s](const entry& e) { return e.st == s; }));
    }
    std::size_t load(const std::string& user) const {
        return static_cast<std::size_t>(std::count_if(
            entries_.begin(), entries_.end(), [&](const entry& e) { return e.user == user; }));
    }
    entry* front() {
        entry* best = nullptr;
        for (entry& e : entries_) {
            if (e.st == state::pending && (best == nullptr || before(e, *best))) {
                best = &e;
            }
        }
        return best;
    }

    std::error_code reject(const std::string& id, const std::string& user, std::uint8_t priority,
                           errc why) {
        entry e;
        e.id = id;
        e.priority = priority;
        e.rejection = why;
        e.st = state::finished;
        admission_event_record r;
        r.kind = kind::rejected;
        r.execution_id = id;
        r.user = user;
        r.priority = static_cast<prio>(priority);
        r.reason = why;
        r.at = clock_;
        events_->push_back(r);
        rejected_.push_back(e);
        trim();
        return why;
    }

    void record(kind k, const entry& e, execution_state from) {
        admission_event_record r;
        r.kind = k;
        r.execution_id = e.id;
        r.user = e.user;
        r.priority = static_cast<prio>(e.priority);
        r.at = clock_;
        if (k == kind::accepted) {
            r.position = e.position;
        }
        if (k == kind::dispatched) {
            r.payload = shared_bytes(e.payload);
        }
        if (k != kind::accepted && k != kind::dispatched) {
            r.from = from;
        }
        events_->push_back(r);
    }

    void advance(std::uint64_t now) {
        clock_ = std::max(clock_, now);
        const auto timeout = static_cast<std::uint64_t>(c_.stale_timeout.count());
        // Pending ones first, in submission order; then running ones, in dispatch order.
        for (bool again = true; again;) {
            again = false;
            entry* oldest = nullptr;
            for (entry& e : entries_) {
                if (e.st == state::pending && clock_ - e.submitted_at > timeout &&
                    (oldest == nullptr || e.seq < oldest->seq)) {
                    oldest = &e;
                }
            }
            if (oldest != nullptr) {
                finish(*oldest, kind::expired);
                again = true;
            }
        }
        for (bool again = true; again;) {
            again = false;
            entry* oldest = nullptr;
            for (entry& e : entries_) {
                if (e.st == state::running && clock_ - e.dispatched_at > timeout &&
                    (oldest == nullptr || e.dispatch_order < oldest->dispatch_order)) {
                    oldest = &e;
                }
            }
            if (oldest != nullptr) {
                finish(*oldest, kind::expired);
                again = true;
            }
        }
    }

    void pump() {
        if (!c_.auto_dispatch) {
            return;
        }
        while (count(state::running) < c_.max_running) {
            entry* e = front();
            if (e == nullptr) {
                return;
            }
            start(*e);
        }
    }

    void start(entry& e) {
        e.st = state::running;
        e.dispatched_at = clock_;
        e.dispatch_order = dispatches_++;
        current_round_[e.priority] = e.round;
        record(kind::dispatched, e, execution_state::running);
        release_idle();
    }

    void finish(entry& e, kind outcome) {
        record(outcome, e,
               e.st == state::pending ? execution_state::pending : execution_state::running);
        entry done = e;
        done.st = state::finished;
        const std::string user = e.user;
        entries_.erase(entries_.begin() + (&e - entries_.data()));
        release_idle();
        finished_.push_back(done);
        trim();
    }

    /// A user with nothing pending or running keeps its round at a priority only while that
    /// round is ahead of the one being served and others wait there: served in this round,
    /// it must not come back into it. Otherwise it is forgotten there (and, held nowhere,
    /// altogether).
    void release_idle() {
        for (auto it = rounds_.begin(); it != rounds_.end();) {
            if (load(it->first) != 0) {
                ++it;
                continue;
            }
            bool held = false;
            for (std::uint8_t p = 0; p < 5; ++p) {
                if (it->second[p] > current_round_[p] && pending_at(p) > 0) {
                    held = true;
                } else {
                    it->second[p] = 0;
                }
            }
            it = held ? std::next(it) : rounds_.erase(it);
        }
    }
    std::size_t held_bytes() const {
        std::size_t total = 0;
        for (const entry& e : entries_) {
            total += e.payload.size();
        }
        return total;
    }
    std::size_t pending_at(std::uint8_t p) const {
        return static_cast<std::size_t>(
            std::count_if(entries_.begin(), entries_.end(), [&](const entry& e) {
                return e.st == state::pending && e.priority == p;
            }));
    }

    void trim() {
        while (finished_.size() > c_.max_retained_decisions) {
            finished_.erase(finished_.begin());
        }
        while (rejected_.size() > c_.max_retained_rejections) {
            rejected_.erase(rejected_.begin());
        }
    }

    admission_config c_;
    std::uint64_t clock_ = 0;
    std::uint64_t next_seq_ = 0;
    std::uint64_t dispatches_ = 0;
    std::array<std::uint64_t, 5> current_round_{};
    std::map<std::string, std::array<std::uint64_t, 5>> rounds_;
    std::vector<entry> entries_;  // pending and running
    std::vector<entry> finished_; // finishing order
    std::vector<entry> rejected_; // likewise, apart
    std::vector<admission_event_record>* events_ = nullptr;
};

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v == nullptr ? fallback : std::strtoull(v, nullptr, 10);
}

/// Runs `ops` random operations on both and requires the same answers, events (so the same
/// dispatch order), counts and readiness after each; every so often the queue is replaced by
/// a restore of its own snapshot, which must carry on identically.
void compare_with_reference(std::uint64_t seed, std::size_t ops) {
    const std::string_view tiny_alphabet =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    std::mt19937_64 rng(seed);
    auto pick = [&](std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
    };
    admission_config c;
    c.max_queue_size = 1 + pick(40);
    c.max_per_user = 1 + pick(8);
    c.max_running = pick(3) == 0 ? admission_config::unlimited : 1 + pick(6);
    c.stale_timeout = std::chrono::milliseconds(50 + pick(2000));
    c.fairness =
        pick(2) == 0 ? admission_fairness::strict_fifo : admission_fairness::round_robin_users;
    c.auto_dispatch = pick(3) == 0;
    c.max_retained_decisions = 1 + pick(60);
    c.max_retained_rejections = 1 + pick(20);
    if (pick(3) == 0) {
        c.max_held_payload_bytes = 1 + pick(100);
    }
    // Some seeds use the smallest records a snapshot can hold: 1-byte ids and users, and
    // often empty payloads.
    const bool tiny = pick(3) == 0;
    CAPTURE(seed);
    CAPTURE(c.max_queue_size);
    CAPTURE(c.max_per_user);
    CAPTURE(c.max_running);
    CAPTURE(c.stale_timeout.count());
    CAPTURE(static_cast<int>(c.fairness));
    CAPTURE(c.auto_dispatch);
    CAPTURE(c.max_retained_decisions);
    CAPTURE(c.max_retained_rejections);
    CAPTURE(c.max_held_payload_bytes);
    CAPTURE(tiny);

    admission_queue q(c);
    reference_queue model(c);
    std::vector<std::string> ids;
    const std::uint64_t users = 1 + pick(10);
    std::uint64_t now = 0;
    std::uint64_t index = 0;
    auto some_id = [&]() -> std::string {
        if (ids.empty() || pick(20) == 0) {
            return "never-" + std::to_string(pick(1000));
        }
        // Mostly recent ids, sometimes any.
        const std::uint64_t window =
            std::min<std::uint64_t>(ids.size(), pick(4) == 0 ? ids.size() : 50);
        return ids[ids.size() - 1 - pick(window)];
    };

    for (std::size_t i = 0; i < ops; ++i) {
        CAPTURE(i);
        // Time mostly moves forward a little, sometimes a lot, sometimes (another leader's
        // clock) backwards.
        const auto step = pick(10);
        if (step < 7) {
            now += pick(static_cast<std::uint64_t>(c.stale_timeout.count()) / 10 + 1);
        } else if (step < 8) {
            now += pick(static_cast<std::uint64_t>(c.stale_timeout.count()) * 2);
        }
        const std::uint64_t stamp = step == 9 && now > 100 ? now - pick(100) : now;

        shared_bytes cmd;
        admission_queue::result_type expected;
        const auto what = pick(100);
        if (what < 40) {
            const bool fresh = pick(8) != 0;
            std::string id = !fresh ? some_id()
                             : tiny
                                 ? std::string(1, tiny_alphabet[ids.size() % tiny_alphabet.size()])
                                 : "e" + std::to_string(ids.size());
            if (pick(200) == 0) {
                id.clear();
            }
            if (fresh && !id.empty()) {
                ids.push_back(id);
            }
            std::string user = tiny ? std::string(1, static_cast<char>('a' + pick(users)))
                                    : "u" + std::to_string(pick(users));
            if (pick(200) == 0) {
                user.clear();
            }
            const auto priority = static_cast<std::uint8_t>(pick(200) == 0 ? 5 + pick(3) : pick(5));
            const std::string payload =
                tiny && pick(2) == 0 ? std::string() : "p" + std::to_string(i);
            cmd = admission_queue::encode_submit(id, user, static_cast<prio>(priority),
                                                 as_bytes(payload), stamp);
            expected = model.submit(id, user, priority, payload, stamp);
        } else if (what < 60) {
            const auto front = model.ready(1);
            const std::string id = !front.empty() && pick(4) != 0 ? front[0] : some_id();
            cmd = admission_queue::encode_dispatch(id, stamp);
            expected = model.dispatch(id, stamp);
        } else if (what < 75) {
            const std::string id = some_id();
            cmd = admission_queue::encode_complete(id, stamp);
            expected = model.finish_running(id, stamp, kind::completed);
        } else if (what < 82) {
            const std::string id = some_id();
            cmd = admission_queue::encode_fail(id, stamp);
            expected = model.finish_running(id, stamp, kind::failed);
        } else if (what < 95) {
            const std::string id = some_id();
            cmd = admission_queue::encode_cancel(id, stamp);
            expected = model.cancel(id, stamp);
        } else {
            cmd = admission_queue::encode_tick(stamp);
            expected = model.tick(stamp);
        }
        const auto actual = q.apply(command_entry(cmd, ++index));
        if (!(actual == expected)) {
            FAIL_CHECK("seed " << seed << " diverged at operation " << i << " (replay: SYNOD_SEED="
                               << seed << " synod_tests -tc=\"*reference model*\")");
            CHECK(actual.error == expected.error);
            CHECK(actual.position == expected.position);
            CHECK(actual.duplicate == expected.duplicate);
            REQUIRE(actual.events.size() == expected.events.size());
            for (std::size_t k = 0; k < actual.events.size(); ++k) {
                CAPTURE(k);
                CHECK(to_string(actual.events[k].kind) == to_string(expected.events[k].kind));
                CHECK(actual.events[k].execution_id == expected.events[k].execution_id);
                CHECK(actual.events[k].position == expected.events[k].position);
                CHECK(actual.events[k].user == expected.events[k].user);
                CHECK(actual.events[k].priority == expected.events[k].priority);
                CHECK(actual.events[k].reason == expected.events[k].reason);
                CHECK(actual.events[k].payload.str() == expected.events[k].payload.str());
                CHECK(actual.events[k].from == expected.events[k].from);
                CHECK(actual.events[k].at == expected.events[k].at);
                CHECK(actual.events[k] == expected.events[k]);
            }
            return;
        }
        REQUIRE(q.pending_count() == model.count_pending());
        REQUIRE(q.running_count() == model.count_running());
        REQUIRE(q.retained_count() == model.count_retained());
        std::vector<std::string> ready_now;
        for (auto id : q.ready_to_dispatch(3)) {
            ready_now.emplace_back(id);
        }
        REQUIRE(ready_now == model.ready(3));
        if (i % 997 == 0) {
            admission_queue restored(c);
            REQUIRE_FALSE(restored.restore(q.snapshot()));
            REQUIRE(restored == q);
            q = std::move(restored);
        }
    }
}

TEST_CASE("admission_queue: 100,000 random operations match the reference model") {
    // SYNOD_SEEDS=N runs N seeds (default 2); SYNOD_SEED=S replays seed S alone.
    if (std::getenv("SYNOD_SEED") != nullptr) {
        compare_with_reference(env_or("SYNOD_SEED", 0), 100'000);
        return;
    }
    const std::uint64_t seeds = env_or("SYNOD_SEEDS", 2);
    for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
        compare_with_reference(seed, 100'000);
    }
}

TEST_SUITE_END();

} // namespace
