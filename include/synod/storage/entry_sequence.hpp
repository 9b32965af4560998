#pragma once

/// \file
/// A run of consecutive log entries held in fixed-size chunks: O(1) indexing, appends that
/// never move existing entries (a growing log is not copied over and over, and memory is
/// touched once), truncation from the back and release of whole chunks from the front.

#include <synod/core/assert.hpp>
#include <synod/core/log_entry.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

namespace synod::storage {

class entry_sequence {
public:
    entry_sequence() = default;
    entry_sequence(entry_sequence&&) noexcept = default;
    entry_sequence& operator=(entry_sequence&&) noexcept = default;
    entry_sequence(const entry_sequence& other) { append_all(other); }
    entry_sequence& operator=(const entry_sequence& other) {
        if (this != &other) {
            clear();
            append_all(other);
        }
        return *this;
    }
    ~entry_sequence() = default;

    [[nodiscard]] std::size_t size() const noexcept { return end_ - begin_; }
    [[nodiscard]] bool empty() const noexcept { return begin_ == end_; }

    [[nodiscard]] const log_entry& operator[](std::size_t k) const noexcept {
        const std::size_t p = begin_ + k;
        return (*chunks_[p / chunk_size])[p % chunk_size];
    }

    void replace(std::size_t k, log_entry e) {
        SYNOD_ASSERT(k < size(), "replace beyond the end");
        const std::size_t p = begin_ + k;
        (*chunks_[p / chunk_size])[p % chunk_size] = std::move(e);
    }

    void push_back(log_entry e) {
        if (end_ == chunks_.size() * chunk_size) {
            chunks_.push_back(std::make_unique<chunk>());
        }
        (*chunks_[end_ / chunk_size])[end_ % chunk_size] = std::move(e);
        ++end_;
    }

    /// Keeps the first `n` entries.
    void truncate(std::size_t n) {
        SYNOD_ASSERT(n <= size(), "truncate beyond the end");
        while (size() > n) {
            --end_;
            (*chunks_[end_ / chunk_size])[end_ % chunk_size] = log_entry{};
        }
        while (chunks_.size() > (end_ + chunk_size - 1) / chunk_size) {
            chunks_.pop_back();
        }
        if (chunks_.empty()) {
            begin_ = end_ = 0;
        }
    }

    /// Drops the first `n` entries.
    void drop_front(std::size_t n) {
        SYNOD_ASSERT(n <= size(), "drop beyond the end");
        for (std::size_t k = 0; k < n; ++k) {
            (*chunks_[begin_ / chunk_size])[begin_ % chunk_size] = log_entry{};
            ++begin_;
        }
        const std::size_t spent = begin_ / chunk_size;
        if (spent > 0) {
            // A vector of chunk pointers: erasing a few at the front is cheap, and indexing
            // stays a plain array access (std::deque's is not).
            chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(spent));
            begin_ -= spent * chunk_size;
            end_ -= spent * chunk_size;
        }
    }

    void clear() {
        chunks_.clear();
        begin_ = 0;
        end_ = 0;
    }

private:
    void append_all(const entry_sequence& other) {
        for (std::size_t k = 0; k < other.size(); ++k) {
            push_back(other[k]);
        }
    }

    static constexpr std::size_t chunk_size = 4096;
    using chunk = std::array<log_entry, chunk_size>;

    std::vector<std::unique_ptr<chunk>> chunks_;
    /// Positions within the chunks: entry k lives at position begin_ + k.
    /// \invariant begin_ < chunk_size (or the sequence is empty with begin_ == end_ == 0).
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

} // namespace synod::storage
