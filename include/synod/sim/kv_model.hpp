#pragma once

/// \file
/// The sequential specification of a key-value store with put, get and compare-and-set, for
/// the linearizability checker. Keys are independent, so histories are checked key by key and
/// the state of one partition is the value of one key.

#include <optional>
#include <string>

namespace synod::sim {

struct kv_model {
    enum class kind : unsigned char { put, get, cas };

    struct input {
        kind op = kind::get;
        std::string key;
        /// put: the value written; cas: the value written if the current one is `expected`.
        std::string value;
        std::string expected;
    };
    struct output {
        /// get: the value read (empty when the key is absent).
        std::optional<std::string> value;
        /// cas: whether it swapped. put: always true.
        bool ok = true;
    };
    using state = std::optional<std::string>;

    static state initial() { return std::nullopt; }

    static std::optional<state> step(const state& s, const input& in,
                                     const std::optional<output>& out) {
        switch (in.op) {
        case kind::put:
            return state(in.value);
        case kind::get:
            if (out && out->value != s) {
                return std::nullopt;
            }
            return s;
        case kind::cas: {
            // Deterministic given the state, so an unknown outcome needs no second branch.
            const bool swaps = s.has_value() && *s == in.expected;
            if (out && out->ok != swaps) {
                return std::nullopt;
            }
            return swaps ? state(in.value) : s;
        }
        }
        return std::nullopt;
    }

    static const std::string& partition(const input& in) { return in.key; }

    static std::string describe(const input& in, const std::optional<output>& out) {
        std::string text;
        switch (in.op) {
        case kind::put:
            text = "put(" + in.key + "," + in.value + ")";
            break;
        case kind::get:
            text = "get(" + in.key + ")";
            if (out) {
                text += "->" + out->value.value_or("<absent>");
            }
            break;
        case kind::cas:
            text = "cas(" + in.key + "," + in.expected + "->" + in.value + ")";
            if (out) {
                text += out->ok ? "->ok" : "->failed";
            }
            break;
        }
        return out ? text : text + " (outcome unknown)";
    }
};

} // namespace synod::sim
