// How to test your own replicated state machine with synod's simulator, in a doctest test of
// your own: build a 3-node cluster of it, inject faults, record what clients saw, and check
// that history for linearizability against a sequential model of your machine.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <synod/synod.hpp>

#include <string>

namespace {

using namespace synod;
using namespace std::chrono_literals;

/// Your machine: a counter that can be incremented and read. Commands are one byte.
struct counter {
    struct result_type {
        std::uint64_t value = 0;
    };
    std::uint64_t value = 0;

    result_type apply(const log_entry& e) {
        if (e.payload.str() == "+") {
            ++value;
        }
        return {value};
    }
    [[nodiscard]] shared_bytes snapshot() const { return shared_bytes(std::to_string(value)); }
    std::error_code restore(byte_span b) {
        value = std::stoull(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
        return {};
    }
};

/// Its sequential specification, for the linearizability checker.
struct counter_model {
    struct input {
        bool increment = false;
    };
    struct output {
        std::uint64_t value = 0;
    };
    using state = std::uint64_t;
    static state initial() { return 0; }
    static std::optional<state> step(state s, const input& in, const std::optional<output>& out) {
        const state next = in.increment ? s + 1 : s;
        if (out && out->value != next) {
            return std::nullopt;
        }
        return next;
    }
    static int partition(const input&) { return 0; } // one object
    static std::string describe(const input& in, const std::optional<output>& out) {
        return std::string(in.increment ? "inc" : "read") +
               (out ? "->" + std::to_string(out->value) : " (unknown)");
    }
};

TEST_CASE("my counter stays linearizable while its leader crashes and the network drops "
          "messages") {
    sim::cluster_options options;
    options.size = 3;
    options.seed = 42; // a failure prints this seed; rerunning with it replays the run exactly
    options.min_latency = 1ms;
    options.max_latency = 10ms;
    sim::cluster<counter> c(options);
    c.network().set_faults({.drop = 0.05, .duplicate = 0.02});
    c.start_all();

    std::vector<sim::operation<counter_model>> history;
    node_id crashed = no_node;
    for (int i = 0; i < 60; ++i) {
        auto leader = c.wait_for_leader();
        REQUIRE(leader);
        const bool increment = i % 3 != 0;
        sim::operation<counter_model> op{
            0, {increment}, std::nullopt, c.world().now(), std::nullopt};
        auto slot = c.propose(*leader, increment ? "+" : "?");
        c.run_until([&] { return slot->has_value(); }, 1s);
        if (slot->has_value() && !(*slot)->error) {
            op.output = counter_model::output{(*slot)->value->value};
            op.returned = c.world().now();
        } else if (slot->has_value() && (*slot)->index == log_index{}) {
            continue; // refused before it was appended: it never happened
        }
        history.push_back(op); // unknown outcomes stay open-ended
        if (i == 30) {
            crashed = *leader;
            c.crash(crashed); // the leader dies mid-run...
        }
        if (i == 40) {
            REQUIRE_FALSE(c.start(crashed)); // ...and comes back with what it had flushed
        }
    }
    // The invariant checker ran after every event; now check what the clients saw.
    auto verdict = sim::check_linearizable(history);
    INFO(verdict.explanation);
    CHECK(verdict.linearizable);
}

} // namespace
