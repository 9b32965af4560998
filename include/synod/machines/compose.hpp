#pragma once

/// \file
/// `machines::compose<M...>`: several replicated machines in one Raft group, so one log orders
/// every command across them (the coordinator hosts the service directory and the epoch
/// ledger this way). Each machine stays a value of its own, testable alone.
///
/// A composed command is one tag byte, the machine's position in `M...`, followed by that
/// machine's own payload. Tags are positions, and log entries outlive builds: add machines at
/// the end of the list, never reorder or remove one.
///
/// The snapshot holds every machine's snapshot in its own length-prefixed section; restoring
/// it is all-or-nothing across the machines. A snapshot written before machines were added at
/// the end has fewer sections: the machines it lacks are restored to the state they had when
/// this composition was built (no command of theirs can precede the snapshot). A section must
/// fit its u32 length: `snapshot()` asserts that rather than write a wrapped length.

#include <synod/core/assert.hpp>
#include <synod/core/bytes.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/machines/detail/encoding.hpp>
#include <synod/wire/byte_io.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace synod::machines {

namespace detail {

template <class T, class... Ts>
inline constexpr std::size_t count_of = (std::size_t{0} + ... + std::size_t{std::is_same_v<T, Ts>});

template <class T, class... Ts>
consteval std::size_t index_of() {
    constexpr std::array<bool, sizeof...(Ts)> matches{std::is_same_v<T, Ts>...};
    for (std::size_t i = 0; i < matches.size(); ++i) {
        if (matches[i]) {
            return i;
        }
    }
    return sizeof...(Ts);
}

} // namespace detail

/// Each type once, so that a type names one machine (and one tag); at least one and at most
/// 255, so that a tag fits in a byte.
template <class... Machines>
concept composable = sizeof...(Machines) >= 1 && sizeof...(Machines) <= 255 &&
                     ((detail::count_of<Machines, Machines...> == 1) && ...);

template <state_machine... Machines>
requires composable<Machines...>
class compose {
public:
    static constexpr std::size_t size = sizeof...(Machines);
    static constexpr std::uint8_t snapshot_version = 1;

    template <class M>
    static constexpr std::size_t index_of = detail::index_of<M, Machines...>();

    template <std::size_t I>
    using machine_type = std::tuple_element_t<I, std::tuple<Machines...>>;

    struct result_type {
        /// Set when the command reached no machine: `truncated_input` for an empty payload,
        /// `unknown_command_tag` for a tag past the last machine. Empty otherwise, even when
        /// the machine itself rejected the command (that is in its own result).
        std::error_code routing_error;
        /// The routed machine's result, at its position plus one (`monostate` when routing
        /// failed).
        std::variant<std::monostate, typename Machines::result_type...> outcome;

        /// Machine `I`'s result, or null if the command went elsewhere or nowhere.
        template <std::size_t I>
        [[nodiscard]] const auto* get_if() const noexcept {
            return std::get_if<I + 1>(&outcome);
        }
        template <class M>
        [[nodiscard]] const typename M::result_type* get_if() const noexcept {
            return get_if<index_of<M>>();
        }

        /// Defined when every machine's result compares (deleted otherwise).
        friend bool operator==(const result_type&, const result_type&) = default;
    };

    compose()
        : initial_(initial_snapshots(machines_)) {}
    explicit compose(Machines... machines)
        : machines_(std::move(machines)...)
        , initial_(initial_snapshots(machines_)) {}

    /// Wraps machine `I`'s command so the composition routes it there.
    template <std::size_t I>
    [[nodiscard]] static shared_bytes encode(byte_span inner) requires(I < size) {
        return shared_bytes::build(1 + inner.size(), [&](std::span<std::byte> out) {
            out[0] = static_cast<std::byte>(I);
            std::copy(inner.begin(), inner.end(), out.begin() + 1);
        });
    }
    /// Wraps machine `M`'s command so the composition routes it there.
    template <class M>
    [[nodiscard]] static shared_bytes
    encode(byte_span inner) requires(detail::count_of<M, Machines...> == 1) {
        return encode<index_of<M>>(inner);
    }

    result_type apply(const log_entry& e) {
        const byte_span payload = e.payload.span();
        if (payload.empty()) {
            return {make_error_code(errc::truncated_input), {}};
        }
        const auto tag = static_cast<std::size_t>(payload[0]);
        if (tag >= size) {
            return {make_error_code(errc::unknown_command_tag), {}};
        }
        log_entry inner{e.term, e.index, e.kind, shared_bytes(payload.subspan(1))};
        return route(tag, inner, std::index_sequence_for<Machines...>{});
    }

