#pragma once

/// \file
/// `storage::file_log`: the durable `log_store` — a segmented write-ahead log with group
/// commit and crash-safe recovery. docs/storage.md describes the files, the recovery rules
/// and the threading; this comment is the summary.
///
/// - Entries and hard states are records appended to segment files (`wal_format.hpp`); a
///   segment is closed at `segment_bytes` (default 64 MiB). One `fdatasync` covers every
///   record appended before a flush: entries and the hard state ride together (group commit).
/// - The last segment is kept extended with zeros `preallocate_bytes` past its records, so
///   most flushes overwrite zeros in place and their `fdatasync` has no file size to commit
///   (a journal commit on ext4 and XFS). A segment is cut back to its records, durably,
///   before the next one is created; recovery reads the zero tail as the end of the log.
/// - The `hard_state` file (hard state + where the log starts) and the `snapshot` file are
///   replaced atomically: temp file, fsync, rename, fsync of the directory. The `hard_state`
///   file is written only when the records holding the latest hard state are about to go
///   (compaction, truncation); otherwise the newest hard-state record wins.
/// - `truncate_suffix` is synchronous: the cut is durable (ftruncate + fdatasync, directory
///   fsync for removed segments) before it returns, so a later flush can never make new
///   entries durable above stale ones. Compaction deletes whole segments, in the next flush,
///   after the snapshot and the new start of the log are durable.
/// - `recover` verifies every record. A record cut short by a crash at the end of the last
///   segment is truncated (it was never flushed); any other damage stops the open with
///   `corrupt_storage` and `last_error_detail()` names the file and offset.
/// - Any failed write or fsync fails the log for good: writes return `storage_failure`, every
///   pending flush completes with the error (`disk_full` when the disk is full). What is on
///   disk stays recoverable.
/// - `term_at` is O(1) from an in-memory index (term, offset, length per entry). `entries`
///   serves recent entries from a cache (every entry not yet durable, plus durable ones up to
///   `cache_bytes`) and reads older ones back from disk, verifying their checksums.
/// - A lock file (`flock`) keeps a second process out of the directory (`log_locked`).
///
/// Threading: by default `flush` writes and syncs inline and runs the callback inside `flush`.
/// With an `io_executor` (or `own_io_thread`), the blocking work runs there and completions
/// are posted back through `post`; appends continue meanwhile and the next flush covers all
/// of them. Up to `max_flushes_in_flight` flushes that only overwrite the last segment's zeros
/// run at once: each writes after the one before it has written, and their `fdatasync`s
/// overlap. Every other member runs on the node's context. `recover` verifies large logs on
/// two threads: a helper it starts and joins before returning (`parallel_recovery_bytes`).

#include <synod/core/assert.hpp>
#include <synod/core/concepts/log_store.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/hard_state.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/snapshot.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/storage/entry_sequence.hpp>
#include <synod/storage/file_layer.hpp>
#include <synod/storage/io_worker.hpp>
#include <synod/storage/posix_files.hpp>
#include <synod/storage/wal_format.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace synod::storage {

struct file_log_options {
    /// Receives a job and runs it somewhere (another thread, or later on the node's context).
    using executor = unique_function<void(unique_function<void()>)>;

    /// The log's directory; created (with missing parents) if absent.
    std::string directory;
    /// A segment is closed once the next record would take it past this size; a record
    /// larger than this gets a segment of its own. At least 512 bytes, at most 4 GiB - 1.
    std::uint64_t segment_bytes = std::uint64_t{64} << 20;
    /// How far past its records the last segment is extended with zeros (capped at
    /// `segment_bytes`); 0: files grow with every flush. Overwriting written zeros lets
    /// `fdatasync` skip the size update; docs/performance.md has the measured difference. When
    /// the disk has no room for the zeros, the log goes on without them.
    std::uint64_t preallocate_bytes = std::uint64_t{1} << 20;
    /// Durable entries kept in memory for `entries`, by `entry_cost`; older ones are read back
    /// from disk. Entries not yet durable are always in memory, whatever this says.
    std::size_t cache_bytes = std::size_t{16} << 20;
    /// Where flush work — writes, fsyncs, file replacements — runs. Empty (and no
    /// `own_io_thread`): inside `flush`, which then runs its callback before returning.
    executor io_executor{};
    /// Start threads, owned by the log, to run flush work (when `io_executor` is empty): one
    /// per flush that may be in flight (`max_flushes_in_flight`).
    bool own_io_thread = false;
    /// Flushes under way at once, 1 to 64. Above 1, a flush whose records all go into the
    /// zeros already ahead of the last segment's records may start while earlier ones run: its
    /// writes wait until theirs are issued (so the page cache, and any crash image, never
    /// holds its records without theirs), then its `fdatasync` overlaps theirs. A flush that
    /// creates, grows or cuts a file, or writes the snapshot or `hard_state` file, waits until
    /// none run. Completions keep their order. The overlap needs an executor that runs jobs
    /// on more than one thread (`own_io_thread` starts enough). It pays only on a device that
    /// runs flushes in parallel without slowing each one: on the disk docs/performance.md
    /// measured, two overlapping syncs took 0.48 ms each against 0.31 ms alone, which cancels
    /// the wait it saves — hence the default of 1.
    std::size_t max_flushes_in_flight = 1;
    /// Posts a completion to the node's context. Required with `io_executor` or
    /// `own_io_thread`; called from the thread that ran the flush work, which holds a lock of
    /// that flush meanwhile: it must queue the job, not run it or wait for it.
    executor post{};
    /// Told of every error the log reports, with its detail (which file, which offset, why),
    /// on the node's context.
    std::function<void(std::error_code, std::string_view)> on_error{};
    /// Recovery verifies segments on two threads when those to verify hold at least this many
    /// bytes in all (and are two or more): a helper thread, started by `recover` and joined
    /// before it returns, takes segments from the end of the log while the recovering thread
    /// takes them from the start. 0: whenever there are two segments; UINT64_MAX: never.
    std::uint64_t parallel_recovery_bytes = std::uint64_t{16} << 20;
};

template <file_layer Files = posix_files>
class basic_file_log {
public:
    using flush_callback = unique_function<void(std::error_code)>;

    explicit basic_file_log(file_log_options options, Files files = Files{})
        : options_(std::move(options))
        , files_(std::move(files))
        , directory_(normalize(options_.directory))
        , alive_(std::make_shared<basic_file_log*>(this)) {}

    basic_file_log(const basic_file_log&) = delete;
    basic_file_log& operator=(const basic_file_log&) = delete;

    /// Writes not flushed are dropped, as a crash would drop them; flush work already
    /// handed to the executor finishes first (a completion posted afterwards does nothing).
    ~basic_file_log() {
        *alive_ = nullptr;
        finish_flights(false);
        for (segment& s : segments_) {
            close_quietly(s.handle);
        }
        for (segment& s : retired_) {
            close_quietly(s.handle);
        }
        if (lock_.valid()) {
            (void)files_.unlock(lock_);
        }
        worker_.reset(); // joins; jobs left in its queue find their flight finished
    }

    // --- log_store -----------------------------------------------------------------------

    /// Opens the directory, takes its lock, verifies every stored record and loads the log.
    /// On error the log stays unusable (writes return `storage_failure`).
    std::error_code recover() {
        SYNOD_ASSERT(!recovered_, "recover() is called once");
        recovered_ = true;
        if (auto ec = load()) {
            failure_ = ec;
            return ec;
        }
        ready_ = true;
        return {};
    }

    [[nodiscard]] log_index first_index() const noexcept { return first_; }
    [[nodiscard]] log_index last_index() const noexcept { return last_; }

    [[nodiscard]] std::optional<term> term_at(log_index i) const noexcept {
        if (i + 1 == first_) {
            return prior_term_;
        }
        if (i < first_ || i > last_) {
            return std::nullopt;
        }
        return slot_at(i).entry_term;
    }

    std::error_code entries(log_index lo, log_index hi, std::size_t budget,
                            std::vector<log_entry>& out) const {
        if (lo < first_ || hi < lo || hi > last_ + 1) {
            return errc::index_out_of_range;
        }
        // The byte budget is decided from the index alone, so disk and cache agree.
        log_index end = lo;
        std::size_t used = 0;
        for (log_index i = lo; i < hi; ++i) {
            const std::size_t cost = slot_at(i).body_length - wal::entry_body_prefix + 32;
            if (i != lo && used + cost > budget) {
                break;
            }
            used += cost;
            end = i + 1;
        }
        if (lo < cache_first_) {
            const log_index disk_end = std::min(end, cache_first_);
            if (auto ec = read_from_disk(lo, disk_end, out)) {
                return ec;
            }
            lo = disk_end;
        }
        for (log_index i = lo; i < end; ++i) {
            out.push_back(cache_[i - cache_first_]);
        }
        return {};
    }

    std::error_code append(std::span<const log_entry> es) {
        if (!writable()) {
            return errc::storage_failure;
        }
        for (std::size_t k = 0; k < es.size(); ++k) {
            if (es[k].index != last_ + 1 + k ||
                es[k].payload.size() > UINT32_MAX - wal::record_size(wal::entry_body_prefix)) {
                return errc::invalid_argument;
            }
        }
        for (const log_entry& e : es) {
            const std::size_t body_length = wal::entry_body_prefix + e.payload.size();
            segment& s = writable_segment(wal::record_size(body_length));
            const std::uint64_t at = s.size();
            const std::size_t before = s.pending.size();
            wal::append_entry_record(s.pending, at, e);
            pending_bytes_ += s.pending.size() - before;
            index_.push_back(
                {e.term, static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(body_length)});
            s.last = e.index;
            last_ = e.index;
            cache_.push_back(e);
            cache_cost_ += entry_cost(e);
        }
        return {};
    }

