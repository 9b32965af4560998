#pragma once

/// \file
/// A simulated node's disk: the log a node runs on, and the storage faults the simulator
/// injects into it. `sim::cluster<Machine, Log>` holds one disk per node, chosen by the log
/// type through `disk_for<Log>`:
///
/// | log | disk | what a crash does |
/// |---|---|---|
/// | `storage::memory_log` (the default) | `memory_disk` | the log's journal of unflushed writes is dropped, or a prefix of it kept (`crash_torn`) |
/// | `storage::basic_file_log<storage::recording_files>` (`sim::file_log`) | `file_disk` | the log is destroyed and the disk replaced by `recording_files::crash_image`; the next start runs the file log's real recovery |
///
/// Every disk offers the same controls, so the sweep drives both alike:
///
/// | member | meaning |
/// |---|---|
/// | `open()` | the log for a (re)starting node; it lives until the next crash |
/// | `log()` | that log |
/// | `crash()` | power cut: whatever was not flushed is lost |
/// | `crash_torn(entropy)` | power cut during a write: part of the unflushed writes survives, chosen by `entropy` |
/// | `fail_flushes()` | from now until the next crash, flushes fail (a failed fsync) |
/// | `set_disk_full(bool)` | the disk fills up, or has room again |
/// | `failed()` | the log failed, or will at its next flush (the node then stops) |
/// | `has_unflushed()` | entries appended but not yet flushed |
/// | `corrupt(entropy)` | after a crash: damages one bit of data at rest; false if there is none |
/// | `disk_full_stops_node` | whether a full disk stops the node (the file log fails for good at a failed write) or only refuses appends |

#include <synod/core/assert.hpp>
#include <synod/core/unique_function.hpp>
#include <synod/sim/world.hpp>
#include <synod/storage/file_log.hpp>
#include <synod/storage/memory_log.hpp>
#include <synod/storage/recording_files.hpp>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace synod::sim {

/// The durable log on the simulator's in-memory, fault-injecting file system.
using file_log = storage::basic_file_log<storage::recording_files>;

/// `storage::memory_log`, whose crash model is built in.
class memory_disk {
public:
    using log_type = storage::memory_log;
    static constexpr bool disk_full_stops_node = false;

    /// Flushes take `flush_delay` of simulated time (zero: they complete inside `flush`).
    memory_disk(world& w, std::uint32_t owner, duration flush_delay, std::uint64_t /*seed*/) {
        if (flush_delay > duration::zero()) {
            log_.set_flush_mode(storage::flush_mode::executor);
            log_.set_flush_executor([&w, owner, flush_delay](unique_function<void()> done) {
                w.schedule(w.now() + flush_delay, owner, std::move(done));
            });
        }
    }

    log_type& open() { return log_; }
    [[nodiscard]] log_type& log() { return log_; }
    [[nodiscard]] const log_type& log() const { return log_; }

    void crash() { log_.crash(); }
    /// Keeps the first `kept_writes` unflushed writes and `kept_entries` entries of the next
    /// (see `memory_log::crash_torn`).
    void crash_torn(std::size_t kept_writes, std::size_t kept_entries) {
        log_.crash_torn(kept_writes, kept_entries);
    }
    void crash_torn(std::uint64_t entropy) { crash_torn(entropy % 3, entropy / 3 % 4); }
    void fail_flushes() { log_.fail_flushes(); }
    void set_disk_full(bool full) { log_.set_disk_full(full); }
    [[nodiscard]] bool failed() const { return log_.failed(); }
    [[nodiscard]] bool has_unflushed() const {
        return log_.last_index() > log_.durable_last_index();
    }
    /// Flips a bit of a durable entry: `memory_log` reports it at recovery.
    bool corrupt(std::uint64_t entropy) {
        const log_index last = log_.durable_last_index();
        return last > log_index{} &&
               log_.corrupt_durable_entry(log_index{1 + entropy % last.value()},
                                          (entropy >> 32) % 64);
    }

private:
    storage::memory_log log_;
};

/// `sim::file_log` on a `recording_files` disk. Its flush work is scheduled on the node's
/// process after the flush delay (the log's `io_executor`), and its completions come back as
/// events of that process (`post`), so a crash discards both. On a crash the disk becomes
/// `crash_image(plan)` and the log object is destroyed; the next `open` builds a new one,
/// whose `recover()` — called by the node's start — verifies every record of what survived.
///
/// The faults, in the file system's terms:
/// - `crash`: everything not synced is lost (`crash_plan{}`). A batch in flight never ran.
/// - `crash_torn`: the batch in flight (if any) runs with every fsync failing, so its writes
///   reach the page cache but nothing more becomes durable; then the power is cut with a plan
///   drawn from `entropy` that keeps each unsynced 512-byte sector, each file's new size and a
///   prefix of the namespace changes, or not. A torn tail for recovery to find and cut.
/// - `fail_flushes`: every `fdatasync` and directory `fsync` fails with EIO until the crash.
/// - `set_disk_full(true)`: the capacity becomes 0 bytes, so the next write that grows a file
///   fails with ENOSPC: the flush fails with `disk_full` and the log fails for good, so the
///   node stops (a file log refuses writes after a failed write; `memory_log` only refuses
///   appends). The sweep restarts it once there is room again.
/// - `corrupt`: one bit of the last segment, past its header — data that was synced, since a
///   crash just replaced the disk with what was durable — is flipped at rest; recovery must
///   refuse the log.
class file_disk {
public:
    using log_type = file_log;
    static constexpr bool disk_full_stops_node = true;

