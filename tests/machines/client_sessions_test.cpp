// machines::client_sessions (Raft thesis §6.3): exactly-once commands through sessions, alone
// (no Raft): each entry is applied as the node would apply it, in index order.

#include "support/counter_machine.hpp"
#include "support/machine_testing.hpp"

#include <doctest/doctest.h>

#include <synod/machines/client_sessions.hpp>
#include <synod/machines/detail/encoding.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

TEST_SUITE_BEGIN("machines");

using namespace synod;
using namespace synod::machines;
using namespace std::chrono_literals;
using test::counter_machine;
using sessions = client_sessions<counter_machine>;

/// Applies entries with increasing indexes, as a node would.
struct replica {
    sessions m;
    std::uint64_t index = 0;

    explicit replica(client_sessions_options o = {})
        : m(o) {}

    sessions::result_type apply(shared_bytes payload) {
        return m.apply(test::command_entry(std::move(payload), ++index));
    }
    std::uint64_t open(std::uint64_t now) {
        const auto r = apply(sessions::encode_register_session(now));
        REQUIRE_FALSE(r.error);
        return r.session;
    }
    sessions::result_type add(std::uint64_t session, std::uint64_t sequence, std::uint64_t now,
                              std::uint64_t n, std::uint64_t first_outstanding = 0) {
        return apply(sessions::encode_command(session, sequence,
                                              first_outstanding == 0 ? sequence : first_outstanding,
                                              now, counter_machine::encode_add(n)));
    }
    [[nodiscard]] std::uint64_t value() const { return m.inner().value; }
    [[nodiscard]] shared_bytes snap() const { return m.snapshot(); }
};

TEST_CASE("client_sessions: registration issues ids 1, 2, 3 and each session starts empty") {
    replica r;
    CHECK(r.m.last_session_id() == 0);
    const auto first = r.apply(sessions::encode_register_session(10));
    CHECK_FALSE(first.error);
    CHECK(first.session == 1);
    CHECK_FALSE(first.inner);
    CHECK(r.open(20) == 2);
    CHECK(r.open(30) == 3);
    CHECK(r.m.session_count() == 3);
    CHECK(r.m.last_session_id() == 3);
    const auto info = r.m.find(2);
    REQUIRE(info);
    CHECK(info->last_activity == 20);
    CHECK(info->first_outstanding == 1);
    CHECK(info->cached_results == 0);
    CHECK_FALSE(r.m.find(4));
    CHECK(r.m.replicated_time() == 30);
}

TEST_CASE("thesis §6.3: a command applies once; a retry returns the cached result and does not "
          "touch the machine") {
    replica r;
    const auto s = r.open(0);
    const auto first = r.add(s, 1, 5, 7);
    CHECK_FALSE(first.error);
    CHECK(first.session == s);
    REQUIRE(first.inner);
    CHECK(first.inner->value == 7);
    CHECK_FALSE(first.cached);

    const auto inner_before = shared_bytes(r.m.inner().snapshot());
    for (int retry = 0; retry < 3; ++retry) {
        const auto again = r.add(s, 1, 6 + retry, 7);
        CHECK_FALSE(again.error);
        CHECK(again.cached);
        REQUIRE(again.inner);
        CHECK(*again.inner == *first.inner);
    }
    CHECK(r.value() == 7);
    CHECK(r.m.inner().applied == 1);
    CHECK(shared_bytes(r.m.inner().snapshot()) == inner_before);

    // The next sequence applies.
    const auto second = r.add(s, 2, 10, 3, 1); // still awaiting 1
    REQUIRE(second.inner);
    CHECK(second.inner->value == 10);
    CHECK_FALSE(second.cached);
    CHECK(r.m.find(s)->cached_results == 2);
}

TEST_CASE("client_sessions: sessions are independent; the same sequence in two sessions applies "
          "twice") {
    replica r;
    const auto a = r.open(0);
    const auto b = r.open(0);
    CHECK(r.add(a, 1, 1, 1).inner->value == 1);
    CHECK(r.add(b, 1, 1, 1).inner->value == 2);
    CHECK(r.add(a, 1, 2, 1).inner->value == 1); // a's retry: a's own cached result
    CHECK(r.value() == 2);
}

