#pragma once

/// \file
/// Raft's safety properties (paper Figure 3), checked against a running cluster after every
/// simulated event:
///
/// - **election safety**: at most one leader per term, over the whole run;
/// - **log matching**: an (index, term) pair identifies one entry in every log, and so does
///   the log before it (checked as: same payload and same previous term everywhere);
/// - **leader completeness**: a leader of a later term holds every committed entry;
/// - **state machine safety**: no two nodes apply different entries at one index, and each
///   node applies in increasing index order;
/// - **commit monotonicity**: a node's commit index never decreases while it runs;
/// - **durability**: everything a node has reported durable is in its log's durable image,
///   so a crash cannot lose it;
/// - **snapshot safety** (paper §7): a snapshot covers only committed entries — its last
///   term is the committed entry's term at its index — and every snapshot taken or installed
///   at one index holds the same bytes; compaction never removes an entry that no snapshot
///   covers, neither in the log nor on its disk.
///
/// A violation throws `invariant_violation` describing it; the simulator's callers print the
/// seed that replays it.

#include <synod/core/bytes.hpp>
#include <synod/core/hard_state.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/raft/status.hpp>

#include <cstdint>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace synod::sim {

struct invariant_violation : std::logic_error {
    using std::logic_error::logic_error;
};

class invariant_checker {
public:
    /// A node (re)started: its commit index and apply order start afresh.
    void on_start(node_id id) {
        auto& n = nodes_[id];
        ++n.starts;
        n.last_commit = log_index{};
        n.last_applied = log_index{};
        n.leader_checked_term = term{};
        n.leader_verified = log_index{};
        n.verified.clear();
        n.verified_first = log_index{};
        n.snapshot_index = log_index{};
    }

    /// Called by the recording state machine for every applied entry.
    void on_apply(node_id id, const log_entry& e) {
        auto& n = nodes_[id];
        if (e.index <= n.last_applied) {
            fail("node " + str(id) + " applied index " + str(e.index) + " after " +
                 str(n.last_applied));
        }
        n.last_applied = e.index;
        const signature sig{e.term, fingerprint(e)};
        auto [it, fresh] = applied_.emplace(e.index, sig);
        if (!fresh && it->second != sig) {
            fail("state machine safety: index " + str(e.index) + " applied as term " +
                 str(it->second.t) + " and as term " + str(e.term) + " (node " + str(id) + ")");
        }
    }

    /// Committed entries are recorded in the term of the node that reported them, which is at
    /// least the term they were committed in; leaders of that term or earlier are exempt.
    /// Checks one running node and its log.
    template <class Node, class Log>
    void check(const Node& node, const Log& log) {
        const node_id id = node.id();
        auto& n = nodes_[id];

        if (node.role() == raft::role::leader) {
            // One leader per term — and one *tenure*: the same node leading a term again
            // after a restart has forgotten what it did there.
            const leader_record me{id, n.starts};
            auto [it, fresh] = leaders_.emplace(node.current_term(), me);
            if (!fresh && it->second != me) {
                fail("election safety: term " + str(node.current_term()) + " led by node " +
                     str(it->second.id) + " (start " + str(it->second.start) + ") and node " +
                     str(id) + " (start " + str(n.starts) + ")");
            }
            if constexpr (requires { log.durable_hard_state(); }) {
                const hard_state& hs = log.durable_hard_state();
                if (hs.current_term != node.current_term() || hs.voted_for != id) {
                    fail("durability: leader " + str(id) + " of term " + str(node.current_term()) +
                         " has not made its term and vote durable");
                }
            }
        }

        if (node.commit_index() < n.last_commit) {
            fail("commit index of node " + str(id) + " went back from " + str(n.last_commit) +
                 " to " + str(node.commit_index()));
        }
        n.last_commit = node.commit_index();

        check_log_matching(id, n, log);
        record_commits(node, log);
        check_snapshot(id, n, node, log);
        if (node.role() == raft::role::leader) {
            if (n.leader_checked_term != node.current_term()) {
                n.leader_checked_term = node.current_term();
                n.leader_verified = log_index{};
            }
            check_leader_completeness(node, log, n.leader_verified + 1);
            n.leader_verified = log_index{committed_.size()};
        }

        if constexpr (requires { log.durable_last_index(); }) {
            const log_index durable = node.durable_index();
            if (durable > log.durable_last_index()) {
                fail("durability: node " + str(id) + " reports " + str(durable) +
                     " durable but its disk holds only through " + str(log.durable_last_index()));
            }
            // (A file log knows what it made durable but keeps no copy of its disk's image:
            // its crash tests check the disk, the simulator's crashes exercise recovery.)
            if constexpr (requires { log.durable_entry(durable); }) {
                if (durable >= log.first_index()) {
                    const log_entry* on_disk = log.durable_entry(durable);
                    if (on_disk == nullptr || on_disk->term != *log.term_at(durable)) {
                        fail("durability: node " + str(id) + "'s durable entry " + str(durable) +
                             " differs from its log");
                    }
                }
            }
        }
    }

