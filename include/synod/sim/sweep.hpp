#pragma once

/// \file
/// One seed of the randomized fault sweep: a cluster of `kv_machine`s, clients that put, get
/// and compare-and-set through whichever node they believe leads, and a fault schedule drawn
/// from the seed across every enabled fault class. Oracles: the invariant checker after every
/// event; the client history is linearizable; no acknowledged write is lost; and after the
/// last fault heals, a leader is elected and a new write commits within a bounded time.
///
/// Same seed, same options: same run, same trace hash.

#include <synod/sim/cluster.hpp>
#include <synod/sim/faults.hpp>
#include <synod/sim/kv_machine.hpp>
#include <synod/sim/kv_model.hpp>
#include <synod/sim/linearizability.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace synod::sim {

/// The log the sweep's nodes run on.
enum class log_kind : std::uint8_t {
    memory, ///< `storage::memory_log` (the default): fast, with its own crash model
    file,   ///< `sim::file_log`: the durable file log on `recording_files` (disk.hpp)
};

struct sweep_options {
    /// The nodes' log; every storage fault maps onto its disk (disk.hpp).
    log_kind log = log_kind::memory;
    /// 0 picks 1, 3, 5 or 7 voters from the seed.
    std::size_t cluster_size = 0;
    /// Simulated time with faults, before the final heal.
    duration faulty_time = std::chrono::seconds(60);
    /// The run continues (fault-free) until at least this many client operations completed.
    std::size_t min_operations = 200;
    std::size_t clients = 4;
    std::size_t keys = 5;
    /// Fault classes this run may inject (all by default).
    std::set<fault> enabled = all_faults();

    static std::set<fault> all_faults() {
        std::set<fault> all;
        for (std::size_t i = 0; i < fault_count; ++i) {
            all.insert(static_cast<fault>(i));
        }
        return all;
    }
};

struct sweep_result {
    std::uint64_t seed = 0;
    bool passed = true;
    /// What failed, for humans.
    std::string failure;
    std::size_t cluster_size = 0;
    fault_hits hits;
    std::size_t operations = 0;         ///< completed client operations (known outcome)
    std::size_t unknown_operations = 0; ///< operations whose outcome stayed unknown
    std::uint64_t trace_hash = 0;
    duration simulated{};
    /// The client history and the linearizability verdict, for reports.
    std::vector<operation<kv_model>> history;
    linearizability_result linearizability;
    /// Timeline of role changes: (time, node, role, term), and the faults injected.
    struct role_change {
        time_point at;
        node_id node;
        raft::role role;
        term t;
    };
    std::vector<role_change> roles;
    struct fault_event {
        time_point at;
        std::string what;
    };
    std::vector<fault_event> faults;
    /// The last messages sent (at most `recent_message_limit`), oldest first.
    struct sent_message {
        time_point at;
        node_id from;
        node_id to;
        std::size_t type; ///< index in `synod::message`
        term t;
    };
    static constexpr std::size_t recent_message_limit = 300;
    std::vector<sent_message> recent_messages;
    std::uint64_t messages_sent = 0;
    /// InstallSnapshot traffic: chunks sent, and snapshots a follower reported installed.
    std::uint64_t snapshot_chunks = 0;
    std::uint64_t snapshot_installs = 0;
    /// How this seed's clients read (0 through the log, 1 ReadIndex, 2 lease), and how many
    /// reads ReadIndex or the lease served.
    int read_mode = 0;
    std::size_t reads_served = 0;
    /// Membership changes (demote a voter to learner, promote it back, through the joint
    /// configuration) and leadership transfers that completed successfully.
    std::size_t membership_changes = 0;
    std::size_t transfers = 0;
};

template <class Log = storage::memory_log>
class basic_sweep_run {
public:
    using cluster_type = cluster<kv_machine, Log>;
    using result = typename cluster_type::result;
    static constexpr bool memory = std::same_as<Log, storage::memory_log>;

