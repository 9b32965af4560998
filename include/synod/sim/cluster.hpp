#pragma once

/// \file
/// A whole Raft group inside one process: N `raft::node`s over simulated disks (memory logs by
/// default, or the durable file log on a fault-injecting file system: `cluster<M, file_log>`,
/// see disk.hpp), the simulated network, virtual time, and the invariant checker after every
/// event. Tests drive it (crash, restart, cut links, propose) and inspect it; users can embed
/// it in their own tests with their own state machine.

#include <synod/core/concepts/state_machine.hpp>
#include <synod/raft/node.hpp>
#include <synod/sim/disk.hpp>
#include <synod/sim/invariant_checker.hpp>
#include <synod/sim/network.hpp>
#include <synod/sim/process.hpp>
#include <synod/sim/recording_machine.hpp>
#include <synod/sim/world.hpp>
#include <synod/storage/memory_log.hpp>

#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace synod::sim {

struct cluster_options {
    std::size_t size = 3;
    /// Nodes 1..initial_voters form the initial configuration; the others start with none
    /// and wait to be added (membership changes). 0: every node is an initial voter.
    std::size_t initial_voters = 0;
    std::uint64_t seed = 1;
    /// Template for every node's config; `id`, `initial_membership` and `random_seed` are
    /// filled in per node.
    raft::config node_config{};
    duration min_latency = std::chrono::milliseconds(1);
    duration max_latency = std::chrono::milliseconds(1);
    /// Time a flush takes; zero completes flushes inside `flush`.
    duration flush_delay{0};
    /// Run the invariant checker after every event (turn off only for benchmarks).
    bool check_invariants = true;
};

template <state_machine Machine, class Log = storage::memory_log>
class cluster {
public:
    using log_type = Log;
    using disk_type = typename disk_for<Log>::type;
    using machine_type = recording_machine<Machine>;
    using node_type =
        raft::node<Log, endpoint_transport, process_clock, process_scheduler, machine_type>;
    using result = typename node_type::result;

    explicit cluster(
        cluster_options options, std::function<Machine()> make_machine = [] { return Machine{}; })
        : options_(std::move(options))
        , make_machine_(std::move(make_machine))
        , network_(world_, options_.seed) {
        network_.set_latency(options_.min_latency, options_.max_latency);
        for (std::size_t i = 1; i <= options_.size; ++i) {
            ids_.push_back(node_id{i});
        }
        for (node_id id : ids_) {
            const std::uint32_t owner = world_.add_owner();
            auto m = std::make_unique<member>(id, owner, world_, options_.flush_delay,
                                              options_.seed * 0x9e3779b97f4a7c15ULL + id.value());
            member* raw = m.get();
            network_.attach(id, raw->owner, [raw](message msg) {
                if (raw->node) {
                    raw->node->receive(std::move(msg));
                }
            });
            members_.push_back(std::move(m));
        }
        if (options_.check_invariants) {
            world_.set_after_event([this] { check_invariants(); });
        }
    }

    /// Starts every node that is not running.
    void start_all() {
        for (node_id id : ids_) {
            if (!is_up(id)) {
                start(id);
            }
        }
    }

    /// Starts (or restarts) one node from whatever its log holds. Returns the node's start
    /// error — e.g. `corrupt_storage` for a damaged log — in which case it stays down.
    std::error_code start(node_id id) {
        member& m = at(id);
        SYNOD_ASSERT(!m.node, "node is already running");
        raft::config cfg = options_.node_config;
        cfg.id = id;
        const std::size_t voters =
            options_.initial_voters == 0 ? ids_.size() : options_.initial_voters;
        cfg.initial_membership =
            id.value() <= voters
                ? membership(std::vector<node_id>(
                      ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(voters)))
                : membership{};
        cfg.random_seed = options_.seed * 1'000'003 + id.value() * 101 + m.starts;
        ++m.starts;
        m.machine = std::make_unique<machine_type>(
            make_machine_(), options_.check_invariants ? &checker_ : nullptr, id);
        m.time = std::make_unique<process_time>(world_); // a new process, a new clock
        m.clock = std::make_unique<process_clock>(*m.time);
        m.scheduler.emplace(world_, m.owner, m.time.get());
        m.transport = std::make_unique<endpoint_transport>(network_, id);
        checker_.on_start(id);
        m.node = std::make_unique<node_type>(std::move(cfg), m.disk.open(), *m.transport, *m.clock,
                                             *m.scheduler, *m.machine);
        if (auto ec = m.node->start()) {
            m.node.reset();
            m.machine.reset();
            return ec;
        }
        return {};
    }

    /// Crashes a node: its process and pending work vanish, and its log loses everything that
    /// was not flushed.
    void crash(node_id id) {
        member& m = at(id);
        m.node.reset();
        world_.kill(m.owner);
        m.disk.crash();
        m.machine.reset();
    }

    /// A crash in which part of the unflushed writes reached the disk (see
    /// `memory_log::crash_torn`).
    void crash_torn(node_id id, std::size_t kept_writes,
                    std::size_t kept_entries) requires std::same_as<Log, storage::memory_log> {
        member& m = at(id);
        m.node.reset();
        world_.kill(m.owner);
        m.disk.crash_torn(kept_writes, kept_entries);
        m.machine.reset();
    }