TEST_CASE("client_sessions: a retry arriving after later sequences applied still gets its own "
          "result") {
    replica r;
    const auto s = r.open(0);
    // The client pipelines 1, 2, 3; 2 is lost and retried after 3 applied.
    CHECK(r.add(s, 1, 1, 1, 1).inner->value == 1);
    CHECK(r.add(s, 3, 1, 100, 1).inner->value == 101);
    const auto two = r.add(s, 2, 2, 10, 1);
    CHECK_FALSE(two.cached);
    CHECK(two.inner->value == 111);
    const auto three = r.add(s, 3, 3, 100, 1);
    CHECK(three.cached);
    CHECK(three.inner->value == 101);
    CHECK(r.value() == 111);
}

TEST_CASE("thesis §6.3: first_outstanding discards results below it; a retry below it is "
          "stale_sequence") {
    replica r;
    const auto s = r.open(0);
    for (std::uint64_t seq = 1; seq <= 4; ++seq) {
        REQUIRE_FALSE(r.add(s, seq, 1, 1, 1).error);
    }
    CHECK(r.m.find(s)->cached_results == 4);

    // Sequence 5 tells the machine the client has every result below 3.
    REQUIRE_FALSE(r.add(s, 5, 2, 1, 3).error);
    auto info = r.m.find(s);
    CHECK(info->first_outstanding == 3);
    CHECK(info->cached_results == 3); // 3, 4, 5

    const auto before = r.snap();
    const auto stale = r.add(s, 2, 3, 1, 2);
    CHECK(stale.error == errc::stale_sequence);
    CHECK(stale.session == s);
    CHECK_FALSE(stale.inner);
    CHECK(r.value() == 5);
    // Only the session's activity moved.
    CHECK(r.m.find(s)->last_activity == 3);
    CHECK(r.m.find(s)->cached_results == 3);

    // A lower first_outstanding than already acknowledged does not resurrect anything.
    CHECK(r.add(s, 4, 4, 1, 3).cached);
    CHECK(r.m.find(s)->first_outstanding == 3);
    // A retry of 3 is still answered.
    CHECK(r.add(s, 3, 5, 1, 3).inner->value == 3);
}

