#pragma once

// N coordinators on the simulator (virtual time, faulty network, memory logs), each with a
// recording director that reports every start and stop to a shared timeline, so tests can
// check what directors did at every simulated instant.

#include <synod/coord/coordinator.hpp>
#include <synod/coord/epoch_fence.hpp>
#include <synod/coord/simulated_cluster.hpp>

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

/// Coordinators with recording directors that share one timeline.
class coordinator_cluster : public coord::simulated_cluster<recording_director> {
public:
    coordinator_cluster(std::size_t size, std::uint64_t seed, raft::config base = {},
                        coord::coordinator_options options = {})
        : simulated_cluster(
              size, seed,
              [this](node_id id) {
                  return std::make_unique<recording_director>(
                      recording_director{id, &timeline_, {}, {}});
              },
              std::move(base), std::move(options)) {}

    ~coordinator_cluster() { stop_all(); } // the directors report to timeline_

    [[nodiscard]] director_timeline& timeline() noexcept { return timeline_; }

private:
    director_timeline timeline_;
};

} // namespace synod::test