    [[nodiscard]] std::size_t committed_entries() const noexcept { return committed_.size(); }

    /// Whether an entry of `e`'s kind and payload was seen committed at `e.index` (its term
    /// is not compared).
    [[nodiscard]] bool committed_as(const log_entry& e) const noexcept {
        return e.index > log_index{} && e.index.value() <= committed_.size() &&
               committed_[e.index.value() - 1].hash == fingerprint(e);
    }

private:
    struct signature {
        term t;
        std::uint64_t hash;
        friend bool operator==(const signature&, const signature&) = default;
    };
    struct leader_record {
        node_id id;
        std::uint64_t start;
        friend bool operator==(const leader_record&, const leader_record&) = default;
    };
    struct node_record {
        std::uint64_t starts = 0;
        log_index last_commit;
        log_index last_applied;
        term leader_checked_term;
        /// Committed entries already found in this node's log while it led that term.
        log_index leader_verified;
        /// Signatures of this node's log entries already verified, from `verified_first`.
        std::vector<signature> verified;
        log_index verified_first;
        /// The snapshot index last checked.
        log_index snapshot_index;
    };
    struct entry_record {
        std::uint64_t hash;
        term previous_term;
    };

    template <class Log>
    void check_log_matching(node_id id, node_record& n, const Log& log) {
        const log_index first = log.first_index();
        const log_index last = log.last_index();
        if (n.verified_first != first) {
            // Compaction removed verified entries from the front (or a restart moved it).
            const std::size_t gone = first > n.verified_first ? first - n.verified_first : 0;
            if (n.verified_first != log_index{} && first > n.verified_first &&
                gone <= n.verified.size()) {
                n.verified.erase(n.verified.begin(),
                                 n.verified.begin() + static_cast<std::ptrdiff_t>(gone));
            } else {
                n.verified.clear();
            }
            n.verified_first = first;
        }
        // Re-verify from the first entry whose term or content changed since the last check.
        const std::size_t held = last >= first ? (last - first) + 1 : 0;
        std::size_t keep = std::min(n.verified.size(), held);
        while (keep > 0 && n.verified[keep - 1] != signature_at(log, first + (keep - 1))) {
            --keep;
        }
        n.verified.resize(keep);
        for (log_index i = first + keep; i <= last; ++i) {
            scratch_.clear();
            if (log.entries(i, i + 1, SIZE_MAX, scratch_)) {
                fail("node " + str(id) + " cannot read its own entry " + str(i));
            }
            const log_entry& e = scratch_.front();
            const term previous = *log.term_at(i - 1);
            if (e.term < previous) {
                fail("log of node " + str(id) + " has term " + str(e.term) + " at " + str(i) +
                     " after term " + str(previous));
            }
            entry_record rec{fingerprint(e), previous};
            auto [it, fresh] = entries_.emplace(std::pair{e.index, e.term}, rec);
            if (!fresh &&
                (it->second.hash != rec.hash || it->second.previous_term != rec.previous_term)) {
                fail("log matching: entry " + str(i) + " of term " + str(e.term) + " on node " +
                     str(id) + " differs from the same index and term elsewhere");
            }
            n.verified.push_back({e.term, rec.hash});
        }
    }

    template <class Log>
    signature signature_at(const Log& log, log_index i) {
        scratch_.clear();
        if (log.entries(i, i + 1, SIZE_MAX, scratch_)) {
            fail("cannot read entry " + str(i));
        }
        return {scratch_.front().term, fingerprint(scratch_.front())};
    }

