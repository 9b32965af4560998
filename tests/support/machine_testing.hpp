#pragma once

// Helpers for testing replicated machines alone: wrap a payload in a log entry, and check that
// a machine refuses every damaged copy of a snapshot without changing.

#include <doctest/doctest.h>

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/log_entry.hpp>

#include <cstddef>
#include <cstdint>

namespace synod::test {

/// A committed normal entry carrying `payload`, as the node hands it to the machine.
[[nodiscard]] inline log_entry command_entry(shared_bytes payload, std::uint64_t index = 1) {
    return {term{1}, log_index{index}, entry_kind::normal, std::move(payload)};
}

/// Restores `machine` from every single-byte corruption and every proper prefix of `good`, and
/// checks each is refused with `corrupt_snapshot` and leaves the machine's state (as its own
/// snapshot shows it) unchanged.
template <class Machine>
void check_refuses_damaged_snapshots(Machine& machine, const shared_bytes& good) {
    const shared_bytes before(machine.snapshot());
    byte_vector bytes(good.data(), good.data() + good.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        for (const std::byte mask : {std::byte{0x01}, std::byte{0x80}, std::byte{0xff}}) {
            bytes[i] ^= mask;
            const auto ec = machine.restore(byte_span(bytes));
            bytes[i] ^= mask;
            INFO("byte " << i << " of " << bytes.size() << " flipped with mask "
                         << static_cast<int>(mask));
            REQUIRE(ec == errc::corrupt_snapshot);
        }
    }
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        REQUIRE(machine.restore(byte_span(bytes).first(n)) == errc::corrupt_snapshot);
    }
    CHECK(shared_bytes(machine.snapshot()) == before);
}

} // namespace synod::test