    basic_sweep_run(std::uint64_t seed, sweep_options options)
        : seed_(seed)
        , options_(std::move(options))
        , rng_(seed * 0x9e3779b97f4a7c15ULL + 17) {
        result_.seed = seed;
        const std::size_t sizes[] = {1, 3, 5, 7};
        size_ = options_.cluster_size != 0 ? options_.cluster_size : sizes[rng_() % 4];
        result_.cluster_size = size_;
        cluster_options o;
        o.size = size_;
        o.seed = seed;
        o.min_latency = std::chrono::microseconds(100 + rng_() % 900);
        o.max_latency = o.min_latency + std::chrono::milliseconds(rng_() % 15);
        o.flush_delay = std::chrono::microseconds(rng_() % 3000);
        o.node_config.pre_vote = rng_() % 4 != 0;
        o.node_config.check_quorum = rng_() % 4 != 0;
        // Compaction from "never" to "every few entries", with snapshots split into many
        // chunks or sent whole, so followers catch up through InstallSnapshot (paper §7).
        const std::uint64_t snapshot_every[] = {0, 16, 64, 256};
        const std::uint64_t keep[] = {0, 4, 32};
        const std::size_t chunk[] = {32, 256, std::size_t{1} << 20};
        o.node_config.snapshot_after_entries = snapshot_every[rng_() % 4];
        o.node_config.snapshot_keep_entries = keep[rng_() % 3];
        o.node_config.snapshot_chunk_bytes = chunk[rng_() % 3];
        // How clients read: through the log, by ReadIndex (leader or follower), or under the
        // leader's lease. Lease seeds keep clocks within the lease's drift bound (±5%, no
        // jumps): a lease is only as safe as that assumption (thesis §6.4.1).
        read_mode_ = static_cast<read_mode>(rng_() % 3);
        result_.read_mode = static_cast<int>(read_mode_);
        cluster_ = std::make_unique<cluster_type>(o);
        network_faults nf;
        if (on(fault::drop)) {
            nf.drop = static_cast<double>(rng_() % 10) / 100.0;
        }
        if (on(fault::duplicate)) {
            nf.duplicate = static_cast<double>(rng_() % 5) / 100.0;
        }
        if (on(fault::replay)) {
            nf.replay = static_cast<double>(rng_() % 3) / 100.0;
        }
        if (on(fault::delay)) {
            nf.long_delay = static_cast<double>(rng_() % 3) / 100.0;
        }
        cluster_->network().set_faults(nf);
        cluster_->network().count_faults_in(&result_.hits);
        cluster_->network().set_filter([this](node_id from, node_id to, const message& m) {
            mix(static_cast<std::uint64_t>(clock().now().time_since_epoch().count()));
            mix(from.value() << 32 | to.value() << 8 | m.index());
            mix(message_term(m).value());
            auto& recent = result_.recent_messages;
            const sweep_result::sent_message sent{clock().now(), from, to, m.index(),
                                                  message_term(m)};
            if (recent.size() < sweep_result::recent_message_limit) {
                recent.push_back(sent);
            } else {
                recent[result_.messages_sent % sweep_result::recent_message_limit] = sent;
            }
            ++result_.messages_sent;
            if (std::holds_alternative<snapshot_chunk_request>(m)) {
                ++result_.snapshot_chunks;
            } else if (const auto* r = std::get_if<snapshot_chunk_response>(&m)) {
                result_.snapshot_installs += r->done && !r->rejected ? 1 : 0;
            }
            return true;
        });
        last_roles_.resize(size_ + 1);
    }

    sweep_result run() {
        try {
            run_unchecked();
        } catch (const invariant_violation& e) {
            fail(std::string("invariant violated: ") + e.what());
        }
        result_.simulated = clock().now() - start_;
        result_.reads_served = reads_served_;
        auto& recent = result_.recent_messages; // the ring, oldest first
        if (recent.size() == sweep_result::recent_message_limit) {
            std::rotate(recent.begin(),
                        recent.begin() +
                            static_cast<std::ptrdiff_t>(result_.messages_sent %
                                                        sweep_result::recent_message_limit),
                        recent.end());
        }
        return std::move(result_);
    }

private:
    struct client {
        std::size_t id;
        node_id target;
        bool busy = false;
        std::uint64_t attempt = 0; // distinguishes a timed-out call from its late completion
    };