    template <class Node, class Log>
    void record_commits(const Node& node, const Log& log) {
        const log_index commit = node.commit_index();
        if (commit.value() <= committed_.size() ||
            committed_.size() + 1 < log.first_index().value()) {
            return; // nothing new, or compacted here: another node's check records them
        }
        const log_index from{committed_.size() + 1};
        for (log_index i = from; i <= commit; ++i) {
            scratch_.clear();
            if (log.entries(i, i + 1, SIZE_MAX, scratch_)) {
                fail("node " + str(node.id()) + " committed " + str(commit) +
                     " but cannot read entry " + str(i));
            }
            committed_.push_back({scratch_.front().term, fingerprint(scratch_.front())});
            committed_in_term_.push_back(node.current_term());
        }
    }

    template <class Node, class Log>
    void check_leader_completeness(const Node& node, const Log& log, log_index from) {
        for (log_index i = std::max(from, log.first_index()); i.value() <= committed_.size(); ++i) {
            // (Entries below the first index are covered by the leader's snapshot, which
            // check_snapshot holds to committed entries only.)
            if (committed_in_term_[i.value() - 1] >= node.current_term()) {
                continue; // committed in this leader's term or later: not its obligation
            }
            const signature& want = committed_[i.value() - 1];
            scratch_.clear();
            if (i > log.last_index() || log.entries(i, i + 1, SIZE_MAX, scratch_) ||
                signature{scratch_.front().term, fingerprint(scratch_.front())} != want) {
                fail("leader completeness: leader " + str(node.id()) + " of term " +
                     str(node.current_term()) + " lacks committed entry " + str(i));
            }
        }
    }

    template <class Node, class Log>
    void check_snapshot(node_id id, node_record& n, const Node& node, const Log& log) {
        if constexpr (requires { log.durable_snapshot_index(); }) {
            if (log.durable_first_index() - 1 > log.durable_snapshot_index()) {
                fail("durability: node " + str(id) + "'s disk has compacted through " +
                     str(log.durable_first_index() - 1) + " but its durable snapshot covers only " +
                     str(log.durable_snapshot_index()));
            }
        }
        const log_index index = node.snapshot_index();
        if (log.first_index() - 1 > index) {
            fail("compaction: node " + str(id) + " removed entries through " +
                 str(log.first_index() - 1) + " but its snapshot covers only " + str(index));
        }
        if (index == n.snapshot_index) {
            return;
        }
        n.snapshot_index = index;
        const auto image = log.latest_snapshot();
        if (!image || image->meta.last_index != index) {
            fail("node " + str(id) + " reports snapshot " + str(index) +
                 " but its log holds another");
        }
        std::uint64_t h = 1469598103934665603ULL;
        for (std::byte b : image->data.span()) {
            h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ULL;
        }
        auto [it, fresh] = snapshots_.emplace(index, std::pair{image->meta.last_term, h});
        if (!fresh && it->second != std::pair{image->meta.last_term, h}) {
            fail("snapshot safety: node " + str(id) + "'s snapshot at " + str(index) +
                 " differs from another node's snapshot at the same index");
        }
        if (index.value() <= committed_.size() &&
            committed_[index.value() - 1].t != image->meta.last_term) {
            fail("snapshot safety: node " + str(id) + "'s snapshot at " + str(index) +
                 " has term " + str(image->meta.last_term) + " but the committed entry there has " +
                 str(committed_[index.value() - 1].t));
        }
    }

    static std::uint64_t fingerprint(const log_entry& e) noexcept {
        std::uint64_t h = 1469598103934665603ULL ^ static_cast<std::uint64_t>(e.kind);
        for (std::byte b : e.payload.span()) {
            h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ULL;
        }
        return h;
    }

    template <class T>
    static std::string str(const T& v) {
        std::ostringstream os;
        os << v;
        return os.str();
    }

    [[noreturn]] static void fail(const std::string& what) { throw invariant_violation(what); }

    std::map<node_id, node_record> nodes_;
    std::map<term, leader_record> leaders_;
    std::map<std::pair<log_index, term>, entry_record> entries_;
    std::map<log_index, signature> applied_;
    std::map<log_index, std::pair<term, std::uint64_t>> snapshots_;
    std::vector<signature> committed_;
    std::vector<term> committed_in_term_;
    std::vector<log_entry> scratch_;
};

} // namespace synod::sim
