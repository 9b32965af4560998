#pragma once

// The storage conformance suite: the behaviour every `log_store` model must show, written once
// and run against each (memory_log, file_log on a real disk, file_log on the recording file
// layer, file_log with flush work off the node's thread).
//
// A test file instantiates it for its fixtures with SYNOD_LOG_STORE_CONFORMANCE(fixtures...)
// after naming them with TYPE_TO_STRING. A fixture provides:
//   F()           a log on empty storage, already recovered
//   f.log()       the log
//   f.reopen()    drops the log as a crash would (writes not flushed are lost) and opens a
//                 recovered one on the same storage
//   f.settle()    lets flush work and posted completions run (a no-op where flush completes
//                 inside `flush`)

#include <doctest/doctest.h>

#include <synod/core/concepts/log_store.hpp>
#include <synod/core/errc.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace synod::test::conformance {

/// Entries [from, to] of term `t`, each payload unique to its index and term and `payload`
/// bytes long (at least as long as its label).
inline std::vector<log_entry> make_entries(std::uint64_t from, std::uint64_t to, std::uint64_t t,
                                           std::size_t payload = 8) {
    std::vector<log_entry> out;
    for (std::uint64_t i = from; i <= to; ++i) {
        std::string text = "e" + std::to_string(i) + "t" + std::to_string(t) + ":";
        text.resize(std::max(payload, text.size()), static_cast<char>('a' + i % 26));
        out.push_back(log_entry{term{t}, log_index{i}, entry_kind::normal, shared_bytes(text)});
    }
    return out;
}

/// Flushes and waits for the callback; returns what it reported.
template <class F>
std::error_code flush_and_wait(F& f) {
    std::optional<std::error_code> result;
    f.log().flush([&](std::error_code ec) { result = ec; });
    while (!result) {
        f.settle();
    }
    return *result;
}

/// Reads [lo, hi) with no budget limit.
template <class Log>
std::vector<log_entry> read_all(const Log& log, log_index lo, log_index hi) {
    std::vector<log_entry> out;
    REQUIRE_FALSE(log.entries(lo, hi, SIZE_MAX, out));
    return out;
}

