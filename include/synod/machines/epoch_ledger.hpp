#pragma once

/// \file
/// `machines::epoch_ledger`: issues the director's fencing epochs through consensus. Each
/// `issue_epoch` command that commits gets an epoch one greater than the last, so an epoch is
/// never issued twice and never goes backwards: not when a leader restarts its director within
/// one term (each restart proposes a new command), and not when every node restarts (the
/// ledger is rebuilt from the log and snapshots). A pure value (design principle 6).
///
/// A retried `issue_epoch` whose first attempt also committed issues two epochs; that is
/// harmless, since only the newest one is ever honoured by a fence.

#include <synod/core/bytes.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/epoch.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/machines/detail/encoding.hpp>
#include <synod/wire/byte_io.hpp>

#include <cstdint>
#include <limits>
#include <system_error>

namespace synod::machines {

/// An issued epoch and who asked for it.
struct epoch_grant {
    synod::epoch epoch;
    node_id leader;   ///< the leader that proposed the `issue_epoch`
    term leader_term; ///< the term it proposed it in

    friend bool operator==(const epoch_grant&, const epoch_grant&) = default;
};

class epoch_ledger {
public:
    static constexpr std::uint8_t command_version = 1;
    static constexpr std::uint8_t snapshot_version = 1;

    struct result_type {
        /// `missing_field` for leader `no_node`; `value_out_of_range` once every epoch is
        /// used; a decoding errc for a malformed command. Empty on success.
        std::error_code error;
        /// The epoch issued by this command (when `error` is empty).
        epoch_grant grant;

        friend bool operator==(const result_type&, const result_type&) = default;
    };

    /// The command a leader proposes to get a new epoch for its director.
    [[nodiscard]] static shared_bytes encode_issue_epoch(node_id leader, term leader_term) {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(command_version);
        w.put(issue_epoch_op);
        w.put(leader.value());
        w.put(leader_term.value());
        return shared_bytes(byte_span(out));
    }

    result_type apply(const log_entry& e) {
        wire::byte_reader r(e.payload.span());
        const auto version = r.get<std::uint8_t>();
        const auto op = r.get<std::uint8_t>();
        const node_id leader{r.get<std::uint64_t>()};
        const term leader_term{r.get<std::uint64_t>()};
        if (r.ok() && r.remaining() != 0) {
            r.fail(errc::length_mismatch);
        }
        if (!r.ok()) {
            return {r.error(), {}};
        }
        if (version != command_version) {
            return {errc::unknown_version, {}};
        }
        if (op != issue_epoch_op) {
            return {errc::unknown_message_type, {}};
        }
        if (leader == no_node) {
            return {errc::missing_field, {}};
        }
        if (last_.epoch.value() == std::numeric_limits<epoch::rep>::max()) {
            return {errc::value_out_of_range, {}};
        }
        last_ = {last_.epoch + 1, leader, leader_term};
        return {{}, last_};
    }

    /// The last grant, sealed with a CRC32C.
    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(snapshot_version);
        w.put(last_.epoch.value());
        w.put(last_.leader.value());
        w.put(last_.leader_term.value());
        return detail::seal(out);
    }

    std::error_code restore(byte_span bytes) {
        const auto body = detail::unseal(bytes);
        if (!body) {
            return errc::corrupt_snapshot;
        }
        wire::byte_reader r(*body);
        const auto version = r.get<std::uint8_t>();
        const epoch_grant loaded{epoch{r.get<std::uint64_t>()}, node_id{r.get<std::uint64_t>()},
                                 term{r.get<std::uint64_t>()}};
        // Before the first grant everything is zero; after it the leader is never no_node.
        const bool consistent =
            loaded.epoch == no_epoch ? loaded == epoch_grant{} : loaded.leader != no_node;
        if (!r.ok() || r.remaining() != 0 || version != snapshot_version || !consistent) {
            return errc::corrupt_snapshot;
        }
        last_ = loaded;
        return {};
    }

    /// The last epoch issued (`no_epoch` before the first).
    [[nodiscard]] epoch last_issued() const noexcept { return last_.epoch; }
    /// The last grant (all zero before the first).
    [[nodiscard]] const epoch_grant& last_grant() const noexcept { return last_; }

    friend bool operator==(const epoch_ledger&, const epoch_ledger&) = default;

private:
    static constexpr std::uint8_t issue_epoch_op = 1;

    /// \invariant `last_.epoch` only grows through `apply`; `last_.leader != no_node` once an
    /// epoch has been issued.
    epoch_grant last_;
};

static_assert(state_machine<epoch_ledger>);

} // namespace synod::machines
