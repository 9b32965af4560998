#pragma once

/// \file
/// The simulated network. By default every message is delivered after a latency drawn from
/// [min_latency, max_latency]; a test controls delivery link by link: cut a link (messages
/// sent over it are dropped), hold it (messages queue until released or dropped), or filter
/// individual messages. Links are directed, so one-way partitions are expressible.

#include <synod/core/concepts/transport.hpp>
#include <synod/core/messages.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/sim/faults.hpp>
#include <synod/sim/world.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace synod::sim {

/// Random faults applied to every message that is not cut, held or filtered.
struct network_faults {
    double drop = 0;       ///< probability a message is lost
    double duplicate = 0;  ///< probability a message is delivered twice
    double replay = 0;     ///< probability a send also re-delivers an old message
    double long_delay = 0; ///< probability a message takes 10-50x the maximum latency
};

class network {
public:
    using receiver = unique_function<void(message)>;
    /// Returns false to drop the message.
    using filter = unique_function<bool(node_id from, node_id to, const message&)>;

    network(world& w, std::uint64_t seed)
        : world_(w)
        , rng_(seed) {}

    /// Registers where messages to `id` go; `owner` is the receiving process, so messages in
    /// flight to a crashed process vanish with it.
    void attach(node_id id, std::uint32_t owner, receiver deliver) {
        endpoints_[id] = endpoint{owner, std::move(deliver)};
    }
    void detach(node_id id) { endpoints_.erase(id); }

    void set_latency(duration min, duration max) {
        min_latency_ = min;
        max_latency_ = std::max(min, max);
    }
    void set_filter(filter f) { filter_ = std::move(f); }
    void set_faults(network_faults f) noexcept { faults_ = f; }
    /// Counts the faults this network injects (may be null).
    void count_faults_in(fault_hits* hits) noexcept { hits_ = hits; }

    /// Adds `extra` latency to every message to and from `id` (zero to unclog).
    void clog(node_id id, duration extra) {
        if (extra == duration::zero()) {
            clogged_.erase(id);
        } else {
            clogged_[id] = extra;
        }
    }

    /// Drops everything sent from `from` to `to` until `connect`.
    void cut(node_id from, node_id to) { cut_.insert({from, to}); }
    void connect(node_id from, node_id to) { cut_.erase({from, to}); }
    /// Cuts both directions.
    void disconnect(node_id a, node_id b) {
        cut(a, b);
        cut(b, a);
    }
    /// Cuts every link to and from `id`.
    void isolate(node_id id, const std::vector<node_id>& all) {
        for (node_id other : all) {
            if (other != id) {
                disconnect(id, other);
            }
        }
    }
    /// Restores every link and releases nothing that is held.
    void heal() { cut_.clear(); }

    /// Queues messages from `from` to `to` instead of delivering them.
    void hold(node_id from, node_id to) { held_links_.insert({from, to}); }
    /// Stops holding the link and delivers what it held, in order.
    void release(node_id from, node_id to) {
        held_links_.erase({from, to});
        std::vector<in_flight> keep;
        for (auto& m : held_) {
            if (m.from == from && m.to == to) {
                deliver_later(m.from, m.to, std::move(m.msg));
            } else {
                keep.push_back(std::move(m));
            }
        }
        held_ = std::move(keep);
    }
    /// Discards everything held on every link (held links stay held).
    void drop_held() {
        dropped_ += held_.size();
        held_.clear();
    }
    [[nodiscard]] std::size_t held_count() const noexcept { return held_.size(); }

    void send(node_id from, node_id to, message m) {
        ++sent_;
        if (cut_.count({from, to}) > 0 || (filter_ && !filter_(from, to, m))) {
            ++dropped_;
            return;
        }
        if (held_links_.count({from, to}) > 0) {
            held_.push_back({from, to, std::move(m)});
            return;
        }
        if (chance(faults_.replay) && !past_.empty()) {
            const in_flight& old = past_[rng_() % past_.size()];
            if (cut_.count({old.from, old.to}) == 0) {
                count(fault::replay);
                deliver_later(old.from, old.to, message(old.msg));
            }
        }
        if (faults_.replay > 0) {
            if (past_.size() < max_remembered) {
                past_.push_back({from, to, m});
            } else {
                past_[rng_() % max_remembered] = {from, to, m};
            }
        }
        if (chance(faults_.drop)) {
            count(fault::drop);
            ++dropped_;
            return;
        }
        if (chance(faults_.duplicate)) {
            count(fault::duplicate);
            deliver_later(from, to, message(m));
        }
        deliver_later(from, to, std::move(m));
    }

    [[nodiscard]] std::uint64_t sent() const noexcept { return sent_; }
    [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

private:
    struct endpoint {
        std::uint32_t owner;
        receiver deliver;
    };
    struct in_flight {
        node_id from;
        node_id to;
        message msg;
    };

    bool chance(double p) {
        return p > 0 && static_cast<double>(rng_() % 1'000'000) < p * 1'000'000;
    }
    void count(fault f) {
        if (hits_ != nullptr) {
            hits_->hit(f);
        }
    }

    void deliver_later(node_id from, node_id to, message m) {
        auto it = endpoints_.find(to);
        if (it == endpoints_.end()) {
            ++dropped_;
            return;
        }
        duration latency = min_latency_;
        if (max_latency_ > min_latency_) {
            latency += duration(static_cast<duration::rep>(
                rng_() % static_cast<std::uint64_t>((max_latency_ - min_latency_).count() + 1)));
        }
        if (chance(faults_.long_delay)) {
            count(fault::delay);
            latency += max_latency_ * static_cast<duration::rep>(10 + rng_() % 41);
        }
        for (node_id end : {from, to}) {
            if (auto c = clogged_.find(end); c != clogged_.end()) {
                count(fault::clog);
                latency += c->second;
            }
        }
        const time_point arrival = world_.now() + latency;
        time_point& latest = latest_arrival_[{from, to}];
        if (arrival < latest) {
            count(fault::reorder); // overtakes a message sent earlier on the same link
        }
        latest = std::max(latest, arrival);
        world_.schedule(arrival, it->second.owner, [this, to, m = std::move(m)]() mutable {
            auto target = endpoints_.find(to);
            if (target != endpoints_.end()) {
                ++delivered_;
                target->second.deliver(std::move(m));
            }
        });
    }

    world& world_;
    std::mt19937_64 rng_;
    duration min_latency_{std::chrono::milliseconds(1)};
    duration max_latency_{std::chrono::milliseconds(1)};
    std::map<node_id, endpoint> endpoints_;
    std::set<std::pair<node_id, node_id>> cut_;
    std::set<std::pair<node_id, node_id>> held_links_;
    std::vector<in_flight> held_;
    filter filter_;
    network_faults faults_;
    fault_hits* hits_ = nullptr;
    std::map<node_id, duration> clogged_;
    std::map<std::pair<node_id, node_id>, time_point> latest_arrival_;
    /// Messages sent earlier, for replay: a bounded random sample.
    static constexpr std::size_t max_remembered = 64;
    std::vector<in_flight> past_;
    std::uint64_t sent_ = 0;
    std::uint64_t delivered_ = 0;
    std::uint64_t dropped_ = 0;
};

/// One node's view of the network: a model of the `transport` concept.
class endpoint_transport {
public:
    endpoint_transport(network& net, node_id self) noexcept
        : net_(&net)
        , self_(self) {}
    void send(node_id to, message m) { net_->send(self_, to, std::move(m)); }

private:
    network* net_;
    node_id self_;
};

static_assert(transport<endpoint_transport>);

} // namespace synod::sim