TEST_CASE("client_sessions: a session expires by replicated time, not by any clock") {
    replica r({.session_timeout = 1000ms});
    const auto a = r.open(0);
    const auto b = r.open(0);
    REQUIRE_FALSE(r.add(a, 1, 500, 1).error);
    // b last acted at 0: exactly the timeout later it is still live, and its keep-alive renews
    // it.
    REQUIRE_FALSE(r.apply(sessions::encode_keep_alive(b, 1000)).error);
    REQUIRE_FALSE(r.apply(sessions::encode_keep_alive(a, 1400)).error);
    // At 2001 b (last 1000) expires, a (1400) does not.
    REQUIRE_FALSE(r.add(a, 2, 2001, 1).error);
    CHECK_FALSE(r.m.find(b));
    CHECK(r.m.find(a));
    CHECK(r.m.session_count() == 1);

    const auto late = r.add(b, 1, 2002, 1);
    CHECK(late.error == errc::session_expired);
    CHECK(late.session == b);
    CHECK(r.apply(sessions::encode_keep_alive(b, 2003)).error == errc::session_expired);

    // Time never goes backwards: a command stamped earlier (another leader's clock) applies at
    // the replicated time, and does not revive anything.
    REQUIRE_FALSE(r.add(a, 3, 100, 1).error);
    CHECK(r.m.replicated_time() == 2003);
    CHECK(r.m.find(a)->last_activity == 2003);

    // Any command moves time: a registration far in the future expires a.
    const auto c = r.open(10'000);
    CHECK_FALSE(r.m.find(a));
    CHECK(r.add(a, 4, 10'000, 1).error == errc::session_expired);
    CHECK(r.add(c, 1, 10'000, 1).inner->value == 4);
}

TEST_CASE("client_sessions: a command on a session never issued is unknown_session") {
    replica r;
    const auto s = r.open(0);
    for (const std::uint64_t id : {std::uint64_t{0}, s + 1, std::uint64_t{99}}) {
        const auto out = r.add(id, 1, 1, 1);
        CHECK(out.error == errc::unknown_session);
        CHECK(r.apply(sessions::encode_keep_alive(id, 1)).error == errc::unknown_session);
        CHECK(r.apply(sessions::encode_close_session(id, 1)).error == errc::unknown_session);
    }
    CHECK(r.value() == 0);
}

TEST_CASE("client_sessions: a closed session is gone; a retried close is session_expired") {
    replica r;
    const auto s = r.open(0);
    REQUIRE_FALSE(r.add(s, 1, 1, 1).error);
    const auto closed = r.apply(sessions::encode_close_session(s, 2));
    CHECK_FALSE(closed.error);
    CHECK(closed.session == s);
    CHECK_FALSE(r.m.find(s));
    CHECK(r.apply(sessions::encode_close_session(s, 3)).error == errc::session_expired);
    CHECK(r.add(s, 1, 4, 1).error == errc::session_expired);
    CHECK(r.value() == 1);
    // Ids are not reused.
    CHECK(r.open(5) == s + 1);
}

TEST_CASE("client_sessions: bad sequence numbers are invalid_argument and apply nothing") {
    replica r;
    const auto s = r.open(0);
    CHECK(r.apply(sessions::encode_command(s, 0, 0, 1, counter_machine::encode_add(1))).error ==
          errc::invalid_argument);
    CHECK(r.apply(sessions::encode_command(s, 3, 0, 1, counter_machine::encode_add(1))).error ==
          errc::invalid_argument);
    CHECK(r.apply(sessions::encode_command(s, 3, 4, 1, counter_machine::encode_add(1))).error ==
          errc::invalid_argument);
    CHECK(r.value() == 0);
    CHECK(r.m.find(s)->cached_results == 0);
}

TEST_CASE("client_sessions: the wrapped machine's own rejection is a result, cached like any "
          "other") {
    replica r;
    const auto s = r.open(0);
    const auto bad = r.apply(sessions::encode_command(s, 1, 1, 1, as_bytes("oops")));
    CHECK_FALSE(bad.error);
    REQUIRE(bad.inner);
    CHECK(bad.inner->error == errc::invalid_argument);
    const auto again = r.apply(sessions::encode_command(s, 1, 1, 2, as_bytes("oops")));
    CHECK(again.cached);
    CHECK(*again.inner == *bad.inner);
    CHECK(r.m.inner().applied == 1);
}

TEST_CASE("client_sessions: max_sessions refuses registrations until a session goes") {
    replica r({.session_timeout = 1000ms, .max_sessions = 2});
    const auto a = r.open(0);
    r.open(500);
    const auto full = r.apply(sessions::encode_register_session(600));
    CHECK(full.error == errc::too_many_sessions);
    CHECK(full.session == 0);
    CHECK(r.m.session_count() == 2);
    CHECK(r.m.last_session_id() == 2);

    REQUIRE_FALSE(r.apply(sessions::encode_close_session(a, 700)).error);
    CHECK(r.open(800) == 3);
    // Expiry frees room too: at 1501 the session registered at 500 expires.
    CHECK(r.apply(sessions::encode_register_session(1400)).error == errc::too_many_sessions);
    CHECK(r.open(1501) == 4);
}

TEST_CASE("client_sessions: max_results_per_session refuses new sequences, not retries, until "
          "the client acknowledges") {
    replica r({.max_results_per_session = 2});
    const auto s = r.open(0);
    REQUIRE_FALSE(r.add(s, 1, 1, 1, 1).error);
    REQUIRE_FALSE(r.add(s, 2, 1, 1, 1).error);
    const auto full = r.add(s, 3, 1, 1, 1);
    CHECK(full.error == errc::too_many_outstanding);
    CHECK_FALSE(full.inner);
    CHECK(r.value() == 2);
    // Retries are still answered from the cache.
    CHECK(r.add(s, 2, 1, 1, 1).cached);
    // The refusal was not an application: once 1 is acknowledged, 3 applies.
    const auto three = r.add(s, 3, 2, 1, 2);
    CHECK_FALSE(three.error);
    CHECK_FALSE(three.cached);
    CHECK(three.inner->value == 3);
}

shared_bytes bytes_of(std::initializer_list<int> values) {
    byte_vector out;
    for (int v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return shared_bytes(byte_span(out));
}

shared_bytes with_trailing_byte(const shared_bytes& b) {
    byte_vector out(b.data(), b.data() + b.size());
    out.push_back(std::byte{0});
    return shared_bytes(byte_span(out));
}

shared_bytes prefix(const shared_bytes& b, std::size_t n) {
    return shared_bytes(b.span().first(n));
}

TEST_CASE("client_sessions: every malformed command is an error result and changes nothing") {
    replica r;
    const auto s = r.open(7);
    REQUIRE_FALSE(r.add(s, 1, 8, 1).error);
    const auto command = sessions::encode_command(s, 2, 1, 9, counter_machine::encode_add(1));
    const auto keep_alive = sessions::encode_keep_alive(s, 9);
    const auto close = sessions::encode_close_session(s, 9);
    const auto registration = sessions::encode_register_session(9);

    struct bad {
        std::string what;
        shared_bytes payload;
        errc expected;
    };
    std::vector<bad> cases{
        {"empty", {}, errc::truncated_input},
        {"version only", bytes_of({1}), errc::truncated_input},
        {"version 2", bytes_of({2, 1, 0, 0, 0, 0, 0, 0, 0, 0}), errc::unknown_version},
        {"version 0", bytes_of({0, 1, 0, 0, 0, 0, 0, 0, 0, 0}), errc::unknown_version},
        {"op 0", bytes_of({1, 0, 0, 0, 0, 0, 0, 0, 0, 0}), errc::unknown_message_type},
        {"op 5", bytes_of({1, 5, 0, 0, 0, 0, 0, 0, 0, 0}), errc::unknown_message_type},
    };
    for (const auto& [name, good] :
         {std::pair{"register", registration}, std::pair{"command", command},
          std::pair{"keep_alive", keep_alive}, std::pair{"close", close}}) {
        for (std::size_t n = 2; n < good.size(); ++n) {
            cases.push_back({std::string(name) + " cut at " + std::to_string(n), prefix(good, n),
                             errc::truncated_input});
        }
        cases.push_back(
            {std::string(name) + " + 1 byte", with_trailing_byte(good), errc::length_mismatch});
    }
    // A payload length beyond the bytes present.
    byte_vector long_payload(command.data(), command.data() + command.size());
    long_payload[2 + 32] = std::byte{0xff};
    cases.push_back(
        {"payload length too large", shared_bytes(byte_span(long_payload)), errc::truncated_input});

    const auto before = r.snap();
    for (const auto& c : cases) {
        INFO(c.what);
        const auto out = r.apply(c.payload);
        CHECK(out.error == c.expected);
        CHECK_FALSE(out.inner);
        CHECK(r.snap() == before);
    }
    CHECK(r.m.replicated_time() == 8);
}

TEST_CASE("client_sessions: the error code codec round-trips synod and generic codes and refuses "
          "others") {
    for (const std::error_code ec : {std::error_code{}, make_error_code(errc::stale_sequence),
                                     std::make_error_code(std::errc::invalid_argument)}) {
        byte_vector out;
        wire::byte_writer w(out);
        put_error_code(w, ec);
        wire::byte_reader r{byte_span(out)};
        CHECK(get_error_code(r) == ec);
        CHECK(r.ok());
        CHECK(r.remaining() == 0);
    }
    for (const auto& bad : {bytes_of({3, 0, 0, 0, 0}), bytes_of({0, 1, 0, 0, 0})}) {
        wire::byte_reader r(bad.span());
        (void)get_error_code(r);
        CHECK(r.error() == errc::value_out_of_range);
    }
}

TEST_CASE("client_sessions: snapshot and restore carry sessions, cached results, time and the "
          "machine") {
    replica r({.session_timeout = 1000ms});
    const auto a = r.open(0);
    const auto b = r.open(10);
    const auto closed = r.open(20);
    REQUIRE_FALSE(r.apply(sessions::encode_close_session(closed, 30)).error);
    const auto first = r.add(a, 1, 40, 5, 1);
    REQUIRE_FALSE(r.add(a, 2, 50, 6, 1).error);
    REQUIRE_FALSE(r.apply(sessions::encode_command(b, 1, 1, 60, as_bytes("bad"))).error);

    replica restored({.session_timeout = 1000ms});
    REQUIRE_FALSE(restored.m.restore(r.snap()));
    CHECK(restored.snap() == r.snap());
    CHECK(restored.m.replicated_time() == 60);
    CHECK(restored.m.last_session_id() == 3);
    CHECK(restored.value() == 11);
    CHECK(restored.m.find(a)->cached_results == 2);
    CHECK(restored.m.find(b)->last_activity == 60);

    // The restored replica answers retries from the cache and keeps issuing new ids.
    restored.index = r.index;
    const auto retry = restored.add(a, 1, 70, 5, 1);
    CHECK(retry.cached);
    CHECK(*retry.inner == *first.inner);
    CHECK(restored.add(closed, 1, 70, 1).error == errc::session_expired);
    CHECK(restored.open(70) == 4);
    CHECK(restored.value() == 11);

    // An empty table round-trips too, replacing everything.
    replica fresh;
    REQUIRE_FALSE(restored.m.restore(fresh.snap()));
    CHECK(restored.snap() == fresh.snap());
}

TEST_CASE("client_sessions: a damaged or truncated snapshot is refused and changes nothing") {
    replica r;
    const auto s = r.open(0);
    REQUIRE_FALSE(r.add(s, 1, 1, 2).error);
    replica other;
    const auto o = other.open(5);
    REQUIRE_FALSE(other.add(o, 1, 6, 3).error);
    REQUIRE_FALSE(other.add(o, 2, 7, 4).error);
    other.open(8);
    const auto before = r.snap();
    test::check_refuses_damaged_snapshots(r.m, other.snap());
    CHECK(r.snap() == before);
}

/// A sealed snapshot written field by field, to forge states no command sequence produces.
struct forged_session {
    std::uint64_t id;
    std::uint64_t last_activity;
    std::uint64_t first_outstanding;
    std::vector<std::uint64_t> sequences;
};

shared_bytes forge(std::uint64_t clock, std::uint64_t last_issued,
                   const std::vector<forged_session>& table, byte_span inner,
                   std::uint8_t version = 1) {
    byte_vector out;
    wire::byte_writer w(out);
    w.put(version);
    w.put(clock);
    w.put(last_issued);
    w.put(static_cast<std::uint32_t>(table.size()));
    for (const auto& s : table) {
        w.put(s.id);
        w.put(s.last_activity);
        w.put(s.first_outstanding);
        w.put(static_cast<std::uint32_t>(s.sequences.size()));
        for (auto seq : s.sequences) {
            w.put(seq);
            byte_vector result;
            wire::byte_writer rw(result);
            counter_machine::encode_result(rw, {{}, seq});
            w.put(static_cast<std::uint32_t>(result.size()));
            w.put_bytes(byte_span(result));
        }
    }
    w.put(static_cast<std::uint32_t>(inner.size()));
    w.put_bytes(inner);
    return machines::detail::seal(out);
}

TEST_CASE("client_sessions: a well-sealed snapshot of an impossible state is refused") {
    const shared_bytes inner(counter_machine{}.snapshot());
    replica r;
    REQUIRE_FALSE(r.m.restore(forge(10, 2, {{1, 5, 1, {1, 2}}, {2, 10, 3, {3}}}, inner)));
    const auto before = r.snap();

    struct bad {
        const char* what;
        shared_bytes bytes;
    };
    const std::vector<bad> cases{
        {"version 2", forge(10, 2, {{1, 5, 1, {}}}, inner, 2)},
        {"id above the last issued", forge(10, 1, {{2, 5, 1, {}}}, inner)},
        {"id 0", forge(10, 1, {{0, 5, 1, {}}}, inner)},
        {"ids out of order", forge(10, 3, {{2, 5, 1, {}}, {1, 5, 1, {}}}, inner)},
        {"repeated id", forge(10, 3, {{2, 5, 1, {}}, {2, 5, 1, {}}}, inner)},
        {"activity after replicated time", forge(10, 1, {{1, 11, 1, {}}}, inner)},
        {"first_outstanding 0", forge(10, 1, {{1, 5, 0, {}}}, inner)},
        {"result below first_outstanding", forge(10, 1, {{1, 5, 3, {2}}}, inner)},
        {"results out of order", forge(10, 1, {{1, 5, 1, {3, 2}}}, inner)},
        {"inner machine refuses", forge(10, 1, {{1, 5, 1, {}}}, as_bytes("short"))},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        CHECK(r.m.restore(c.bytes) == errc::corrupt_snapshot);
        CHECK(r.snap() == before);
    }
}

TEST_CASE(
    "client_sessions: randomized, a replica restored from a snapshot midway stays identical") {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        INFO("seed " << seed);
        std::mt19937_64 rng(seed);
        const client_sessions_options o{
            .session_timeout = 200ms, .max_sessions = 4, .max_results_per_session = 3};
        replica a(o);
        replica b(o);
        std::uint64_t now = 0;
        std::vector<std::uint64_t> next_sequence(64, 1);
        const int steps = 400;
        for (int step = 0; step < steps; ++step) {
            if (step == steps / 2) {
                replica c(o);
                REQUIRE_FALSE(c.m.restore(b.snap()));
                c.index = b.index;
                b = std::move(c);
            }
            // Leaders' clocks disagree: time mostly advances, sometimes steps back.
            now =
                rng() % 8 == 0 ? now - std::min<std::uint64_t>(now, rng() % 50) : now + rng() % 60;
            const std::uint64_t session = rng() % 8;
            auto& seq = next_sequence[session];
            shared_bytes payload;
            switch (rng() % 9) {
            case 0:
                payload = sessions::encode_register_session(now);
                break;
            case 1:
                payload = sessions::encode_keep_alive(session, now);
                break;
            case 2:
                payload = sessions::encode_close_session(session, now);
                break;
            case 3: { // a retry of an earlier sequence
                const std::uint64_t s =
                    seq > 1 ? seq - 1 - rng() % std::min<std::uint64_t>(seq - 1, 4) : 1;
                payload =
                    sessions::encode_command(session, s, s, now, counter_machine::encode_add(s));
                break;
            }
            case 4: { // garbage
                byte_vector junk(rng() % 12);
                for (auto& byte : junk) {
                    byte = static_cast<std::byte>(rng() % 3);
                }
                payload = shared_bytes(byte_span(junk));
                break;
            }
            default: {
                const std::uint64_t first = seq - std::min<std::uint64_t>(seq - 1, rng() % 4);
                payload = sessions::encode_command(session, seq, first, now,
                                                   counter_machine::encode_add(seq));
                ++seq;
            }
            }
            const auto ra = a.apply(payload);
            const auto rb = b.apply(payload);
            REQUIRE(ra == rb);
        }
        CHECK(a.snap() == b.snap());
        CHECK(a.value() == b.value());
    }
}

TEST_CASE("session_client: hands out sequences and reports the lowest one still awaited") {
    session_client client(7);
    CHECK(client.session() == 7);
    CHECK(client.first_outstanding() == 1);
    const auto one = client.next(0, as_bytes("a"));
    const auto two = client.next(0, as_bytes("b"));
    const auto three = client.next(0, as_bytes("c"));
    CHECK(one.sequence == 1);
    CHECK(three.sequence == 3);
    CHECK(client.outstanding() == 3);
    CHECK(client.first_outstanding() == 1);
    client.completed(2);
    CHECK(client.first_outstanding() == 1);
    client.completed(1);
    CHECK(client.first_outstanding() == 3);
    client.completed(3);
    CHECK(client.first_outstanding() == 4);
    CHECK(client.next_sequence() == 4);

    // Its commands drive a machine: the retry of an answered-but-unacknowledged sequence is
    // served from the cache, and acknowledgements let the machine discard.
    replica r;
    session_client c(r.open(0));
    const auto add = counter_machine::encode_add(1);
    const auto req1 = c.next(1, add);
    const auto req2 = c.next(1, add);
    CHECK(r.apply(req1.command).inner->value == 1);
    CHECK(r.apply(req2.command).inner->value == 2);
    CHECK(r.apply(c.retry(req1.sequence, 2, add)).cached);
    c.completed(req1.sequence);
    c.completed(req2.sequence);
    const auto req3 = c.next(3, add);
    CHECK(r.apply(req3.command).inner->value == 3);
    CHECK(r.m.find(c.session())->first_outstanding == 3);
    CHECK(r.m.find(c.session())->cached_results == 1);
}

TEST_SUITE_END();

} // namespace
