#pragma once

/// \file
/// Versioned little-endian encoding of synod's values: log entries, memberships and message
/// bodies. Framing (length, version, type, CRC32C) is in frame.hpp; storage records reuse the
/// entry encoding.
///
/// Each message's field list is written once, in `fields()`, and drives both the encoder and
/// the decoder, so the two cannot drift apart. Decoding is bounds-checked and allocates only
/// after checking that the bytes it is about to copy are present.

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/membership.hpp>
#include <synod/core/messages.hpp>
#include <synod/core/result.hpp>
#include <synod/wire/byte_io.hpp>

#include <cstdint>
#include <limits>
#include <vector>

namespace synod::wire {

/// Version of the value encodings below. Bumped on any incompatible change.
inline constexpr std::uint8_t format_version = 1;

/// Smallest encoded log entry: term, index, kind, payload length.
inline constexpr std::size_t min_encoded_entry_size = 8 + 8 + 1 + 4;

// ---------------------------------------------------------------------------------------------
// Field lists. `A` is an encoder or a decoder; the encoder never modifies what it is given.

template <class A>
void fields(A& a, vote_request& m) {
    a(m.from, m.to, m.term, m.last_log_index, m.last_log_term, m.pre_vote, m.leadership_transfer);
}
template <class A>
void fields(A& a, vote_response& m) {
    a(m.from, m.to, m.term, m.granted, m.pre_vote);
}
template <class A>
void fields(A& a, append_request& m) {
    a(m.from, m.to, m.term, m.prev_log_index, m.prev_log_term, m.leader_commit, m.round, m.entries);
}
template <class A>
void fields(A& a, append_response& m) {
    a(m.from, m.to, m.term, m.success, m.match_index, m.conflict_term, m.conflict_index, m.round);
}
template <class A>
void fields(A& a, snapshot_chunk_request& m) {
    a(m.from, m.to, m.term, m.last_included_index, m.last_included_term, m.config, m.offset,
      m.total_size, m.chunk_crc, m.snapshot_crc, m.done, m.data);
}
template <class A>
void fields(A& a, snapshot_chunk_response& m) {
    a(m.from, m.to, m.term, m.last_included_index, m.next_offset, m.rejected, m.done);
}
template <class A>
void fields(A& a, timeout_now& m) {
    a(m.from, m.to, m.term);
}
template <class A>
void fields(A& a, read_index_request& m) {
    a(m.from, m.to, m.term, m.request_id);
}
template <class A>
void fields(A& a, read_index_response& m) {
    a(m.from, m.to, m.term, m.request_id, m.read_index, m.success);
}
template <class A>
void fields(A& a, proposal_forward& m) {
    a(m.from, m.to, m.term, m.request_id, m.payload);
}
template <class A>
void fields(A& a, proposal_forward_response& m) {
    a(m.from, m.to, m.term, m.request_id, m.index, m.error);
}

// ---------------------------------------------------------------------------------------------

class encoder {
public:
    explicit encoder(byte_vector& out) noexcept
        : w_(out) {}

    template <class... Fs>
    void operator()(const Fs&... fs) {
        (put(fs), ...);
    }

    template <class Tag>
    void put(strong_integer<Tag> v) {
        w_.put<std::uint64_t>(v.value());
    }
    void put(bool v) { w_.put<std::uint8_t>(v ? 1 : 0); }
    void put(std::uint32_t v) { w_.put(v); }
    void put(std::uint64_t v) { w_.put(v); }
    void put(const shared_bytes& b) {
        SYNOD_ASSERT(b.size() <= std::numeric_limits<std::uint32_t>::max(),
                     "a byte string longer than 4 GiB cannot be encoded");
        w_.put(static_cast<std::uint32_t>(b.size()));
        w_.put_bytes(b.span());
    }
    void put(const std::vector<node_id>& ids) {
        w_.put(static_cast<std::uint32_t>(ids.size()));
        for (node_id id : ids) {
            put(id);
        }
    }
    void put(const membership& m) {
        put(m.voters());
        put(m.learners());
        put(m.outgoing_voters());
    }
    void put(const log_entry& e) {
        put(e.term);
        put(e.index);
        w_.put(static_cast<std::uint8_t>(e.kind));
        put(e.payload);
    }
    void put(const std::vector<log_entry>& es) {
        w_.put(static_cast<std::uint32_t>(es.size()));
        for (const auto& e : es) {
            put(e);
        }
    }

private:
    byte_writer w_;
};

class decoder {
public:
    explicit decoder(byte_span in) noexcept
        : r_(in) {}

    template <class... Fs>
    void operator()(Fs&... fs) {
        (get(fs), ...);
    }

