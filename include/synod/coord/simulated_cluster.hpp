#pragma once

/// \file
/// `coord::simulated_cluster<Director>`: N coordinators inside one process on the deterministic
/// simulator (virtual time, controllable network, crash-accurate memory logs), each with its
/// own director. For tests of a host's director, and for the demo: crash a node, cut links,
/// pause a process, and watch what the directors are told, at simulated instants.

#include <synod/coord/coordinator.hpp>
#include <synod/sim/network.hpp>
#include <synod/sim/process.hpp>
#include <synod/sim/world.hpp>
#include <synod/storage/memory_log.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace synod::coord {

template <director Director>
class simulated_cluster {
public:
    using policies = coord::policies<storage::memory_log, sim::endpoint_transport,
                                     sim::process_clock, sim::process_scheduler>;
    using coordinator_type = coordinator<policies, Director>;
    /// Makes node `id`'s director, once, when the node first starts; it lives as long as the
    /// cluster, across the node's restarts.
    using director_factory = std::function<std::unique_ptr<Director>(node_id)>;

    /// `base` is every node's Raft config; `id`, `initial_membership` and `random_seed` are
    /// filled in per node. `options` are every coordinator's (the admission queue's config
    /// must be the same on every node).
    simulated_cluster(std::size_t size, std::uint64_t seed, director_factory make_director,
                      raft::config base = {}, coordinator_options options = {})
        : seed_(seed)
        , base_(std::move(base))
        , options_(std::move(options))
        , make_director_(std::move(make_director))
        , network_(world_, seed) {
        network_.set_latency(std::chrono::milliseconds(1), std::chrono::milliseconds(3));
        for (std::size_t i = 1; i <= size; ++i) {
            ids_.push_back(node_id{i});
        }
        for (node_id id : ids_) {
            auto m = std::make_unique<member>();
            m->id = id;
            m->owner = world_.add_owner();
            member* raw = m.get();
            network_.attach(id, raw->owner, [raw](message msg) {
                if (raw->coordinator) {
                    raw->coordinator->node().receive(std::move(msg));
                }
            });
            members_.push_back(std::move(m));
        }
    }

    /// Starts (or restarts) a node from what its log holds; on error it stays down.
    std::error_code start(node_id id) {
        member& m = at(id);
        SYNOD_ASSERT(!m.coordinator, "node is already running");
        if (!m.director) {
            m.director = make_director_(id);
        }
        raft::config cfg = base_;
        cfg.id = id;
        cfg.initial_membership = membership(ids_);
        cfg.random_seed = seed_ * 7919 + id.value() * 31 + m.starts++;
        m.time = std::make_unique<sim::process_time>(world_);
        m.clock = std::make_unique<sim::process_clock>(*m.time);
        m.scheduler.emplace(world_, m.owner, m.time.get());
        m.transport = std::make_unique<sim::endpoint_transport>(network_, id);
        m.coordinator = std::make_unique<coordinator_type>(
            std::move(cfg), m.log, *m.transport, *m.clock, *m.scheduler, *m.director, options_);
        if (auto ec = m.coordinator->start()) {
            m.coordinator.reset();
            return ec;
        }
        return {};
    }
    void start_all() {
        for (node_id id : ids_) {
            if (!is_up(id)) {
                start(id);
            }
        }
    }
    /// Kills a node's process: its coordinator (and with it its director's run) ends, pending
    /// work vanishes, and its log loses what was not flushed.
    void crash(node_id id) {
        member& m = at(id);
        m.coordinator.reset();
        world_.kill(m.owner);
        m.log.crash();
    }
    /// Destroys every running coordinator (their directors are stopped with
    /// `shutting_down`). A derived harness whose directors report to its own members calls
    /// this from its destructor, before those members go.
    void stop_all() {
        for (auto& m : members_) {
            m->coordinator.reset();
        }
    }

    /// Freezes a node's process for `d`: its timers, messages and flushes wait.
    void pause(node_id id, sim::duration d) { world_.pause(at(id).owner, world_.now() + d); }

    [[nodiscard]] bool is_up(node_id id) { return at(id).coordinator != nullptr; }
    [[nodiscard]] coordinator_type& at_node(node_id id) {
        SYNOD_ASSERT(at(id).coordinator != nullptr, "node is not running");
        return *at(id).coordinator;
    }
    /// Node `id`'s director (made when the node first started).
    [[nodiscard]] Director& director_of(node_id id) {
        SYNOD_ASSERT(at(id).director != nullptr, "node has never started");
        return *at(id).director;
    }

    /// The running coordinator that is `leader_ready` with the highest term, if any.
    [[nodiscard]] std::optional<node_id> ready_leader() {
        std::optional<node_id> best;
        term best_term;
        for (auto& m : members_) {
            if (m->coordinator && m->coordinator->readiness() == readiness::leader_ready &&
                (!best || m->coordinator->node().current_term() > best_term)) {
                best = m->id;
                best_term = m->coordinator->node().current_term();
            }
        }
        return best;
    }
    /// Runs until some node is `leader_ready`, or `limit` passes.
    std::optional<node_id> wait_ready(sim::duration limit = std::chrono::seconds(10)) {
        world_.run_until([&] { return ready_leader().has_value(); }, limit);
        return ready_leader();
    }

    template <class Done>
    bool run_until(Done&& done, sim::duration limit) {
        return world_.run_until(std::forward<Done>(done), limit);
    }
    void run_for(sim::duration d) { world_.run_for(d); }

    /// Node `id`'s log (it survives the node's crashes, minus what was not flushed).
    [[nodiscard]] const storage::memory_log& log_of(node_id id) { return at(id).log; }

    [[nodiscard]] sim::world& world() noexcept { return world_; }
    [[nodiscard]] sim::network& network() noexcept { return network_; }
    [[nodiscard]] const std::vector<node_id>& ids() const noexcept { return ids_; }

private:
    struct member {
        node_id id;
        std::uint32_t owner = 0;
        std::uint64_t starts = 0;
        storage::memory_log log;
        std::unique_ptr<Director> director;
        std::unique_ptr<sim::process_time> time;
        std::unique_ptr<sim::process_clock> clock;
        std::optional<sim::process_scheduler> scheduler;
        std::unique_ptr<sim::endpoint_transport> transport;
        std::unique_ptr<coordinator_type> coordinator;
    };
    member& at(node_id id) {
        SYNOD_ASSERT(id.value() >= 1 && id.value() <= members_.size(), "no such node");
        return *members_[id.value() - 1];
    }

    std::uint64_t seed_;
    raft::config base_;
    coordinator_options options_;
    director_factory make_director_;
    sim::world world_;
    sim::network network_;
    std::vector<node_id> ids_;
    std::vector<std::unique_ptr<member>> members_;
};

} // namespace synod::coord
