#pragma once

/// \file
/// Minimal callables used to state the policy concepts: a policy must accept *any* move-only
/// callable of the right signature, so the concepts test it with one that can do nothing more.

#include <system_error>

namespace synod::concepts_detail {

/// A move-only `void()` callable.
struct nullary_callback {
    nullary_callback() = default;
    nullary_callback(nullary_callback&&) = default;
    nullary_callback& operator=(nullary_callback&&) = default;
    nullary_callback(const nullary_callback&) = delete;
    nullary_callback& operator=(const nullary_callback&) = delete;
    ~nullary_callback() = default;
    void operator()() {}
};

/// A move-only `void(std::error_code)` callable: the shape of a flush completion.
struct error_callback {
    error_callback() = default;
    error_callback(error_callback&&) = default;
    error_callback& operator=(error_callback&&) = default;
    error_callback(const error_callback&) = delete;
    error_callback& operator=(const error_callback&) = delete;
    ~error_callback() = default;
    void operator()(std::error_code) {}
};

} // namespace synod::concepts_detail
