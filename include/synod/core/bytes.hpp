#pragma once

/// \file
/// Byte buffers. `shared_bytes` is an immutable, reference-counted byte string: a log entry's
/// payload is written once and then shared by the log, every in-flight AppendEntries and the
/// state machine without copying (one allocation per payload, however many followers).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace synod {

using byte_span = std::span<const std::byte>;
using byte_vector = std::vector<std::byte>;

/// Views text as bytes (payloads in examples and tests are often text).
[[nodiscard]] inline byte_span as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

class shared_bytes {
public:
    constexpr shared_bytes() noexcept = default;

    /// Copies `data` into a new buffer.
    explicit shared_bytes(byte_span data) {
        if (data.empty()) {
            return;
        }
        block_ = allocate(data.size());
        std::memcpy(block_->bytes(), data.data(), data.size());
    }
    explicit shared_bytes(std::string_view text)
        : shared_bytes(as_bytes(text)) {}

    /// A buffer of `size` bytes that `fill` writes exactly once (used by decoders to avoid a
    /// second copy).
    template <class Fill>
    static shared_bytes build(std::size_t size, Fill&& fill) {
        shared_bytes out;
        if (size != 0) {
            out.block_ = allocate(size);
            std::forward<Fill>(fill)(std::span<std::byte>(out.block_->bytes(), size));
        }
        return out;
    }

    shared_bytes(const shared_bytes& other) noexcept
        : block_(other.block_) {
        retain();
    }
    shared_bytes(shared_bytes&& other) noexcept
        : block_(std::exchange(other.block_, nullptr)) {}
    shared_bytes& operator=(const shared_bytes& other) noexcept {
        shared_bytes copy(other);
        swap(copy);
        return *this;
    }
    shared_bytes& operator=(shared_bytes&& other) noexcept {
        shared_bytes moved(std::move(other));
        swap(moved);
        return *this;
    }
    ~shared_bytes() { release(); }

    void swap(shared_bytes& other) noexcept { std::swap(block_, other.block_); }

    [[nodiscard]] const std::byte* data() const noexcept {
        return block_ != nullptr ? block_->bytes() : nullptr;
    }
    [[nodiscard]] std::size_t size() const noexcept { return block_ != nullptr ? block_->size : 0; }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] byte_span span() const noexcept { return {data(), size()}; }
    [[nodiscard]] std::string_view str() const noexcept {
        return {reinterpret_cast<const char*>(data()), size()};
    }
    operator byte_span() const noexcept { return span(); } // NOLINT: a view, like std::string

    friend bool operator==(const shared_bytes& a, const shared_bytes& b) noexcept {
        return a.size() == b.size() &&
               (a.block_ == b.block_ || std::memcmp(a.data(), b.data(), a.size()) == 0);
    }

private:
    struct block {
        std::atomic<std::uint32_t> refs;
        std::size_t size;
        std::byte* bytes() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
    };

    static block* allocate(std::size_t size) {
        void* raw = ::operator new(sizeof(block) + size);
        return ::new (raw) block{{1}, size};
    }
    void retain() const noexcept {
        if (block_ != nullptr) {
            block_->refs.fetch_add(1, std::memory_order_relaxed);
        }
    }
    void release() noexcept {
        if (block_ != nullptr && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            block_->~block();
            ::operator delete(block_);
        }
        block_ = nullptr;
    }

    block* block_ = nullptr;
};

} // namespace synod