    /// Removes entries `>= from`, durably, before returning: waits for the flushes in flight,
    /// then cuts the files and syncs them.
    std::error_code truncate_suffix(log_index from) {
        if (!writable()) {
            return errc::storage_failure;
        }
        if (from < first_) {
            return errc::index_out_of_range;
        }
        if (from > last_) {
            return {};
        }
        finish_flights(true);
        if (failure_) {
            return errc::storage_failure;
        }
        const std::size_t cut_segment = segment_of(from);
        const std::uint64_t cut_offset = slot_at(from).offset;
        if (auto ec = cut_files(cut_segment, cut_offset)) {
            return ec;
        }
        index_.resize(index_head_ + (from - first_));
        if (from <= cache_first_) {
            cache_.clear();
            cache_cost_ = 0;
            cache_first_ = from;
        } else {
            for (log_index i = from; i <= last_; ++i) {
                cache_cost_ -= entry_cost(cache_[i - cache_first_]);
            }
            cache_.truncate(from - cache_first_);
        }
        last_ = from - 1;
        durable_last_ = std::min(durable_last_, last_);
        segments_[cut_segment].last = last_;
        return {};
    }

    /// Drops entries `<= upto` now; the segments they fill are deleted by the next flush,
    /// after the snapshot and the new start of the log are durable.
    std::error_code compact_prefix(log_index upto) {
        if (!writable()) {
            return errc::storage_failure;
        }
        if (!snapshot_ || snapshot_->meta.last_index < upto) {
            return errc::invalid_argument;
        }
        if (upto < first_) {
            return {};
        }
        // The term of the new boundary: from the log if it holds `upto`, else the snapshot's
        // (compacting past the end, where the snapshot is the only record of that position).
        const term prior = upto <= last_ ? slot_at(upto).entry_term : snapshot_->meta.last_term;
        const log_index kept_from = std::min(upto, last_) + 1;
        index_head_ += kept_from - first_;
        if (index_head_ * 2 >= index_.size()) {
            index_.erase(index_.begin(), index_.begin() + static_cast<std::ptrdiff_t>(index_head_));
            index_head_ = 0;
        }
        if (upto >= last_) {
            last_ = upto;
            cache_.clear();
            cache_cost_ = 0;
            cache_first_ = upto + 1;
        } else if (cache_first_ <= upto) {
            for (log_index i = cache_first_; i <= upto; ++i) {
                cache_cost_ -= entry_cost(cache_[i - cache_first_]);
            }
            cache_.drop_front(upto + 1 - cache_first_);
            cache_first_ = upto + 1;
        }
        first_ = upto + 1;
        prior_term_ = prior;
        while (!segments_.empty() && segments_.front().last < first_) {
            segment& s = segments_.front();
            pending_bytes_ -= s.pending.size();
            s.pending.clear();
            if (s.on_disk || s.creating) {
                retired_.push_back(std::move(s));
            }
            segments_.erase(segments_.begin());
        }
        state_file_due_ = true;
        return {};
    }

    std::error_code save_hard_state(const hard_state& hs) {
        if (!writable()) {
            return errc::storage_failure;
        }
        if (hs == hard_state_) {
            return {}; // already written (durable, or pending in the same order as before)
        }
        segment& s = writable_segment(wal::record_size(wal::hard_state_body_size));
        const std::uint64_t at = s.size();
        const std::size_t before = s.pending.size();
        wal::append_hard_state_record(s.pending, at, ++hard_state_sequence_, hs);
        pending_bytes_ += s.pending.size() - before;
        hard_state_ = hs;
        hard_state_at_ = {s.number, at};
        return {};
    }
    [[nodiscard]] hard_state saved_hard_state() const noexcept { return hard_state_; }

    /// Replaces the snapshot; written (atomically) by the next flush. A snapshot older than
    /// the compacted prefix is refused with `invalid_argument`: it would leave a gap.
    std::error_code save_snapshot(const snapshot& s) {
        if (!writable()) {
            return errc::storage_failure;
        }
        if (s.meta.last_index + 1 < first_) {
            return errc::invalid_argument;
        }
        snapshot_ = s;
        snapshot_due_ = true;
        return {};
    }
    [[nodiscard]] std::optional<snapshot> latest_snapshot() const { return snapshot_; }

    template <class F>
    void flush(F&& callback) {
        flush_callback cb(std::forward<F>(callback));
        if (failure_ || !ready_) {
            if (!flights_.empty() || !completed_.empty()) {
                waiting_.push_back(std::move(cb)); // after the flushes already under way
                return;
            }
            ++flushes_completed_;
            cb(failure_ ? failure_ : make_error_code(errc::storage_failure));
            return;
        }
        if (!has_unflushed_writes()) {
            if (!flights_.empty()) {
                flights_.back()->callbacks.push_back(std::move(cb)); // covers every earlier write
            } else if (!completed_.empty()) {
                completed_.back().callbacks.push_back(std::move(cb));
            } else {
                ++flushes_completed_;
                cb(std::error_code{});
            }
            return;
        }
        waiting_.push_back(std::move(cb));
        if (may_start_flight()) {
            start_flight();
        }
    }

    // --- diagnostics ---------------------------------------------------------------------

    /// What the last error was about: "segment 00000000000000000001.log offset 4096: bad
    /// CRC", "write segment ... offset ...: No space left on device". Empty if none.
    [[nodiscard]] const std::string& last_error_detail() const noexcept { return detail_; }
    /// Why the log refuses writes, or empty.
    [[nodiscard]] std::error_code failure() const noexcept { return failure_; }
    /// Last entry known durable.
    [[nodiscard]] log_index durable_last_index() const noexcept { return durable_last_; }
    [[nodiscard]] std::size_t flushes_completed() const noexcept { return flushes_completed_; }
    /// Flushes whose work started before an earlier flush had completed (see
    /// `max_flushes_in_flight`).
    [[nodiscard]] std::size_t flushes_overlapped() const noexcept { return flushes_overlapped_; }
    /// Entries `entries()` serves from memory rather than disk.
    [[nodiscard]] std::size_t cached_entries() const noexcept { return cache_.size(); }
    /// Segment files the log holds (or is about to create).
    [[nodiscard]] std::size_t segment_count() const noexcept { return segments_.size(); }
    [[nodiscard]] const std::string& directory() const noexcept { return directory_; }

private:
    // --- in-memory state -----------------------------------------------------------------

    /// What `term_at` and `entries` need to find an entry without reading it.
    struct slot {
        term entry_term;
        std::uint32_t offset;      ///< of the record in its segment
        std::uint32_t body_length; ///< the record's body, unpadded
    };

    struct segment {
        std::uint64_t number = 0;
        std::string path;
        log_index first;    ///< index the segment starts at (its header says so)
        log_index last;     ///< last entry it holds; first - 1 when it holds none
        file_handle handle; ///< valid once the file exists
        bool on_disk = false;
        bool creating = false; ///< a flush in flight creates the file
        /// Bytes of records in the file, written by completed flushes (or found by recovery).
        std::uint64_t written = 0;
        /// The file's size: `written` plus the zeros written past it (`preallocate_bytes`).
        /// \invariant allocated >= written once the file exists; only the last segment has
        /// allocated > written once a flush completes (recovery needs that).
        std::uint64_t allocated = 0;
        /// The disk had no room for zeros ahead of this segment's records: extending it again
        /// would fill the disk at every flush (and starve other writers), so it just grows.
        bool zeros_refused = false;
        /// Bytes the flushes in flight are writing at `written`.
        std::uint64_t in_flight = 0;
        /// Bytes appended since, to be written at `written + in_flight` by the next flush.
        byte_vector pending;

        /// The file's size once everything appended is written: where the next record goes.
        [[nodiscard]] std::uint64_t size() const noexcept {
            return written + in_flight + pending.size();
        }
    };

    /// Where the latest hard state lives: a record, or the `hard_state` file (segment 0).
    struct hard_state_position {
        std::uint64_t segment_number = 0;
        std::uint64_t offset = 0;
    };

    // --- flushing ------------------------------------------------------------------------

    struct segment_write {
        std::uint64_t number = 0;
        std::string path;
        file_handle handle; ///< invalid: create the file first
        std::uint64_t offset = 0;
        byte_vector bytes;
        /// The file's size before this write and the size it leaves: larger than the end of
        /// `bytes` to extend with zeros, smaller than `allocated_before` to cut zeros off.
        std::uint64_t allocated_before = 0;
        std::uint64_t size_after = 0;
        bool zeros_refused = false; ///< set by `execute`: no room for the zeros
        bool done = false;
        /// Write and sync through a descriptor opened for this write alone (a flight beside
        /// others): Linux reports a writeback error once per open file description, to
        /// whichever `fdatasync` asks first, so on a shared one an earlier flight's failed
        /// sync could return success while a later flight's sync took the error.
        bool own_descriptor = false;
    };

