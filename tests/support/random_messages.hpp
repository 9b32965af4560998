#pragma once

// Random but valid messages, for property tests of the codec and of anything that consumes
// messages. "Valid" means what an honest node could send: entries contiguous, terms ordered.

#include <synod/core/messages.hpp>

#include <cstdint>
#include <random>

namespace synod::test {

struct message_shape {
    std::size_t max_entries = 8;
    std::size_t max_payload = 64;
};

class message_generator {
public:
    explicit message_generator(std::uint64_t seed, message_shape shape = {})
        : rng_(seed)
        , shape_(shape) {}

    std::uint64_t u64() { return rng_(); }
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }
    bool coin() { return (rng_() & 1U) != 0; }
    /// Mostly small values, sometimes huge ones: edge cases live at both ends.
    std::uint64_t counter() {
        switch (below(4)) {
        case 0:
            return below(4);
        case 1:
            return below(1000);
        case 2:
            return std::numeric_limits<std::uint64_t>::max() / 2 - below(1000);
        default:
            return u64() >> below(64);
        }
    }
    node_id node() { return node_id{1 + below(7)}; }

    shared_bytes bytes(std::size_t max) {
        std::size_t n = below(max + 1);
        return shared_bytes::build(n, [&](std::span<std::byte> out) {
            for (auto& b : out) {
                b = static_cast<std::byte>(rng_());
            }
        });
    }

    membership config() {
        std::vector<node_id> voters{node()};
        std::vector<node_id> learners;
        std::vector<node_id> outgoing;
        for (std::uint64_t id = 1; id <= 7; ++id) {
            switch (below(4)) {
            case 0:
                voters.push_back(node_id{id});
                break;
            case 1:
                outgoing.push_back(node_id{id});
                break;
            default:
                break;
            }
        }
        for (std::uint64_t id = 8; id <= 9; ++id) {
            if (coin()) {
                learners.push_back(node_id{id});
            }
        }
        return {voters, learners, outgoing};
    }

    message any() {
        switch (below(std::variant_size_v<message>)) {
        case 0:
            return vote();
        case 1:
            return vote_response{node(), node(), term{counter()}, coin(), coin()};
        case 2:
            return append();
        case 3:
            return append_response{node(),
                                   node(),
                                   term{counter()},
                                   coin(),
                                   log_index{counter()},
                                   term{counter()},
                                   log_index{counter()},
                                   counter()};
        case 4:
            return chunk();
        case 5:
            return snapshot_chunk_response{node(),    node(), term{counter()}, log_index{counter()},
                                           counter(), coin(), coin()};
        case 6:
            return timeout_now{node(), node(), term{counter()}};
        case 7:
            return read_index_request{node(), node(), term{counter()}, counter()};
        case 8:
            return read_index_response{
                node(), node(), term{counter()}, counter(), log_index{counter()}, coin()};
        case 9:
            return proposal_forward{node(), node(), term{counter()}, counter(),
                                    bytes(shape_.max_payload)};
        default:
            return proposal_forward_response{node(),
                                             node(),
                                             term{counter()},
                                             counter(),
                                             log_index{counter()},
                                             static_cast<std::uint32_t>(below(1 << 16))};
        }
    }

    vote_request vote() {
        term t{counter()};
        return {node(), node(), t, log_index{counter()}, term{below(t.value() + 1)},
                coin(), coin()};
    }

    append_request append() {
        append_request m;
        m.from = node();
        m.to = node();
        m.term = term{counter()};
        m.prev_log_index = log_index{counter()};
        m.prev_log_term = term{below(m.term.value() + 1)};
        m.leader_commit = log_index{counter()};
        m.round = counter();
        std::size_t n = below(shape_.max_entries + 1);
        term t = m.prev_log_term;
        for (std::size_t i = 0; i < n; ++i) {
            if (coin() && t < m.term) {
                t = t + 1;
            }
            auto kind = static_cast<entry_kind>(below(max_entry_kind + 1));
            m.entries.push_back(
                log_entry{t, m.prev_log_index + (i + 1), kind, bytes(shape_.max_payload)});
        }
        return m;
    }

    snapshot_chunk_request chunk() {
        snapshot_chunk_request m;
        m.from = node();
        m.to = node();
        m.term = term{counter()};
        m.last_included_index = log_index{counter()};
        m.last_included_term = term{below(m.term.value() + 1)};
        m.config = config();
        m.data = bytes(shape_.max_payload);
        m.offset = below(1 << 20);
        m.done = coin();
        m.total_size = m.offset + m.data.size() + (m.done ? 0 : below(1 << 20));
        m.chunk_crc = static_cast<std::uint32_t>(u64());
        m.snapshot_crc = static_cast<std::uint32_t>(u64());
        return m;
    }

private:
    std::mt19937_64 rng_;
    message_shape shape_;
};

} // namespace synod::test
