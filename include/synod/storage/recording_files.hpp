#pragma once

/// \file
/// `storage::recording_files`: an in-memory `file_layer` that models what a crash does to a
/// disk, records every call, and injects faults — the fault layer of synod's storage tests
/// and of the simulator's disks.
///
/// The model keeps two images of every file, as the kernel and the platter do:
/// - the *current* image (the page cache): every write, truncation and namespace change
///   (create, rename, remove) lands here at once, and reads see it;
/// - the *durable* image: a file's data and size become durable at `sync` (fdatasync), a
///   directory's namespace changes at `sync_directory`.
///
/// `crash_image(plan)` is the disk after a power cut: a new, independent `recording_files`
/// holding the durable image plus whatever of the unsynced state `plan` lets survive —
/// 512-byte sectors independently (a write torn at sector granularity; a sector is written
/// whole or not at all), each file's unsynced size change, and a prefix of the unsynced
/// namespace changes (journaling file systems commit metadata in order). Sectors of a file
/// that was extended but whose new sectors were lost read as zeros.
///
/// Faults: `set_fault` sees every call before it runs and may fail it (a failed fsync, EIO on
/// a read, ENOSPC); `fail_next` is the one-shot shorthand; `set_capacity` makes the disk fill
/// up (a write that does not fit writes what fits, then fails with ENOSPC, like `pwrite`);
/// `flip_bit` damages stored data at rest. `set_observer` runs after every call — a test can
/// take a crash image at every point of a workload from it.
///
/// Copies share one file system (a handle, like a path to a mounted disk), so a test keeps a
/// copy while the log uses another. Every call takes one (recursive) lock: the log's flush
/// thread and its reads may use the layer at once, and an observer may call back in.
///
/// Directories are always durable (they are created once, before any data); only the files
/// in them are modelled.

#include <synod/core/assert.hpp>
#include <synod/core/bytes.hpp>
#include <synod/storage/file_layer.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace synod::storage {

enum class file_op : std::uint8_t {
    open,
    close,
    read,
    write,
    size,
    truncate,
    sync,
    sync_directory,
    rename,
    remove,
    list,
    create_directory,
    lock,
    unlock,
};

[[nodiscard]] constexpr std::string_view to_string(file_op op) noexcept {
    constexpr std::string_view names[] = {"open",   "close",    "read", "write",
                                          "size",   "truncate", "sync", "sync_directory",
                                          "rename", "remove",   "list", "create_directory",
                                          "lock",   "unlock"};
    return names[static_cast<std::size_t>(op)];
}

/// One call on the file layer, as the trace, the fault hook and the observer see it.
struct file_event {
    file_op op{};
    /// The file or directory operated on; for calls on a handle, the path it was opened with.
    std::string path;
    /// `rename`: the new name.
    std::string target;
    /// `read`, `write`: position; `truncate`: the new size.
    std::uint64_t offset = 0;
    /// `read`, `write`: bytes asked for.
    std::uint64_t length = 0;
    /// Outcome (empty while the fault hook is deciding).
    std::error_code result;
};

/// A file whose current image differs from its durable one: what a crash may tear.
struct unsynced_file {
    std::uint64_t inode = 0;
    /// A current name of the file, or empty if it has none (removed but still open).
    std::string path;
    std::uint64_t durable_size = 0;
    std::uint64_t current_size = 0;
    /// Numbers of the 512-byte sectors whose durable and current contents differ.
    std::vector<std::uint64_t> sectors;
};

/// What of the unsynced state survives a crash. The default loses all of it.
struct crash_plan {
    /// How many unsynced namespace changes survive, oldest first.
    std::size_t namespace_changes_kept = 0;
    /// Whether a sector's unsynced content survives; empty: none does.
    std::function<bool(std::uint64_t inode, std::uint64_t sector)> keep_sector;
    /// Whether a file's unsynced size survives; empty: none does.
    std::function<bool(std::uint64_t inode)> keep_size;

