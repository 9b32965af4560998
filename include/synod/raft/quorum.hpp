#pragma once

/// \file
/// Majority arithmetic over a membership, including the joint form of thesis chapter 4, where
/// a decision needs a majority of the incoming voters *and* of the outgoing ones.

#include <synod/core/ids.hpp>
#include <synod/core/membership.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace synod::raft {

enum class vote_tally { pending, won, lost };

namespace quorum_detail {

/// The largest index that a majority of `voters` has reached. An empty set places no
/// constraint (used for the outgoing half of a non-joint config).
template <class MatchOf>
log_index majority_index(const std::vector<node_id>& voters, MatchOf&& match_of,
                         std::vector<log_index>& scratch) {
    if (voters.empty()) {
        return log_index{UINT64_MAX};
    }
    scratch.clear();
    for (node_id id : voters) {
        scratch.push_back(match_of(id));
    }
    // Sorted descending, the entry at position floor(n/2) is reached by n/2+1 voters.
    std::size_t k = voters.size() / 2;
    std::nth_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(k),
                     scratch.end(), std::greater<>{});
    return scratch[k];
}

template <class VoteOf>
vote_tally tally(const std::vector<node_id>& voters, VoteOf&& vote_of) {
    if (voters.empty()) {
        return vote_tally::won;
    }
    std::size_t granted = 0;
    std::size_t rejected = 0;
    for (node_id id : voters) {
        switch (vote_of(id)) {
        case 1:
            ++granted;
            break;
        case -1:
            ++rejected;
            break;
        default:
            break;
        }
    }
    std::size_t majority = voters.size() / 2 + 1;
    if (granted >= majority) {
        return vote_tally::won;
    }
    if (rejected > voters.size() - majority) {
        return vote_tally::lost;
    }
    return vote_tally::pending;
}

} // namespace quorum_detail

/// The highest index replicated on a quorum of `config`, given each voter's match index.
template <class MatchOf>
[[nodiscard]] log_index quorum_index(const membership& config, MatchOf&& match_of,
                                     std::vector<log_index>& scratch) {
    log_index incoming = quorum_detail::majority_index(config.voters(), match_of, scratch);
    log_index outgoing = quorum_detail::majority_index(config.outgoing_voters(), match_of, scratch);
    return std::min(incoming, outgoing);
}

/// Outcome of an election given each voter's answer (`vote_of`: 1 granted, -1 rejected, 0 none
/// yet). Joint configurations need both halves to win; losing either half loses.
template <class VoteOf>
[[nodiscard]] vote_tally tally_votes(const membership& config, VoteOf&& vote_of) {
    vote_tally incoming = quorum_detail::tally(config.voters(), vote_of);
    vote_tally outgoing = quorum_detail::tally(config.outgoing_voters(), vote_of);
    if (incoming == vote_tally::lost || outgoing == vote_tally::lost) {
        return vote_tally::lost;
    }
    if (incoming == vote_tally::won && outgoing == vote_tally::won) {
        return vote_tally::won;
    }
    return vote_tally::pending;
}

/// Whether the voters for which `active(id)` holds form a quorum (check-quorum, thesis §6.2).
template <class Active>
[[nodiscard]] bool has_quorum(const membership& config, Active&& active) {
    return tally_votes(config, [&](node_id id) { return active(id) ? 1 : -1; }) == vote_tally::won;
}

} // namespace synod::raft