inline snapshot make_snapshot(std::uint64_t index, std::uint64_t t, std::string data = "state") {
    return snapshot{{log_index{index}, term{t}, membership({node_id{1}, node_id{2}, node_id{3}})},
                    shared_bytes(data)};
}

} // namespace synod::test::conformance

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: a fresh log is empty at index 1 with term 0 at "
                          "index 0",
                          F, synod_conformance_fresh) {
    using namespace synod;
    F f;
    static_assert(log_store<std::remove_reference_t<decltype(f.log())>>);
    auto& log = f.log();
    CHECK(log.first_index() == log_index{1});
    CHECK(log.last_index() == log_index{0});
    CHECK(log.term_at(log_index{0}) == term{0});
    CHECK_FALSE(log.term_at(log_index{1}).has_value());
    CHECK(log.saved_hard_state() == hard_state{});
    CHECK_FALSE(log.latest_snapshot().has_value());
    std::vector<log_entry> out;
    CHECK_FALSE(log.entries(log_index{1}, log_index{1}, 100, out));
    CHECK(out.empty());
    CHECK(log.entries(log_index{1}, log_index{2}, 100, out) == errc::index_out_of_range);
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: append and read with byte budgets; ranges "
                          "outside the log are index_out_of_range",
                          F, synod_conformance_append_read) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    auto& log = f.log();
    const auto written = make_entries(1, 10, 1);
    REQUIRE_FALSE(log.append(written));
    CHECK(log.last_index() == log_index{10});
    CHECK(log.term_at(log_index{10}) == term{1});
    CHECK(read_all(log, log_index{1}, log_index{11}) == written);

    std::vector<log_entry> out;
    const std::size_t cost = entry_cost(written[0]);
    REQUIRE_FALSE(log.entries(log_index{1}, log_index{11}, 3 * cost, out));
    CHECK(out.size() == 3); // stops once the budget is reached
    out.clear();
    REQUIRE_FALSE(log.entries(log_index{1}, log_index{11}, 3 * cost - 1, out));
    CHECK(out.size() == 2);
    out.clear();
    REQUIRE_FALSE(log.entries(log_index{4}, log_index{11}, 0, out));
    REQUIRE(out.size() == 1); // always at least one
    CHECK(out[0] == written[3]);
    out.clear();
    CHECK(log.entries(log_index{0}, log_index{2}, 100, out) == errc::index_out_of_range);
    CHECK(log.entries(log_index{5}, log_index{12}, 100, out) == errc::index_out_of_range);
    CHECK(log.entries(log_index{6}, log_index{5}, 100, out) == errc::index_out_of_range);
    CHECK(out.empty());

    // Appends after a flush continue the same log.
    REQUIRE_FALSE(flush_and_wait(f));
    REQUIRE_FALSE(log.append(make_entries(11, 12, 2)));
    CHECK(log.term_at(log_index{12}) == term{2});
    CHECK(read_all(log, log_index{9}, log_index{13}).size() == 4);
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: append must continue at last_index() + 1 "
                          "(invalid_argument)",
                          F, synod_conformance_append_contiguous) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    auto& log = f.log();
    CHECK(log.append(make_entries(2, 3, 1)) == errc::invalid_argument); // gap at 1
    REQUIRE_FALSE(log.append(make_entries(1, 3, 1)));
    CHECK(log.append(make_entries(3, 4, 1)) == errc::invalid_argument); // overlaps 3
    std::vector<log_entry> broken = make_entries(4, 6, 1);
    broken[2].index = log_index{7}; // not contiguous within the batch
    CHECK(log.append(broken) == errc::invalid_argument);
    CHECK(log.last_index() == log_index{3}); // a refused batch appends nothing
    REQUIRE_FALSE(log.append({}));           // nothing to append is fine
    CHECK(log.last_index() == log_index{3});
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: truncate_suffix removes the suffix, appends "
                          "continue after it, and an index below the log is index_out_of_range",
                          F, synod_conformance_truncate) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    auto& log = f.log();
    REQUIRE_FALSE(log.append(make_entries(1, 10, 1)));
    REQUIRE_FALSE(flush_and_wait(f)); // part of what is cut is durable, ...
    REQUIRE_FALSE(log.append(make_entries(11, 14, 1)));
    REQUIRE_FALSE(log.truncate_suffix(log_index{6})); // ... part is not
    CHECK(log.last_index() == log_index{5});
    CHECK_FALSE(log.term_at(log_index{6}).has_value());
    CHECK(log.append(make_entries(7, 7, 2)) == errc::invalid_argument);
    REQUIRE_FALSE(log.append(make_entries(6, 8, 2)));
    CHECK(log.term_at(log_index{8}) == term{2});
    CHECK(read_all(log, log_index{5}, log_index{9})[1] == make_entries(6, 6, 2)[0]);

    REQUIRE_FALSE(log.truncate_suffix(log_index{20})); // past the end: nothing to do
    CHECK(log.last_index() == log_index{8});
    REQUIRE_FALSE(log.truncate_suffix(log_index{9}));
    CHECK(log.last_index() == log_index{8});
    REQUIRE_FALSE(log.truncate_suffix(log_index{1})); // everything
    CHECK(log.last_index() == log_index{0});
    CHECK(log.term_at(log_index{0}) == term{0});
    REQUIRE_FALSE(log.append(make_entries(1, 2, 3)));

    REQUIRE_FALSE(log.save_snapshot(make_snapshot(1, 3)));
    REQUIRE_FALSE(log.compact_prefix(log_index{1}));
    CHECK(log.truncate_suffix(log_index{1}) == errc::index_out_of_range);
    CHECK(log.last_index() == log_index{2});
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: compact_prefix needs a covering snapshot "
                          "(invalid_argument) and keeps term_at at the boundary",
                          F, synod_conformance_compact) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    auto& log = f.log();
    REQUIRE_FALSE(log.append(make_entries(1, 10, 3)));
    CHECK(log.compact_prefix(log_index{5}) == errc::invalid_argument); // no snapshot yet
    REQUIRE_FALSE(log.save_snapshot(make_snapshot(4, 3)));
    CHECK(log.compact_prefix(log_index{5}) == errc::invalid_argument); // snapshot too old
    // A saved snapshot alone moves no boundary: index 0 still has term 0.
    CHECK(log.first_index() == log_index{1});
    CHECK(log.term_at(log_index{0}) == term{});
    const snapshot snap = make_snapshot(5, 3);
    REQUIRE_FALSE(log.save_snapshot(snap));
    REQUIRE_FALSE(log.compact_prefix(log_index{5}));
    CHECK(log.first_index() == log_index{6});
    CHECK(log.last_index() == log_index{10});
    CHECK(log.term_at(log_index{5}) == term{3});
    CHECK_FALSE(log.term_at(log_index{4}).has_value());
    CHECK(log.latest_snapshot() == snap);
    std::vector<log_entry> out;
    CHECK(log.entries(log_index{5}, log_index{7}, 100, out) == errc::index_out_of_range);
    CHECK(read_all(log, log_index{6}, log_index{11}) == make_entries(6, 10, 3));
    REQUIRE_FALSE(log.compact_prefix(log_index{3})); // already compacted: nothing to do
    CHECK(log.first_index() == log_index{6});
    // A snapshot older than the compacted prefix would leave entries no snapshot covers.
    CHECK(log.save_snapshot(make_snapshot(3, 3)) == errc::invalid_argument);
    CHECK(log.latest_snapshot() == snap);

    // Compacting past the end leaves an empty log after the snapshot.
    REQUIRE_FALSE(log.save_snapshot(make_snapshot(20, 4)));
    REQUIRE_FALSE(log.compact_prefix(log_index{20}));
    CHECK(log.first_index() == log_index{21});
    CHECK(log.last_index() == log_index{20});
    CHECK(log.term_at(log_index{20}) == term{4});
    REQUIRE_FALSE(log.append(make_entries(21, 22, 4)));
    CHECK(read_all(log, log_index{21}, log_index{23}) == make_entries(21, 22, 4));
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: the latest saved hard state and snapshot are "
                          "returned at once and survive a reopen once flushed",
                          F, synod_conformance_hard_state_snapshot) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    const hard_state first{term{2}, node_id{3}, log_index{0}};
    const hard_state second{term{3}, no_node, log_index{0}};
    REQUIRE_FALSE(f.log().save_hard_state(first));
    CHECK(f.log().saved_hard_state() == first);
    REQUIRE_FALSE(f.log().save_hard_state(second));
    CHECK(f.log().saved_hard_state() == second);
    const snapshot snap = make_snapshot(7, 2, std::string(3000, 's'));
    REQUIRE_FALSE(f.log().save_snapshot(snap));
    CHECK(f.log().latest_snapshot() == snap);
    REQUIRE_FALSE(flush_and_wait(f));
    f.reopen();
    CHECK(f.log().saved_hard_state() == second);
    CHECK(f.log().latest_snapshot() == snap);

    // An older hard state saved later replaces a newer one: the log keeps what it is given.
    REQUIRE_FALSE(f.log().save_hard_state(first));
    REQUIRE_FALSE(flush_and_wait(f));
    f.reopen();
    CHECK(f.log().saved_hard_state() == first);
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: a reopen keeps everything flushed — entries, "
                          "hard state, snapshot, truncation, compaction — and loses later writes",
                          F, synod_conformance_reopen) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    REQUIRE_FALSE(f.log().append(make_entries(1, 30, 1, 40)));
    REQUIRE_FALSE(f.log().save_hard_state({term{1}, node_id{1}, log_index{12}}));
    REQUIRE_FALSE(flush_and_wait(f));
    REQUIRE_FALSE(f.log().truncate_suffix(log_index{26}));
    REQUIRE_FALSE(f.log().append(make_entries(26, 28, 2, 40)));
    REQUIRE_FALSE(f.log().save_snapshot(make_snapshot(10, 1)));
    REQUIRE_FALSE(f.log().compact_prefix(log_index{10}));
    REQUIRE_FALSE(f.log().save_hard_state({term{2}, node_id{2}, log_index{20}}));
    REQUIRE_FALSE(flush_and_wait(f));
    // Not flushed: lost by the reopen.
    REQUIRE_FALSE(f.log().append(make_entries(29, 31, 2, 40)));
    REQUIRE_FALSE(f.log().save_hard_state({term{5}, node_id{5}, log_index{21}}));

    f.reopen();
    auto& log = f.log();
    CHECK(log.first_index() == log_index{11});
    CHECK(log.last_index() == log_index{28});
    CHECK(log.term_at(log_index{10}) == term{1});
    CHECK(log.term_at(log_index{25}) == term{1});
    CHECK(log.term_at(log_index{26}) == term{2});
    CHECK(log.saved_hard_state() == hard_state{term{2}, node_id{2}, log_index{20}});
    CHECK(log.latest_snapshot() == make_snapshot(10, 1));
    std::vector<log_entry> expected = make_entries(11, 25, 1, 40);
    for (const log_entry& e : make_entries(26, 28, 2, 40)) {
        expected.push_back(e);
    }
    CHECK(read_all(log, log_index{11}, log_index{29}) == expected);
    // The reopened log takes appends where the durable one ended.
    REQUIRE_FALSE(log.append(make_entries(29, 29, 3)));
    REQUIRE_FALSE(flush_and_wait(f));
    f.reopen();
    CHECK(f.log().last_index() == log_index{29});
    CHECK(f.log().term_at(log_index{29}) == term{3});
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: flush callbacks run exactly once, in order, "
                          "with no error",
                          F, synod_conformance_flush_order) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    std::vector<int> order;
    std::vector<std::error_code> results;
    REQUIRE_FALSE(f.log().append(make_entries(1, 1, 1)));
    f.log().flush([&](std::error_code ec) {
        order.push_back(1);
        results.push_back(ec);
    });
    REQUIRE_FALSE(f.log().append(make_entries(2, 2, 1)));
    f.log().flush([&](std::error_code ec) {
        order.push_back(2);
        results.push_back(ec);
    });
    f.log().flush([&](std::error_code ec) { // nothing new to flush
        order.push_back(3);
        results.push_back(ec);
    });
    while (order.size() < 3) {
        f.settle();
    }
    CHECK(order == std::vector<int>{1, 2, 3});
    for (const auto& ec : results) {
        CHECK_FALSE(ec);
    }
}