    /// Everything written survives, as if the cache had been written back just in time.
    static crash_plan keep_everything() {
        return {SIZE_MAX, [](std::uint64_t, std::uint64_t) { return true; },
                [](std::uint64_t) { return true; }};
    }
};

class recording_files {
public:
    static constexpr std::uint64_t sector_size = 512;

    recording_files()
        : s_(std::make_shared<state>()) {}

    // --- file_layer ------------------------------------------------------------------------

    std::error_code open(const std::string& path, open_mode mode, file_handle& out) {
        return run(make_event(file_op::open, path), [&](state& s) -> std::error_code {
            if (!s.directories.contains(parent_directory(path))) {
                return std::make_error_code(std::errc::no_such_file_or_directory);
            }
            auto it = s.names.find(path);
            std::uint64_t ino;
            if (it == s.names.end()) {
                if (mode != open_mode::create) {
                    return std::make_error_code(std::errc::no_such_file_or_directory);
                }
                ino = s.new_inode();
                s.names[path] = ino;
                s.pending.push_back({change::create, path, {}, ino});
            } else {
                ino = it->second;
                if (mode == open_mode::create) {
                    s.inodes[ino].current.clear();
                }
            }
            out = s.new_handle(ino, path);
            return {};
        });
    }

    std::error_code close(file_handle h) {
        return run(make_event(file_op::close, path_of(h)), [&](state& s) -> std::error_code {
            if (s.handles.erase(h.id) == 0) {
                return std::make_error_code(std::errc::bad_file_descriptor);
            }
            return {};
        });
    }

    std::error_code read_at(file_handle h, std::uint64_t offset, std::span<std::byte> buf,
                            std::size_t& got) {
        got = 0;
        return run(make_event(file_op::read, path_of(h), {}, offset, buf.size()),
                   [&](state& s) -> std::error_code {
                       inode* f = s.file(h);
                       if (f == nullptr) {
                           return std::make_error_code(std::errc::bad_file_descriptor);
                       }
                       if (offset < f->current.size()) {
                           got = static_cast<std::size_t>(
                               std::min<std::uint64_t>(buf.size(), f->current.size() - offset));
                           std::memcpy(buf.data(), f->current.data() + offset, got);
                       }
                       return {};
                   });
    }

    std::error_code write_at(file_handle h, std::uint64_t offset, byte_span data) {
        return run(make_event(file_op::write, path_of(h), {}, offset, data.size()),
                   [&](state& s) -> std::error_code {
                       inode* f = s.file(h);
                       if (f == nullptr) {
                           return std::make_error_code(std::errc::bad_file_descriptor);
                       }
                       std::uint64_t end = offset + data.size();
                       std::error_code ec;
                       if (s.capacity && end > f->current.size()) {
                           const std::uint64_t used = s.bytes_used();
                           const std::uint64_t room = used < *s.capacity ? *s.capacity - used : 0;
                           const std::uint64_t limit = f->current.size() + room;
                           if (end > limit) {
                               // Like pwrite on a full disk: what fits is written, then ENOSPC.
                               end = std::max<std::uint64_t>(limit, offset);
                               ec = std::make_error_code(std::errc::no_space_on_device);
                           }
                       }
                       if (end > offset) {
                           if (end > f->current.size()) {
                               f->current.resize(end);
                           }
                           std::memcpy(f->current.data() + offset, data.data(), end - offset);
                       }
                       return ec;
                   });
    }

    std::error_code file_size(file_handle h, std::uint64_t& size) {
        return run(make_event(file_op::size, path_of(h)), [&](state& s) -> std::error_code {
            inode* f = s.file(h);
            if (f == nullptr) {
                return std::make_error_code(std::errc::bad_file_descriptor);
            }
            size = f->current.size();
            return {};
        });
    }

