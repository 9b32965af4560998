#include <doctest/doctest.h>

#include "storage/log_store_conformance.hpp"

#include <synod/storage/entry_sequence.hpp>
#include <synod/storage/memory_log.hpp>

namespace synod::test {

/// memory_log in the conformance suite: a reopen is `crash()`, which loses what was not
/// flushed.
struct memory_log_fixture {
    storage::memory_log current;

    memory_log_fixture() { REQUIRE_FALSE(current.recover()); }
    storage::memory_log& log() { return current; }
    void reopen() {
        current.crash();
        REQUIRE_FALSE(current.recover());
    }
    void settle() {}
};

} // namespace synod::test

TYPE_TO_STRING_AS("memory_log", synod::test::memory_log_fixture);
SYNOD_LOG_STORE_CONFORMANCE(synod::test::memory_log_fixture);

namespace {

using namespace synod;
using storage::flush_mode;
using storage::memory_log;

std::vector<log_entry> entries(std::uint64_t from, std::uint64_t to, std::uint64_t t,
                               std::size_t payload = 8) {
    std::vector<log_entry> out;
    for (std::uint64_t i = from; i <= to; ++i) {
        out.push_back(log_entry{term{t}, log_index{i}, entry_kind::normal,
                                shared_bytes(std::string(payload, 'x'))});
    }
    return out;
}

TEST_CASE("memory_log: a crash loses exactly what was written after the last completed flush") {
    memory_log log(flush_mode::held);
    REQUIRE_FALSE(log.append(entries(1, 3, 1)));
    REQUIRE_FALSE(log.save_hard_state({term{1}, node_id{2}, log_index{0}}));
    int completed = 0;
    log.flush([&](std::error_code ec) {
        CHECK_FALSE(ec);
        ++completed;
    });
    REQUIRE_FALSE(log.append(entries(4, 6, 1))); // after the flush was requested
    CHECK(completed == 0);
    CHECK(log.release_flushes() == 1);
    CHECK(completed == 1);
    REQUIRE_FALSE(log.truncate_suffix(log_index{2})); // not flushed
    REQUIRE_FALSE(log.save_hard_state({term{2}, no_node, log_index{0}}));
    log.crash();
    CHECK(log.last_index() == log_index{3});
    CHECK(log.saved_hard_state().current_term == term{1});
    CHECK(log.saved_hard_state().voted_for == node_id{2});
}

TEST_CASE("memory_log: flushes complete in order and each covers only earlier writes") {
    memory_log log(flush_mode::held);
    std::vector<int> order;
    REQUIRE_FALSE(log.append(entries(1, 1, 1)));
    log.flush([&](std::error_code) { order.push_back(1); });
    REQUIRE_FALSE(log.append(entries(2, 2, 1)));
    log.flush([&](std::error_code) { order.push_back(2); });
    log.release_flushes(1);
    CHECK(log.durable_last_index() == log_index{1});
    log.release_flushes(1);
    CHECK(log.durable_last_index() == log_index{2});
    CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("memory_log: a failed flush reports storage_failure and the log refuses writes") {
    memory_log log(flush_mode::held);
    REQUIRE_FALSE(log.append(entries(1, 1, 1)));
    std::error_code seen;
    log.flush([&](std::error_code ec) { seen = ec; });
    log.fail_flushes();
    CHECK(seen == errc::storage_failure);
    CHECK(log.append(entries(2, 2, 1)) == errc::storage_failure);
    CHECK(log.save_hard_state({}) == errc::storage_failure);
    CHECK(log.durable_last_index() == log_index{0}); // the failed flush made nothing durable
}

TEST_CASE("memory_log: the executor mode hands completion to the caller's scheduler") {
    memory_log log(flush_mode::executor);
    unique_function<void()> parked;
    log.set_flush_executor([&](unique_function<void()> done) { parked = std::move(done); });
    REQUIRE_FALSE(log.append(entries(1, 1, 1)));
    bool flushed = false;
    log.flush([&](std::error_code) { flushed = true; });
    CHECK_FALSE(flushed);
    parked();
    CHECK(flushed);
    CHECK(log.flushes_completed() == 1);
}

} // namespace

namespace {

TEST_CASE("entry_sequence: indexing, truncation and front release across chunk boundaries") {
    storage::entry_sequence seq;
    for (std::uint64_t i = 1; i <= 10'000; ++i) {
        seq.push_back(log_entry{term{1}, log_index{i}, entry_kind::normal, {}});
    }
    CHECK(seq.size() == 10'000);
    CHECK(seq[4095].index == log_index{4096});
    CHECK(seq[4096].index == log_index{4097});
    seq.truncate(4097);
    CHECK(seq.size() == 4097);
    CHECK(seq[4096].index == log_index{4097});
    seq.drop_front(4100 - 4); // leaves the last one
    CHECK(seq.size() == 1);
    CHECK(seq[0].index == log_index{4097});
    storage::entry_sequence copy = seq;
    seq.push_back(log_entry{term{2}, log_index{4098}, entry_kind::noop, {}});
    CHECK(copy.size() == 1);
    CHECK(seq.size() == 2);
    CHECK(seq[1].term == term{2});
    seq.truncate(0);
    CHECK(seq.empty());
    seq.push_back(log_entry{term{3}, log_index{1}, entry_kind::normal, {}});
    CHECK(seq[0].term == term{3});
}

} // namespace