TEST_CASE_TEMPLATE_DEFINE("log_store conformance: a long log with large entries reads back "
                          "identically after a reopen, in budgeted batches",
                          F, synod_conformance_long_log) {
    using namespace synod;
    using namespace synod::test::conformance;
    F f;
    std::vector<log_entry> all;
    for (std::uint64_t from = 1; from <= 400; from += 40) {
        auto batch = make_entries(from, from + 39, 1 + from / 100, 1 + (from * 37) % 900);
        REQUIRE_FALSE(f.log().append(batch));
        all.insert(all.end(), batch.begin(), batch.end());
        REQUIRE_FALSE(flush_and_wait(f));
    }
    CHECK(read_all(f.log(), log_index{1}, log_index{401}) == all);
    f.reopen();
    std::vector<log_entry> back;
    for (log_index i{1}; i <= f.log().last_index(); i = i + (back.size() - (i.value() - 1))) {
        REQUIRE_FALSE(f.log().entries(i, log_index{401}, 5000, back));
    }
    CHECK(back == all);
    for (const log_entry& e : all) {
        CHECK(f.log().term_at(e.index) == e.term);
    }
}

#define SYNOD_LOG_STORE_CONFORMANCE(...)                                                           \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_fresh, __VA_ARGS__);                               \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_append_read, __VA_ARGS__);                         \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_append_contiguous, __VA_ARGS__);                   \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_truncate, __VA_ARGS__);                            \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_compact, __VA_ARGS__);                             \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_hard_state_snapshot, __VA_ARGS__);                 \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_reopen, __VA_ARGS__);                              \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_flush_order, __VA_ARGS__);                         \
    TEST_CASE_TEMPLATE_INVOKE(synod_conformance_long_log, __VA_ARGS__)
