#pragma once

// N coordinators on the simulator (virtual time, faulty network, memory logs), each with a
// recording director that reports every start and stop to a shared timeline, so tests can
// check what directors did at every simulated instant.

#include <synod/coord/coordinator.hpp>
#include <synod/coord/epoch_fence.hpp>
#include <synod/sim/network.hpp>
#include <synod/sim/process.hpp>
#include <synod/sim/world.hpp>
#include <synod/storage/memory_log.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace synod::test {

/// What every director of the cluster did, checked as it happens.
struct director_timeline {
    struct run {
        node_id node;
        epoch e;
        coord::directory_view view;
    };
    std::vector<run> starts;
    std::vector<std::pair<node_id, coord::stop_reason>> stops;
    /// Directors running now, by node.
    std::map<node_id, epoch> running;
    /// Every epoch any director was ever started with.
    std::set<epoch> used;
    /// A resource every director writes to on start and on each directory change.
    coord::epoch_fence fence;
    std::size_t fenced_off = 0;
    std::size_t directory_updates = 0;

    void started(node_id n, epoch e, const coord::directory_view& v) {
        for (const auto& [other, oe] : running) {
            if (oe == e) {
                throw std::logic_error("two directors run with epoch " + std::to_string(e.value()));
            }
        }
        if (!used.insert(e).second) {
            throw std::logic_error("epoch " + std::to_string(e.value()) + " reused");
        }
        running[n] = e;
        starts.push_back({n, e, v});
        // A new director locks the resource for its recovery: only a strictly newer epoch can.
        const epoch before = fence.highest_seen();
        if (fence.lock_for_recovery(e)) {
            ++fenced_off;
            if (e > before) {
                throw std::logic_error("the fence refused a newer epoch's recovery");
            }
        } else if (e <= before) {
            throw std::logic_error("the fence let an older epoch lock it");
        }
    }
    void stopped(node_id n, coord::stop_reason r) {
        running.erase(n);
        stops.emplace_back(n, r);
    }
    void write(epoch e) {
        const epoch before = fence.highest_seen();
        if (fence.admit(e)) {
            ++fenced_off;
            if (e >= before) {
                throw std::logic_error("the fence refused a current epoch");
            }
        } else if (e < before) {
            throw std::logic_error("the fence admitted epoch " + std::to_string(e.value()) +
                                   " after seeing " + std::to_string(before.value()));
        }
    }
};

struct recording_director {
    node_id self;
    director_timeline* timeline;
    std::error_code fail_next_start;
    std::optional<epoch> current;

    std::error_code start(epoch e, const coord::directory_view& v) {
        if (fail_next_start) {
            return std::exchange(fail_next_start, {});
        }
        timeline->started(self, e, v);
        current = e;
        return {};
    }
    void directory_changed(const machines::directory_change&) {
        ++timeline->directory_updates;
        timeline->write(*current);
    }
    void stop(coord::stop_reason r) {
        if (current) {
            timeline->stopped(self, r);
            current.reset();
        }
    }
};
static_assert(coord::director<recording_director>);

class coordinator_cluster {
public:
    using policies = coord::policies<storage::memory_log, sim::endpoint_transport,
                                     sim::process_clock, sim::process_scheduler>;
    using coordinator_type = coord::coordinator<policies, recording_director>;

    coordinator_cluster(std::size_t size, std::uint64_t seed, raft::config base = {})
        : seed_(seed)
        , base_(std::move(base))
        , network_(world_, seed) {
        network_.set_latency(std::chrono::milliseconds(1), std::chrono::milliseconds(3));
        for (std::size_t i = 1; i <= size; ++i) {
            ids_.push_back(node_id{i});
        }
        for (node_id id : ids_) {
            auto m = std::make_unique<member>();
            m->id = id;
            m->owner = world_.add_owner();
            m->director = recording_director{id, &timeline_, {}, {}};
            member* raw = m.get();
            network_.attach(id, raw->owner, [raw](message msg) {
                if (raw->coordinator) {
                    raw->coordinator->node().receive(std::move(msg));
                }
            });
            members_.push_back(std::move(m));
        }
    }

    std::error_code start(node_id id) {
        member& m = at(id);
        raft::config cfg = base_;
        cfg.id = id;
        cfg.initial_membership = membership(ids_);
        cfg.random_seed = seed_ * 7919 + id.value() * 31 + m.starts++;
        m.time = std::make_unique<sim::process_time>(world_);
        m.clock = std::make_unique<sim::process_clock>(*m.time);
        m.scheduler.emplace(world_, m.owner, m.time.get());
        m.transport = std::make_unique<sim::endpoint_transport>(network_, id);
        m.coordinator = std::make_unique<coordinator_type>(std::move(cfg), m.log, *m.transport,
                                                           *m.clock, *m.scheduler, m.director);
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
    void crash(node_id id) {
        member& m = at(id);
        m.coordinator.reset(); // its director is stopped (shutting_down) with it
        world_.kill(m.owner);
        m.log.crash();
    }

    /// Freezes a node's process for `d`: its timers, messages and flushes wait.
    void pause(node_id id, sim::duration d) { world_.pause(at(id).owner, world_.now() + d); }

    [[nodiscard]] bool is_up(node_id id) { return at(id).coordinator != nullptr; }
    [[nodiscard]] coordinator_type& at_node(node_id id) { return *at(id).coordinator; }
    [[nodiscard]] recording_director& director_of(node_id id) { return at(id).director; }

    /// The running coordinator that is `leader_ready` with the highest term, if any.
    [[nodiscard]] std::optional<node_id> ready_leader() {
        std::optional<node_id> best;
        term best_term;
        for (auto& m : members_) {
            if (m->coordinator && m->coordinator->readiness() == coord::readiness::leader_ready &&
                (!best || m->coordinator->node().current_term() > best_term)) {
                best = m->id;
                best_term = m->coordinator->node().current_term();
            }
        }
        return best;
    }

    template <class Done>
    bool run_until(Done&& done, sim::duration limit) {
        return world_.run_until(std::forward<Done>(done), limit);
    }
    void run_for(sim::duration d) { world_.run_for(d); }

    [[nodiscard]] sim::world& world() noexcept { return world_; }
    [[nodiscard]] sim::network& network() noexcept { return network_; }
    [[nodiscard]] director_timeline& timeline() noexcept { return timeline_; }
    [[nodiscard]] const std::vector<node_id>& ids() const noexcept { return ids_; }

private:
    struct member {
        node_id id;
        std::uint32_t owner = 0;
        std::uint64_t starts = 0;
        storage::memory_log log;
        recording_director director;
        std::unique_ptr<sim::process_time> time;
        std::unique_ptr<sim::process_clock> clock;
        std::optional<sim::process_scheduler> scheduler;
        std::unique_ptr<sim::endpoint_transport> transport;
        std::unique_ptr<coordinator_type> coordinator;
    };
    member& at(node_id id) { return *members_.at(id.value() - 1); }

    std::uint64_t seed_;
    raft::config base_;
    sim::world world_;
    sim::network network_;
    director_timeline timeline_;
    std::vector<node_id> ids_;
    std::vector<std::unique_ptr<member>> members_;
};

} // namespace synod::test