    std::error_code truncate(file_handle h, std::uint64_t size) {
        return run(make_event(file_op::truncate, path_of(h), {}, size),
                   [&](state& s) -> std::error_code {
                       inode* f = s.file(h);
                       if (f == nullptr) {
                           return std::make_error_code(std::errc::bad_file_descriptor);
                       }
                       f->current.resize(size);
                       return {};
                   });
    }

    std::error_code sync(file_handle h) {
        return run(make_event(file_op::sync, path_of(h)), [&](state& s) -> std::error_code {
            inode* f = s.file(h);
            if (f == nullptr) {
                return std::make_error_code(std::errc::bad_file_descriptor);
            }
            f->durable = f->current;
            return {};
        });
    }

    std::error_code sync_directory(const std::string& path) {
        return run(make_event(file_op::sync_directory, path), [&](state& s) -> std::error_code {
            if (!s.directories.contains(path)) {
                return std::make_error_code(std::errc::no_such_file_or_directory);
            }
            std::vector<change> rest;
            for (change& c : s.pending) {
                if (parent_directory(c.path) == path) {
                    c.apply(s.durable_names);
                } else {
                    rest.push_back(std::move(c));
                }
            }
            s.pending = std::move(rest);
            return {};
        });
    }

    std::error_code rename(const std::string& from, const std::string& to) {
        return run(make_event(file_op::rename, from, to), [&](state& s) -> std::error_code {
            auto it = s.names.find(from);
            if (it == s.names.end()) {
                return std::make_error_code(std::errc::no_such_file_or_directory);
            }
            const std::uint64_t ino = it->second;
            s.names.erase(it);
            s.names[to] = ino;
            s.pending.push_back({change::rename, from, to, ino});
            return {};
        });
    }

    std::error_code remove(const std::string& path) {
        return run(make_event(file_op::remove, path), [&](state& s) -> std::error_code {
            if (s.names.erase(path) == 0) {
                return std::make_error_code(std::errc::no_such_file_or_directory);
            }
            s.pending.push_back({change::remove, path, {}, 0});
            return {};
        });
    }

    std::error_code list(const std::string& directory, std::vector<std::string>& names) {
        names.clear();
        return run(make_event(file_op::list, directory), [&](state& s) -> std::error_code {
            if (!s.directories.contains(directory)) {
                return std::make_error_code(std::errc::no_such_file_or_directory);
            }
            for (const auto& [path, ino] : s.names) {
                if (parent_directory(path) == directory) {
                    names.push_back(path.substr(directory.empty() ? 0 : directory.size() + 1));
                }
            }
            return {};
        });
    }

    std::error_code create_directory(const std::string& path) {
        return run(make_event(file_op::create_directory, path), [&](state& s) -> std::error_code {
            for (std::string p = path; !p.empty() && p != "/"; p = parent_directory(p)) {
                if (s.names.contains(p)) {
                    return std::make_error_code(std::errc::not_a_directory);
                }
                s.directories.insert(p);
            }
            return {};
        });
    }

    std::error_code lock(const std::string& path, file_handle& out) {
        return run(make_event(file_op::lock, path), [&](state& s) -> std::error_code {
            if (!s.directories.contains(parent_directory(path))) {
                return std::make_error_code(std::errc::no_such_file_or_directory);
            }
            if (s.locked.contains(path)) {
                return std::make_error_code(std::errc::operation_would_block);
            }
            auto it = s.names.find(path);
            std::uint64_t ino;
            if (it == s.names.end()) {
                ino = s.new_inode();
                s.names[path] = ino;
                s.pending.push_back({change::create, path, {}, ino});
            } else {
                ino = it->second;
            }
            s.locked.insert(path);
            out = s.new_handle(ino, path);
            return {};
        });
    }

    std::error_code unlock(file_handle h) {
        return run(make_event(file_op::unlock, path_of(h)), [&](state& s) -> std::error_code {
            auto it = s.handles.find(h.id);
            if (it == s.handles.end()) {
                return std::make_error_code(std::errc::bad_file_descriptor);
            }
            s.locked.erase(it->second.path);
            s.handles.erase(it);
            return {};
        });
    }

