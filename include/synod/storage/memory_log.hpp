#pragma once

/// \file
/// `storage::memory_log`: a `log_store` kept in memory, for tests, the simulator and hosts that
/// persist elsewhere. It keeps two images of the log — what has been written and what has
/// been flushed — so a test can crash a node (`crash()`) and lose exactly what a real disk
/// would lose: everything written after the last completed flush.
///
/// Flush completion is chosen per log (`flush_mode`): at once (inside `flush`), held until the
/// test releases it, or handed to an executor (the simulator uses this to model disk latency).

#include <synod/core/concepts/log_store.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/hard_state.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/snapshot.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/storage/entry_sequence.hpp>

#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace synod::storage {

enum class flush_mode {
    immediate, ///< the callback runs inside `flush`
    held,      ///< callbacks wait for `release_flushes()` / `fail_flushes()`
    executor,  ///< callbacks are handed to the executor set with `set_flush_executor`
};

class memory_log {
public:
    using flush_callback = unique_function<void(std::error_code)>;
    /// Receives the work that completes one flush; runs it whenever it likes (on the node's
    /// context).
    using flush_executor = unique_function<void(unique_function<void()>)>;

    explicit memory_log(flush_mode mode = flush_mode::immediate)
        : mode_(mode) {}

    // --- log_store -----------------------------------------------------------------------

    /// Reports stored corruption (see `corrupt_durable_entry`) as `corrupt_storage`, as a
    /// checksummed store would when it verifies its records on open.
    std::error_code recover() {
        if (!live_.corrupt.empty()) {
            return errc::corrupt_storage;
        }
        return {};
    }

    [[nodiscard]] log_index first_index() const noexcept { return live_.first; }
    [[nodiscard]] log_index last_index() const noexcept {
        return live_.first + live_.entries.size() - 1;
    }

    [[nodiscard]] std::optional<term> term_at(log_index i) const noexcept {
        if (i + 1 == live_.first) {
            return live_.prior_term;
        }
        if (i < live_.first || i > last_index()) {
            return std::nullopt;
        }
        return live_.entries[i - live_.first].term;
    }

    std::error_code entries(log_index lo, log_index hi, std::size_t budget,
                            std::vector<log_entry>& out) const {
        if (lo < live_.first || hi < lo || hi > last_index() + 1) {
            return errc::index_out_of_range;
        }
        if (!live_.corrupt.empty() && live_.corrupt.lower_bound(lo) != live_.corrupt.end() &&
            *live_.corrupt.lower_bound(lo) < hi) {
            return errc::corrupt_storage;
        }
        std::size_t used = 0;
        for (log_index i = lo; i < hi; ++i) {
            const log_entry& e = live_.entries[i - live_.first];
            if (i != lo && used + entry_cost(e) > budget) {
                break;
            }
            used += entry_cost(e);
            out.push_back(e);
        }
        return {};
    }

    std::error_code append(std::span<const log_entry> es) {
        if (failed_) {
            return errc::storage_failure;
        }
        if (disk_full_) {
            return errc::disk_full;
        }
        for (std::size_t k = 0; k < es.size(); ++k) {
            if (es[k].index != last_index() + 1 + k) {
                return errc::invalid_argument;
            }
        }
        for (const log_entry& e : es) {
            live_.entries.push_back(e);
        }
        journal_entries_.insert(journal_entries_.end(), es.begin(), es.end());
        journal_.emplace_back(append_op{es.size()});
        return {};
    }

    std::error_code truncate_suffix(log_index from) {
        if (failed_) {
            return errc::storage_failure;
        }
        if (from < live_.first) {
            return errc::index_out_of_range;
        }
        live_.truncate(from);
        journal_.emplace_back(truncate_op{from});
        return {};
    }

    std::error_code compact_prefix(log_index upto) {
        if (failed_) {
            return errc::storage_failure;
        }
        if (!live_.stored_snapshot || live_.stored_snapshot->meta.last_index < upto) {
            return errc::invalid_argument;
        }
        live_.compact(upto);
        journal_.emplace_back(compact_op{upto});
        return {};
    }

    std::error_code save_hard_state(const hard_state& hs) {
        if (failed_) {
            return errc::storage_failure;
        }
        live_.state = hs;
        journal_.emplace_back(hs);
        return {};
    }
    [[nodiscard]] hard_state saved_hard_state() const noexcept { return live_.state; }

    std::error_code save_snapshot(const snapshot& s) {
        if (failed_) {
            return errc::storage_failure;
        }
        if (s.meta.last_index + 1 < live_.first) {
            return errc::invalid_argument; // older than what compaction already removed
        }
        live_.stored_snapshot = s;
        journal_.emplace_back(s);
        return {};
    }
    [[nodiscard]] std::optional<snapshot> latest_snapshot() const { return live_.stored_snapshot; }