    /// `[version u8][count u8]` then per machine `[u32 length][snapshot]`, sealed with a
    /// CRC32C.
    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(snapshot_version);
        w.put(static_cast<std::uint8_t>(size));
        std::apply(
            [&w](const Machines&... m) { (put_section(w, shared_bytes(m.snapshot())), ...); },
            machines_);
        return detail::seal(out);
    }

    /// Restores every machine or none: on any error (a damaged envelope, or one machine
    /// refusing its section) every machine keeps its state. Sections for machines past the
    /// snapshot's count (it predates them) are their initial state; more sections than
    /// machines is `corrupt_snapshot`.
    std::error_code restore(byte_span bytes) {
        const auto body = detail::unseal(bytes);
        if (!body) {
            return errc::corrupt_snapshot;
        }
        wire::byte_reader r(*body);
        const auto version = r.get<std::uint8_t>();
        const auto count = std::size_t{r.get<std::uint8_t>()};
        std::array<byte_span, size> sections{};
        for (std::size_t i = 0; i < size; ++i) {
            sections[i] = i < count ? r.get_bytes(r.get<std::uint32_t>()) : initial_[i].span();
        }
        if (!r.ok() || r.remaining() != 0 || version != snapshot_version || count == 0 ||
            count > size) {
            return errc::corrupt_snapshot;
        }
        return restore_all(sections, std::index_sequence_for<Machines...>{});
    }

    template <std::size_t I>
    [[nodiscard]] machine_type<I>& get() noexcept {
        return std::get<I>(machines_);
    }
    template <std::size_t I>
    [[nodiscard]] const machine_type<I>& get() const noexcept {
        return std::get<I>(machines_);
    }
    template <class M>
    [[nodiscard]] M& get() noexcept {
        return std::get<M>(machines_);
    }
    template <class M>
    [[nodiscard]] const M& get() const noexcept {
        return std::get<M>(machines_);
    }

private:
    static std::array<shared_bytes, size> initial_snapshots(const std::tuple<Machines...>& m) {
        return std::apply(
            [](const Machines&... each) {
                return std::array<shared_bytes, size>{shared_bytes(each.snapshot())...};
            },
            m);
    }

    static void put_section(wire::byte_writer& w, const shared_bytes& section) {
        // A wrapped length would make a snapshot no replica can restore: fail loudly instead.
        SYNOD_ASSERT(section.size() <= std::numeric_limits<std::uint32_t>::max(),
                     "a machine's snapshot exceeds the 4 GiB section limit of compose");
        w.put(static_cast<std::uint32_t>(section.size()));
        w.put_bytes(section.span());
    }

    template <std::size_t... I>
    result_type route(std::size_t tag, const log_entry& inner, std::index_sequence<I...>) {
        result_type out;
        // Exactly one alternative matches `tag` (checked against `size` above).
        (void)((tag == I
                    ? (out.outcome.template emplace<I + 1>(std::get<I>(machines_).apply(inner)),
                       true)
                    : false) ||
               ...);
        return out;
    }

    template <std::size_t... I>
    std::error_code restore_all(const std::array<byte_span, size>& sections,
                                std::index_sequence<I...>) {
        if constexpr ((std::copy_constructible<Machines> && ...)) {
            // Restore copies, and keep them only if every machine accepted its section.
            auto staged = machines_;
            std::error_code ec;
            (void)((!(ec = std::get<I>(staged).restore(sections[I]))) && ...);
            if (ec) {
                return errc::corrupt_snapshot;
            }
            machines_ = std::move(staged);
        } else {
            // Machines that cannot be copied: keep each one's current snapshot, restore in
            // place, and put back the ones already restored if a later one refuses.
            const std::array<shared_bytes, size> before{
                shared_bytes(std::get<I>(machines_).snapshot())...};
            std::size_t restored = 0;
            std::error_code ec;
            (void)((!(ec = std::get<I>(machines_).restore(sections[I])) && ++restored) && ...);
            if (ec) {
                (roll_back_if(I < restored, std::get<I>(machines_), before[I]), ...);
                return errc::corrupt_snapshot;
            }
        }
        return {};
    }

    template <class M>
    static void roll_back_if(bool was_restored, M& machine, const shared_bytes& before) {
        if (!was_restored) {
            return;
        }
        const std::error_code ec = machine.restore(before.span());
        SYNOD_ASSERT(!ec, "a machine refused to restore its own snapshot");
    }

    /// \invariant one instance per type, in the order of `Machines` (the order tags follow).
    std::tuple<Machines...> machines_;
    /// Each machine's snapshot when the composition was built: what a snapshot that predates
    /// a machine restores it to.
    std::array<shared_bytes, size> initial_;
};

} // namespace synod::machines
