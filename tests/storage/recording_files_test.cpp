#include <doctest/doctest.h>

#include <synod/storage/recording_files.hpp>

#include <string>

namespace {

using namespace synod;
using storage::crash_plan;
using storage::file_handle;
using storage::file_op;
using storage::open_mode;
using storage::recording_files;

std::string text(const std::optional<byte_vector>& b) {
    REQUIRE(b.has_value());
    return {reinterpret_cast<const char*>(b->data()), b->size()};
}

TEST_CASE("recording_files: a crash keeps what was synced and loses what was not") {
    recording_files fs;
    REQUIRE_FALSE(fs.create_directory("/d"));
    file_handle h;
    REQUIRE_FALSE(fs.open("/d/f", open_mode::create, h));
    REQUIRE_FALSE(fs.write_at(h, 0, as_bytes("synced")));
    REQUIRE_FALSE(fs.sync(h));
    REQUIRE_FALSE(fs.sync_directory("/d"));
    REQUIRE_FALSE(fs.write_at(h, 6, as_bytes("+lost")));
    CHECK(text(fs.contents("/d/f")) == "synced+lost"); // reads see the page cache

    CHECK(text(fs.crash_image().contents("/d/f")) == "synced");
    CHECK(text(fs.crash_image(crash_plan::keep_everything()).contents("/d/f")) == "synced+lost");
    // The size survived but the sector did not: the new bytes read as zeros.
    crash_plan size_only;
    size_only.keep_size = [](std::uint64_t) { return true; };
    CHECK(text(fs.crash_image(size_only).contents("/d/f")) ==
          std::string("synced") + std::string(5, '\0'));
}

TEST_CASE("recording_files: unsynced writes tear at 512-byte sectors, each sector whole or not "
          "at all") {
    recording_files fs;
    REQUIRE_FALSE(fs.create_directory("/d"));
    file_handle h;
    REQUIRE_FALSE(fs.open("/d/f", open_mode::create, h));
    REQUIRE_FALSE(fs.sync_directory("/d"));
    REQUIRE_FALSE(fs.write_at(h, 0, byte_vector(1536, std::byte{7})));
    auto dirty = fs.unsynced();
    REQUIRE(dirty.size() == 1);
    CHECK(dirty[0].path == "/d/f");
    CHECK(dirty[0].sectors == std::vector<std::uint64_t>{0, 1, 2});
    CHECK(dirty[0].durable_size == 0);
    CHECK(dirty[0].current_size == 1536);
    crash_plan middle_lost;
    middle_lost.keep_sector = [](std::uint64_t, std::uint64_t s) { return s != 1; };
    middle_lost.keep_size = [](std::uint64_t) { return true; };
    const byte_vector after = *fs.crash_image(middle_lost).contents("/d/f");
    REQUIRE(after.size() == 1536);
    CHECK(after[0] == std::byte{7});
    CHECK(after[511] == std::byte{7});
    CHECK(after[512] == std::byte{0});
    CHECK(after[1023] == std::byte{0});
    CHECK(after[1024] == std::byte{7});
}

TEST_CASE("recording_files: creations, renames and removals are durable only once their "
          "directory is synced, and survive in order") {
    recording_files fs;
    REQUIRE_FALSE(fs.create_directory("/d"));
    file_handle h;
    REQUIRE_FALSE(fs.open("/d/a.tmp", open_mode::create, h));
    REQUIRE_FALSE(fs.write_at(h, 0, as_bytes("new")));
    REQUIRE_FALSE(fs.sync(h));
    REQUIRE_FALSE(fs.rename("/d/a.tmp", "/d/a"));
    CHECK(fs.unsynced_namespace_changes() == 2);
    CHECK_FALSE(fs.crash_image().exists("/d/a"));
    crash_plan first_only;
    first_only.namespace_changes_kept = 1;
    auto one = fs.crash_image(first_only);
    CHECK(one.exists("/d/a.tmp"));
    CHECK_FALSE(one.exists("/d/a"));
    REQUIRE_FALSE(fs.sync_directory("/d"));
    CHECK(fs.unsynced_namespace_changes() == 0);
    auto after = fs.crash_image();
    CHECK(text(after.contents("/d/a")) == "new");
    CHECK_FALSE(after.exists("/d/a.tmp"));
    REQUIRE_FALSE(fs.remove("/d/a"));
    CHECK(fs.crash_image().exists("/d/a"));
    CHECK_FALSE(fs.crash_image(crash_plan::keep_everything()).exists("/d/a"));
}

TEST_CASE("recording_files: a full disk writes what fits, then fails with ENOSPC") {
    recording_files fs;
    REQUIRE_FALSE(fs.create_directory("/d"));
    file_handle h;
    REQUIRE_FALSE(fs.open("/d/f", open_mode::create, h));
    fs.set_capacity(10);
    CHECK(fs.write_at(h, 0, as_bytes("0123456789abc")) == std::errc::no_space_on_device);
    CHECK(text(fs.contents("/d/f")) == "0123456789");
    CHECK_FALSE(fs.write_at(h, 0, as_bytes("ABC"))); // overwriting needs no space
    fs.set_capacity(std::nullopt);
    CHECK_FALSE(fs.write_at(h, 10, as_bytes("abc")));
}

TEST_CASE("recording_files: faults fail the chosen call and change nothing; the observer and the "
          "trace see every call") {
    recording_files fs;
    REQUIRE_FALSE(fs.create_directory("/d"));
    file_handle h;
    REQUIRE_FALSE(fs.open("/d/f", open_mode::create, h));
    fs.fail_next(file_op::sync, std::make_error_code(std::errc::io_error), "/d/f", 1);
    CHECK_FALSE(fs.sync(h)); // skipped once
    CHECK(fs.sync(h) == std::errc::io_error);
    CHECK_FALSE(fs.sync(h)); // one shot
    fs.set_fault([](const storage::file_event& e) {
        return e.op == file_op::write ? std::make_error_code(std::errc::io_error)
                                      : std::error_code{};
    });
    CHECK(fs.write_at(h, 0, as_bytes("x")) == std::errc::io_error);
    CHECK(text(fs.contents("/d/f")).empty());
    fs.set_fault(nullptr);
    std::vector<file_op> seen;
    fs.set_observer([&](const storage::file_event& e) { seen.push_back(e.op); });
    REQUIRE_FALSE(fs.write_at(h, 0, as_bytes("x")));
    REQUIRE_FALSE(fs.close(h));
    CHECK(seen == std::vector<file_op>{file_op::write, file_op::close});
    CHECK(fs.count(file_op::sync) == 3);
    CHECK(fs.trace().back().op == file_op::close);
    CHECK(storage::to_string(file_op::sync_directory) == "sync_directory");
}

TEST_CASE("recording_files: a lock is exclusive until released, and a crash releases it") {
    recording_files fs;
    REQUIRE_FALSE(fs.create_directory("/d"));
    file_handle a;
    file_handle b;
    REQUIRE_FALSE(fs.lock("/d/LOCK", a));
    CHECK(fs.lock("/d/LOCK", b) == std::errc::operation_would_block);
    REQUIRE_FALSE(fs.sync_directory("/d"));
    file_handle c;
    CHECK_FALSE(fs.crash_image().lock("/d/LOCK", c));
    REQUIRE_FALSE(fs.unlock(a));
    CHECK_FALSE(fs.lock("/d/LOCK", b));
}

TEST_CASE("recording_files: a flipped bit is in both images, so a crash does not undo it") {
    recording_files fs;
    fs.put_durable("/d/f", as_bytes("A"));
    fs.flip_bit("/d/f", 0, 0);
    CHECK(text(fs.contents("/d/f")) == "@");
    CHECK(text(fs.crash_image().contents("/d/f")) == "@");
    file_handle h;
    CHECK(fs.open("/d/missing", open_mode::existing, h) == std::errc::no_such_file_or_directory);
    CHECK(fs.open("/nodir/f", open_mode::create, h) == std::errc::no_such_file_or_directory);
}

} // namespace
