#pragma once

/// \file
/// Cluster membership: voters, learners, and the joint configuration C_old,new of Raft thesis
/// chapter 4, in which elections and commitment need separate majorities of both sets.

#include <synod/core/ids.hpp>

#include <algorithm>
#include <vector>

namespace synod {

class membership {
public:
    membership() = default;
    membership(std::vector<node_id> voters, std::vector<node_id> learners = {},
               std::vector<node_id> outgoing_voters = {})
        : voters_(normalize(std::move(voters)))
        , learners_(normalize(std::move(learners)))
        , outgoing_voters_(normalize(std::move(outgoing_voters))) {}

    /// Voters of the (incoming) configuration. Sorted, unique.
    [[nodiscard]] const std::vector<node_id>& voters() const noexcept { return voters_; }
    /// Non-voting members that receive the log. Sorted, unique.
    [[nodiscard]] const std::vector<node_id>& learners() const noexcept { return learners_; }
    /// Voters of C_old while a joint change is in flight; empty otherwise.
    [[nodiscard]] const std::vector<node_id>& outgoing_voters() const noexcept {
        return outgoing_voters_;
    }
    [[nodiscard]] bool is_joint() const noexcept { return !outgoing_voters_.empty(); }

    [[nodiscard]] bool is_voter(node_id id) const noexcept {
        return contains(voters_, id) || contains(outgoing_voters_, id);
    }
    [[nodiscard]] bool is_learner(node_id id) const noexcept { return contains(learners_, id); }
    [[nodiscard]] bool is_member(node_id id) const noexcept {
        return is_voter(id) || is_learner(id);
    }

    /// Every member (voters of both halves and learners), sorted, unique.
    [[nodiscard]] std::vector<node_id> members() const {
        std::vector<node_id> all = voters_;
        all.insert(all.end(), outgoing_voters_.begin(), outgoing_voters_.end());
        all.insert(all.end(), learners_.begin(), learners_.end());
        return normalize(std::move(all));
    }

    /// Well-formed: at least one voter, no node both an (incoming) voter and a learner, no
    /// `no_node`. (A voter being demoted is an outgoing voter and a learner while joint.)
    [[nodiscard]] bool valid() const noexcept {
        if (voters_.empty() || contains(voters_, no_node) || contains(learners_, no_node) ||
            contains(outgoing_voters_, no_node)) {
            return false;
        }
        return std::none_of(learners_.begin(), learners_.end(),
                            [&](node_id id) { return contains(voters_, id); });
    }

    friend bool operator==(const membership&, const membership&) = default;

private:
    static bool contains(const std::vector<node_id>& set, node_id id) noexcept {
        return std::binary_search(set.begin(), set.end(), id);
    }
    static std::vector<node_id> normalize(std::vector<node_id> ids) {
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        return ids;
    }

    std::vector<node_id> voters_;
    std::vector<node_id> learners_;
    std::vector<node_id> outgoing_voters_;
};

} // namespace synod