    template <class Tag>
    void get(strong_integer<Tag>& v) {
        v = strong_integer<Tag>{r_.get<std::uint64_t>()};
    }
    void get(bool& v) {
        auto raw = r_.get<std::uint8_t>();
        if (raw > 1) {
            r_.fail(errc::value_out_of_range);
        }
        v = raw == 1;
    }
    void get(std::uint32_t& v) { v = r_.get<std::uint32_t>(); }
    void get(std::uint64_t& v) { v = r_.get<std::uint64_t>(); }
    void get(shared_bytes& b) {
        auto size = r_.get<std::uint32_t>();
        if (size > r_.remaining()) {
            r_.fail(errc::length_mismatch);
            return;
        }
        byte_span src = r_.get_bytes(size);
        b = shared_bytes(src);
    }
    void get(std::vector<node_id>& ids) {
        auto count = r_.get<std::uint32_t>();
        if (count > r_.remaining() / sizeof(std::uint64_t)) {
            r_.fail(errc::length_mismatch);
            return;
        }
        ids.clear();
        ids.reserve(count);
        for (std::uint32_t i = 0; i < count && r_.ok(); ++i) {
            node_id id;
            get(id);
            // Canonical form: strictly increasing, no `no_node`. Anything else is not a
            // membership synod wrote.
            if (id == no_node || (!ids.empty() && id <= ids.back())) {
                r_.fail(errc::value_out_of_range);
            }
            ids.push_back(id);
        }
    }
    void get(membership& m) {
        std::vector<node_id> voters;
        std::vector<node_id> learners;
        std::vector<node_id> outgoing;
        get(voters);
        get(learners);
        get(outgoing);
        m = membership(std::move(voters), std::move(learners), std::move(outgoing));
    }
    void get(log_entry& e) {
        get(e.term);
        get(e.index);
        auto kind = r_.get<std::uint8_t>();
        if (kind > max_entry_kind) {
            r_.fail(errc::value_out_of_range);
        }
        e.kind = static_cast<entry_kind>(kind);
        get(e.payload);
    }
    void get(std::vector<log_entry>& es) {
        auto count = r_.get<std::uint32_t>();
        if (count > r_.remaining() / min_encoded_entry_size) {
            r_.fail(errc::length_mismatch);
            return;
        }
        es.clear();
        es.reserve(count);
        for (std::uint32_t i = 0; i < count && r_.ok(); ++i) {
            get(es.emplace_back());
        }
    }

    /// Every byte must have been consumed: trailing bytes mean the lengths disagree.
    [[nodiscard]] std::error_code finish() noexcept {
        if (r_.ok() && r_.remaining() != 0) {
            r_.fail(errc::length_mismatch);
        }
        return r_.error();
    }

private:
    byte_reader r_;
};

// ---------------------------------------------------------------------------------------------
// Semantic checks: a decoded value must be one an honest synod node could have sent.

namespace codec_detail {

inline bool header_ok(node_id from, node_id to) noexcept {
    return from != no_node && to != no_node;
}

template <class M>
bool plausible(const M& m) noexcept {
    return header_ok(m.from, m.to);
}

inline bool plausible(const vote_request& m) noexcept {
    return header_ok(m.from, m.to) && m.last_log_term <= m.term;
}

inline bool plausible(const append_request& m) noexcept {
    if (!header_ok(m.from, m.to) || m.prev_log_term > m.term) {
        return false;
    }
    if (m.entries.size() > std::numeric_limits<std::uint64_t>::max() - m.prev_log_index.value()) {
        return false;
    }
    term previous = m.prev_log_term;
    for (std::size_t i = 0; i < m.entries.size(); ++i) {
        const log_entry& e = m.entries[i];
        if (e.index != m.prev_log_index + (i + 1) || e.term < previous || e.term > m.term) {
            return false;
        }
        previous = e.term;
    }
    return true;
}

inline bool plausible(const snapshot_chunk_request& m) noexcept {
    return header_ok(m.from, m.to) && m.offset <= m.total_size &&
           m.data.size() <= m.total_size - m.offset &&
           (!m.done || m.offset + m.data.size() == m.total_size) &&
           m.last_included_term <= m.term && m.config.valid();
}

} // namespace codec_detail

/// Appends the body of `m` (no frame) to `out`.
template <class M>
void encode_body(const M& m, byte_vector& out) {
    encoder enc(out);
    fields(enc, const_cast<M&>(m)); // NOLINT: the encoder only reads
}

/// Decodes a body that must hold exactly one `M`.
template <class M>
result<M> decode_body(byte_span body) {
    M m{};
    decoder dec(body);
    fields(dec, m);
    if (auto ec = dec.finish()) {
        return ec;
    }
    if (!codec_detail::plausible(m)) {
        return errc::value_out_of_range;
    }
    return m;
}

/// A log entry on its own, as storage records hold it.
inline void encode_entry(const log_entry& e, byte_vector& out) {
    encoder enc(out);
    enc.put(e);
}
inline result<log_entry> decode_entry(byte_span bytes) {
    log_entry e;
    decoder dec(bytes);
    dec.get(e);
    if (auto ec = dec.finish()) {
        return ec;
    }
    return e;
}

/// A membership, as a config entry's payload holds it.
inline shared_bytes encode_membership(const membership& m) {
    byte_vector out;
    encoder enc(out);
    enc.put(m);
    return shared_bytes(byte_span(out));
}
inline result<membership> decode_membership(byte_span bytes) {
    membership m;
    decoder dec(bytes);
    dec.get(m);
    if (auto ec = dec.finish()) {
        return ec;
    }
    if (!m.valid()) {
        return errc::value_out_of_range;
    }
    return m;
}

} // namespace synod::wire
