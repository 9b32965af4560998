// The linearizability checker against hand-written histories (each anomaly it must catch)
// and against a brute-force search over every order of thousands of small random histories.

#include <doctest/doctest.h>

#include <synod/sim/kv_model.hpp>
#include <synod/sim/linearizability.hpp>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>

namespace {

using namespace synod;
using sim::kv_model;
using op = sim::operation<kv_model>;
using kind = kv_model::kind;

sim::time_point at(int ms) {
    return sim::time_point(std::chrono::milliseconds(ms));
}

op put(std::string key, std::string value, int call, int ret) {
    return {0,
            {kind::put, std::move(key), std::move(value), {}},
            kv_model::output{},
            at(call),
            at(ret)};
}
op get(std::string key, std::optional<std::string> seen, int call, int ret) {
    return {0,
            {kind::get, std::move(key), {}, {}},
            kv_model::output{std::move(seen), true},
            at(call),
            at(ret)};
}
op cas(std::string key, std::string expected, std::string value, bool ok, int call, int ret) {
    return {0,
            {kind::cas, std::move(key), std::move(value), std::move(expected)},
            kv_model::output{std::nullopt, ok},
            at(call),
            at(ret)};
}
op unknown(op o) {
    o.output.reset();
    o.returned.reset();
    return o;
}

bool linearizable(const std::vector<op>& h) {
    return sim::check_linearizable(h).linearizable;
}

TEST_CASE("linearizability: sequential and overlapping histories that are linearizable") {
    CHECK(linearizable({}));
    CHECK(linearizable({put("x", "1", 0, 1), get("x", "1", 2, 3)}));
    CHECK(linearizable({get("x", std::nullopt, 0, 1), put("x", "1", 2, 3)}));
    // Overlapping: the read may take effect before or after the write.
    CHECK(linearizable({put("x", "1", 0, 10), get("x", std::nullopt, 1, 2)}));
    CHECK(linearizable({put("x", "1", 0, 10), get("x", "1", 1, 2)}));
    CHECK(linearizable({put("x", "1", 0, 1), cas("x", "1", "2", true, 2, 3), get("x", "2", 4, 5)}));
}

TEST_CASE("linearizability: a stale read is caught") {
    // The write finished before the read began, yet the read saw the old value.
    auto r = sim::check_linearizable<kv_model>(
        {put("x", "1", 0, 1), put("x", "2", 2, 3), get("x", "1", 4, 5)});
    CHECK_FALSE(r.linearizable);
    CHECK(r.partition == "x");
    CHECK(r.explanation.find("partition x") != std::string::npos);
}

TEST_CASE("linearizability: a lost write is caught") {
    // A successful cas from 1 to 2, after which a read still sees 1 and a later cas from 2
    // fails: the acknowledged swap vanished.
    CHECK_FALSE(
        linearizable({put("x", "1", 0, 1), cas("x", "1", "2", true, 2, 3), get("x", "1", 4, 5)}));
    CHECK_FALSE(linearizable({put("x", "1", 0, 1), get("x", std::nullopt, 2, 3)}));
}

TEST_CASE("linearizability: reordered writes are caught") {
    // put 1 strictly precedes put 2, but reads observe 2 then 1.
    CHECK_FALSE(linearizable(
        {put("x", "1", 0, 1), put("x", "2", 2, 3), get("x", "2", 4, 5), get("x", "1", 6, 7)}));
    // Two readers disagree on the order of two concurrent writes.
    CHECK_FALSE(linearizable({put("x", "1", 0, 10), put("x", "2", 0, 10), get("x", "1", 11, 12),
                              get("x", "2", 13, 14), get("x", "1", 15, 16)}));
}

TEST_CASE("linearizability: an operation with unknown outcome may or may not have happened") {
    CHECK(linearizable({unknown(put("x", "1", 0, 1)), get("x", std::nullopt, 5, 6)}));
    CHECK(linearizable({unknown(put("x", "1", 0, 1)), get("x", "1", 5, 6)}));
    // ...but not before its call.
    CHECK_FALSE(linearizable({get("x", "1", 0, 1), unknown(put("x", "1", 2, 3))}));
}

TEST_CASE("linearizability: keys are checked independently; the failing key is named") {
    auto r = sim::check_linearizable<kv_model>(
        {put("a", "1", 0, 1), get("a", "1", 2, 3), put("b", "1", 0, 1), get("b", "2", 2, 3)});
    CHECK_FALSE(r.linearizable);
    CHECK(r.partition == "b");
}

// --- brute force ------------------------------------------------------------------------------

/// Tries every order of every subset that keeps all operations with a known outcome.
bool brute_force(const std::vector<op>& h) {
    const std::size_t n = h.size();
    std::vector<std::size_t> unknowns;
    for (std::size_t i = 0; i < n; ++i) {
        if (!h[i].returned) {
            unknowns.push_back(i);
        }
    }
    for (std::size_t mask = 0; mask < (std::size_t{1} << unknowns.size()); ++mask) {
        std::vector<std::size_t> chosen;
        for (std::size_t i = 0; i < n; ++i) {
            auto u = std::find(unknowns.begin(), unknowns.end(), i);
            if (u == unknowns.end() ||
                (mask >> static_cast<std::size_t>(u - unknowns.begin()) & 1U) != 0) {
                chosen.push_back(i);
            }
        }
        std::sort(chosen.begin(), chosen.end());
        do {
            bool ok = true;
            for (std::size_t a = 0; a < chosen.size() && ok; ++a) {
                for (std::size_t b = a + 1; b < chosen.size() && ok; ++b) {
                    const op& later = h[chosen[a]];
                    const op& earlier = h[chosen[b]];
                    // `earlier` is placed after `later` but returned before `later` was called.
                    ok = !(earlier.returned && *earlier.returned < later.call);
                }
            }
            kv_model::state s = kv_model::initial();
            for (std::size_t k = 0; k < chosen.size() && ok; ++k) {
                auto next = kv_model::step(s, h[chosen[k]].input, h[chosen[k]].output);
                ok = next.has_value();
                if (ok) {
                    s = *next;
                }
            }
            if (ok) {
                return true;
            }
        } while (std::next_permutation(chosen.begin(), chosen.end()));
    }
    return false;
}

std::vector<op> random_history(std::mt19937_64& rng, bool by_construction) {
    const std::size_t n = 2 + rng() % 5;
    const char* values[] = {"a", "b", "c"};
    std::vector<op> h;
    std::vector<int> points;
    for (std::size_t i = 0; i < n; ++i) {
        const int call = static_cast<int>(rng() % 20);
        const int ret = call + 1 + static_cast<int>(rng() % 10);
        op o;
        o.call = at(call);
        o.returned = at(ret);
        switch (rng() % 3) {
        case 0:
            o.input = {kind::put, "k", values[rng() % 3], {}};
            o.output = kv_model::output{};
            break;
        case 1:
            o.input = {kind::get, "k", {}, {}};
            o.output = kv_model::output{
                rng() % 4 == 0 ? std::nullopt : std::optional<std::string>(values[rng() % 3]),
                true};
            break;
        default:
            o.input = {kind::cas, "k", values[rng() % 3], values[rng() % 3]};
            o.output = kv_model::output{std::nullopt, rng() % 2 == 0};
            break;
        }
        h.push_back(o);
        points.push_back(call + static_cast<int>(rng() % static_cast<unsigned>(ret - call)));
    }
    if (by_construction) {
        // Execute at distinct linearization points inside each interval: the outputs then
        // come from a real sequential run, so the history is linearizable.
        std::vector<std::size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return points[a] != points[b] ? points[a] < points[b] : a < b;
        });
        kv_model::state s = kv_model::initial();
        for (std::size_t i : order) {
            auto& o = h[i];
            if (o.input.op == kind::get) {
                o.output->value = s;
            } else if (o.input.op == kind::cas) {
                o.output->ok = s && *s == o.input.expected;
            }
            s = *kv_model::step(s, o.input, std::nullopt);
        }
    }
    if (rng() % 8 == 0) {
        h[rng() % n].output.reset();
        for (auto& o : h) {
            if (!o.output) {
                o.returned.reset();
            }
        }
    }
    return h;
}

TEST_CASE("linearizability: agrees with brute force on thousands of small random histories") {
    std::uint64_t count = 4000;
    if (const char* env = std::getenv("SYNOD_SEEDS")) {
        count = std::max<std::uint64_t>(count, std::strtoull(env, nullptr, 10));
    }
    std::mt19937_64 rng(2026);
    std::size_t yes = 0;
    std::size_t no = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        const bool constructed = i % 2 == 0;
        auto h = random_history(rng, constructed);
        const bool expected = brute_force(h);
        if (constructed) {
            REQUIRE_MESSAGE(expected, "brute force rejects a history built linearizable, #" << i);
        }
        const bool got = linearizable(h);
        REQUIRE_MESSAGE(got == expected, "history #" << i << ": checker says " << got
                                                     << ", brute force says " << expected);
        (expected ? yes : no)++;
    }
    CHECK(yes > count / 3); // both answers are well represented
    CHECK(no > count / 10);
}

} // namespace
