#pragma once

/// \file
/// The handshake that opens every synod peer connection, before any frame. The dialing node
/// sends a `hello`; the accepting node answers `accept`, or `reject` with the reason and
/// closes. Fixed 36 bytes each way, little-endian:
///
/// | offset | size | field                                                      |
/// |--------|------|------------------------------------------------------------|
/// | 0      | 4    | magic `handshake_magic` ("SYNH" read as bytes)             |
/// | 4      | 2    | protocol version (`protocol_version`)                      |
/// | 6      | 1    | kind: 1 hello, 2 accept, 3 reject                          |
/// | 7      | 1    | for a reject: the `close_reason`; else zero                |
/// | 8      | 8    | cluster id                                                 |
/// | 16     | 8    | sender's node id                                           |
/// | 24     | 8    | intended recipient's node id                               |
/// | 32     | 4    | CRC32C of bytes [0, 32)                                    |
///
/// The layout never changes between protocol versions, so two builds of different versions
/// can still tell each other why they will not talk.

#include <synod/core/bytes.hpp>
#include <synod/core/ids.hpp>
#include <synod/wire/byte_io.hpp>
#include <synod/wire/crc32c.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace synod::net {

/// Why a transport closed (or refused) a connection. Each has a counter in
/// `transport_counters` and a log line.
enum class close_reason : std::uint8_t {
    none = 0,
    not_a_peer,        ///< the first bytes are not a synod handshake (wrong magic)
    corrupt_handshake, ///< the handshake's CRC does not match
    wrong_version,     ///< the other side speaks another protocol version
    wrong_cluster,     ///< the other side belongs to another cluster
    unknown_node,      ///< the sender's id is not one of this node's peers
    wrong_recipient,   ///< the hello names another node as its recipient
    wrong_direction,   ///< of each pair the smaller id dials: this one should have dialed
    bad_handshake,     ///< a well-formed handshake of the wrong kind or with wrong fields
    handshake_timeout, ///< no complete handshake within `handshake_timeout`
    rejected_by_peer,  ///< the peer refused this node's hello
    tls_failure,       ///< the TLS handshake failed (no or untrusted certificate)
    wrong_identity,    ///< the peer's certificate does not name the node id it claims
    bad_frame,         ///< a frame failed its checks (size, version, type, CRC, body)
    spoofed_sender,    ///< a frame's sender or recipient is not the connection's
    peer_closed,       ///< the other side closed the connection
    io_error,          ///< a socket error
    replaced,          ///< a newer connection from the same peer took over
    shutdown,          ///< this transport is being destroyed
    crowded_out,       ///< the oldest connection still in its handshake, closed at the limit
    removed,           ///< the peer was removed from the transport
};

inline constexpr std::size_t close_reason_count = 21;

[[nodiscard]] constexpr std::string_view to_string(close_reason r) noexcept {
    switch (r) {
    case close_reason::none:
        return "none";
    case close_reason::not_a_peer:
        return "not a synod peer (bad handshake magic)";
    case close_reason::corrupt_handshake:
        return "corrupt handshake (bad CRC)";
    case close_reason::wrong_version:
        return "wrong protocol version";
    case close_reason::wrong_cluster:
        return "wrong cluster id";
    case close_reason::unknown_node:
        return "unknown node id";
    case close_reason::wrong_recipient:
        return "handshake addressed to another node";
    case close_reason::wrong_direction:
        return "wrong dialing direction (the smaller id dials)";
    case close_reason::bad_handshake:
        return "malformed handshake";
    case close_reason::handshake_timeout:
        return "handshake timeout";
    case close_reason::rejected_by_peer:
        return "rejected by peer";
    case close_reason::tls_failure:
        return "TLS handshake failed";
    case close_reason::bad_frame:
        return "bad frame";
    case close_reason::spoofed_sender:
        return "frame from or to the wrong node";
    case close_reason::peer_closed:
        return "closed by peer";
    case close_reason::io_error:
        return "socket error";
    case close_reason::replaced:
        return "replaced by a newer connection";
    case close_reason::shutdown:
        return "transport shut down";
    case close_reason::crowded_out:
        return "too many connections in their handshake: oldest closed";
    case close_reason::removed:
        return "peer removed";
    case close_reason::wrong_identity:
        return "certificate does not name the claimed node";
    }
    return "?";
}

inline constexpr std::uint32_t handshake_magic = 0x484e5953U; // "SYNH" in little-endian
inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t handshake_size = 36;

enum class handshake_kind : std::uint8_t { hello = 1, accept = 2, reject = 3 };

struct handshake {
    handshake_kind kind = handshake_kind::hello;
    close_reason reason = close_reason::none;
    std::uint16_t version = protocol_version;
    std::uint64_t cluster = 0;
    node_id from;
    node_id to;
};

using handshake_bytes = std::array<std::byte, handshake_size>;

[[nodiscard]] inline handshake_bytes encode_handshake(const handshake& h) {
    byte_vector out;
    out.reserve(handshake_size);
    wire::byte_writer w(out);
    w.put(handshake_magic);
    w.put(h.version);
    w.put(static_cast<std::uint8_t>(h.kind));
    w.put(static_cast<std::uint8_t>(h.reason));
    w.put(h.cluster);
    w.put(h.from.value());
    w.put(h.to.value());
    w.put(wire::crc32c(byte_span(out)));
    handshake_bytes bytes{};
    std::copy(out.begin(), out.end(), bytes.begin());
    return bytes;
}

/// Decodes a handshake; on failure says why (`not_a_peer`, `corrupt_handshake`,
/// `bad_handshake`). The version is returned, not checked: the caller decides.
[[nodiscard]] inline close_reason decode_handshake(byte_span bytes, handshake& out) {
    wire::byte_reader r(bytes);
    const auto magic = r.get<std::uint32_t>();
    if (!r.ok() || magic != handshake_magic) {
        return close_reason::not_a_peer;
    }
    out.version = r.get<std::uint16_t>();
    const auto kind = r.get<std::uint8_t>();
    const auto reason = r.get<std::uint8_t>();
    out.cluster = r.get<std::uint64_t>();
    out.from = node_id{r.get<std::uint64_t>()};
    out.to = node_id{r.get<std::uint64_t>()};
    const auto crc = r.get<std::uint32_t>();
    if (!r.ok() || bytes.size() != handshake_size) {
        return close_reason::bad_handshake;
    }
    if (wire::crc32c(bytes.first(32)) != crc) {
        return close_reason::corrupt_handshake;
    }
    if (kind < 1 || kind > 3 || reason >= close_reason_count) {
        return close_reason::bad_handshake;
    }
    out.kind = static_cast<handshake_kind>(kind);
    out.reason = static_cast<close_reason>(reason);
    return close_reason::none;
}

} // namespace synod::net
