#pragma once

// A counter whose commands add to it: the machine the client-session tests wrap, since "applied
// exactly once" is then plain arithmetic. Its result is the counter after the command, and it
// has the result codec `client_sessions` needs.

#include <synod/core/bytes.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/machines/client_sessions.hpp>
#include <synod/wire/byte_io.hpp>

#include <cstdint>
#include <system_error>

namespace synod::test {

struct counter_machine {
    struct result_type {
        std::error_code error; ///< invalid_argument for a payload that is not 8 bytes
        std::uint64_t value = 0;

        friend bool operator==(const result_type&, const result_type&) = default;
    };

    std::uint64_t value = 0;
    std::uint64_t applied = 0; ///< commands applied, good or bad

    [[nodiscard]] static shared_bytes encode_add(std::uint64_t n) {
        byte_vector out;
        wire::byte_writer(out).put(n);
        return shared_bytes(byte_span(out));
    }

    result_type apply(const log_entry& e) {
        ++applied;
        wire::byte_reader r(e.payload.span());
        const auto n = r.get<std::uint64_t>();
        if (!r.ok() || r.remaining() != 0) {
            return {make_error_code(errc::invalid_argument), value};
        }
        value += n;
        return {{}, value};
    }

    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(value);
        w.put(applied);
        return shared_bytes(byte_span(out));
    }

    std::error_code restore(byte_span bytes) {
        wire::byte_reader r(bytes);
        const auto v = r.get<std::uint64_t>();
        const auto a = r.get<std::uint64_t>();
        if (!r.ok() || r.remaining() != 0) {
            return errc::corrupt_snapshot;
        }
        value = v;
        applied = a;
        return {};
    }

    static void encode_result(wire::byte_writer& w, const result_type& r) {
        machines::put_error_code(w, r.error);
        w.put(r.value);
    }
    static result_type decode_result(wire::byte_reader& r) {
        result_type out;
        out.error = machines::get_error_code(r);
        out.value = r.get<std::uint64_t>();
        return out;
    }
};

static_assert(state_machine<counter_machine>);

} // namespace synod::test