    /// A crash during a write: part of the unflushed writes reached the disk, chosen by
    /// `entropy` (see the disk's `crash_torn`).
    void crash_torn(node_id id, std::uint64_t entropy) {
        member& m = at(id);
        m.node.reset();
        world_.kill(m.owner);
        m.disk.crash_torn(entropy);
        m.machine.reset();
    }

    std::error_code restart(node_id id) {
        crash(id);
        return start(id);
    }

    /// The clock of a running node's process (to jump it or make it drift).
    [[nodiscard]] process_time& time(node_id id) {
        SYNOD_ASSERT(at(id).time != nullptr, "node has never run");
        return *at(id).time;
    }
    /// Freezes a node's process for `d`: its timers, messages and flushes wait.
    void pause(node_id id, duration d) { world_.pause(at(id).owner, world_.now() + d); }
    /// Ends a pause early.
    void resume(node_id id) { world_.resume(at(id).owner); }

    [[nodiscard]] bool is_up(node_id id) const { return static_cast<bool>(at(id).node); }

    /// The running leader with the highest term, if any.
    [[nodiscard]] std::optional<node_id> leader() const {
        std::optional<node_id> best;
        term best_term;
        for (const auto& m : members_) {
            if (m->node && m->node->role() == raft::role::leader &&
                (!best || m->node->current_term() > best_term)) {
                best = m->id;
                best_term = m->node->current_term();
            }
        }
        return best;
    }

    /// Runs until some node leads and every running node knows it, or `limit` passes.
    std::optional<node_id> wait_for_leader(duration limit = std::chrono::seconds(10)) {
        world_.run_until(
            [&] {
                auto l = leader();
                if (!l) {
                    return false;
                }
                for (const auto& m : members_) {
                    if (m->node && !network_partitioned(m->id) && m->node->leader() != *l) {
                        return false;
                    }
                }
                return true;
            },
            limit);
        return leader();
    }

    /// Proposes through `id`; the returned slot fills in when the completion runs.
    std::shared_ptr<std::optional<result>> propose(node_id id, std::string_view payload) {
        auto slot = std::make_shared<std::optional<result>>();
        node(id).propose(shared_bytes(payload), [slot](result r) { *slot = std::move(r); });
        return slot;
    }

    /// Proposes through the current leader and runs until the proposal completes.
    std::optional<result> propose_and_wait(std::string_view payload,
                                           duration limit = std::chrono::seconds(5)) {
        auto l = leader();
        if (!l) {
            return std::nullopt;
        }
        auto slot = propose(*l, payload);
        world_.run_until([&] { return slot->has_value(); }, limit);
        return *slot;
    }

    void run_for(duration d) { world_.run_for(d); }
    template <class Done>
    bool run_until(Done&& done, duration limit) {
        return world_.run_until(std::forward<Done>(done), limit);
    }

    [[nodiscard]] node_type& node(node_id id) {
        SYNOD_ASSERT(at(id).node != nullptr, "node is not running");
        return *at(id).node;
    }
    /// A node's log. A file log exists only while its node runs (a crash destroys it).
    [[nodiscard]] Log& log(node_id id) { return at(id).disk.log(); }
    /// A node's disk: its log and the storage faults (disk.hpp).
    [[nodiscard]] disk_type& disk(node_id id) { return at(id).disk; }
    [[nodiscard]] Machine& machine(node_id id) { return at(id).machine->inner(); }
    [[nodiscard]] const std::vector<node_id>& ids() const noexcept { return ids_; }
    [[nodiscard]] sim::world& world() noexcept { return world_; }
    [[nodiscard]] sim::network& network() noexcept { return network_; }
    [[nodiscard]] invariant_checker& checker() noexcept { return checker_; }

    /// Marks a node as cut off, so `wait_for_leader` does not wait for it to learn the leader.
    void set_partitioned(node_id id, bool partitioned) { at(id).partitioned = partitioned; }

    void check_invariants() {
        for (const auto& m : members_) {
            if (m->node) {
                checker_.check(*m->node, m->disk.log());
            }
        }
    }

private:
    struct member {
        member(node_id i, std::uint32_t o, sim::world& w, duration flush_delay, std::uint64_t seed)
            : id(i)
            , owner(o)
            , disk(w, o, flush_delay, seed) {}
        node_id id;
        std::uint32_t owner;
        std::uint64_t starts = 0;
        bool partitioned = false;
        disk_type disk;
        std::unique_ptr<process_time> time;
        std::unique_ptr<process_clock> clock;
        std::optional<process_scheduler> scheduler;
        std::unique_ptr<endpoint_transport> transport;
        std::unique_ptr<machine_type> machine;
        std::unique_ptr<node_type> node;
    };

    [[nodiscard]] bool network_partitioned(node_id id) const { return at(id).partitioned; }

    member& at(node_id id) {
        SYNOD_ASSERT(id.value() >= 1 && id.value() <= members_.size(), "no such node");
        return *members_[id.value() - 1];
    }
    const member& at(node_id id) const {
        SYNOD_ASSERT(id.value() >= 1 && id.value() <= members_.size(), "no such node");
        return *members_[id.value() - 1];
    }

    cluster_options options_;
    std::function<Machine()> make_machine_;
    sim::world world_;
    sim::network network_;
    invariant_checker checker_;
    std::vector<node_id> ids_;
    std::vector<std::unique_ptr<member>> members_;
};

} // namespace synod::sim