    /// One flush's blocking work, self-contained: the thread that runs it touches nothing else
    /// of the log but `files_` and `directory_`.
    struct io_batch {
        std::optional<snapshot> new_snapshot;
        std::optional<byte_vector> new_state_file;
        std::vector<segment_write> writes;
        std::vector<std::pair<std::string, file_handle>> removals;
        log_index last_index;
        std::error_code error;
        std::string detail;
    };

    /// A batch handed to the executor. Whoever claims it first (the executor's job, the
    /// node's thread when it must wait, or the flight after it, which needs its writes) runs
    /// it, so waiting never deadlocks on an executor that runs jobs later, or out of order.
    struct flight {
        enum class phase : std::uint8_t { queued, running, done };
        std::mutex mutex;
        std::condition_variable finished;
        phase state = phase::queued; ///< \invariant guarded by mutex
        /// Its writes are issued (or it failed first): the next flight may write.
        /// \invariant guarded by mutex; set no later than `state` becomes done.
        bool written = false;
        bool failed_before_written = false; ///< \invariant guarded by mutex
        bool failed = false;                ///< set when done; \invariant guarded by mutex
        /// The flight started before this one, until this one has waited for its writes.
        /// \invariant guarded by mutex.
        std::shared_ptr<flight> previous;
        io_batch batch; ///< owned by whoever moved `state` to running, until done
        /// Completed with the batch (the node's thread only).
        std::vector<flush_callback> callbacks;
    };

    struct completed_flush {
        std::vector<flush_callback> callbacks;
        std::error_code result;
    };

    [[nodiscard]] bool writable() const noexcept { return ready_ && !failure_; }

    [[nodiscard]] bool has_unflushed_writes() const noexcept {
        return pending_bytes_ != 0 || snapshot_due_ || state_file_due_ || !retired_.empty();
    }

    /// Whether a flush asked for now can start: none in flight, or room for one more and
    /// nothing due but records for the zeros ahead of the last segment's (see
    /// `max_flushes_in_flight`).
    [[nodiscard]] bool may_start_flight() const noexcept {
        if (flights_.empty()) {
            return true;
        }
        if (!options_.io_executor || flights_.size() >= options_.max_flushes_in_flight ||
            snapshot_due_ || state_file_due_ || !retired_.empty() || segments_.empty()) {
            return false;
        }
        for (const segment& s : segments_) {
            const bool last = &s == &segments_.back();
            if (!last && (!s.pending.empty() || s.allocated > s.size())) {
                return false; // a closed segment still to be cut back
            }
            if (last && (!s.handle.valid() || s.creating || s.size() > s.allocated)) {
                return false; // the file is being created, or would grow
            }
        }
        return true;
    }

    void start_flight() {
        io_batch batch = build_batch();
        std::vector<flush_callback> callbacks = std::move(waiting_);
        waiting_.clear();
        if (!options_.io_executor) {
            execute(batch, nullptr);
            absorb(batch, callbacks);
            deliver_completed();
            return;
        }
        auto f = std::make_shared<flight>();
        if (!flights_.empty()) {
            for (segment_write& w : batch.writes) {
                w.own_descriptor = true;
            }
            f->previous = flights_.back();
            ++flushes_overlapped_;
        }
        f->batch = std::move(batch);
        f->callbacks = std::move(callbacks);
        flights_.push_back(f);
        options_.io_executor([this, f] {
            if (claim(*f)) {
                run_claimed(*f, true);
            }
        });
    }

    static bool claim(flight& f) {
        std::lock_guard lock(f.mutex);
        if (f.state != flight::phase::queued) {
            return false;
        }
        f.state = flight::phase::running;
        return true;
    }

    /// Runs a flight this thread claimed: first makes sure the one before it has written
    /// (running it here if no one has started it), then its own batch.
    void run_claimed(flight& f, bool post_completion) {
        std::shared_ptr<flight> previous;
        {
            std::lock_guard lock(f.mutex);
            previous = std::move(f.previous);
        }
        bool previous_failed = false;
        if (previous) {
            if (claim(*previous)) {
                run_claimed(*previous, post_completion);
            }
            std::unique_lock lock(previous->mutex);
            previous->finished.wait(lock, [&] { return previous->written; });
            previous_failed = previous->failed_before_written ||
                              (previous->state == flight::phase::done && previous->failed);
        }
        if (previous_failed) {
            // Writing after records that never reached the page cache would leave a hole; and
            // after a failed sync the log is done for anyway.
            f.batch.error = errc::storage_failure;
            f.batch.detail = "an earlier flush failed";
            mark_written(f);
        } else {
            execute(f.batch, &f);
        }
        finish(f, post_completion && static_cast<bool>(options_.post));
    }

    static void mark_written(flight& f) {
        std::lock_guard lock(f.mutex);
        if (!f.written) {
            f.written = true;
            f.failed_before_written = static_cast<bool>(f.batch.error);
            f.finished.notify_all();
        }
    }

    /// Marks a flight done, first posting its completion if asked; under the lock, so the
    /// destructor (which waits for done) knows `options_.post` is no longer in use.
    void finish(flight& f, bool post_completion) {
        mark_written(f);
        std::lock_guard lock(f.mutex);
        if (post_completion) {
            options_.post([life = std::weak_ptr<basic_file_log*>(alive_)] {
                if (auto self = life.lock(); self && *self) {
                    (*self)->on_flight_posted();
                }
            });
        }
        f.failed = static_cast<bool>(f.batch.error);
        f.state = flight::phase::done;
        f.finished.notify_all();
    }

    /// Completes every flight in flight now, on this thread, oldest first: runs a batch here
    /// if no one has started it, else waits. Their callbacks still run from a posted
    /// completion (never inside the caller, which may be in the middle of the node's work).
    void finish_flights(bool post_completion) {
        for (const std::shared_ptr<flight>& f : flights_) {
            if (claim(*f)) {
                run_claimed(*f, post_completion);
            } else {
                std::unique_lock lock(f->mutex);
                f->finished.wait(lock, [&] { return f->state == flight::phase::done; });
            }
        }
        absorb_finished_flights();
    }

    /// Takes in the flights that are done, oldest first, stopping at one still running (a
    /// later flight's outcome waits for the earlier ones').
    void absorb_finished_flights() {
        while (!flights_.empty()) {
            std::shared_ptr<flight> f = flights_.front();
            io_batch batch;
            {
                std::lock_guard lock(f->mutex);
                if (f->state != flight::phase::done) {
                    return;
                }
                batch = std::move(f->batch);
            }
            flights_.pop_front();
            absorb(batch, f->callbacks);
        }
    }

    void on_flight_posted() {
        absorb_finished_flights();
        deliver_completed();
        if (!waiting_.empty()) {
            if (failure_) {
                if (flights_.empty()) {
                    completed_.push_back({std::move(waiting_), failure_});
                    waiting_.clear();
                    deliver_completed();
                }
            } else if (may_start_flight()) {
                start_flight();
            }
        }
    }

    void deliver_completed() {
        while (!completed_.empty()) {
            completed_flush done = std::move(completed_.front());
            completed_.pop_front();
            for (flush_callback& cb : done.callbacks) {
                ++flushes_completed_;
                cb(done.result);
            }
        }
    }

    io_batch build_batch() {
        io_batch b;
        if (snapshot_due_) {
            b.new_snapshot = snapshot_;
            snapshot_due_ = false;
        }
        if (state_file_due_) {
            stored_state_ = wal::state_file{hard_state_sequence_, hard_state_, first_, prior_term_};
            b.new_state_file = wal::encode_state_file(stored_state_);
            hard_state_at_ = {};
            state_file_due_ = false;
        }
        for (segment& s : segments_) {
            const std::uint64_t end = s.size();
            const bool last = &s == &segments_.back();
            // A closed segment loses its zeros before the next one is created (writes run in
            // segment order), so recovery only ever meets them at the end of the last one.
            if (s.pending.empty() && (last || s.allocated <= end)) {
                continue;
            }
            SYNOD_ASSERT(s.in_flight == 0 || (last && end <= s.allocated),
                         "a batch beside another may only overwrite the last segment's zeros");
            std::uint64_t size_after = last ? std::max(s.allocated, end) : end;
            // A flush that brings a preallocation's worth of records itself (a follower
            // catching up, large entries) would only write every byte twice: it grows the file.
            if (last && end > s.allocated && options_.preallocate_bytes != 0 && !s.zeros_refused &&
                s.pending.size() < options_.preallocate_bytes) {
                size_after = std::max(
                    end, std::min(options_.segment_bytes, end + options_.preallocate_bytes));
            }
            const std::uint64_t offset = s.written + s.in_flight;
            s.in_flight += s.pending.size();
            b.writes.push_back({s.number, s.path, s.handle, offset, std::move(s.pending),
                                s.allocated, size_after});
            s.pending = spare_buffer();
            s.creating = !s.on_disk;
        }
        pending_bytes_ = 0;
        for (segment& s : retired_) {
            if (s.on_disk) {
                b.removals.emplace_back(s.path, s.handle);
            }
        }
        retired_.clear();
        b.last_index = last_;
        return b;
    }

