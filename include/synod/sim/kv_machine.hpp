#pragma once

/// \file
/// A replicated key-value store with put, get and compare-and-set: the state machine of the
/// simulator's client workload, with the semantics of `kv_model`, so histories of clients
/// talking to it can be checked for linearizability. Commands and snapshots are versioned
/// binary encodings; a malformed command yields an error result, never divergence.

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/sim/kv_model.hpp>
#include <synod/wire/byte_io.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>

namespace synod::sim {

class kv_machine {
public:
    struct result_type {
        /// invalid_argument for a command that does not decode.
        std::error_code error;
        kv_model::output output;
    };

    static constexpr std::uint8_t command_version = 1;

    [[nodiscard]] static shared_bytes encode(const kv_model::input& in) {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(command_version);
        w.put(static_cast<std::uint8_t>(in.op));
        for (const std::string* s : {&in.key, &in.value, &in.expected}) {
            w.put(static_cast<std::uint32_t>(s->size()));
            w.put_bytes(as_bytes(*s));
        }
        return shared_bytes(byte_span(out));
    }

    [[nodiscard]] static std::optional<kv_model::input> decode(byte_span bytes) {
        wire::byte_reader r(bytes);
        kv_model::input in;
        const auto version = r.get<std::uint8_t>();
        const auto op = r.get<std::uint8_t>();
        for (std::string* s : {&in.key, &in.value, &in.expected}) {
            const auto size = r.get<std::uint32_t>();
            if (size > r.remaining()) {
                return std::nullopt;
            }
            auto b = r.get_bytes(size);
            s->assign(reinterpret_cast<const char*>(b.data()), b.size());
        }
        if (!r.ok() || r.remaining() != 0 || version != command_version ||
            op > static_cast<std::uint8_t>(kv_model::kind::cas)) {
            return std::nullopt;
        }
        in.op = static_cast<kv_model::kind>(op);
        return in;
    }

    result_type apply(const log_entry& e) {
        auto in = decode(e.payload.span());
        if (!in) {
            return {make_error_code(errc::invalid_argument), {}};
        }
        auto it = data_.find(in->key);
        const kv_model::state current =
            it == data_.end() ? kv_model::state{} : kv_model::state{it->second};
        kv_model::output out;
        switch (in->op) {
        case kv_model::kind::put:
            data_[in->key] = in->value;
            break;
        case kv_model::kind::get:
            out.value = current;
            break;
        case kv_model::kind::cas:
            out.ok = current && *current == in->expected;
            if (out.ok) {
                data_[in->key] = in->value;
            }
            break;
        }
        return {{}, out};
    }

    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(command_version);
        w.put(static_cast<std::uint64_t>(data_.size()));
        for (const auto& [k, v] : data_) {
            for (const std::string* s : {&k, &v}) {
                w.put(static_cast<std::uint32_t>(s->size()));
                w.put_bytes(as_bytes(*s));
            }
        }
        return shared_bytes(byte_span(out));
    }

    std::error_code restore(byte_span bytes) {
        wire::byte_reader r(bytes);
        std::map<std::string, std::string> loaded;
        const auto version = r.get<std::uint8_t>();
        const auto count = r.get<std::uint64_t>();
        for (std::uint64_t i = 0; i < count && r.ok(); ++i) {
            std::string kv[2];
            for (auto& s : kv) {
                const auto size = r.get<std::uint32_t>();
                if (size > r.remaining()) {
                    return errc::corrupt_snapshot;
                }
                auto b = r.get_bytes(size);
                s.assign(reinterpret_cast<const char*>(b.data()), b.size());
            }
            loaded.emplace(std::move(kv[0]), std::move(kv[1]));
        }
        if (!r.ok() || r.remaining() != 0 || version != command_version) {
            return errc::corrupt_snapshot;
        }
        data_ = std::move(loaded);
        return {};
    }

    [[nodiscard]] const std::map<std::string, std::string>& data() const noexcept { return data_; }

private:
    std::map<std::string, std::string> data_;
};

} // namespace synod::sim