    sim::world& clock() { return cluster_->world(); }
    bool on(fault f) const { return options_.enabled.count(f) > 0; }
    bool chance(double p) { return static_cast<double>(rng_() % 1'000'000) < p * 1'000'000; }
    node_id any_node() { return node_id{1 + rng_() % size_}; }
    void mix(std::uint64_t v) {
        hash_ = (hash_ ^ v) * 0x100000001b3ULL;
        hash_ ^= hash_ >> 29;
    }
    void fail(std::string why) {
        if (result_.passed) {
            result_.passed = false;
            result_.failure = std::move(why);
        }
    }
    void note_fault(fault f, std::string what) {
        result_.hits.hit(f);
        result_.faults.push_back({clock().now(), std::string(to_string(f)) + ": " + what});
        mix(static_cast<std::uint64_t>(f) + 0xfa017);
    }
    static std::string name(node_id id) { return "n" + std::to_string(id.value()); }

    void run_unchecked() {
        start_ = clock().now();
        clock().set_after_event([this] {
            cluster_->check_invariants();
            record_roles();
        });
        cluster_->start_all();
        for (std::size_t i = 0; i < options_.clients; ++i) {
            clients_.push_back(client{i, any_node()});
        }
        const time_point faults_end = start_ + options_.faulty_time;
        while (clock().now() < faults_end) {
            inject_faults();
            drive_clients();
            clock().run_for(std::chrono::milliseconds(10));
        }
        heal_all();
        check_liveness();
        // Fault-free tail: until enough operations completed, then let clients settle.
        const time_point limit = clock().now() + std::chrono::minutes(5);
        while (completed_ < options_.min_operations && clock().now() < limit) {
            drive_clients();
            clock().run_for(std::chrono::milliseconds(10));
        }
        stop_clients_ = true;
        clock().run_for(std::chrono::seconds(3));
        result_.operations = completed_;
        result_.trace_hash = hash_;
        check_history();
        check_no_acknowledged_write_lost();
    }

    // --- clients -------------------------------------------------------------------------------

    void drive_clients() {
        if (stop_clients_) {
            return;
        }
        for (auto& c : clients_) {
            if (!c.busy) {
                issue(c);
            }
        }
    }

    void issue(client& c) {
        kv_model::input in;
        in.key = "k" + std::to_string(rng_() % options_.keys);
        switch (rng_() % 3) {
        case 0:
            in.op = kv_model::kind::put;
            in.value = std::to_string(++values_);
            break;
        case 1:
            in.op = kv_model::kind::get;
            break;
        default:
            in.op = kv_model::kind::cas;
            in.expected = std::to_string(values_ - rng_() % 3);
            in.value = std::to_string(++values_);
            break;
        }
        if (!cluster_->is_up(c.target)) {
            c.target = any_node();
            return; // try again next tick
        }
        c.busy = true;
        const std::uint64_t attempt = ++c.attempt;
        const std::size_t slot = history_.size();
        history_.push_back({c.id, in, std::nullopt, clock().now(), std::nullopt});
        indexes_.push_back(log_index{});
        auto done = [this, cid = c.id, attempt, slot](result r) {
            client& me = clients_[cid];
            if (me.attempt != attempt || !me.busy) {
                return; // the client gave up on this call already
            }
            me.busy = false;
            finish(me, slot, r);
        };
        if (in.op == kv_model::kind::get && read_mode_ != read_mode::log) {
            read(c, slot, attempt, read_mode_ == read_mode::lease);
        } else {
            cluster_->node(c.target).propose(kv_machine::encode(in), std::move(done));
        }
        // A client gives up after a while: the node may have crashed with the call.
        cluster_->world().schedule(clock().now() + std::chrono::seconds(2), world_owner,
                                   [this, cid = c.id, attempt] {
                                       client& me = clients_[cid];
                                       if (me.attempt == attempt && me.busy) {
                                           me.busy = false; // outcome stays unknown
                                           me.target = any_node();
                                       }
                                   });
    }

    /// A get served by ReadIndex or a lease: the value is read from the target's own state
    /// machine inside the completion, so the linearizability check judges the read path.
    void read(client& c, std::size_t slot, std::uint64_t attempt, bool lease) {
        auto done = [this, cid = c.id, attempt, slot, target = c.target](raft::read_result r) {
            client& me = clients_[cid];
            if (me.attempt != attempt || !me.busy) {
                return;
            }
            me.busy = false;
            auto& op = history_[slot];
            if (r.error) {
                op.input.key.clear(); // not served: the read did not happen
                me.target = r.leader_hint != no_node ? r.leader_hint : any_node();
                return;
            }
            const auto& data = cluster_->machine(target).data();
            auto it = data.find(op.input.key);
            op.output = kv_model::output{};
            if (it != data.end()) {
                op.output->value = it->second;
            }
            op.returned = clock().now();
            ++reads_served_;
            ++completed_;
        };
        if (lease) {
            cluster_->node(c.target).read_under_lease(std::move(done));
        } else {
            cluster_->node(c.target).read_index(std::move(done));
        }
    }