    // --- faults ----------------------------------------------------------------------------

    /// `fault(event)` runs before every call; a non-empty result fails the call with that
    /// error, and the call changes nothing. Empty `fault` removes the hook.
    void set_fault(std::function<std::error_code(const file_event&)> fault) {
        std::lock_guard lock(s_->mutex);
        s_->fault = std::move(fault);
    }

    /// Fails the `skip + 1`-th upcoming call of kind `op` whose path contains `path_part` with
    /// `ec`, once.
    void fail_next(file_op op, std::error_code ec, std::string path_part = {},
                   std::size_t skip = 0) {
        std::lock_guard lock(s_->mutex);
        s_->one_shots.push_back({op, ec, std::move(path_part), skip});
    }

    /// Total bytes the files may hold; a write past it fails with ENOSPC. `nullopt`: no limit.
    void set_capacity(std::optional<std::uint64_t> bytes) {
        std::lock_guard lock(s_->mutex);
        s_->capacity = bytes;
    }

    /// Flips one bit of a stored file, in both images: damage at rest that a crash cannot undo.
    void flip_bit(const std::string& path, std::uint64_t offset, unsigned bit) {
        std::lock_guard lock(s_->mutex);
        auto it = s_->names.find(path);
        SYNOD_ASSERT(it != s_->names.end(), "flip_bit: no such file");
        inode& f = s_->inodes[it->second];
        const auto mask = static_cast<std::byte>(1U << (bit % 8));
        SYNOD_ASSERT(offset < f.current.size(), "flip_bit: offset beyond the end of the file");
        f.current[offset] ^= mask;
        if (offset < f.durable.size()) {
            f.durable[offset] ^= mask;
        }
    }

    /// Runs after every call with its outcome. Empty removes the observer.
    void set_observer(std::function<void(const file_event&)> observer) {
        std::lock_guard lock(s_->mutex);
        s_->observer = std::move(observer);
    }

    // --- inspection ------------------------------------------------------------------------

    /// Every call since the last `clear_trace`, oldest first.
    [[nodiscard]] std::vector<file_event> trace() const {
        std::lock_guard lock(s_->mutex);
        return s_->trace;
    }
    void clear_trace() {
        std::lock_guard lock(s_->mutex);
        s_->trace.clear();
    }
    /// Stops (or resumes) recording the trace, for long runs.
    void set_tracing(bool on) {
        std::lock_guard lock(s_->mutex);
        s_->tracing = on;
    }
    /// Calls of kind `op` in the trace.
    [[nodiscard]] std::size_t count(file_op op) const {
        std::lock_guard lock(s_->mutex);
        return static_cast<std::size_t>(std::count_if(
            s_->trace.begin(), s_->trace.end(), [op](const file_event& e) { return e.op == op; }));
    }

    /// Names of the files in the current image, sorted.
    [[nodiscard]] std::vector<std::string> files() const {
        std::lock_guard lock(s_->mutex);
        std::vector<std::string> out;
        for (const auto& [path, ino] : s_->names) {
            out.push_back(path);
        }
        return out;
    }

    [[nodiscard]] bool exists(const std::string& path) const {
        std::lock_guard lock(s_->mutex);
        return s_->names.contains(path);
    }

    /// The current content of `path`, or `nullopt` if there is no such file.
    [[nodiscard]] std::optional<byte_vector> contents(const std::string& path) const {
        std::lock_guard lock(s_->mutex);
        auto it = s_->names.find(path);
        if (it == s_->names.end()) {
            return std::nullopt;
        }
        return s_->inodes.at(it->second).current;
    }

    /// Creates or replaces `path` with `bytes`, durably (to set up a test's disk).
    void put_durable(const std::string& path, byte_span bytes) {
        std::lock_guard lock(s_->mutex);
        s_->directories.insert(parent_directory(path));
        auto it = s_->names.find(path);
        const std::uint64_t ino = it != s_->names.end() ? it->second : s_->new_inode();
        s_->names[path] = ino;
        s_->durable_names[path] = ino;
        inode& f = s_->inodes[ino];
        f.current.assign(bytes.begin(), bytes.end());
        f.durable = f.current;
    }

