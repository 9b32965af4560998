#pragma once

/// \file
/// `storage::posix_files`: the `file_layer` of a real Linux/POSIX disk — `open`, `pread`,
/// `pwrite`, `fdatasync`, `ftruncate`, `rename`, `unlink`, `fsync` of directories and `flock`.
/// Stateless: copies are interchangeable and every call is safe from any thread.
///
/// Errors are `std::system_category()` codes carrying the errno, so their messages name the
/// cause ("No space left on device", "Input/output error").

#include <synod/core/bytes.hpp>
#include <synod/storage/file_layer.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace synod::storage {

class posix_files {
public:
    std::error_code open(const std::string& path, open_mode mode, file_handle& out) const {
        const int flags = O_RDWR | O_CLOEXEC | (mode == open_mode::create ? O_CREAT | O_TRUNC : 0);
        const int fd = retry([&] { return ::open(path.c_str(), flags, 0644); });
        if (fd < 0) {
            return last_error();
        }
        out = file_handle{fd};
        return {};
    }

    std::error_code close(file_handle h) const {
        // Not retried on EINTR: on Linux the descriptor is released even then.
        if (::close(h.id) != 0 && errno != EINTR) {
            return last_error();
        }
        return {};
    }

    std::error_code read_at(file_handle h, std::uint64_t offset, std::span<std::byte> buf,
                            std::size_t& got) const {
        got = 0;
        while (got < buf.size()) {
            const ssize_t n =
                ::pread(h.id, buf.data() + got, buf.size() - got, static_cast<off_t>(offset + got));
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return last_error();
            }
            if (n == 0) {
                break; // end of file
            }
            got += static_cast<std::size_t>(n);
        }
        return {};
    }

    /// Writes everything: `pwrite` may write less than asked (a full disk writes what fits,
    /// then fails with ENOSPC on the next call).
    std::error_code write_at(file_handle h, std::uint64_t offset, byte_span data) const {
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::pwrite(h.id, data.data() + done, data.size() - done,
                                       static_cast<off_t>(offset + done));
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return last_error();
            }
            done += static_cast<std::size_t>(n);
        }
        return {};
    }

    std::error_code file_size(file_handle h, std::uint64_t& size) const {
        struct stat st {};
        if (::fstat(h.id, &st) != 0) {
            return last_error();
        }
        size = static_cast<std::uint64_t>(st.st_size);
        return {};
    }

    std::error_code truncate(file_handle h, std::uint64_t size) const {
        if (retry([&] { return ::ftruncate(h.id, static_cast<off_t>(size)); }) != 0) {
            return last_error();
        }
        return {};
    }

    /// `fdatasync`: data and the size (which reading the data needs), not the timestamps.
    std::error_code sync(file_handle h) const {
        if (retry([&] { return ::fdatasync(h.id); }) != 0) {
            return last_error();
        }
        return {};
    }

    std::error_code sync_directory(const std::string& path) const {
        const int fd = retry([&] {
            return ::open(path.empty() ? "." : path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        });
        if (fd < 0) {
            return last_error();
        }
        std::error_code ec;
        if (retry([&] { return ::fsync(fd); }) != 0) {
            ec = last_error();
        }
        ::close(fd);
        return ec;
    }

    std::error_code rename(const std::string& from, const std::string& to) const {
        if (::rename(from.c_str(), to.c_str()) != 0) {
            return last_error();
        }
        return {};
    }

    std::error_code remove(const std::string& path) const {
        if (::unlink(path.c_str()) != 0) {
            return last_error();
        }
        return {};
    }

    std::error_code list(const std::string& directory, std::vector<std::string>& names) const {
        names.clear();
        DIR* dir = ::opendir(directory.c_str());
        if (dir == nullptr) {
            return last_error();
        }
        errno = 0;
        while (const dirent* e = ::readdir(dir)) {
            const std::string name = e->d_name;
            if (name != "." && name != "..") {
                names.push_back(name);
            }
        }
        const std::error_code ec = errno != 0 ? last_error() : std::error_code{};
        ::closedir(dir);
        return ec;
    }

    /// `mkdir -p`, syncing the parent of every directory it creates so that the new entries
    /// survive a crash.
    std::error_code create_directory(const std::string& path) const {
        if (path.empty()) {
            return {};
        }
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            return S_ISDIR(st.st_mode) ? std::error_code{}
                                       : std::make_error_code(std::errc::not_a_directory);
        }
        const std::string parent = parent_directory(path);
        if (!parent.empty() && parent != path) {
            if (auto ec = create_directory(parent)) {
                return ec;
            }
        }
        if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
            return last_error();
        }
        return sync_directory(parent);
    }

    /// `flock(LOCK_EX | LOCK_NB)`: held by the open file description, so a second `lock` of the
    /// same file fails even from the same process, and the lock dies with the process.
    std::error_code lock(const std::string& path, file_handle& out) const {
        const int fd =
            retry([&] { return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644); });
        if (fd < 0) {
            return last_error();
        }
        if (retry([&] { return ::flock(fd, LOCK_EX | LOCK_NB); }) != 0) {
            const std::error_code ec = last_error();
            ::close(fd);
            return ec;
        }
        out = file_handle{fd};
        return {};
    }

    std::error_code unlock(file_handle h) const {
        ::flock(h.id, LOCK_UN);
        return close(h);
    }

private:
    static std::error_code last_error() noexcept { return {errno, std::system_category()}; }

    template <class Call>
    static int retry(Call&& call) {
        int r;
        do {
            r = call();
        } while (r < 0 && errno == EINTR);
        return r;
    }
};

static_assert(file_layer<posix_files>);

} // namespace synod::storage