    template <class F>
    void flush(F&& callback) {
        pending_.push_back(pending_flush{journal_base_ + journal_.size(),
                                         flush_callback(std::forward<F>(callback))});
        switch (mode_) {
        case flush_mode::immediate:
            release_flushes(); // older flushes held before a mode switch complete first
            break;
        case flush_mode::held:
            break;
        case flush_mode::executor:
            SYNOD_ASSERT(static_cast<bool>(executor_), "flush_mode::executor without executor");
            executor_([this] { release_flushes(1); });
            break;
        }
    }

    // --- test and simulator controls ------------------------------------------------------

    void set_flush_mode(flush_mode mode) noexcept { mode_ = mode; }
    void set_flush_executor(flush_executor executor) { executor_ = std::move(executor); }

    /// Completes up to `count` pending flushes, oldest first; returns how many completed.
    std::size_t release_flushes(std::size_t count = SIZE_MAX) {
        std::size_t done = 0;
        while (done < count && !pending_.empty()) {
            pending_flush p = std::move(pending_.front());
            pending_.pop_front();
            std::error_code ec;
            if (failed_) {
                ec = errc::storage_failure;
            } else {
                make_durable(p.journal_position);
            }
            ++done;
            ++flushes_completed_;
            p.callback(ec);
        }
        return done;
    }

    /// Fails every pending flush (as a failed fsync would); the log refuses writes afterwards.
    void fail_flushes() {
        failed_ = true;
        release_flushes();
    }

    /// Loses everything not flushed, as a power cut would, and forgets pending callbacks (the
    /// node they belonged to is gone). The log is usable again, as after a restart.
    /// \warning completions already handed to a flush executor must be discarded by the
    /// caller (the simulator kills the crashed process's events); run later, they would
    /// complete flushes of the restarted log early.
    void crash() { crash_torn(0, 0); }

    /// A crash in which the first `kept_writes` unflushed writes reached the disk anyway, and
    /// of the write after them, if it is an append, its first `kept_entries` entries: a torn
    /// write. Raft must cope with any prefix of unflushed writes surviving.
    void crash_torn(std::size_t kept_writes, std::size_t kept_entries) {
        std::size_t kept = 0;
        while (kept < kept_writes && journal_head_ < journal_.size()) {
            durable_.apply(journal_[journal_head_++], journal_entries_, journal_entries_head_);
            ++kept;
        }
        if (journal_head_ < journal_.size()) {
            if (const auto* a = std::get_if<append_op>(&journal_[journal_head_])) {
                for (std::size_t k = 0; k < std::min(kept_entries, a->count); ++k) {
                    durable_.entries.push_back(journal_entries_[journal_entries_head_ + k]);
                }
            }
        }
        pending_.clear();
        journal_.clear();
        journal_head_ = 0;
        journal_entries_.clear();
        journal_entries_head_ = 0;
        journal_base_ = 0;
        live_ = durable_;
        failed_ = false;
    }

    /// Whether a failed flush has made the log refuse writes (until `crash`).
    [[nodiscard]] bool failed() const noexcept { return failed_; }

    /// Makes appends fail with `disk_full` (nothing written) until called with false.
    void set_disk_full(bool full) noexcept { disk_full_ = full; }

    /// Flips one bit of the durable (and, if present, written) entry at `i`, as bit rot would.
    /// The store notices, as a checksummed one does: `recover()` and reads of that entry fail
    /// with `corrupt_storage`. Returns false if the disk holds no entry there.
    bool corrupt_durable_entry(log_index i, std::size_t bit) {
        if (i < durable_.first || i > durable_last_index()) {
            return false;
        }
        for (image* img : {&durable_, &live_}) {
            if (i < img->first || i - img->first >= img->entries.size()) {
                continue;
            }
            log_entry e = img->entries[i - img->first];
            // A fresh buffer: payloads are shared with other nodes' logs in the simulator.
            byte_vector bytes(e.payload.span().begin(), e.payload.span().end());
            if (!bytes.empty()) {
                bytes[(bit / 8) % bytes.size()] ^= static_cast<std::byte>(1U << (bit % 8));
            }
            e.payload = shared_bytes(byte_span(bytes));
            img->entries.replace(i - img->first, std::move(e));
            img->corrupt.insert(i);
        }
        return true;
    }

