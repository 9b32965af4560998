#pragma once

/// \file
/// Little-endian primitive encoding. `byte_writer` appends to a byte vector; `byte_reader`
/// walks a span with bounds checks and a sticky error: after the first failure every read
/// returns zero and the first error is kept, so decoders read all fields and check once.

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>

#include <boost/endian/conversion.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace synod::wire {

class byte_writer {
public:
    explicit byte_writer(byte_vector& out) noexcept
        : out_(out) {}

    template <class U>
    void put(U value) {
        static_assert(std::is_unsigned_v<U>);
        U le = boost::endian::native_to_little(value);
        auto* p = reinterpret_cast<const std::byte*>(&le);
        out_.insert(out_.end(), p, p + sizeof(U));
    }
    void put_bytes(byte_span bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }

    /// Writes `value` at `offset` (for lengths and checksums known only after the body).
    template <class U>
    void patch(std::size_t offset, U value) noexcept {
        U le = boost::endian::native_to_little(value);
        std::memcpy(out_.data() + offset, &le, sizeof(U));
    }

    [[nodiscard]] std::size_t size() const noexcept { return out_.size(); }
    [[nodiscard]] byte_vector& buffer() noexcept { return out_; }

private:
    byte_vector& out_;
};

class byte_reader {
public:
    explicit byte_reader(byte_span in) noexcept
        : in_(in) {}

    template <class U>
    U get() noexcept {
        static_assert(std::is_unsigned_v<U>);
        if (!need(sizeof(U))) {
            return 0;
        }
        U le;
        std::memcpy(&le, in_.data() + pos_, sizeof(U));
        pos_ += sizeof(U);
        return boost::endian::little_to_native(le);
    }

    /// The next `n` bytes, or an empty span (and `truncated_input`) if fewer remain.
    byte_span get_bytes(std::size_t n) noexcept {
        if (!need(n)) {
            return {};
        }
        byte_span out = in_.subspan(pos_, n);
        pos_ += n;
        return out;
    }

    /// Records `e` unless an earlier error is already recorded.
    void fail(errc e) noexcept {
        if (!error_) {
            error_ = make_error_code(e);
        }
    }

    [[nodiscard]] std::error_code error() const noexcept { return error_; }
    [[nodiscard]] bool ok() const noexcept { return !error_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return in_.size() - pos_; }
    [[nodiscard]] std::size_t position() const noexcept { return pos_; }

private:
    bool need(std::size_t n) noexcept {
        if (error_) {
            return false;
        }
        if (in_.size() - pos_ < n) {
            fail(errc::truncated_input);
            return false;
        }
        return true;
    }

    byte_span in_;
    std::size_t pos_ = 0;
    std::error_code error_;
};

} // namespace synod::wire
