#pragma once

// The simplest useful replicated state machine: a list of the payloads applied, in order.
// Its result is the list's length after the apply.

#include <synod/core/concepts/state_machine.hpp>
#include <synod/wire/byte_io.hpp>

#include <string>
#include <vector>

namespace synod::test {

struct append_machine {
    using result_type = std::uint64_t;

    std::vector<std::string> applied;

    result_type apply(const log_entry& e) {
        applied.emplace_back(e.payload.str());
        return applied.size();
    }

    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(static_cast<std::uint32_t>(applied.size()));
        for (const auto& s : applied) {
            w.put(static_cast<std::uint32_t>(s.size()));
            w.put_bytes(as_bytes(s));
        }
        return shared_bytes(byte_span(out));
    }

    std::error_code restore(byte_span data) {
        wire::byte_reader r(data);
        std::vector<std::string> loaded(r.get<std::uint32_t>());
        for (auto& s : loaded) {
            auto bytes = r.get_bytes(r.get<std::uint32_t>());
            s.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        }
        if (!r.ok() || r.remaining() != 0) {
            return errc::corrupt_snapshot;
        }
        applied = std::move(loaded);
        return {};
    }
};

static_assert(state_machine<append_machine>);

} // namespace synod::test
