#pragma once

/// \file
/// `unique_function<R(Args...)>`: a move-only, type-erased callable (C++23's
/// `std::move_only_function`, which C++20 lacks). Completions and scheduled work are move-only
/// — they own buffers and other completions — and small ones are stored inline, so posting
/// a typical lambda allocates nothing.

#include <synod/core/assert.hpp>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace synod {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
public:
    unique_function() noexcept = default;
    unique_function(std::nullptr_t) noexcept {} // NOLINT: implicit, like std::function

    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, unique_function> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
        unique_function(F&& f) { // NOLINT: implicit, like std::function
        using T = std::decay_t<F>;
        if constexpr (fits_inline<T>) {
            ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
            ops_ = &inline_ops<T>;
        } else {
            *reinterpret_cast<T**>(storage_) = new T(std::forward<F>(f));
            ops_ = &heap_ops<T>;
        }
    }

    unique_function(unique_function&& other) noexcept
        : ops_(other.ops_) {
        if (ops_ != nullptr) {
            ops_->relocate(storage_, other.storage_);
            other.ops_ = nullptr;
        }
    }
    unique_function& operator=(unique_function&& other) noexcept {
        if (this != &other) {
            reset();
            if (other.ops_ != nullptr) {
                other.ops_->relocate(storage_, other.storage_);
                ops_ = std::exchange(other.ops_, nullptr);
            }
        }
        return *this;
    }
    unique_function(const unique_function&) = delete;
    unique_function& operator=(const unique_function&) = delete;
    ~unique_function() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    R operator()(Args... args) {
        SYNOD_ASSERT(ops_ != nullptr, "call of an empty unique_function");
        return ops_->call(storage_, std::forward<Args>(args)...);
    }

    void reset() noexcept {
        if (ops_ != nullptr) {
            ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    static constexpr std::size_t inline_size = 4 * sizeof(void*);

    template <class T>
    static constexpr bool fits_inline =
        sizeof(T) <= inline_size &&
        alignof(T) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<T>;

    struct operations {
        R (*call)(void*, Args&&...);
        /// Moves the callable from `src` into `dst` and destroys what is left in `src`.
        void (*relocate)(void* dst, void* src) noexcept;
        void (*destroy)(void*) noexcept;
    };

    template <class T>
    static constexpr operations inline_ops{
        [](void* s, Args&&... args) -> R {
            return (*static_cast<T*>(s))(std::forward<Args>(args)...);
        },
        [](void* dst, void* src) noexcept {
            ::new (dst) T(std::move(*static_cast<T*>(src)));
            static_cast<T*>(src)->~T();
        },
        [](void* s) noexcept { static_cast<T*>(s)->~T(); },
    };

    template <class T>
    static constexpr operations heap_ops{
        [](void* s, Args&&... args) -> R {
            return (**static_cast<T**>(s))(std::forward<Args>(args)...);
        },
        [](void* dst, void* src) noexcept { *static_cast<T**>(dst) = *static_cast<T**>(src); },
        [](void* s) noexcept { delete *static_cast<T**>(s); },
    };

    alignas(std::max_align_t) unsigned char storage_[inline_size];
    const operations* ops_ = nullptr;
};

} // namespace synod
