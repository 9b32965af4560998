#pragma once

/// \file
/// A linearizability checker for client histories (Herlihy & Wing 1990), using the search of
/// Wing & Gong (1993) with Lowe's memoization of (linearized set, model state) (2017), and
/// checking each partition of the history on its own where the model allows it (P-compositionality:
/// a key-value history is linearizable iff each key's sub-history is).
///
/// A history is a set of operations, each with a call time and, if the client saw an answer,
/// a return time and output. An operation whose outcome is unknown (the client timed out) may
/// have taken effect at any point after its call, or never: it is given a return time after
/// every other event and accepts any output.
///
/// A model describes the sequential object:
///
/// | member | meaning |
/// |---|---|
/// | `Model::state` | value type, equality-comparable, `std::hash`-able |
/// | `Model::input`, `Model::output` | an operation's arguments and answer |
/// | `Model::initial()` | the object's initial state |
/// | `Model::step(s, in, out) -> std::optional<state>` | the state after applying `in` to `s` if it could answer `out`; `out` empty = unknown outcome, accept any answer |
/// | `Model::partition(in)` | key of the independent sub-object `in` touches |
/// | `Model::describe(in, out)` | text for reports |

#include <synod/sim/world.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace synod::sim {

template <class Model>
struct operation {
    std::uint64_t client = 0;
    typename Model::input input;
    /// Empty when the outcome is unknown.
    std::optional<typename Model::output> output;
    time_point call;
    /// Empty when the outcome is unknown.
    std::optional<time_point> returned;
};

struct linearizability_result {
    bool linearizable = true;
    /// On failure: the partition (e.g. key) whose history has no linearization, the operations
    /// of the longest linearizable prefix found (indexes into the checked history, in
    /// linearization order), and a description for reports.
    std::string partition;
    std::vector<std::size_t> longest_prefix;
    std::string explanation;
};

