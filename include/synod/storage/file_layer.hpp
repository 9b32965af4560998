#pragma once

/// \file
/// The `file_layer` concept: the handful of file-system calls a durable log makes, behind one
/// interface, so that the same log runs on the real disk (`posix_files`) and on a recording,
/// fault-injecting model of one (`recording_files`) that tests and the simulator use to crash
/// the log at any point, tear its unsynced writes and flip bits in what it stored.
///
/// Requirements, for `f` an `F&`, `p`, `q` `const std::string&` paths, `h` a `file_handle`,
/// `off` a `std::uint64_t`, `data` a `byte_span`, `buf` a `std::span<std::byte>`, `got` a
/// `std::size_t&`, `size` a `std::uint64_t&`, `names` a `std::vector<std::string>&`, `out` a
/// `file_handle&`, `mode` an `open_mode`. Every call returns a `std::error_code`: empty on
/// success, otherwise an errno-style code (`std::errc::no_space_on_device` for a full disk,
/// `std::errc::operation_would_block` for a held lock, `std::errc::io_error`, ...). The log
/// maps them to `synod::errc` and keeps the message for its error detail.
///
/// | expression | effect |
/// |---|---|
/// | `f.open(p, mode, out)` | opens `p` for reading and writing (`create`: creates it or empties it) |
/// | `f.close(h)` | closes `h` |
/// | `f.read_at(h, off, buf, got)` | reads up to `buf.size()` bytes at `off`; `got < buf.size()` only at end of file |
/// | `f.write_at(h, off, data)` | writes all of `data` at `off` (not durable until `sync`) |
/// | `f.file_size(h, size)` | current size of the file |
/// | `f.truncate(h, off)` | sets the size to `off` (not durable until `sync`) |
/// | `f.sync(h)` | makes the file's data and size durable (`fdatasync`) |
/// | `f.sync_directory(p)` | makes creations, renames and removals in directory `p` durable |
/// | `f.rename(p, q)` | atomically replaces `q` with `p` (durable after `sync_directory`) |
/// | `f.remove(p)` | removes the name `p` (durable after `sync_directory`) |
/// | `f.list(p, names)` | the names of the files in directory `p`, without the directory |
/// | `f.create_directory(p)` | creates `p` and missing parents, durably; no error if it exists |
/// | `f.lock(p, out)` | creates `p` if needed and takes an exclusive lock on it, or fails with `operation_would_block` |
/// | `f.unlock(h)` | releases the lock and closes `h` |
///
/// Concurrency: a log may call `read_at` on its own thread while one other thread runs its
/// flush work through the same layer, and recovery may call `read_at` (on different files)
/// from its own thread and a helper thread at once; models must allow that (POSIX calls do;
/// the recording model takes a lock).

#include <synod/core/bytes.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace synod::storage {

/// An open file of a `file_layer`: a file descriptor for `posix_files`, a table slot for
/// `recording_files`. Default-constructed, it names no file.
struct file_handle {
    int id = -1;

    [[nodiscard]] bool valid() const noexcept { return id >= 0; }
    friend bool operator==(file_handle, file_handle) = default;
};

enum class open_mode : std::uint8_t {
    existing, ///< the file must exist; opened for reading and writing
    create,   ///< created if missing, emptied if present
};

template <class F>
concept file_layer = std::copy_constructible<F> &&
    requires(F& f, const std::string& p, file_handle h, std::uint64_t off, byte_span data,
             std::span<std::byte> buf, std::size_t& got, std::uint64_t& size,
             std::vector<std::string>& names, file_handle& out, open_mode mode) {
    { f.open(p, mode, out) } -> std::same_as<std::error_code>;
    { f.close(h) } -> std::same_as<std::error_code>;
    { f.read_at(h, off, buf, got) } -> std::same_as<std::error_code>;
    { f.write_at(h, off, data) } -> std::same_as<std::error_code>;
    { f.file_size(h, size) } -> std::same_as<std::error_code>;
    { f.truncate(h, off) } -> std::same_as<std::error_code>;
    { f.sync(h) } -> std::same_as<std::error_code>;
    { f.sync_directory(p) } -> std::same_as<std::error_code>;
    { f.rename(p, p) } -> std::same_as<std::error_code>;
    { f.remove(p) } -> std::same_as<std::error_code>;
    { f.list(p, names) } -> std::same_as<std::error_code>;
    { f.create_directory(p) } -> std::same_as<std::error_code>;
    { f.lock(p, out) } -> std::same_as<std::error_code>;
    { f.unlock(h) } -> std::same_as<std::error_code>;
};

/// The directory part of `path` ("" for a bare name).
[[nodiscard]] inline std::string parent_directory(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) {
        return {};
    }
    return slash == 0 ? std::string("/") : path.substr(0, slash);
}

} // namespace synod::storage
