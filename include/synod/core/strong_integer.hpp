#pragma once

/// \file
/// A tagged integer: `term` and `log_index` are both 64-bit counters, and mixing them up is a
/// classic Raft bug. Each gets its own type; conversions are explicit.

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace synod {

template <class Tag, class Rep = std::uint64_t>
class strong_integer {
public:
    using rep = Rep;

    constexpr strong_integer() noexcept = default;
    constexpr explicit strong_integer(Rep value) noexcept
        : value_(value) {}

    [[nodiscard]] constexpr Rep value() const noexcept { return value_; }

    constexpr auto operator<=>(const strong_integer&) const noexcept = default;

    constexpr strong_integer& operator++() noexcept {
        ++value_;
        return *this;
    }
    constexpr strong_integer operator++(int) noexcept {
        auto old = *this;
        ++value_;
        return old;
    }

    /// Offsets: `index + 1`, `index - 1`. The difference of two values is a plain count.
    friend constexpr strong_integer operator+(strong_integer a, Rep n) noexcept {
        return strong_integer{static_cast<Rep>(a.value_ + n)};
    }
    friend constexpr strong_integer operator-(strong_integer a, Rep n) noexcept {
        return strong_integer{static_cast<Rep>(a.value_ - n)};
    }
    friend constexpr Rep operator-(strong_integer a, strong_integer b) noexcept {
        return static_cast<Rep>(a.value_ - b.value_);
    }

    friend std::ostream& operator<<(std::ostream& os, strong_integer v) {
        return os << Tag::prefix << v.value_;
    }

private:
    Rep value_{};
};

} // namespace synod

template <class Tag, class Rep>
struct std::hash<synod::strong_integer<Tag, Rep>> {
    std::size_t operator()(synod::strong_integer<Tag, Rep> v) const noexcept {
        return std::hash<Rep>{}(v.value());
    }
};