    /// Files whose data or size is not durable, by inode.
    [[nodiscard]] std::vector<unsynced_file> unsynced() const {
        std::lock_guard lock(s_->mutex);
        std::vector<unsynced_file> out;
        for (const auto& [ino, f] : s_->inodes) {
            if (f.current == f.durable) {
                continue;
            }
            unsynced_file u{ino, {}, f.durable.size(), f.current.size(), {}};
            for (const auto& [path, i] : s_->names) {
                if (i == ino) {
                    u.path = path;
                    break;
                }
            }
            const std::uint64_t end = std::max(f.current.size(), f.durable.size());
            for (std::uint64_t sector = 0; sector * sector_size < end; ++sector) {
                if (sector_differs(f, sector)) {
                    u.sectors.push_back(sector);
                }
            }
            out.push_back(std::move(u));
        }
        return out;
    }

    /// Namespace changes (create, rename, remove) not yet made durable by `sync_directory`.
    [[nodiscard]] std::size_t unsynced_namespace_changes() const {
        std::lock_guard lock(s_->mutex);
        return s_->pending.size();
    }

    /// The disk after a power cut now: a new, independent file system (see the file comment).
    /// Locks, open files, faults, observer and trace do not carry over; the capacity does.
    [[nodiscard]] recording_files crash_image(const crash_plan& plan = {}) const {
        std::lock_guard lock(s_->mutex);
        recording_files out;
        state& o = *out.s_;
        o.directories = s_->directories;
        o.capacity = s_->capacity;
        std::map<std::string, std::uint64_t> names = s_->durable_names;
        for (std::size_t k = 0; k < s_->pending.size() && k < plan.namespace_changes_kept; ++k) {
            s_->pending[k].apply(names);
        }
        std::map<std::uint64_t, std::uint64_t> renumbered;
        for (const auto& [path, ino] : names) {
            auto [it, fresh] = renumbered.try_emplace(ino, 0);
            if (fresh) {
                it->second = o.new_inode();
                inode& f = o.inodes[it->second];
                f.current = survivor(ino, plan);
                f.durable = f.current;
            }
            o.names[path] = it->second;
        }
        o.durable_names = o.names;
        return out;
    }

private:
    struct inode {
        byte_vector current;
        byte_vector durable;
    };

    struct change {
        enum kind_t : std::uint8_t { create, rename, remove } kind;
        std::string path;
        std::string target;
        std::uint64_t ino;

        void apply(std::map<std::string, std::uint64_t>& names) const {
            switch (kind) {
            case create:
                names[path] = ino;
                break;
            case rename:
                names.erase(path);
                names[target] = ino;
                break;
            case remove:
                names.erase(path);
                break;
            }
        }
    };

    struct one_shot {
        file_op op;
        std::error_code ec;
        std::string path_part;
        std::size_t skip;
    };

    struct open_file {
        std::uint64_t ino;
        std::string path;
    };

    struct state {
        std::recursive_mutex mutex;
        std::set<std::string> directories;
        std::map<std::uint64_t, inode> inodes;
        /// Current and durable namespaces: path -> inode.
        std::map<std::string, std::uint64_t> names;
        std::map<std::string, std::uint64_t> durable_names;
        /// Namespace changes not yet durable, oldest first.
        /// \invariant applying them all to durable_names in order yields names.
        std::vector<change> pending;
        std::map<int, open_file> handles;
        std::set<std::string> locked;
        std::optional<std::uint64_t> capacity;
        std::function<std::error_code(const file_event&)> fault;
        std::vector<one_shot> one_shots;
        std::function<void(const file_event&)> observer;
        std::vector<file_event> trace;
        bool tracing = true;
        std::uint64_t next_inode = 1;
        int next_handle = 3;

