#include <doctest/doctest.h>

#include <synod/raft/inflights.hpp>
#include <synod/raft/quorum.hpp>

#include <map>

namespace {

using namespace synod;
using namespace synod::raft;

std::vector<node_id> ids(std::initializer_list<std::uint64_t> raw) {
    std::vector<node_id> out;
    for (auto r : raw) {
        out.push_back(node_id{r});
    }
    return out;
}

TEST_CASE("quorum (paper §5.3): the commit point is the highest index a majority has reached") {
    std::vector<log_index> scratch;
    std::map<std::uint64_t, std::uint64_t> match{{1, 5}, {2, 3}, {3, 9}};
    auto of = [&](node_id id) { return log_index{match[id.value()]}; };
    CHECK(quorum_index(membership(ids({1, 2, 3})), of, scratch) == log_index{5});
    CHECK(quorum_index(membership(ids({1})), of, scratch) == log_index{5});
    match = {{1, 4}, {2, 4}, {3, 1}, {4, 1}};
    CHECK(quorum_index(membership(ids({1, 2, 3, 4})), of, scratch) == log_index{1}); // 3 of 4
    match = {{1, 7}, {2, 6}, {3, 5}, {4, 2}, {5, 1}};
    CHECK(quorum_index(membership(ids({1, 2, 3, 4, 5})), of, scratch) == log_index{5});
}

TEST_CASE("quorum (thesis §4.3): a joint configuration commits only what majorities of both "
          "halves hold") {
    std::vector<log_index> scratch;
    std::map<std::uint64_t, std::uint64_t> match{{1, 9}, {2, 9}, {3, 1}, {4, 2}, {5, 2}};
    auto of = [&](node_id id) { return log_index{match[id.value()]}; };
    membership joint(ids({3, 4, 5}), {}, ids({1, 2, 3}));
    CHECK(quorum_index(joint, of, scratch) == log_index{2}); // new half holds only 2
}

TEST_CASE("vote tally (paper §5.2): won with a majority, lost once a majority is impossible, "
          "both halves in a joint configuration") {
    std::map<std::uint64_t, int> votes;
    auto of = [&](node_id id) { return votes.count(id.value()) ? votes[id.value()] : 0; };
    membership three(ids({1, 2, 3}));
    votes = {{1, 1}};
    CHECK(tally_votes(three, of) == vote_tally::pending);
    votes = {{1, 1}, {2, 1}};
    CHECK(tally_votes(three, of) == vote_tally::won);
    votes = {{1, 1}, {2, -1}, {3, -1}};
    CHECK(tally_votes(three, of) == vote_tally::lost);

    membership joint(ids({4, 5, 6}), {}, ids({1, 2, 3}));
    votes = {{1, 1}, {2, 1}, {4, 1}};
    CHECK(tally_votes(joint, of) == vote_tally::pending);
    votes = {{1, 1}, {2, 1}, {4, 1}, {5, 1}};
    CHECK(tally_votes(joint, of) == vote_tally::won);
    votes = {{1, 1}, {2, 1}, {4, -1}, {5, -1}};
    CHECK(tally_votes(joint, of) == vote_tally::lost);
}

TEST_CASE("inflights: bounded by count and bytes, freed by acknowledgement, one oversized "
          "message always admitted") {
    inflights w(3, 1000);
    CHECK_FALSE(w.full());
    w.add(log_index{5}, 5000); // bigger than the byte cap, admitted when empty
    CHECK(w.full());
    w.free_through(log_index{5});
    CHECK(w.count() == 0);
    w.add(log_index{1}, 10);
    w.add(log_index{2}, 10);
    w.add(log_index{3}, 10);
    CHECK(w.full()); // count cap
    w.free_through(log_index{2});
    CHECK(w.count() == 1);
    CHECK(w.bytes() == 10);
    w.free_first();
    CHECK(w.count() == 0);
    CHECK(w.bytes() == 0);
}

} // namespace