    /// Runs a batch's blocking work, in an order that keeps every crash recoverable: the
    /// snapshot, then the `hard_state` file (the new start of the log needs the snapshot),
    /// then the segments in order, each synced before the next is created (so only the last
    /// segment can hold a torn tail), then removals of compacted segments. The next flight
    /// (if any) may write once this one's last write is issued, before its `fdatasync`.
    void execute(io_batch& b, flight* f) const {
        auto fail = [&](std::error_code ec, std::string detail) {
            b.error = classify(ec);
            b.detail = std::move(detail) + ": " + ec.message();
        };
        if (b.new_snapshot) {
            const wal::snapshot_file file(*b.new_snapshot);
            const byte_span parts[] = {file.head, file.data, file.trailer};
            if (auto ec = replace_file("snapshot", parts, b.detail)) {
                b.error = classify(ec);
                return;
            }
        }
        if (b.new_state_file) {
            const byte_span parts[] = {*b.new_state_file};
            if (auto ec = replace_file("hard_state", parts, b.detail)) {
                b.error = classify(ec);
                return;
            }
        }
        bool created = false;
        for (segment_write& w : b.writes) {
            const std::string name = file_name(w.path);
            scoped_handle own(files_);
            if (w.own_descriptor) {
                if (auto ec = files_.open(w.path, open_mode::existing, own.handle)) {
                    return fail(ec, "open segment " + name);
                }
            } else if (!w.handle.valid()) {
                if (auto ec = files_.open(w.path, open_mode::create, w.handle)) {
                    return fail(ec, "create segment " + name);
                }
                created = true;
            }
            const file_handle handle = w.own_descriptor ? own.handle : w.handle;
            if (auto ec = files_.write_at(handle, w.offset, w.bytes)) {
                // Take back what did get written: the file ends where it did before. Not
                // beside other flights: the file's size is theirs too, and zeros partly
                // overwritten read as a torn tail anyway.
                if (!w.own_descriptor) {
                    (void)files_.truncate(handle, w.offset);
                }
                return fail(ec, "write segment " + name + " offset " + std::to_string(w.offset));
            }
            const std::uint64_t end = w.offset + w.bytes.size();
            const std::uint64_t filled = std::max(w.allocated_before, end);
            if (w.size_after > filled) {
                if (auto ec = write_zeros(handle, filled, w.size_after)) {
                    if (classify(ec) != errc::disk_full) {
                        return fail(ec, "extend segment " + name + " with zeros to " +
                                            std::to_string(w.size_after));
                    }
                    // The zeros only save time: with the disk full, go on without them. If the
                    // zeros that did land cannot be cut off, `size_after` stays an upper bound
                    // of the size, so the segment is still cut back when it closes.
                    w.zeros_refused = true;
                    if (!files_.truncate(handle, filled)) {
                        w.size_after = filled;
                    }
                }
            } else if (w.size_after < w.allocated_before) {
                if (auto ec = files_.truncate(handle, w.size_after)) {
                    return fail(ec,
                                "truncate segment " + name + " to " + std::to_string(w.size_after));
                }
            }
            if (f != nullptr && &w == &b.writes.back()) {
                mark_written(*f);
            }
            if (auto ec = files_.sync(handle)) {
                return fail(ec, "fdatasync segment " + name);
            }
            w.done = true;
        }
        if (created) {
            if (auto ec = files_.sync_directory(directory_)) {
                return fail(ec, "fsync directory " + directory_);
            }
        }
        for (auto& [path, handle] : b.removals) {
            if (handle.valid()) {
                (void)files_.close(handle);
                handle = {};
            }
            if (auto ec = files_.remove(path)) {
                return fail(ec, "remove segment " + file_name(path));
            }
        }
        if (!b.removals.empty()) {
            if (auto ec = files_.sync_directory(directory_)) {
                return fail(ec, "fsync directory " + directory_);
            }
        }
    }

    /// Closes a descriptor opened for one write when the write is over, however it ends.
    struct scoped_handle {
        Files& files;
        file_handle handle;
        explicit scoped_handle(Files& f)
            : files(f) {}
        scoped_handle(const scoped_handle&) = delete;
        scoped_handle& operator=(const scoped_handle&) = delete;
        ~scoped_handle() {
            if (handle.valid()) {
                (void)files.close(handle);
            }
        }
    };

    [[nodiscard]] static bool set_bits_at_most_one(byte_span bytes) noexcept {
        int bits = 0;
        for (const std::byte b : bytes) {
            bits += std::popcount(static_cast<unsigned>(b));
            if (bits > 1) {
                return false;
            }
        }
        return true;
    }