namespace linearizability_detail {

/// Which operations are linearized so far; hashed together with the model state.
class op_set {
public:
    explicit op_set(std::size_t n)
        : words_((n + 63) / 64, 0) {}
    void set(std::size_t i) { words_[i / 64] |= std::uint64_t{1} << (i % 64); }
    void reset(std::size_t i) { words_[i / 64] &= ~(std::uint64_t{1} << (i % 64)); }
    friend bool operator==(const op_set&, const op_set&) = default;
    [[nodiscard]] std::size_t hash() const noexcept {
        std::size_t h = 0x9e3779b97f4a7c15ULL;
        for (std::uint64_t w : words_) {
            h ^= std::hash<std::uint64_t>{}(w) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        }
        return h;
    }

private:
    std::vector<std::uint64_t> words_;
};

template <class State>
struct memo_key {
    op_set done;
    State state;
    friend bool operator==(const memo_key&, const memo_key&) = default;
};

template <class State>
struct memo_hash {
    std::size_t operator()(const memo_key<State>& k) const noexcept {
        return k.done.hash() ^ (std::hash<State>{}(k.state) * 0x9e3779b97f4a7c15ULL);
    }
};

/// Checks one partition: `ops` are indexes into `history`.
template <class Model>
bool check_partition(const std::vector<operation<Model>>& history,
                     const std::vector<std::size_t>& ops, std::vector<std::size_t>& best) {
    using state = typename Model::state;
    const std::size_t n = ops.size();
    if (n == 0) {
        return true;
    }
    // Events in time order: calls before returns at equal times, so operations that touch
    // are treated as concurrent (the permissive reading). Unknown returns come last.
    struct event {
        std::size_t op; // local index
        bool is_call;
    };
    std::vector<event> events;
    events.reserve(2 * n);
    for (std::size_t k = 0; k < n; ++k) {
        events.push_back({k, true});
        events.push_back({k, false});
    }
    auto when = [&](const event& e) {
        const auto& op = history[ops[e.op]];
        if (e.is_call) {
            return std::pair{op.call, 0};
        }
        return op.returned ? std::pair{*op.returned, 1} : std::pair{time_point::max(), 1};
    };
    std::stable_sort(events.begin(), events.end(),
                     [&](const event& a, const event& b) { return when(a) < when(b); });

    // A doubly linked list over the events, from which linearized operations are lifted.
    const std::size_t m = events.size();
    const std::size_t head = m; // sentinel
    std::vector<std::size_t> next(m + 1);
    std::vector<std::size_t> prev(m + 1);
    std::vector<std::size_t> call_pos(n);
    std::vector<std::size_t> return_pos(n);
    for (std::size_t i = 0; i < m; ++i) {
        next[i] = i + 1 == m ? head : i + 1;
        prev[i] = i == 0 ? head : i - 1;
        (events[i].is_call ? call_pos : return_pos)[events[i].op] = i;
    }
    next[head] = 0;
    prev[head] = m - 1;
    auto unlink = [&](std::size_t i) {
        next[prev[i]] = next[i];
        prev[next[i]] = prev[i];
    };
    auto relink = [&](std::size_t i) {
        next[prev[i]] = i;
        prev[next[i]] = i;
    };

    struct frame {
        std::size_t call; // position of the linearized call
        state before;
    };
    std::vector<frame> stack;
    std::unordered_set<memo_key<state>, memo_hash<state>> seen;
    op_set done(n);
    state current = Model::initial();
    std::size_t cursor = next[head];
    while (next[head] != head) {
        if (cursor == head) {
            return false; // defensive: cannot happen, a return always precedes the end
        }
        const event& e = events[cursor];
        if (e.is_call) {
            const auto& op = history[ops[e.op]];
            std::optional<state> after = Model::step(current, op.input, op.output);
            bool advanced = false;
            if (after) {
                done.set(e.op);
                if (seen.insert(memo_key<state>{done, *after}).second) {
                    stack.push_back({cursor, current});
                    current = std::move(*after);
                    unlink(cursor);
                    unlink(return_pos[e.op]);
                    cursor = next[head];
                    advanced = true;
                    if (stack.size() > best.size()) {
                        best.clear();
                        for (const auto& f : stack) {
                            best.push_back(ops[events[f.call].op]);
                        }
                    }
                } else {
                    done.reset(e.op);
                }
            }
            if (!advanced) {
                cursor = next[cursor];
            }
        } else {
            // A return whose call is not yet linearized: the last choice was wrong.
            if (stack.empty()) {
                return false;
            }
            frame f = std::move(stack.back());
            stack.pop_back();
            const std::size_t op = events[f.call].op;
            done.reset(op);
            current = std::move(f.before);
            relink(return_pos[op]);
            relink(f.call);
            cursor = next[f.call];
        }
    }
    return true;
}

} // namespace linearizability_detail

/// Whether `history` is linearizable with respect to `Model`. Partitions are checked
/// independently; the first one without a linearization is reported.
template <class Model>
[[nodiscard]] linearizability_result
check_linearizable(const std::vector<operation<Model>>& history) {
    using key_type = std::remove_cvref_t<decltype(Model::partition(history.front().input))>;
    std::map<key_type, std::vector<std::size_t>> parts;
    for (std::size_t i = 0; i < history.size(); ++i) {
        parts[Model::partition(history[i].input)].push_back(i);
    }
    linearizability_result result;
    for (const auto& [key, ops] : parts) {
        std::vector<std::size_t> best;
        if (!linearizability_detail::check_partition(history, ops, best)) {
            std::ostringstream os;
            os << key;
            result.linearizable = false;
            result.partition = os.str();
            result.longest_prefix = std::move(best);
            std::ostringstream why;
            why << "partition " << result.partition << ": no linearization of " << ops.size()
                << " operations; the longest linearizable prefix has "
                << result.longest_prefix.size() << ":";
            for (std::size_t i : result.longest_prefix) {
                why << " [" << Model::describe(history[i].input, history[i].output) << "]";
            }
            result.explanation = why.str();
            return result;
        }
    }
    return result;
}

} // namespace synod::sim
