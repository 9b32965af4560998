#pragma once

/// \file
/// `result<T>`: a value or the `std::error_code` that explains why there is none. synod targets
/// C++20, which has no `std::expected`; this is the small subset synod needs.

#include <synod/core/assert.hpp>

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace synod {

template <class T>
class [[nodiscard]] result {
public:
    result(T value)
        : storage_(std::in_place_index<0>, std::move(value)) {} // NOLINT: implicit
    result(std::error_code error)
        : storage_(std::in_place_index<1>, error) { // NOLINT
        SYNOD_ASSERT(error, "a result's error must not be success");
    }
    template <class E>
    requires std::is_error_code_enum_v<E> result(E error)
        : result(std::error_code(make_error_code(error))) {} // NOLINT: implicit

    [[nodiscard]] bool has_value() const noexcept { return storage_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    [[nodiscard]] T& value() & {
        SYNOD_ASSERT(has_value(), "value() on a result that holds an error");
        return std::get<0>(storage_);
    }
    [[nodiscard]] const T& value() const& {
        SYNOD_ASSERT(has_value(), "value() on a result that holds an error");
        return std::get<0>(storage_);
    }
    [[nodiscard]] T&& value() && {
        SYNOD_ASSERT(has_value(), "value() on a result that holds an error");
        return std::get<0>(std::move(storage_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    /// The error, or a default (success) error_code when there is a value.
    [[nodiscard]] std::error_code error() const noexcept {
        return has_value() ? std::error_code{} : std::get<1>(storage_);
    }

private:
    std::variant<T, std::error_code> storage_;
};

} // namespace synod