    /// Writes zeros over [from, to) of a file, in pieces of a shared zero block.
    std::error_code write_zeros(file_handle h, std::uint64_t from, std::uint64_t to) const {
        static constexpr std::size_t block = std::size_t{64} << 10;
        static const byte_vector zeros(block);
        for (std::uint64_t at = from; at < to;) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(block, to - at));
            if (auto ec = files_.write_at(h, at, byte_span(zeros.data(), n))) {
                return ec;
            }
            at += n;
        }
        return {};
    }

    /// Takes a finished batch's outcome into the log (on the node's thread), and queues its
    /// callbacks with it.
    void absorb(io_batch& b, std::vector<flush_callback>& callbacks) {
        for (segment_write& w : b.writes) {
            segment* s = find_segment(w.number);
            if (s != nullptr) {
                s->creating = false;
                if (!s->handle.valid() && w.handle.valid()) {
                    s->handle = w.handle;
                    s->on_disk = true;
                }
                // After a failure these counts stop adding up (a failed flight's bytes are not
                // counted, a later flight's are): harmless, the log refuses everything then.
                if (w.done) {
                    s->written += w.bytes.size();
                    s->allocated = w.size_after;
                    s->zeros_refused = s->zeros_refused || w.zeros_refused;
                }
                s->in_flight -= w.bytes.size();
            } else if (!w.own_descriptor) {
                close_quietly(w.handle); // a segment truncated away meanwhile
            }
            recycle(std::move(w.bytes));
        }
        if (b.error && !failure_) {
            fail(b.error, std::move(b.detail));
        }
        if (failure_) {
            // This batch failed, or an earlier one did: what it wrote may sit past a hole.
            completed_.push_back({std::move(callbacks), failure_});
        } else {
            durable_last_ = std::max(std::min(b.last_index, last_), durable_last_);
            evict();
            completed_.push_back({std::move(callbacks), {}});
        }
        callbacks.clear();
    }

    /// Keeps the cache within `cache_bytes`, dropping only durable entries (the rest exist
    /// nowhere else yet).
    void evict() {
        std::size_t drop = 0;
        std::size_t cost = cache_cost_;
        while (cost > options_.cache_bytes && drop < cache_.size() &&
               cache_first_ + drop <= durable_last_) {
            cost -= entry_cost(cache_[drop]);
            ++drop;
        }
        if (drop > 0) {
            cache_.drop_front(drop);
            cache_first_ = cache_first_ + drop;
            cache_cost_ = cost;
        }
    }

    /// Replaces `name` in the directory atomically with the concatenation of `parts`.
    std::error_code replace_file(const std::string& name, std::span<const byte_span> parts,
                                 std::string& detail) const {
        const std::string tmp = path_of(name + ".tmp");
        file_handle h;
        std::error_code ec = files_.open(tmp, open_mode::create, h);
        std::string step = "create " + name + ".tmp";
        std::uint64_t at = 0;
        for (std::size_t k = 0; !ec && k < parts.size(); ++k) {
            ec = files_.write_at(h, at, parts[k]);
            step = "write " + name + ".tmp offset " + std::to_string(at);
            at += parts[k].size();
        }
        if (!ec) {
            ec = files_.sync(h);
            step = "fsync " + name + ".tmp";
        }
        if (h.valid()) {
            (void)files_.close(h);
        }
        if (!ec) {
            ec = files_.rename(tmp, path_of(name));
            step = "rename " + name + ".tmp";
        } else if (h.valid()) {
            (void)files_.remove(tmp); // nothing replaced; leave no debris
        }
        if (!ec) {
            ec = files_.sync_directory(directory_);
            step = "fsync directory " + directory_;
        }
        if (ec) {
            detail = step + ": " + ec.message();
        }
        return ec;
    }

    // --- appending -----------------------------------------------------------------------

    /// The segment the next record of `record_bytes` goes to, opening a new one when the
    /// current one would pass `segment_bytes` (a segment always takes its first record).
    segment& writable_segment(std::uint64_t record_bytes) {
        if (segments_.empty() ||
            (segments_.back().size() > wal::segment_header_size &&
             segments_.back().size() + record_bytes > options_.segment_bytes)) {
            segment s;
            s.number = next_segment_number_++;
            s.path = path_of(wal::segment_file_name(s.number));
            s.first = last_ + 1;
            s.last = last_;
            s.pending = spare_buffer();
            wal::append_segment_header(s.pending, s.first);
            pending_bytes_ += s.pending.size();
            segments_.push_back(std::move(s));
        }
        return segments_.back();
    }

    // --- truncation ----------------------------------------------------------------------

    /// Writes the current hard state into the `hard_state` file, durably, because the record
    /// holding it is about to go; on failure `detail` says which step failed.
    std::error_code checkpoint_hard_state(std::string& detail) {
        wal::state_file checkpoint = stored_state_;
        checkpoint.sequence = hard_state_sequence_;
        checkpoint.state = hard_state_;
        const byte_vector bytes = wal::encode_state_file(checkpoint);
        const byte_span parts[] = {bytes};
        if (auto ec = replace_file("hard_state", parts, detail)) {
            return ec;
        }
        stored_state_ = checkpoint;
        hard_state_at_ = {};
        return {};
    }

    /// Cuts the log at `offset` of segment `k`, durably: first the hard state, if its latest
    /// record is about to be cut, goes to the `hard_state` file; then later segments are
    /// removed (and the removal synced); then the segment is truncated and synced. Each step
    /// leaves a log that recovers to a prefix of what it held.
    std::error_code cut_files(std::size_t k, std::uint64_t offset) {
        segment& s = segments_[k];
        if (hard_state_at_.segment_number != 0 &&
            (hard_state_at_.segment_number > s.number ||
             (hard_state_at_.segment_number == s.number && hard_state_at_.offset >= offset))) {
            std::string detail;
            if (auto ec = checkpoint_hard_state(detail)) {
                return fail(classify(ec), std::move(detail));
            }
        }
        bool removed = false;
        while (segments_.size() > k + 1) {
            segment& later = segments_.back();
            pending_bytes_ -= later.pending.size();
            if (later.on_disk) {
                close_quietly(later.handle);
                if (auto ec = files_.remove(later.path)) {
                    std::string detail =
                        "remove segment " + file_name(later.path) + ": " + ec.message();
                    segments_.pop_back();
                    return fail(classify(ec), std::move(detail));
                }
                removed = true;
            }
            segments_.pop_back();
        }
        if (removed) {
            if (auto ec = files_.sync_directory(directory_)) {
                return fail(classify(ec), "fsync directory " + directory_ + ": " + ec.message());
            }
        }
        segment& cut = segments_[k];
        if (offset < cut.written) {
            pending_bytes_ -= cut.pending.size();
            cut.pending.clear();
            if (auto ec = files_.truncate(cut.handle, offset)) {
                return fail(classify(ec), "truncate segment " + file_name(cut.path) + " to " +
                                              std::to_string(offset) + ": " + ec.message());
            }
            if (auto ec = files_.sync(cut.handle)) {
                return fail(classify(ec),
                            "fdatasync segment " + file_name(cut.path) + ": " + ec.message());
            }
            cut.written = offset;
            cut.allocated = offset;
        } else {
            const std::size_t keep = static_cast<std::size_t>(offset - cut.written);
            pending_bytes_ -= cut.pending.size() - keep;
            cut.pending.resize(keep);
        }
        return {};
    }

    // --- reading -------------------------------------------------------------------------

    [[nodiscard]] const slot& slot_at(log_index i) const noexcept {
        return index_[index_head_ + (i - first_)];
    }

    /// The segment holding entry `i` (which the log holds).
    [[nodiscard]] std::size_t segment_of(log_index i) const noexcept {
        auto it = std::upper_bound(segments_.begin(), segments_.end(), i,
                                   [](log_index v, const segment& s) { return v < s.first; });
        SYNOD_ASSERT(it != segments_.begin(), "an entry with no segment");
        --it;
        SYNOD_ASSERT(it->first <= i && i <= it->last, "an entry outside its segment");
        return static_cast<std::size_t>(it - segments_.begin());
    }

    [[nodiscard]] segment* find_segment(std::uint64_t number) noexcept {
        for (segment& s : segments_) {
            if (s.number == number) {
                return &s;
            }
        }
        for (segment& s : retired_) {
            if (s.number == number) {
                return &s;
            }
        }
        return nullptr;
    }

    /// Reads entries [lo, hi) — durable, all of them — back from their segments, verifying
    /// every record as recovery does.
    std::error_code read_from_disk(log_index lo, log_index hi, std::vector<log_entry>& out) const {
        while (lo < hi) {
            const segment& s = segments_[segment_of(lo)];
            const log_index last = std::min(hi - 1, s.last);
            const std::uint64_t begin = slot_at(lo).offset;
            const std::uint64_t end =
                slot_at(last).offset + wal::record_size(slot_at(last).body_length);
            read_buffer_.resize(end - begin);
            std::size_t got = 0;
            if (auto ec = files_.read_at(s.handle, begin, read_buffer_, got)) {
                return report(classify(ec), "read segment " + file_name(s.path) + " offset " +
                                                std::to_string(begin) + ": " + ec.message());
            }
            if (got != read_buffer_.size()) {
                return report(errc::corrupt_storage, "segment " + file_name(s.path) + " offset " +
                                                         std::to_string(begin + got) +
                                                         ": file ends early");
            }
            for (log_index i = lo; i <= last; ++i) {
                // Located through the index: hard-state records may sit between entries.
                const byte_span bytes(read_buffer_);
                const std::uint64_t at = slot_at(i).offset;
                const std::uint64_t pos = at - begin;
                auto h = wal::parse_record_header(bytes.subspan(pos, wal::record_header_size));
                auto damaged = [&](std::string_view why) {
                    return report(errc::corrupt_storage, "segment " + file_name(s.path) +
                                                             " offset " + std::to_string(at) +
                                                             ": " + std::string(why));
                };
                if (!h || h->type != wal::record_type::entry ||
                    h->body_length != slot_at(i).body_length) {
                    return damaged("bad record header");
                }
                if (!wal::record_intact(*h, bytes.subspan(pos, h->size()))) {
                    return damaged("bad CRC");
                }
                auto e = wal::decode_entry_body(
                    bytes.subspan(pos + wal::record_header_size, h->body_length), h->mask);
                if (!e || e->index != i || e->term != slot_at(i).entry_term) {
                    return damaged("record does not hold the expected entry");
                }
                out.push_back(std::move(e).value());
            }
            lo = last + 1;
        }
        return {};
    }

    // --- recovery ------------------------------------------------------------------------

    struct found_segment {
        std::uint64_t number = 0;
        std::string path;
        file_handle handle;
        std::uint64_t size = 0;
        log_index first;
        bool header_ok = false;
    };

    std::error_code load() {
        if (auto ec = check_options()) {
            return ec;
        }
        if (options_.own_io_thread && !options_.io_executor) {
            worker_ = std::make_unique<io_worker>(options_.max_flushes_in_flight);
            options_.io_executor = worker_->executor();
        }
        if (auto ec = files_.create_directory(directory_)) {
            return report(classify(ec), "create directory " + directory_ + ": " + ec.message());
        }
        const std::string lock_path = path_of("LOCK");
        if (auto ec = files_.lock(lock_path, lock_)) {
            if (ec == std::errc::operation_would_block ||
                ec == std::errc::resource_unavailable_try_again) {
                return report(errc::log_locked, "lock " + lock_path + ": " + ec.message());
            }
            return report(classify(ec), "lock " + lock_path + ": " + ec.message());
        }
        std::vector<std::string> names;
        if (auto ec = files_.list(directory_, names)) {
            return report(classify(ec), "list " + directory_ + ": " + ec.message());
        }
        std::sort(names.begin(), names.end());
        bool removed = false;
        std::vector<found_segment> found;
        for (const std::string& name : names) {
            if (name.size() > 4 && name.ends_with(".tmp")) {
                // A replacement a crash interrupted before its rename: never in effect.
                if (auto ec = files_.remove(path_of(name))) {
                    return report(classify(ec), "remove " + name + ": " + ec.message());
                }
                removed = true;
            } else if (auto number = wal::parse_segment_file_name(name)) {
                found_segment f;
                f.number = *number;
                f.path = path_of(name);
                found.push_back(std::move(f));
                next_segment_number_ = std::max(next_segment_number_, *number + 1);
            }
        }
        if (auto ec = load_state_file()) {
            return ec;
        }
        if (auto ec = load_snapshot_file()) {
            return ec;
        }
        first_ = stored_state_.first_index;
        last_ = first_ - 1;
        prior_term_ = stored_state_.first_index_prior_term;
        hard_state_ = stored_state_.state;
        hard_state_sequence_ = stored_state_.sequence;
        if (first_ > log_index{1} && (!snapshot_ || snapshot_->meta.last_index + 1 < first_)) {
            return report(errc::corrupt_storage,
                          "hard_state offset 48: the log starts at " +
                              std::to_string(first_.value()) +
                              " but no snapshot covers the entries before it");
        }
        if (auto ec = load_segments(found, removed)) {
            return ec;
        }
        if (removed) {
            if (auto ec = files_.sync_directory(directory_)) {
                return report(classify(ec), "fsync directory " + directory_ + ": " + ec.message());
            }
        }
        durable_last_ = last_;
        cache_first_ = last_ + 1;
        return {};
    }

    std::error_code check_options() {
        if (directory_.empty()) {
            return report(errc::invalid_argument, "options.directory is empty");
        }
        if (options_.segment_bytes < wal::sector_size || options_.segment_bytes > UINT32_MAX) {
            return report(errc::invalid_argument,
                          "options.segment_bytes must be between 512 and 4294967295, is " +
                              std::to_string(options_.segment_bytes));
        }
        if (options_.max_flushes_in_flight == 0 || options_.max_flushes_in_flight > 64) {
            return report(errc::invalid_argument,
                          "options.max_flushes_in_flight must be between 1 and 64, is " +
                              std::to_string(options_.max_flushes_in_flight));
        }
        if ((options_.io_executor || options_.own_io_thread) && !options_.post) {
            return report(errc::invalid_argument,
                          "options.post is required when flush work runs off the node's thread");
        }
        return {};
    }

    /// Reads a whole file into `out`; a missing file leaves `exists` false.
    std::error_code read_whole(const std::string& name, byte_vector& out, bool& exists) {
        exists = false;
        file_handle h;
        if (auto ec = files_.open(path_of(name), open_mode::existing, h)) {
            if (ec == std::errc::no_such_file_or_directory) {
                return {};
            }
            return report(classify(ec), "open " + name + ": " + ec.message());
        }
        exists = true;
        std::uint64_t size = 0;
        std::error_code ec = files_.file_size(h, size);
        std::size_t got = 0;
        if (!ec) {
            out.resize(size);
            ec = files_.read_at(h, 0, out, got);
        }
        (void)files_.close(h);
        if (ec) {
            return report(classify(ec), "read " + name + ": " + ec.message());
        }
        out.resize(got);
        return {};
    }

    std::error_code load_state_file() {
        byte_vector bytes;
        bool exists = false;
        if (auto ec = read_whole("hard_state", bytes, exists)) {
            return ec;
        }
        if (!exists) {
            return {};
        }
        std::string why;
        if (auto ec = wal::decode_state_file(bytes, stored_state_, why)) {
            return report(ec, "hard_state " + why);
        }
        return {};
    }

    std::error_code load_snapshot_file() {
        byte_vector bytes;
        bool exists = false;
        if (auto ec = read_whole("snapshot", bytes, exists)) {
            return ec;
        }
        if (!exists) {
            return {};
        }
        snapshot s;
        std::string why;
        if (auto ec = wal::decode_snapshot_file(bytes, s, why)) {
            return report(ec, "snapshot " + why);
        }
        snapshot_ = std::move(s);
        return {};
    }

    /// Opens every segment, drops those compaction made obsolete, verifies the rest record
    /// by record and builds the index.
    std::error_code load_segments(std::vector<found_segment>& found, bool& removed) {
        // On failure the log stays unusable; close what was opened.
        struct closer {
            basic_file_log& log;
            std::vector<found_segment>& found;
            ~closer() {
                for (found_segment& f : found) {
                    log.close_quietly(f.handle);
                }
            }
        } closing{*this, found};
        for (found_segment& f : found) {
            if (auto ec = files_.open(f.path, open_mode::existing, f.handle)) {
                return report(classify(ec),
                              "open segment " + file_name(f.path) + ": " + ec.message());
            }
            if (auto ec = files_.file_size(f.handle, f.size)) {
                return report(classify(ec),
                              "size of segment " + file_name(f.path) + ": " + ec.message());
            }
            byte_vector header(wal::segment_header_size);
            std::size_t got = 0;
            if (auto ec = files_.read_at(f.handle, 0, header, got)) {
                return report(classify(ec),
                              "read segment " + file_name(f.path) + ": " + ec.message());
            }
            header.resize(got);
            if (got == wal::segment_header_size) {
                const auto status = wal::parse_segment_header(header, f.first);
                if (status == wal::header_status::unsupported_version) {
                    return report(errc::unknown_version,
                                  "segment " + file_name(f.path) +
                                      " offset 8: format version is not supported");
                }
                f.header_ok = status == wal::header_status::ok;
            }
        }
        // A last segment whose header never reached disk was being created by the flush the
        // crash interrupted: the segment before it was synced first, so nothing is lost.
        if (!found.empty() && !found.back().header_ok) {
            found_segment& f = found.back();
            byte_vector head(std::min<std::uint64_t>(f.size, wal::sector_size));
            std::size_t got = 0;
            if (auto ec = files_.read_at(f.handle, 0, head, got)) {
                return report(classify(ec),
                              "read segment " + file_name(f.path) + ": " + ec.message());
            }
            if (f.size < wal::segment_header_size || wal::format_detail::all_zero(head)) {
                close_quietly(f.handle);
                if (auto ec = files_.remove(f.path)) {
                    return report(classify(ec),
                                  "remove segment " + file_name(f.path) + ": " + ec.message());
                }
                removed = true;
                found.pop_back();
            }
        }
        for (const found_segment& f : found) {
            if (!f.header_ok) {
                return report(errc::corrupt_storage,
                              "segment " + file_name(f.path) + " offset 0: bad segment header");
            }
        }
        // Segments wholly below the start of the log are leftovers of a compaction whose
        // removals a crash interrupted.
        std::size_t keep_from = 0;
        while (keep_from + 1 < found.size() && found[keep_from + 1].first <= first_) {
            ++keep_from;
        }
        for (std::size_t k = 0; k < keep_from; ++k) {
            if (auto ec = retire_found(found[k], removed)) {
                return ec;
            }
        }
        if (keep_from < found.size() && found[keep_from].first > first_) {
            return report(errc::corrupt_storage,
                          "segment " + file_name(found[keep_from].path) + " offset 16: starts at " +
                              std::to_string(found[keep_from].first.value()) +
                              " but the log starts at " + std::to_string(first_.value()) +
                              ": entries are missing");
        }
        best_hard_state_ = {stored_state_.sequence, stored_state_.state};
        if (auto ec = scan_segments(found, keep_from)) {
            return ec;
        }
        hard_state_ = best_hard_state_.state;
        // Segments that began before the log's start and hold only compacted entries: the
        // log was compacted past its end and a crash interrupted their removal. (A segment
        // that begins at the start holds records written since, and stays.)
        auto compacted = [&](const segment& s) { return s.last < first_ && s.first < first_; };
        for (const segment& s : segments_) {
            if (!compacted(s)) {
                break;
            }
            if (s.number == hard_state_at_.segment_number) {
                // It holds the newest hard-state record, which this recovery answers with:
                // the `hard_state` file takes it, durably, before the record goes.
                std::string detail;
                if (auto ec = checkpoint_hard_state(detail)) {
                    return report(classify(ec), std::move(detail));
                }
            }
        }
        while (!segments_.empty() && compacted(segments_.front())) {
            segment& s = segments_.front();
            close_quietly(s.handle);
            if (auto ec = files_.remove(s.path)) {
                return report(classify(ec),
                              "remove segment " + file_name(s.path) + ": " + ec.message());
            }
            removed = true;
            segments_.erase(segments_.begin());
        }
        if (hard_state_at_.segment_number != 0 &&
            find_segment(hard_state_at_.segment_number) == nullptr) {
            hard_state_at_ = {}; // its segment is gone, so the hard_state file must hold it
        }
        return {};
    }

    std::error_code retire_found(found_segment& f, bool& removed) {
        close_quietly(f.handle);
        if (auto ec = files_.remove(f.path)) {
            return report(classify(ec),
                          "remove segment " + file_name(f.path) + ": " + ec.message());
        }
        removed = true;
        return {};
    }

    /// What verifying one segment found; taken into the log (`take_segment`) in segment
    /// order.
    struct segment_scan {
        /// Where its entries go: the log's index when the recovering thread verifies the
        /// segment in its turn, `entries` when the helper thread verifies it ahead.
        std::vector<slot>* index = nullptr;
        std::vector<slot> entries;
        /// The index the next entry must have: at the start, the segment's first index.
        log_index expected;
        /// Its newest hard-state record, if newer than the one recovery started from.
        wal::hard_state_record best_hard_state;
        hard_state_position hard_state_at;
        std::uint64_t hard_state_sequence = 0;
        std::uint64_t end = 0; ///< where its last intact record ends
        std::optional<std::uint64_t> torn_at;
        /// What stops the recovery, with its detail (`corrupt_storage`, a failed read).
        std::error_code error;
        std::string detail;
        /// An exception the helper thread caught (out of memory), for the recovering thread.
        std::exception_ptr thrown;
    };

    /// Verifies the segments from `found[keep_from]` on and takes them into the log in order.
    ///
    /// When they hold `options.parallel_recovery_bytes` or more, a helper thread verifies
    /// segments from the last one backwards while this thread works forwards from the first;
    /// they meet in the middle. A segment the helper verified is taken into the log only when
    /// this thread reaches it, after every segment before it, so recovery reports the same
    /// first error and repairs the same torn tail as when it verifies one after another; a
    /// segment is verified on its own either way (from the first index its header names).
    std::error_code scan_segments(std::vector<found_segment>& found, std::size_t keep_from) {
        const std::size_t count = found.size() - keep_from;
        std::vector<segment_scan> scans(count);
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < count; ++i) {
            total += found[keep_from + i].size;
            scans[i].expected = found[keep_from + i].first;
            scans[i].best_hard_state = best_hard_state_;
        }
        // Shared with the helper: which segments each thread has claimed, and which of the
        // helper's are done. \invariant front <= back; [0, front) is this thread's,
        // [back, count) the helper's. The helper starts with the last segment, so it always
        // has one to verify (however fast this thread is).
        struct shared_state {
            std::mutex mutex;
            std::condition_variable done_changed;
            std::size_t front = 1; // the first segment is always this thread's
            std::size_t back = 0;
            std::vector<char> done;
            std::atomic<bool> stop{false};
        } shared;
        shared.back = count;
        shared.done.assign(count, 0);
        // Joined on every way out; a helper still verifying stops at its next window.
        struct helper_thread {
            shared_state& shared;
            std::thread thread;
            ~helper_thread() {
                if (thread.joinable()) {
                    shared.stop = true;
                    thread.join();
                }
            }
        } helper{shared, {}};
        if (count >= 2 && total >= options_.parallel_recovery_bytes) {
            shared.back = count - 1; // the last segment is the helper's from the start
            auto run = [this, &shared, &scans, &found, keep_from, count] {
                byte_vector buffer;
                for (std::size_t k = count - 1;;) {
                    found_segment& f = found[keep_from + k];
                    segment_scan& scan = scans[k];
                    try {
                        scan.index = &scan.entries;
                        scan.entries.reserve(f.size / 128);
                        scan_segment(f, k + 1 == count, scan, buffer, &shared.stop);
                    } catch (...) {
                        scan.thrown = std::current_exception(); // rethrown in its turn
                    }
                    std::lock_guard lock(shared.mutex);
                    shared.done[k] = 1;
                    shared.done_changed.notify_one();
                    if (scan.thrown || shared.stop || shared.back <= shared.front) {
                        return;
                    }
                    k = --shared.back;
                }
            };
            try {
                helper.thread = std::thread(run);
            } catch (const std::system_error&) {
                shared.back = count; // no thread to be had: all on this one
            }
        }
        log_index expected = count > 0 ? found[keep_from].first : first_;
        for (std::size_t i = 0; i < count; ++i) {
            found_segment& f = found[keep_from + i];
            if (f.first != expected) {
                return report(errc::corrupt_storage,
                              "segment " + file_name(f.path) + " offset 16: starts at " +
                                  std::to_string(f.first.value()) + ", expected " +
                                  std::to_string(expected.value()) + ": a segment is missing");
            }
            segment_scan& scan = scans[i];
            bool mine = false;
            {
                std::lock_guard lock(shared.mutex);
                mine = i < shared.back;
                if (mine) {
                    shared.front = std::max(shared.front, i + 1);
                }
            }
            if (mine) {
                if (i == 0) {
                    index_.reserve(f.size / 128); // a first guess; refined below
                }
                scan.index = &index_;
                scan_segment(f, i + 1 == count, scan, scan_buffer_, nullptr);
            } else {
                std::unique_lock lock(shared.mutex);
                shared.done_changed.wait(lock, [&] { return shared.done[i] != 0; });
                lock.unlock();
                if (scan.thrown) {
                    std::rethrow_exception(scan.thrown);
                }
                if (!scan.error) {
                    index_.insert(index_.end(), scan.entries.begin(), scan.entries.end());
                }
            }
            if (auto ec = take_segment(f, scan)) {
                return ec;
            }
            expected = scan.expected;
            if (i == 0 && count > 1 && !index_.empty()) {
                // Size the index once, from the first segment's bytes per entry, rather than
                // copying it each time it doubles.
                std::uint64_t rest = 0;
                for (std::size_t j = 1; j < count; ++j) {
                    rest += found[keep_from + j].size;
                }
                const std::uint64_t per_entry = std::max<std::uint64_t>(
                    wal::record_size(wal::entry_body_prefix), f.size / index_.size());
                index_.reserve(index_.size() + rest / per_entry + rest / per_entry / 8 + 16);
            }
        }
        return {};
    }

    /// Verifies one segment's records and indexes its entries into `out`; reads the file
    /// through `buffer` and changes nothing else, so a helper thread can run it (`stop`, if
    /// given, abandons it). In the last segment, damage that looks like a torn write ends
    /// the log there (`out.torn_at`); anywhere else, and any damage that does not look torn,
    /// is `corrupt_storage`.
    void scan_segment(const found_segment& f, bool last, segment_scan& out, byte_vector& buffer,
                      const std::atomic<bool>* stop) {
        // The scan reads through a window of the file into a buffer it reuses, which stays in
        // the CPU's cache; copying a whole segment into fresh memory costs more than the
        // checksums.
        //
        // Each window is read from the page boundary at or before where it must start, into a
        // page-aligned buffer, so the kernel copies whole pages to whole pages: on some CPUs
        // (the AMD EPYC of docs/performance.md) its copy runs 5-10 times slower when the
        // destination sits a few bytes past the source's offset within a page.
        std::uint64_t size = f.size;
        std::uint64_t window_at = 0;
        std::size_t window_size = 0;
        std::error_code read_error;
        std::uint64_t read_error_at = 0;
        std::byte* window_data = nullptr;
        // Reads a window that starts at or before `at`, to make [at, at + n) readable; false if
        // the file ends first (then `size` is where it ends) or a read failed (`read_error`).
        auto fetch_at = [&](std::uint64_t at, std::uint64_t n) {
            const std::uint64_t start = at / page_size * page_size;
            const std::uint64_t need = at - start + n;
            const std::size_t want = static_cast<std::size_t>(
                std::min<std::uint64_t>(std::max<std::uint64_t>(scan_window, need), size - start));
            if (buffer.size() < want + page_size) {
                buffer.resize(want + page_size);
            }
            window_data =
                buffer.data() +
                (page_size - reinterpret_cast<std::uintptr_t>(buffer.data()) % page_size) %
                    page_size;
            std::size_t got = 0;
            read_error = files_.read_at(f.handle, start, std::span(window_data, want), got);
            read_error_at = start;
            window_at = start;
            window_size = read_error ? 0 : got;
            if (!read_error && got < need) {
                size = start + got; // the file is shorter than its size said a moment ago
            }
            return !read_error && got >= need;
        };
        // Makes [at, at + n) readable, reading only if the window does not hold it already.
        auto fetch = [&](std::uint64_t at, std::uint64_t n) {
            return (at >= window_at && at + n <= window_at + window_size) || fetch_at(at, n);
        };
        auto bytes = [&](std::uint64_t at, std::uint64_t n) {
            return byte_span(window_data + (at - window_at), static_cast<std::size_t>(n));
        };
        std::uint64_t pos = wal::segment_header_size;
        std::optional<std::uint64_t> torn_at;
        std::string why;
        // Checked once per window and once per record read on its own.
        auto abandoned = [&] {
            if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
                out.error = errc::storage_failure; // recovery failed before this segment
                return true;
            }
            return false;
        };
        while (pos < size) {
            if (abandoned()) {
                return;
            }
            // The common case: whole, well-formed records in the window, verified three at a
            // time (`wal::verify_records`). A record that fails, or does not fit in the
            // window, goes to the careful path below.
            std::error_code take_error;
            for (;;) {
                const std::uint64_t window_end =
                    std::min<std::uint64_t>(window_at + window_size, size);
                if (pos >= window_at && pos < window_end) {
                    const byte_span window = bytes(window_at, window_end - window_at);
                    const std::size_t stop = wal::verify_records(
                        window, static_cast<std::size_t>(pos - window_at),
                        [&](std::size_t at, const wal::record_header& h, byte_span body) {
                            if (index_entry(h, body, window_at + at, out)) {
                                return true;
                            }
                            take_error = index_record(f, h, body, window_at + at, out, why);
                            return !take_error;
                        });
                    const std::uint64_t stopped_at = window_at + stop;
                    if (take_error) {
                        out.error = take_error;
                        out.detail = "segment " + file_name(f.path) + " offset " +
                                     std::to_string(stopped_at) + ": " + why;
                        return;
                    }
                    const bool moved = stopped_at != pos;
                    pos = stopped_at;
                    if (!moved || window_end - pos >= scan_window / 2) {
                        break; // a record the careful path must judge, or one too large
                    }
                } else if (pos == window_at) {
                    break;
                }
                if (abandoned()) {
                    return;
                }
                // Near the end of the window (or before the first read): read on from here.
                // Less than half the window is read twice, however large the records.
                if (window_end >= size || !fetch_at(pos, wal::record_header_size)) {
                    break;
                }
            }
            if (read_error) {
                break;
            }
            if (pos >= size) {
                break;
            }
            std::optional<std::uint64_t> end;
            std::optional<wal::record_header> h;
            if (size - pos >= wal::record_header_size && fetch(pos, wal::record_header_size)) {
                h = wal::parse_record_header(bytes(pos, wal::record_header_size));
            }
            if (read_error) {
                break;
            }
            if (!h) {
                why = "bad record header";
            } else if (end = pos + h->size(); *end > size) {
                why = "record runs past the end of the file";
            } else if (!fetch(pos, h->size())) {
                if (read_error) {
                    break;
                }
                continue; // the file turned out shorter: judge the record again
            } else if (const byte_span record = bytes(pos, h->size());
                       !wal::record_intact(*h, record)) {
                why = "bad CRC";
            } else {
                const byte_span body = record.subspan(wal::record_header_size, h->body_length);
                if (auto ec = index_record(f, *h, body, pos, out, why)) {
                    out.error = ec;
                    out.detail = "segment " + file_name(f.path) + " offset " + std::to_string(pos) +
                                 ": " + why;
                    return;
                }
                pos = *end;
                continue;
            }
            if (last && !h) {
                // Where the records end in a segment extended with zeros (every recovery of
                // one): the rest of the sector reads as zeros. One set bit is a flip in space
                // that never held data — a header has more, whatever one flip did to it.
                const std::uint64_t sector_end =
                    std::min((pos / wal::sector_size + 1) * wal::sector_size, size);
                if (fetch(pos, sector_end - pos) &&
                    set_bits_at_most_one(bytes(pos, sector_end - pos))) {
                    torn_at = pos;
                    break;
                }
                if (read_error) {
                    break;
                }
            }
            if (last) {
                // Rare (after a crash): judge the damage with the whole file in view.
                byte_vector file(static_cast<std::size_t>(size));
                std::size_t got = 0;
                if ((read_error = files_.read_at(f.handle, 0, file, got))) {
                    read_error_at = 0;
                    break;
                }
                file.resize(got);
                if (pos < file.size() && wal::looks_torn(file, pos, end)) {
                    torn_at = pos;
                    break;
                }
            }
            out.error = errc::corrupt_storage;
            out.detail =
                "segment " + file_name(f.path) + " offset " + std::to_string(pos) + ": " + why;
            return;
        }
        if (read_error) {
            out.error = classify(read_error);
            out.detail = "read segment " + file_name(f.path) + " offset " +
                         std::to_string(read_error_at) + ": " + read_error.message();
            return;
        }
        out.end = pos;
        out.torn_at = torn_at;
    }

    /// Takes a verified segment into the log: reports what stopped its verification, or
    /// cuts off its torn tail, durably, and adds it to the segments.
    std::error_code take_segment(found_segment& f, segment_scan& scan) {
        if (scan.error) {
            return report(scan.error, std::move(scan.detail));
        }
        hard_state_sequence_ = std::max(hard_state_sequence_, scan.hard_state_sequence);
        if (scan.best_hard_state.sequence > best_hard_state_.sequence) {
            best_hard_state_ = scan.best_hard_state;
            hard_state_at_ = scan.hard_state_at;
        }
        if (scan.torn_at) {
            // Never flushed: cut it off, durably, before anything is appended after it.
            if (auto ec = files_.truncate(f.handle, *scan.torn_at)) {
                return report(classify(ec),
                              "truncate segment " + file_name(f.path) + ": " + ec.message());
            }
            if (auto ec = files_.sync(f.handle)) {
                return report(classify(ec),
                              "fdatasync segment " + file_name(f.path) + ": " + ec.message());
            }
        }
        segment s;
        s.number = f.number;
        s.path = f.path;
        s.first = f.first;
        s.last = scan.expected - 1;
        s.handle = f.handle;
        s.on_disk = true;
        s.written = scan.torn_at.value_or(scan.end);
        s.allocated = s.written;
        f.handle = {};
        segments_.push_back(std::move(s));
        last_ = std::max(last_, scan.expected - 1);
        return {};
    }

    /// The usual case of `index_record`, small enough to inline into the scan: a well-formed
    /// entry in its place. False leaves the record to `index_record`.
    bool index_entry(const wal::record_header& h, byte_span body, std::uint64_t pos,
                     segment_scan& out) const {
        using wal::format_detail::load_masked;
        if (h.type != wal::record_type::entry || body.size() < wal::entry_body_prefix) {
            return false;
        }
        const std::byte* b = body.data();
        const log_index index{load_masked<std::uint64_t>(b + 8, h.mask)};
        if (load_masked<std::uint32_t>(b + 17, h.mask) != body.size() - wal::entry_body_prefix ||
            (std::to_integer<std::uint8_t>(b[16]) ^ h.mask) > max_entry_kind ||
            index != out.expected || pos > UINT32_MAX) {
            return false;
        }
        if (index >= first_) {
            out.index->push_back({term{load_masked<std::uint64_t>(b, h.mask)},
                                  static_cast<std::uint32_t>(pos),
                                  static_cast<std::uint32_t>(body.size())});
        }
        out.expected = index + 1;
        return true;
    }

    /// Checks one intact record's contents and takes it into the index (an entry) or the
    /// hard-state candidates, or says what is wrong with it.
    std::error_code index_record(const found_segment& f, const wal::record_header& h,
                                 byte_span body, std::uint64_t pos, segment_scan& out,
                                 std::string& why) const {
        using wal::format_detail::load_masked;
        if (h.type == wal::record_type::entry && body.size() >= wal::entry_body_prefix) [[likely]] {
            const std::byte* b = body.data();
            const log_index index{load_masked<std::uint64_t>(b + 8, h.mask)};
            const auto payload = load_masked<std::uint32_t>(b + 17, h.mask);
            const auto kind = std::to_integer<std::uint8_t>(b[16]) ^ h.mask;
            if (payload == body.size() - wal::entry_body_prefix && kind <= max_entry_kind &&
                index == out.expected && pos <= UINT32_MAX) [[likely]] {
                if (index >= first_) {
                    out.index->push_back({term{load_masked<std::uint64_t>(b, h.mask)},
                                          static_cast<std::uint32_t>(pos),
                                          static_cast<std::uint32_t>(body.size())});
                }
                out.expected = index + 1;
                return {};
            }
            if (index != out.expected) {
                why = "entry " + std::to_string(index.value()) + " where " +
                      std::to_string(out.expected.value()) + " belongs";
            } else if (pos > UINT32_MAX) {
                why = "record beyond 4 GiB into its segment";
            } else {
                why = "malformed entry record";
            }
            return errc::corrupt_storage;
        }
        if (h.type == wal::record_type::entry) {
            why = "malformed entry record";
            return errc::corrupt_storage;
        }
        auto r = wal::decode_hard_state_body(body, h.mask);
        if (!r) {
            why = "malformed hard-state record";
            return errc::corrupt_storage;
        }
        out.hard_state_sequence = std::max(out.hard_state_sequence, r->sequence);
        if (r->sequence > out.best_hard_state.sequence) {
            out.best_hard_state = *r;
            out.hard_state_at = {f.number, pos};
        }
        return {};
    }

    // --- errors and small helpers --------------------------------------------------------

    static errc classify(std::error_code ec) noexcept {
        if (ec == std::errc::no_space_on_device ||
            (ec.category() == std::system_category() && ec.value() == EDQUOT)) {
            return errc::disk_full;
        }
        if (ec.category() == error_category()) {
            return static_cast<errc>(ec.value());
        }
        return errc::storage_failure;
    }

    /// Records an error's detail and tells the host; returns the error.
    std::error_code report(std::error_code ec, std::string detail) const {
        detail_ = std::move(detail);
        if (options_.on_error) {
            options_.on_error(ec, detail_);
        }
        return ec;
    }

    /// Fails the log for good (a write or fsync failed: the disk's state is unknown).
    std::error_code fail(std::error_code ec, std::string detail) {
        if (!failure_) {
            failure_ = ec;
        }
        return report(ec, std::move(detail));
    }

    void close_quietly(file_handle& h) {
        if (h.valid()) {
            (void)files_.close(h);
            h = {};
        }
    }

    byte_vector spare_buffer() {
        if (spare_buffers_.empty()) {
            return {};
        }
        byte_vector b = std::move(spare_buffers_.back());
        spare_buffers_.pop_back();
        return b;
    }
    void recycle(byte_vector b) {
        if (spare_buffers_.size() < 4) {
            b.clear();
            spare_buffers_.push_back(std::move(b));
        }
    }

    [[nodiscard]] std::string path_of(const std::string& name) const {
        return directory_ + "/" + name;
    }
    [[nodiscard]] static std::string file_name(const std::string& path) {
        const auto slash = path.find_last_of('/');
        return slash == std::string::npos ? path : path.substr(slash + 1);
    }
    [[nodiscard]] static std::string normalize(std::string dir) {
        while (dir.size() > 1 && dir.back() == '/') {
            dir.pop_back();
        }
        return dir;
    }

    file_log_options options_;
    /// `mutable`: reads back from disk happen in `entries() const`.
    mutable Files files_;
    const std::string directory_;
    std::shared_ptr<basic_file_log*> alive_;
    std::unique_ptr<io_worker> worker_;

    bool recovered_ = false;
    bool ready_ = false;
    /// Set once a write, fsync or recovery failed; the log then refuses writes.
    std::error_code failure_;
    mutable std::string detail_;
    file_handle lock_;

    // The log. \invariant index_[index_head_ + k] describes entry first_ + k, for every entry
    // first_ <= i <= last_.
    log_index first_{1};
    log_index last_{0};
    term prior_term_; ///< term of entry first_ - 1
    std::vector<slot> index_;
    std::size_t index_head_ = 0;
    /// Entries [cache_first_, last_] in memory. \invariant every entry after durable_last_
    /// is cached: an entry not yet durable exists nowhere else.
    entry_sequence cache_;
    log_index cache_first_{1};
    std::size_t cache_cost_ = 0;
    log_index durable_last_{0};

    /// Segments in order; the last takes appends. \invariant their entries are contiguous.
    std::vector<segment> segments_;
    /// Segments compaction emptied; the next flush removes their files.
    std::vector<segment> retired_;
    std::uint64_t next_segment_number_ = 1;
    std::size_t pending_bytes_ = 0;
    std::vector<byte_vector> spare_buffers_;

    hard_state hard_state_;
    std::uint64_t hard_state_sequence_ = 0;
    hard_state_position hard_state_at_;
    wal::hard_state_record best_hard_state_;
    /// What the `hard_state` file holds (or will, once the flush writing it completes).
    wal::state_file stored_state_;
    bool state_file_due_ = false;

    std::optional<snapshot> snapshot_;
    bool snapshot_due_ = false;

    std::vector<flush_callback> waiting_;
    std::deque<completed_flush> completed_;
    /// Oldest first. \invariant size() <= max_flushes_in_flight; all but the first only
    /// overwrite zeros ahead of the last segment's records.
    std::deque<std::shared_ptr<flight>> flights_;
    std::size_t flushes_completed_ = 0;
    std::size_t flushes_overlapped_ = 0;

    mutable byte_vector read_buffer_;
    /// Recovery's read window (see scan_segment), sized to stay in a core's L2 cache.
    byte_vector scan_buffer_;
    static constexpr std::size_t scan_window = std::size_t{256} << 10;
    /// Recovery reads from page boundaries into a page-aligned buffer (see scan_segment).
    static constexpr std::size_t page_size = 4096;
};

using file_log = basic_file_log<posix_files>;

static_assert(log_store<file_log>);

} // namespace synod::storage