    [[nodiscard]] std::size_t pending_flushes() const noexcept { return pending_.size(); }
    [[nodiscard]] std::size_t flushes_completed() const noexcept { return flushes_completed_; }
    [[nodiscard]] log_index durable_last_index() const noexcept {
        return durable_.first + durable_.entries.size() - 1;
    }
    [[nodiscard]] const hard_state& durable_hard_state() const noexcept { return durable_.state; }
    [[nodiscard]] log_index durable_first_index() const noexcept { return durable_.first; }
    /// Last index of the durable snapshot (0: none): what a crash now would restart from.
    [[nodiscard]] log_index durable_snapshot_index() const noexcept {
        return durable_.stored_snapshot ? durable_.stored_snapshot->meta.last_index : log_index{};
    }
    /// The durable entry at `i`, if the durable image holds it (for invariant checks).
    [[nodiscard]] const log_entry* durable_entry(log_index i) const noexcept {
        if (i < durable_.first || i > durable_last_index()) {
            return nullptr;
        }
        return &durable_.entries[i - durable_.first];
    }

private:
    /// The next `count` entries of `journal_entries_`.
    struct append_op {
        std::size_t count;
    };
    struct truncate_op {
        log_index from;
    };
    struct compact_op {
        log_index upto;
    };
    using operation = std::variant<append_op, truncate_op, compact_op, hard_state, snapshot>;

    struct image {
        /// \invariant entries[k].index == first + k.
        entry_sequence entries;
        log_index first{1};
        /// Indexes whose stored bytes were damaged (see `corrupt_durable_entry`).
        std::set<log_index> corrupt;
        hard_state state;
        std::optional<synod::snapshot> stored_snapshot;
        /// Term of the entry at first - 1 (the last one compacted away; 0 at index 0).
        term prior_term;

        void truncate(log_index from) {
            if (from >= first && from - first < entries.size()) {
                entries.truncate(from - first);
            }
            corrupt.erase(corrupt.lower_bound(from), corrupt.end());
        }
        void compact(log_index upto) {
            if (upto + 1 > first) {
                // The new boundary's term: from the log if it holds `upto`, else the
                // snapshot's (compacting past the end).
                prior_term = upto < first + entries.size() ? entries[upto - first].term
                                                           : stored_snapshot->meta.last_term;
            }
            if (upto >= first + entries.size()) {
                entries.clear();
            } else if (upto >= first) {
                entries.drop_front(upto - first + 1);
            }
            if (upto + 1 > first) {
                first = upto + 1;
            }
            corrupt.erase(corrupt.begin(), corrupt.upper_bound(upto));
        }
        void apply(const operation& op, std::vector<log_entry>& appended, std::size_t& head) {
            if (const auto* a = std::get_if<append_op>(&op)) {
                for (std::size_t k = 0; k < a->count; ++k) {
                    entries.push_back(std::move(appended[head++]));
                }
            } else if (const auto* t = std::get_if<truncate_op>(&op)) {
                truncate(t->from);
            } else if (const auto* c = std::get_if<compact_op>(&op)) {
                compact(c->upto);
            } else if (const auto* hs = std::get_if<hard_state>(&op)) {
                state = *hs;
            } else {
                stored_snapshot = std::get<synod::snapshot>(op);
            }
        }
    };

    struct pending_flush {
        /// Number of writes (counted since the log was opened) this flush makes durable.
        std::size_t journal_position;
        flush_callback callback;
    };

    void make_durable(std::size_t writes) {
        while (journal_base_ < writes && journal_head_ < journal_.size()) {
            durable_.apply(journal_[journal_head_++], journal_entries_, journal_entries_head_);
            ++journal_base_;
        }
        // Drop the consumed prefix once it dominates, so a journal that never quite drains
        // (flushes always in flight) stays proportional to what is really pending.
        if (journal_head_ * 2 >= journal_.size()) {
            journal_.erase(journal_.begin(),
                           journal_.begin() + static_cast<std::ptrdiff_t>(journal_head_));
            journal_head_ = 0;
        }
        if (journal_entries_head_ * 2 >= journal_entries_.size()) {
            journal_entries_.erase(journal_entries_.begin(),
                                   journal_entries_.begin() +
                                       static_cast<std::ptrdiff_t>(journal_entries_head_));
            journal_entries_head_ = 0;
        }
    }

    flush_mode mode_;
    flush_executor executor_;
    image live_;
    image durable_;
    /// Writes not yet known durable, oldest first, from journal_head_; journal_[journal_head_]
    /// is write number journal_base_. Appended entries wait in journal_entries_ from
    /// journal_entries_head_. Both vectors are reused once drained.
    std::vector<operation> journal_;
    std::size_t journal_head_ = 0;
    std::vector<log_entry> journal_entries_;
    std::size_t journal_entries_head_ = 0;
    std::size_t journal_base_ = 0;
    std::deque<pending_flush> pending_;
    std::size_t flushes_completed_ = 0;
    bool failed_ = false;
    bool disk_full_ = false;
};

static_assert(log_store<memory_log>);

} // namespace synod::storage
