#pragma once

// One raft::node in isolation, driven by hand the way etcd-io/raft's paper tests drive theirs:
// the test delivers messages, moves virtual time, and reads back what the node sent.

#include "support/append_machine.hpp"

#include <doctest/doctest.h>

#include <synod/raft/node.hpp>
#include <synod/sim/process.hpp>
#include <synod/storage/memory_log.hpp>

#include <memory>
#include <vector>

namespace synod::test {

struct capture_transport {
    std::vector<message>* out;
    void send(node_id, message m) { out->push_back(std::move(m)); }
};

class node_harness {
public:
    using node_type = raft::node<storage::memory_log, capture_transport, sim::virtual_clock,
                                 sim::process_scheduler, append_machine>;

    explicit node_harness(node_id id,
                          std::vector<node_id> voters = {node_id{1}, node_id{2}, node_id{3}})
        : clock_(world)
        , scheduler_(world, world.add_owner()) {
        config.id = id;
        config.initial_membership = membership(std::move(voters));
        config.random_seed = 42;
        config.pre_vote = false;
        config.check_quorum = false;
    }

    /// Writes `terms` as the log (entry i+1 has term terms[i]) and the hard state, durably.
    void preload(const std::vector<std::uint64_t>& terms, std::uint64_t current_term,
                 std::uint64_t commit = 0) {
        std::vector<log_entry> entries;
        for (std::size_t i = 0; i < terms.size(); ++i) {
            entries.push_back(log_entry{term{terms[i]}, log_index{i + 1}, entry_kind::normal,
                                        shared_bytes("e" + std::to_string(i + 1))});
        }
        REQUIRE_FALSE(log.append(entries));
        REQUIRE_FALSE(
            log.save_hard_state(hard_state{term{current_term}, no_node, log_index{commit}}));
        log.flush([](std::error_code) {});
    }

    void start() {
        node = std::make_unique<node_type>(config, log, transport_, clock_, scheduler_, machine);
        REQUIRE_FALSE(node->start());
        settle();
    }

    /// Runs everything due now (posted work, flush completions), without moving time.
    void settle() { world.run_until(world.now()); }
    void advance(sim::duration d) { world.run_for(d); }

    void deliver(message m) {
        node->receive(std::move(m));
        settle();
    }

    /// Removes and returns the sent messages of type M.
    template <class M>
    std::vector<M> take() {
        std::vector<M> out;
        std::vector<message> rest;
        for (auto& m : sent) {
            if (auto* x = std::get_if<M>(&m)) {
                out.push_back(std::move(*x));
            } else {
                rest.push_back(std::move(m));
            }
        }
        sent = std::move(rest);
        return out;
    }

    /// Makes the node leader of `current term + 1`: it campaigns and every voter grants.
    void elect() {
        node->campaign();
        settle();
        const term t = node->current_term();
        for (node_id v : config.initial_membership.voters()) {
            if (v != config.id) {
                deliver(vote_response{v, config.id, t, true, false});
            }
        }
        REQUIRE(node->role() == raft::role::leader);
        sent.clear();
    }

    /// Acknowledges, as follower `from`, that its log matches through `match`.
    void ack(node_id from, std::uint64_t match) {
        deliver(append_response{from, config.id, node->current_term(), true, log_index{match},
                                term{}, log_index{}, 0});
    }

    capture_transport& transport() noexcept { return transport_; }
    sim::virtual_clock& clock() noexcept { return clock_; }
    sim::process_scheduler& scheduler() noexcept { return scheduler_; }

    // Declaration order is destruction order in reverse: the node goes first.
    sim::world world;
    storage::memory_log log;
    append_machine machine;
    raft::config config;
    std::vector<message> sent;

private:
    sim::virtual_clock clock_;
    sim::process_scheduler scheduler_;
    capture_transport transport_{&sent};

public:
    std::unique_ptr<node_type> node;
};

} // namespace synod::test