    void finish(client& c, std::size_t slot, const result& r) {
        auto& op = history_[slot];
        if (!r.error && r.value && !r.value->error) {
            op.output = r.value->output;
            op.returned = clock().now();
            indexes_[slot] = r.index;
            ++completed_;
            return;
        }
        if (r.error == errc::not_leader || r.error == errc::leader_unknown ||
            r.error == errc::uncommitted_limit || r.error == errc::disk_full ||
            r.error == errc::proposal_too_large || r.error == errc::transfer_in_progress ||
            (r.error == errc::storage_failure && r.index == log_index{})) {
            // Never appended: the operation did not happen. Drop it from the history.
            op.input.key.clear();
            c.target = r.leader_hint != no_node ? r.leader_hint : any_node();
            return;
        }
        // outcome_unknown, or a failure after append: it may still take effect.
        c.target = any_node();
    }

    // --- faults --------------------------------------------------------------------------------

    /// Reconfiguration under faults (thesis ch. 4, §3.10): demote a follower to learner and
    /// promote it back later, or hand leadership to another voter. Refusals (a change in
    /// flight, a learner behind, no leader) are normal here; only safety is judged.
    void reconfigure() {
        const auto leader = cluster_->leader();
        if (!leader || size_ < 3) {
            return;
        }
        auto& l = cluster_->node(*leader);
        const membership& config = l.config();
        if (chance(0.5)) {
            if (!config.learners().empty()) {
                l.promote(config.learners()[rng_() % config.learners().size()],
                          [this](std::error_code ec) { result_.membership_changes += ec ? 0 : 1; });
            } else if (config.voters().size() >= 3 && down_count() < max_down()) {
                const node_id v = config.voters()[rng_() % config.voters().size()];
                if (v != *leader) {
                    l.demote(v, [this](std::error_code ec) {
                        result_.membership_changes += ec ? 0 : 1;
                    });
                }
            }
        } else if (config.voters().size() >= 2) {
            const node_id v = config.voters()[rng_() % config.voters().size()];
            if (v != *leader) {
                l.transfer_leadership(
                    v, [this](std::error_code ec) { result_.transfers += ec ? 0 : 1; });
            }
        }
    }