    /// Segment and cache sizes are drawn from `seed`, small enough that segments roll over,
    /// compaction removes whole segments and reads go to the disk.
    file_disk(world& w, std::uint32_t owner, duration flush_delay, std::uint64_t seed)
        : world_(&w)
        , owner_(owner)
        , flush_delay_(flush_delay) {
        const std::uint64_t segments[] = {1024, 4096, 65536};
        const std::size_t caches[] = {0, 2048, std::size_t{1} << 20};
        segment_bytes_ = segments[seed % 3];
        cache_bytes_ = caches[seed / 3 % 3];
        files_.set_tracing(false);
    }

    file_disk(const file_disk&) = delete;
    file_disk& operator=(const file_disk&) = delete;

    log_type& open() {
        log_.reset();
        storage::file_log_options o;
        o.directory = directory;
        o.segment_bytes = segment_bytes_;
        o.cache_bytes = cache_bytes_;
        // Two flushes may be in flight (not the default), so the sweep crashes nodes between
        // them; their jobs still run in order (the crash test's shuffled executor covers the
        // other orders).
        o.max_flushes_in_flight = 2;
        if (flush_delay_ > duration::zero()) {
            o.io_executor = [this](unique_function<void()> job) {
                world_->schedule(world_->now() + flush_delay_, owner_, std::move(job));
            };
            o.post = [this](unique_function<void()> done) {
                world_->schedule(world_->now(), owner_, std::move(done));
            };
        }
        log_.emplace(std::move(o), files_);
        return *log_;
    }
    [[nodiscard]] log_type& log() {
        SYNOD_ASSERT(log_.has_value(), "the node's log is open only between start and crash");
        return *log_;
    }
    [[nodiscard]] const log_type& log() const {
        SYNOD_ASSERT(log_.has_value(), "the node's log is open only between start and crash");
        return *log_;
    }

    void crash() { power_cut(files_.crash_image()); }

    void crash_torn(std::uint64_t entropy) {
        files_.set_fault([](const storage::file_event& e) -> std::error_code {
            if (e.op == storage::file_op::sync || e.op == storage::file_op::sync_directory) {
                return {EIO, std::system_category()};
            }
            return {};
        });
        log_.reset(); // runs the batch in flight, if any: its writes land, unsynced
        storage::crash_plan plan;
        plan.namespace_changes_kept = entropy % (files_.unsynced_namespace_changes() + 1);
        plan.keep_sector = [entropy](std::uint64_t inode, std::uint64_t sector) {
            return (mix(entropy ^ mix(inode * 0x9e3779b97f4a7c15ULL + sector)) & 1U) != 0;
        };
        plan.keep_size = [entropy](std::uint64_t inode) {
            return (mix(entropy + inode) & 2U) != 0;
        };
        power_cut(files_.crash_image(plan));
    }

    void fail_flushes() {
        failing_ = true;
        files_.set_fault([](const storage::file_event& e) -> std::error_code {
            if (e.op == storage::file_op::sync || e.op == storage::file_op::sync_directory) {
                return {EIO, std::system_category()};
            }
            return {};
        });
    }

    void set_disk_full(bool full) {
        full_ = full;
        files_.set_capacity(full ? std::optional<std::uint64_t>(0) : std::nullopt);
    }

    [[nodiscard]] bool failed() const {
        return failing_ || full_ || (log_ && static_cast<bool>(log_->failure()));
    }
    [[nodiscard]] bool has_unflushed() const {
        return log_ && log_->last_index() > log_->durable_last_index();
    }

    bool corrupt(std::uint64_t entropy) {
        std::optional<std::string> last;
        for (const std::string& path : files_.files()) {
            if (path.ends_with(".log")) {
                last = path; // names sort in segment order
            }
        }
        if (!last) {
            return false;
        }
        // Only the records: zeros past them (preallocate_bytes) never held data, and
        // recovery rightly ignores a flip there. The last non-zero byte is in the last record.
        const byte_vector bytes = *files_.contents(*last);
        std::uint64_t size = bytes.size();
        while (size > 0 && bytes[size - 1] == std::byte{0}) {
            --size;
        }
        if (size <= storage::wal::segment_header_size) {
            return false;
        }
        const std::uint64_t span = size - storage::wal::segment_header_size;
        files_.flip_bit(*last, storage::wal::segment_header_size + entropy % span,
                        static_cast<unsigned>(entropy >> 61));
        return true;
    }

    /// The disk itself (to inspect it, or to inject a fault of your own).
    [[nodiscard]] storage::recording_files& files() noexcept { return files_; }

    static constexpr const char* directory = "/node";

private:
    static std::uint64_t mix(std::uint64_t x) noexcept {
        x ^= x >> 31;
        x *= 0x7fb5d329728ea185ULL;
        x ^= x >> 27;
        x *= 0x81dadef4bc2dd44dULL;
        return x ^ (x >> 33);
    }

    /// The power goes: the log (and with it anything it held in memory) is gone, the disk is
    /// `image`. A batch still in flight runs on the old disk, which is dropped.
    void power_cut(storage::recording_files image) {
        log_.reset();
        files_ = std::move(image);
        files_.set_tracing(false);
        failing_ = false; // the fault hook stays with the old disk
        files_.set_capacity(full_ ? std::optional<std::uint64_t>(0) : std::nullopt);
    }

    world* world_;
    std::uint32_t owner_;
    duration flush_delay_;
    std::uint64_t segment_bytes_ = 0;
    std::size_t cache_bytes_ = 0;
    storage::recording_files files_;
    std::optional<log_type> log_;
    bool failing_ = false;
    bool full_ = false;
};

/// The disk that hosts a `Log` in the simulator.
template <class Log>
struct disk_for;
template <>
struct disk_for<storage::memory_log> {
    using type = memory_disk;
};
template <>
struct disk_for<file_log> {
    using type = file_disk;
};

} // namespace synod::sim