        std::uint64_t new_inode() {
            inodes[next_inode];
            return next_inode++;
        }
        file_handle new_handle(std::uint64_t ino, const std::string& path) {
            handles[next_handle] = {ino, path};
            return file_handle{next_handle++};
        }
        inode* file(file_handle h) {
            auto it = handles.find(h.id);
            return it == handles.end() ? nullptr : &inodes[it->second.ino];
        }
        /// Bytes held by files that still have a name or an open handle.
        [[nodiscard]] std::uint64_t bytes_used() const {
            std::set<std::uint64_t> live;
            for (const auto& [path, ino] : names) {
                live.insert(ino);
            }
            for (const auto& [id, of] : handles) {
                live.insert(of.ino);
            }
            std::uint64_t total = 0;
            for (std::uint64_t ino : live) {
                total += inodes.at(ino).current.size();
            }
            return total;
        }
    };

    static file_event make_event(file_op op, std::string path, std::string target = {},
                                 std::uint64_t offset = 0, std::uint64_t length = 0) {
        return file_event{op, std::move(path), std::move(target), offset, length, {}};
    }

    [[nodiscard]] std::string path_of(file_handle h) const {
        std::lock_guard lock(s_->mutex);
        auto it = s_->handles.find(h.id);
        return it == s_->handles.end() ? std::string() : it->second.path;
    }

    /// Runs one call: the fault hook first, then `body`, then the trace and the observer.
    template <class Body>
    std::error_code run(file_event event, Body&& body) {
        std::lock_guard lock(s_->mutex);
        state& s = *s_;
        std::error_code ec;
        for (auto it = s.one_shots.begin(); it != s.one_shots.end(); ++it) {
            if (it->op == event.op && event.path.find(it->path_part) != std::string::npos) {
                if (it->skip > 0) {
                    --it->skip;
                } else {
                    ec = it->ec;
                    s.one_shots.erase(it);
                }
                break;
            }
        }
        if (!ec && s.fault) {
            ec = s.fault(event);
        }
        if (!ec) {
            ec = body(s);
        }
        event.result = ec;
        if (s.tracing) {
            s.trace.push_back(event);
        }
        if (s.observer) {
            s.observer(event);
        }
        return ec;
    }

    static bool sector_differs(const inode& f, std::uint64_t sector) {
        const std::uint64_t lo = sector * sector_size;
        const std::uint64_t hi = lo + sector_size;
        for (std::uint64_t i = lo; i < hi; ++i) {
            const bool in_cur = i < f.current.size();
            const bool in_dur = i < f.durable.size();
            if (in_cur != in_dur || (in_cur && f.current[i] != f.durable[i])) {
                return true;
            }
        }
        return false;
    }

    /// The content of inode `ino` after a crash under `plan`.
    [[nodiscard]] byte_vector survivor(std::uint64_t ino, const crash_plan& plan) const {
        const inode& f = s_->inodes.at(ino);
        if (f.current == f.durable) {
            return f.durable;
        }
        const bool size_kept = plan.keep_size && plan.keep_size(ino);
        const std::uint64_t size = size_kept ? f.current.size() : f.durable.size();
        byte_vector out(size);
        for (std::uint64_t sector = 0; sector * sector_size < size; ++sector) {
            const bool take_current =
                sector_differs(f, sector) && plan.keep_sector && plan.keep_sector(ino, sector);
            const byte_vector& from = take_current ? f.current : f.durable;
            const std::uint64_t lo = sector * sector_size;
            const std::uint64_t hi = std::min(lo + sector_size, size);
            const std::uint64_t have = std::min<std::uint64_t>(hi, from.size());
            if (have > lo) {
                std::memcpy(out.data() + lo, from.data() + lo, have - lo);
            }
        }
        return out;
    }

    std::shared_ptr<state> s_;
};

static_assert(file_layer<recording_files>);

} // namespace synod::storage