    void inject_faults() {
        const node_id n = any_node();
        if (chance(0.003)) {
            reconfigure();
        }
        if (on(fault::crash) && chance(0.004) && cluster_->is_up(n) && down_count() < max_down()) {
            if constexpr (memory) {
                crash(n);
            } else {
                // At a random instant of the next tick rather than between ticks: a file log's
                // disk holds unsynced data only while a flush is under way, so that is when a
                // power cut can lose or tear a write.
                clock().schedule(clock().now() + std::chrono::microseconds(rng_() % 10'000),
                                 world_owner, [this, n] {
                                     if (cluster_->is_up(n) && down_count() < max_down()) {
                                         crash(n);
                                     }
                                 });
            }
        }
        if (on(fault::restart) && chance(0.02) && !cluster_->is_up(n) && !corrupt_.count(n)) {
            if (!cluster_->start(n)) {
                note_fault(fault::restart, name(n));
            }
        }
        if (size_ > 1 && on(fault::partition_symmetric) && chance(0.003)) {
            std::vector<node_id> a;
            std::vector<node_id> b;
            for (node_id id : cluster_->ids()) {
                (rng_() % 2 == 0 ? a : b).push_back(id);
            }
            for (node_id x : a) {
                for (node_id y : b) {
                    cluster_->network().disconnect(x, y);
                }
            }
            note_fault(fault::partition_symmetric,
                       std::to_string(a.size()) + "|" + std::to_string(b.size()));
        }
        if (size_ > 1 && on(fault::partition_one_way) && chance(0.003)) {
            const node_id m = any_node();
            if (m != n) {
                cluster_->network().cut(n, m);
                note_fault(fault::partition_one_way, name(n) + "->" + name(m));
            }
        }
        if (size_ > 2 && on(fault::partition_bridge) && chance(0.002)) {
            // Two sides that reach each other only through one bridge node.
            const node_id bridge = n;
            std::vector<node_id> a;
            std::vector<node_id> b;
            for (node_id id : cluster_->ids()) {
                if (id != bridge) {
                    (rng_() % 2 == 0 ? a : b).push_back(id);
                }
            }
            for (node_id x : a) {
                for (node_id y : b) {
                    cluster_->network().disconnect(x, y);
                }
            }
            note_fault(fault::partition_bridge, "via " + name(bridge));
        }
        if (on(fault::heal) && chance(0.01)) {
            cluster_->network().heal();
            for (node_id id : cluster_->ids()) {
                cluster_->network().clog(id, duration::zero());
            }
            note_fault(fault::heal, "network");
        }
        if (on(fault::clog) && chance(0.003)) {
            cluster_->network().clog(n, std::chrono::milliseconds(50 + rng_() % 450));
            result_.faults.push_back({clock().now(), "clog: " + name(n)});
        }
        if (on(fault::pause) && chance(0.003) && cluster_->is_up(n)) {
            cluster_->pause(n, std::chrono::milliseconds(100 + rng_() % 1900));
            note_fault(fault::pause, name(n));
        }
        if (on(fault::clock_jump) && read_mode_ != read_mode::lease && chance(0.002) &&
            cluster_->is_up(n)) {
            cluster_->time(n).jump(std::chrono::milliseconds(100 + rng_() % 2000));
            note_fault(fault::clock_jump, name(n));
        }
        if (on(fault::clock_drift) && chance(0.002) && cluster_->is_up(n)) {
            const double rates[] = {0.5, 0.8, 0.95, 1.05, 1.25, 2.0};
            const double bounded[] = {0.95, 1.05};
            cluster_->time(n).set_rate(read_mode_ == read_mode::lease ? bounded[rng_() % 2]
                                                                      : rates[rng_() % 6]);
            note_fault(fault::clock_drift, name(n));
        }
        if (on(fault::flush_failure) && chance(0.001) && cluster_->is_up(n) &&
            down_count() < max_down()) {
            cluster_->disk(n).fail_flushes(); // the node stops; the sweep restarts it later
            note_fault(fault::flush_failure, name(n));
        }
        // (A file log fails for good at a failed write, so its node stops, and then the
        // crash budget applies.)
        if (on(fault::disk_full) && chance(0.002) &&
            (!cluster_type::disk_type::disk_full_stops_node ||
             (cluster_->is_up(n) && down_count() < max_down()))) {
            cluster_->disk(n).set_disk_full(true);
            full_.insert(n);
            note_fault(fault::disk_full, name(n));
        } else if (!full_.empty() && chance(0.02)) {
            for (node_id id : full_) {
                cluster_->disk(id).set_disk_full(false);
            }
            full_.clear();
        }
        if (on(fault::bit_flip) && size_ >= 3 && corrupt_.empty() && chance(0.0005) &&
            cluster_->is_up(n) && down_count() < max_down()) {
            // Bit rot found at the next start: the node must refuse to run on it.
            cluster_->crash(n);
            if (corrupt_disk(n)) {
                if (cluster_->start(n) != errc::corrupt_storage) {
                    fail("a node started on a corrupted log");
                }
                corrupt_.insert(n);
                note_fault(fault::bit_flip, name(n));
            } else {
                cluster_->start(n);
            }
        }
        // A node stopped by a storage failure is restarted like a crashed one.
        for (node_id id : cluster_->ids()) {
            if (cluster_->is_up(id) && cluster_->node(id).stopped() && chance(0.05)) {
                cluster_->crash(id);
            }
        }
    }

    /// Damages a crashed node's stored data (see the disk's `corrupt`).
    bool corrupt_disk(node_id n) {
        if constexpr (memory) {
            const log_index last = cluster_->log(n).durable_last_index();
            return last > log_index{} && cluster_->log(n).corrupt_durable_entry(
                                             log_index{1 + rng_() % last.value()}, rng_() % 64);
        } else {
            return cluster_->disk(n).corrupt(rng_());
        }
    }

    void crash(node_id n) {
        const bool unflushed = cluster_->disk(n).has_unflushed();
        if (on(fault::torn_write) && unflushed && chance(0.5)) {
            if constexpr (memory) {
                cluster_->crash_torn(n, rng_() % 3, rng_() % 4);
            } else {
                cluster_->crash_torn(n, static_cast<std::uint64_t>(rng_()));
            }
            note_fault(fault::torn_write, name(n));
        } else {
            cluster_->crash(n);
            if (unflushed) {
                result_.hits.hit(fault::lost_unflushed);
            }
        }
        note_fault(fault::crash, name(n));
    }

    /// Nodes out of action: crashed, corrupt, stopped by a storage failure, or about to be
    /// (their log has failed and they will stop at their next write).
    /// Nodes that cannot help a quorum: down, stopped, failed — and learners (demoted
    /// voters), so demotions and crashes together never leave the voters without a majority.
    [[nodiscard]] std::size_t down_count() {
        std::size_t down = 0;
        // Nodes outside the smallest voter set a running node knows: learners, and while a
        // change is joint, whatever C_old or C_new lacks (during a promotion the learner has
        // left learners() but C_old is still the small set, and C_old needs its own majority).
        std::size_t non_voters = 0;
        for (node_id id : cluster_->ids()) {
            if (cluster_->is_up(id)) {
                const membership& c = cluster_->node(id).config();
                std::size_t voters = c.voters().size();
                if (c.is_joint()) {
                    voters = std::min(voters, c.outgoing_voters().size());
                }
                non_voters = std::max(non_voters, size_ - std::min(size_, voters));
            }
        }
        down += non_voters;
        for (node_id id : cluster_->ids()) {
            down +=
                !cluster_->is_up(id) || cluster_->node(id).stopped() || cluster_->disk(id).failed()
                    ? 1
                    : 0;
        }
        return down;
    }
    /// Crashes and storage failures never take out a majority at once, so the cluster can
    /// always make progress once the network heals; a node lost to corruption counts against
    /// that budget for good.
    [[nodiscard]] std::size_t max_down() const { return (size_ - 1) / 2; }

    void heal_all() {
        cluster_->network().heal();
        cluster_->network().set_faults({});
        for (node_id id : cluster_->ids()) {
            cluster_->resume(id);
            cluster_->network().clog(id, duration::zero());
            cluster_->disk(id).set_disk_full(false);
            if (cluster_->is_up(id) &&
                (cluster_->node(id).stopped() || cluster_->disk(id).failed())) {
                cluster_->crash(id); // the operator replaces the failed disk's process
            }
            if (!cluster_->is_up(id) && !corrupt_.count(id)) {
                cluster_->start(id);
            }
            if (cluster_->is_up(id)) {
                cluster_->time(id).set_rate(1.0);
            }
        }
        full_.clear();
    }

    // --- oracles ---------------------------------------------------------------------------

    /// After the last fault heals, a leader is elected and a write commits within 20 maximum
    /// election timeouts.
    void check_liveness() {
        const duration bound = 20 * duration(std::chrono::milliseconds(300));
        const time_point deadline = clock().now() + bound;
        // Retry as a client would: a leader elected just before the heal may still step down.
        while (clock().now() < deadline) {
            auto leader = cluster_->wait_for_leader(deadline - clock().now());
            if (!leader) {
                break;
            }
            auto slot = cluster_->propose(*leader, "liveness");
            clock().run_until([&] { return slot->has_value(); }, deadline - clock().now());
            if (slot->has_value() && !(*slot)->error) {
                return;
            }
            // Refused at once (e.g. a leadership transfer under way): let time pass first.
            clock().run_until(std::min(deadline, clock().now() + std::chrono::milliseconds(10)));
        }
        fail("liveness: no write committed within 20 election timeouts of the heal; " +
             describe_nodes());
    }

    /// One line per node: what an operator would look at first.
    std::string describe_nodes() {
        std::ostringstream os;
        os << "[network sent " << cluster_->network().sent() << " delivered "
           << cluster_->network().delivered() << " dropped " << cluster_->network().dropped()
           << ", events pending " << clock().pending_events() << "] ";
        for (node_id id : cluster_->ids()) {
            os << name(id) << "=";
            if (!cluster_->is_up(id)) {
                os << (corrupt_.count(id) ? "corrupt" : "down");
            } else {
                const auto st = cluster_->node(id).status();
                os << raft::to_string(st.role) << "/t" << st.current_term.value() << "/leader"
                   << st.leader.value() << "/last" << st.last_index.value() << "/durable"
                   << st.durable_index.value() << "/commit" << st.commit_index.value()
                   << (st.stopped ? "/stopped" : "");
                // The voter sets decide who can win an election (both while joint).
                const membership& c = cluster_->node(id).config();
                auto names = [&](const std::vector<node_id>& ids) {
                    std::string out;
                    for (node_id v : ids) {
                        out += (out.empty() ? "" : ",") + name(v);
                    }
                    return out;
                };
                os << "/voters{" << names(c.voters()) << "}";
                if (c.is_joint()) {
                    os << "/outgoing{" << names(c.outgoing_voters()) << "}";
                }
                for (const auto& f : st.followers) {
                    os << "[" << name(f.id) << " match" << f.match.value() << " next"
                       << f.next.value() << " " << raft::to_string(f.state) << " inflight"
                       << f.inflight << "]";
                }
            }
            os << " ";
        }
        return os.str();
    }

    void check_history() {
        std::vector<operation<kv_model>> happened;
        for (std::size_t i = 0; i < history_.size(); ++i) {
            if (!history_[i].input.key.empty()) {
                happened.push_back(history_[i]);
                result_.unknown_operations += history_[i].returned ? 0 : 1;
            }
        }
        result_.linearizability = check_linearizable(happened);
        if (!result_.linearizability.linearizable) {
            fail("history not linearizable: " + result_.linearizability.explanation);
        }
        result_.history = std::move(happened);
    }

    void check_no_acknowledged_write_lost() {
        auto leader = cluster_->leader();
        if (!leader) {
            return; // liveness already failed
        }
        auto& log = cluster_->log(*leader);
        for (std::size_t i = 0; i < history_.size(); ++i) {
            const auto& op = history_[i];
            if (op.input.key.empty() || !op.returned || op.input.op == kv_model::kind::get) {
                continue;
            }
            const log_entry expected{term{}, indexes_[i], entry_kind::normal,
                                     kv_machine::encode(op.input)};
            std::vector<log_entry> at;
            // Compacted entries are judged by what the checker saw committed at that index.
            const bool held = indexes_[i] >= log.first_index();
            if (held ? log.entries(indexes_[i], indexes_[i] + 1, SIZE_MAX, at) ||
                           at.front().payload != expected.payload
                     : !cluster_->checker().committed_as(expected)) {
                fail("acknowledged write lost: " + kv_model::describe(op.input, op.output) +
                     " at index " + std::to_string(indexes_[i].value()));
                return;
            }
        }
    }

    void record_roles() {
        for (node_id id : cluster_->ids()) {
            std::pair<raft::role, term> now{raft::role::follower, term{}};
            if (cluster_->is_up(id)) {
                now = {cluster_->node(id).role(), cluster_->node(id).current_term()};
            }
            auto& last = last_roles_[id.value()];
            if (!last || *last != now) {
                last = now;
                result_.roles.push_back({clock().now(), id, now.first, now.second});
            }
        }
    }

    std::uint64_t seed_;
    sweep_options options_;
    std::mt19937_64 rng_;
    std::size_t size_ = 3;
    std::unique_ptr<cluster_type> cluster_;
    sweep_result result_;
    std::vector<client> clients_;
    std::vector<operation<kv_model>> history_;
    std::vector<log_index> indexes_;
    std::vector<std::optional<std::pair<raft::role, term>>> last_roles_;
    std::set<node_id> corrupt_;
    std::set<node_id> full_;
    std::size_t completed_ = 0;
    std::uint64_t values_ = 0;
    enum class read_mode : std::uint8_t { log, read_index, lease };
    read_mode read_mode_ = read_mode::log;
    std::size_t reads_served_ = 0;
    std::uint64_t hash_ = 0xcbf29ce484222325ULL;
    bool stop_clients_ = false;
    time_point start_{};
};

using sweep_run = basic_sweep_run<>;

/// Runs one seed of the sweep, on the log `options.log` names.
[[nodiscard]] inline sweep_result run_sweep(std::uint64_t seed, const sweep_options& options = {}) {
    if (options.log == log_kind::file) {
        return basic_sweep_run<file_log>(seed, options).run();
    }
    return sweep_run(seed, options).run();
}

} // namespace synod::sim
