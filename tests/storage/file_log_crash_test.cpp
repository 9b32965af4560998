// Crash consistency of file_log against the fault model of recording_files: a power cut at any
// point of a workload (after every file-system call), losing unsynced data, keeping it, or
// tearing it at 512-byte sectors, and single-bit flips in everything flushed.
//
// SYNOD_SEEDS=N runs N workloads (default 3); SYNOD_SEED=S runs only seed S.

#include <doctest/doctest.h>

#include "storage/log_store_conformance.hpp"

#include <synod/storage/file_log.hpp>
#include <synod/storage/recording_files.hpp>
#include <synod/storage/wal_format.hpp>

#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace synod;
using storage::crash_plan;
using storage::recording_files;
using recorded_log = storage::basic_file_log<recording_files>;

storage::file_log_options crash_options() {
    storage::file_log_options o;
    o.directory = "/log";
    o.segment_bytes = 1024;
    o.cache_bytes = 512;
    return o;
}

/// One state of the log as the workload sees it.
struct expected_log {
    log_index first{1};
    std::vector<log_entry> entries; ///< from `first`
    hard_state state;
    std::optional<snapshot> snap;

    [[nodiscard]] log_index last() const { return first + entries.size() - 1; }
};

/// What a crash may leave: every component must match one of the states written since the
/// call of the last completed flush, and every entry that flush covered must be there.
struct crash_model {
    expected_log live;
    /// States written since the oldest one still possible, `first_state` being the oldest's
    /// number. The three lists grow together: state k of each is state first_state + k.
    std::vector<std::pair<log_index, std::vector<log_entry>>> entry_states;
    std::vector<hard_state> hard_states;
    std::vector<std::optional<snapshot>> snapshots;
    std::uint64_t first_state = 0;
    log_index durable_last{0};
    /// Flushes called and not yet completed: the state they cover, and the last entry then
    /// (lowered by truncations since).
    std::vector<std::pair<std::uint64_t, log_index>> flushes;

    crash_model() { written(); }

    [[nodiscard]] std::uint64_t current_state() const {
        return first_state + entry_states.size() - 1;
    }
    /// After every write: the new state is possible from now on.
    void written() {
        entry_states.emplace_back(live.first, live.entries);
        hard_states.push_back(live.state);
        snapshots.push_back(live.snap);
    }
    /// `flush` was called; returns the ticket its completion passes to `flushed`.
    std::size_t flush_called() {
        flushes.emplace_back(current_state(), live.last());
        return flushes.size() - 1;
    }
    /// A flush completed: states before its call are no longer possible.
    void flushed(std::size_t ticket) {
        const auto [state, last] = flushes[ticket];
        if (state > first_state) {
            const auto drop = static_cast<std::ptrdiff_t>(state - first_state);
            entry_states.erase(entry_states.begin(), entry_states.begin() + drop);
            hard_states.erase(hard_states.begin(), hard_states.begin() + drop);
            snapshots.erase(snapshots.begin(), snapshots.begin() + drop);
            first_state = state;
        }
        durable_last = std::max(durable_last, last);
    }
    /// `truncate_suffix` is about to cut at `from`: flushed entries from there on may go.
    void truncating(log_index from) {
        durable_last = std::min(durable_last, from - 1);
        for (auto& f : flushes) {
            f.second = std::min(f.second, from - 1);
        }
    }
    /// `truncate_suffix` returned: the cut is durable.
    void truncated(log_index from) {
        // Every earlier state stays possible (a compaction, say, may not be durable yet), but
        // none of them still holds entries from `from` on.
        for (auto& [first, entries] : entry_states) {
            if (from < first) {
                entries.clear();
            } else if (from - first < entries.size()) {
                entries.resize(from - first);
            }
        }
    }

    /// Why the recovered log is not a state this workload could leave, or empty.
    [[nodiscard]] std::string judge(const recorded_log& log) const {
        std::vector<log_entry> got;
        if (auto ec = log.entries(log.first_index(), log.last_index() + 1, SIZE_MAX, got)) {
            return "reading the recovered log: " + log.last_error_detail();
        }
        bool prefix = false;
        for (const auto& [first, entries] : entry_states) {
            if (first == log.first_index() && got.size() <= entries.size() &&
                std::equal(got.begin(), got.end(), entries.begin())) {
                prefix = true;
                break;
            }
        }
        std::ostringstream why;
        if (!prefix) {
            why << "entries [" << log.first_index() << ", " << log.last_index()
                << "] are not a prefix of any state since the last flush (";
            for (const auto& [first, entries] : entry_states) {
                why << " [" << first << ", " << first + entries.size() - 1 << "]";
            }
            why << " ); ";
        }
        if (log.last_index() < durable_last) {
            why << "last index " << log.last_index() << " lost flushed entries up to "
                << durable_last << "; ";
        }
        if (std::find(hard_states.begin(), hard_states.end(), log.saved_hard_state()) ==
            hard_states.end()) {
            why << "hard state term " << log.saved_hard_state().current_term
                << " was never saved since the last flush; ";
        }
        if (std::find(snapshots.begin(), snapshots.end(), log.latest_snapshot()) ==
            snapshots.end()) {
            why << "snapshot is not one saved since the last flush; ";
        }
        for (log_index i = log.first_index(); i <= log.last_index(); ++i) {
            if (log.term_at(i) != got[i - log.first_index()].term) {
                why << "term_at(" << i << ") disagrees with the entry; ";
                break;
            }
        }
        return why.str();
    }
};

/// The crash plans tried at one point: lose or keep everything unsynced, keep the sizes but
/// no data, every prefix of the namespace changes, each torn sector alone lost or alone kept,
/// and a few random tears.
std::vector<std::pair<std::string, crash_plan>> plans_at(const recording_files& disk,
                                                         std::mt19937_64& rng) {
    std::vector<std::pair<std::string, crash_plan>> plans;
    plans.emplace_back("lose everything unsynced", crash_plan{});
    plans.emplace_back("keep everything", crash_plan::keep_everything());
    crash_plan sizes_only;
    sizes_only.namespace_changes_kept = SIZE_MAX;
    sizes_only.keep_size = [](std::uint64_t) { return true; };
    plans.emplace_back("keep sizes and names, lose the data", sizes_only);
    const std::size_t changes = disk.unsynced_namespace_changes();
    for (std::size_t k = 1; k < changes; ++k) {
        crash_plan p = crash_plan::keep_everything();
        p.namespace_changes_kept = k;
        plans.emplace_back("keep the first " + std::to_string(k) + " namespace changes", p);
    }
    for (const auto& file : disk.unsynced()) {
        for (std::uint64_t sector : file.sectors) {
            const std::uint64_t ino = file.inode;
            crash_plan lost = crash_plan::keep_everything();
            lost.keep_sector = [=](std::uint64_t i, std::uint64_t s) {
                return !(i == ino && s == sector);
            };
            plans.emplace_back(file.path + " sector " + std::to_string(sector) + " lost", lost);
            crash_plan kept = crash_plan::keep_everything();
            kept.keep_sector = [=](std::uint64_t i, std::uint64_t s) {
                return i == ino && s == sector;
            };
            plans.emplace_back(file.path + " sector " + std::to_string(sector) + " alone kept",
                               kept);
        }
    }
    for (int k = 0; k < 2; ++k) {
        const std::uint64_t salt = rng();
        crash_plan random;
        random.namespace_changes_kept = changes == 0 ? 0 : rng() % (changes + 1);
        random.keep_sector = [salt](std::uint64_t i, std::uint64_t s) {
            return std::hash<std::uint64_t>{}(salt ^ (i * 0x9e3779b97f4a7c15ULL) ^ (s << 20)) % 2 ==
                   0;
        };
        random.keep_size = [salt](std::uint64_t i) { return (salt >> (i % 60)) % 2 == 0; };
        plans.emplace_back("random tear " + std::to_string(salt), random);
    }
    return plans;
}

/// How often recovery had to repair what a crash left, across a sweep: proof that the sweep
/// reaches the torn-write paths.
struct repair_counts {
    std::size_t torn_tails_cut = 0;
    std::size_t files_removed = 0;
    std::size_t flushes_overlapped = 0;
};

storage::file_log_options two_thread_options() {
    storage::file_log_options o = crash_options();
    o.parallel_recovery_bytes = 0; // the segments verified on two threads
    return o;
}

/// Recovers the log from `image` and judges it; also checks that a second recovery (after the
/// first one's repairs) sees the same log, and that a recovery that verifies the segments on
/// two threads (of a copy of the image) sees it too.
std::string check_image(recording_files image, const crash_model& model,
                        repair_counts* repairs = nullptr) {
    std::string two_thread_view;
    {
        recording_files twin = image.crash_image();
        recorded_log log(two_thread_options(), twin);
        if (auto ec = log.recover()) {
            return "recovery on two threads failed: " + ec.message() + ": " +
                   log.last_error_detail();
        }
        if (auto why = model.judge(log); !why.empty()) {
            return "on two threads: " + why;
        }
        std::ostringstream view;
        view << log.first_index() << ".." << log.last_index() << " term "
             << log.saved_hard_state().current_term;
        two_thread_view = view.str();
    }
    std::string first_view;
    for (int round = 0; round < 2; ++round) {
        recorded_log log(crash_options(), image);
        image.clear_trace();
        if (auto ec = log.recover()) {
            return "recovery failed: " + ec.message() + ": " + log.last_error_detail();
        }
        if (round == 0 && repairs != nullptr) {
            repairs->torn_tails_cut += image.count(storage::file_op::truncate);
            repairs->files_removed += image.count(storage::file_op::remove);
        }
        if (auto why = model.judge(log); !why.empty()) {
            return why;
        }
        std::ostringstream view;
        view << log.first_index() << ".." << log.last_index() << " term "
             << log.saved_hard_state().current_term;
        if (round == 0) {
            first_view = view.str();
            if (first_view != two_thread_view) {
                return "a recovery on two threads saw " + two_thread_view + ", on one " +
                       first_view;
            }
        } else if (view.str() != first_view) {
            return "a second recovery saw " + view.str() + ", the first " + first_view;
        }
    }
    return {};
}

std::string seg_of(std::uint64_t number) {
    return "/log/" + storage::wal::segment_file_name(number);
}

std::vector<std::uint64_t> seeds() {
    if (const char* one = std::getenv("SYNOD_SEED")) {
        return {std::strtoull(one, nullptr, 10)};
    }
    std::uint64_t count = 3;
    if (const char* n = std::getenv("SYNOD_SEEDS")) {
        count = std::strtoull(n, nullptr, 10);
    }
    std::vector<std::uint64_t> out;
    for (std::uint64_t s = 1; s <= count; ++s) {
        out.push_back(s);
    }
    return out;
}

/// Where the workload's flush work runs.
enum class flush_work {
    inline_call, ///< inside `flush`
    /// Flush work and completions wait in one queue, run in order at random later points —
    /// the shape of a simulator that models disk latency.
    queued,
    /// The same queue, run in random order, with up to three flushes in flight: a later flush
    /// may be picked before an earlier one (which it then runs first itself), completions
    /// arrive out of order.
    shuffled,
};

const char* to_string(flush_work w) {
    switch (w) {
    case flush_work::inline_call:
        return "flush inside flush()";
    case flush_work::queued:
        return "flush work queued for an executor";
    case flush_work::shuffled:
        return "flush work run in random order, three flushes in flight";
    }
    return "?";
}

/// A random workload of appends (some zero-filled, some spanning sectors), hard states,
/// flushes, truncations, snapshots and compactions, crashed after every file-system call.
void run_workload(std::uint64_t seed, flush_work work, std::uint64_t preallocate,
                  repair_counts& repairs) {
    std::mt19937_64 rng(seed);
    recording_files disk;
    crash_model model;
    const bool deferred = work != flush_work::inline_call;
    std::deque<unique_function<void()>> queue;
    auto run_queue = [&](std::size_t at_most) {
        for (std::size_t k = 0; k < at_most && !queue.empty(); ++k) {
            const std::size_t pick = work == flush_work::shuffled ? rng() % queue.size() : 0;
            auto job = std::move(queue[pick]);
            queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(pick));
            job();
        }
    };
    std::string failure;
    std::size_t points = 0;
    std::string step = "start";
    disk.set_observer([&](const storage::file_event& event) {
        if (!failure.empty()) {
            return;
        }
        ++points;
        for (auto& [name, plan] : plans_at(disk, rng)) {
            if (auto why = check_image(disk.crash_image(plan), model, &repairs); !why.empty()) {
                failure = "seed " + std::to_string(seed) + ", during " + step + ", after " +
                          std::string(storage::to_string(event.op)) + " " + event.path +
                          ", crash plan '" + name + "': " + why;
                return;
            }
        }
    });
    storage::file_log_options options = crash_options();
    options.preallocate_bytes = preallocate;
    if (work == flush_work::shuffled) {
        // Room for several flushes' records in one segment's zeros, so flushes overlap.
        options.segment_bytes = 16384;
        options.max_flushes_in_flight = 3;
    }
    if (deferred) {
        options.io_executor = [&](unique_function<void()> job) { queue.push_back(std::move(job)); };
        options.post = [&](unique_function<void()> fn) { queue.push_back(std::move(fn)); };
    }
    recorded_log log(std::move(options), disk);
    REQUIRE_FALSE(log.recover());
    std::uint64_t t = 1;
    std::size_t flushes_done = 0;
    const int ops = work == flush_work::shuffled ? 80 : 36;
    for (int op = 0; op < ops && failure.empty(); ++op) {
        // Shuffled: mostly appends and flushes, which are what may overlap.
        const auto dice = work == flush_work::shuffled ? rng() % 90 : rng() % 100;
        expected_log& live = model.live;
        if (dice < 40) {
            const std::uint64_t n = 1 + rng() % 4;
            const std::uint64_t from = live.last().value() + 1;
            std::vector<log_entry> es;
            for (std::uint64_t i = from; i < from + n; ++i) {
                const std::size_t size = rng() % 5 == 0 ? 600 : rng() % 200;
                std::string payload(size, rng() % 3 == 0 ? '\0' : static_cast<char>('a' + i % 26));
                es.push_back({term{t}, log_index{i}, entry_kind::normal, shared_bytes(payload)});
            }
            step = "append " + std::to_string(from);
            REQUIRE_FALSE(log.append(es));
            live.entries.insert(live.entries.end(), es.begin(), es.end());
            model.written();
        } else if (dice < 55) {
            t += rng() % 2;
            live.state = {term{t}, node_id{1 + rng() % 3}, log_index{rng() % 20}};
            step = "save_hard_state";
            REQUIRE_FALSE(log.save_hard_state(live.state));
            model.written();
        } else if (dice < 75) {
            step = "flush";
            const std::size_t ticket = model.flush_called();
            const std::size_t before = flushes_done;
            log.flush([&model, &flushes_done, ticket](std::error_code ec) {
                REQUIRE_FALSE(ec);
                model.flushed(ticket);
                ++flushes_done;
            });
            CHECK((deferred || flushes_done == before + 1)); // inline: completes inside flush
            if (deferred) {
                step = "flush work";
                // Shuffled: fewer jobs run per flush, so more flushes find others in flight.
                run_queue(rng() % (work == flush_work::shuffled ? 2 : 3));
            }
        } else if (dice < (work == flush_work::shuffled ? 80 : 85)) {
            if (live.entries.empty()) {
                continue;
            }
            const log_index from = live.first + rng() % live.entries.size();
            step = "truncate_suffix " + std::to_string(from.value());
            model.truncating(from);
            REQUIRE_FALSE(log.truncate_suffix(from));
            live.entries.resize(from - live.first);
            ++t; // a new leader's entries follow a truncation
            model.written();
            model.truncated(from);
        } else {
            // A snapshot at or past the end of the log, then (mostly) compaction to it.
            const std::uint64_t ahead = rng() % 4 == 0 ? 3 : 0;
            const std::uint64_t span = live.entries.size() + 1;
            const log_index at = live.first - 1 + (ahead != 0 ? span - 1 + ahead : rng() % span);
            const term at_term = at <= live.last() && at >= live.first
                                     ? live.entries[at - live.first].term
                                     : term{t};
            snapshot s{{at, at_term, membership({node_id{1}})},
                       shared_bytes("snapshot at " + std::to_string(at.value()))};
            step = "save_snapshot " + std::to_string(at.value());
            REQUIRE_FALSE(log.save_snapshot(s));
            live.snap = s;
            model.written();
            if (rng() % 4 != 0 && at >= live.first) {
                step = "compact_prefix " + std::to_string(at.value());
                REQUIRE_FALSE(log.compact_prefix(at));
                if (at >= live.last()) {
                    live.entries.clear();
                } else {
                    live.entries.erase(live.entries.begin(),
                                       live.entries.begin() +
                                           static_cast<std::ptrdiff_t>(at - live.first + 1));
                }
                live.first = at + 1;
                model.written();
            }
        }
    }
    step = "final flush";
    const std::size_t ticket = model.flush_called();
    log.flush([&model, ticket](std::error_code ec) {
        REQUIRE_FALSE(ec);
        model.flushed(ticket);
    });
    run_queue(SIZE_MAX);
    repairs.flushes_overlapped += log.flushes_overlapped();
    disk.set_observer(nullptr);
    CHECK_MESSAGE(failure.empty(), failure);
    CHECK(points > 20);
    CHECK(check_image(disk.crash_image(), model).empty());
}

TEST_CASE("file_log crash consistency: at every crash point of a workload, with unsynced data "
          "lost, kept or torn at 512-byte sectors, recovery yields a prefix of what was appended "
          "that holds everything flushed") {
    repair_counts repairs;
    for (std::uint64_t seed : seeds()) {
        INFO("seed " << seed << "; replay: SYNOD_SEED=" << seed
                     << " synod_tests -tc='file_log crash consistency: at every*'");
        for (flush_work work :
             {flush_work::inline_call, flush_work::queued, flush_work::shuffled}) {
            INFO(to_string(work));
            // Files that grow with each flush; extended with zeros a little at a time; and
            // extended at once to the segment size (the default preallocation is larger).
            for (std::uint64_t preallocate :
                 {std::uint64_t{0}, std::uint64_t{200}, crash_options().preallocate_bytes}) {
                if (work == flush_work::shuffled &&
                    preallocate != crash_options().preallocate_bytes) {
                    continue; // flushes overlap only inside zeros already there
                }
                INFO("preallocate_bytes " << preallocate);
                run_workload(seed, work, preallocate, repairs);
            }
        }
    }
    CHECK(repairs.torn_tails_cut > 0);
    CHECK(repairs.files_removed > 0);
    CHECK(repairs.flushes_overlapped > 0);
    MESSAGE("recoveries cut " << repairs.torn_tails_cut << " torn tails and removed "
                              << repairs.files_removed << " files; " << repairs.flushes_overlapped
                              << " flushes started beside another");
}

TEST_CASE("file_log crash consistency: every single-bit flip in flushed data — records, segment "
          "headers, the hard_state and snapshot files — is detected at open, with the same "
          "detail when the segments are verified on two threads") {
    recording_files disk;
    {
        recorded_log log(crash_options(), disk);
        REQUIRE_FALSE(log.recover());
        REQUIRE_FALSE(log.append(test::conformance::make_entries(1, 3, 1, 90)));
        REQUIRE_FALSE(log.save_hard_state({term{1}, node_id{2}, log_index{0}}));
        // A zero-filled payload long enough to cover whole sectors (the masked case).
        REQUIRE_FALSE(log.append(std::vector<log_entry>{
            {term{1}, log_index{4}, entry_kind::normal, shared_bytes(std::string(700, '\0'))}}));
        REQUIRE_FALSE(log.append(test::conformance::make_entries(5, 7, 2, 40)));
        REQUIRE_FALSE(log.save_snapshot(test::conformance::make_snapshot(2, 1)));
        REQUIRE_FALSE(log.compact_prefix(log_index{2}));
        REQUIRE_FALSE(log.save_hard_state({term{2}, node_id{1}, log_index{6}}));
        log.flush([](std::error_code ec) { REQUIRE_FALSE(ec); });
    }
    const recording_files pristine = disk.crash_image();
    // Recovery cuts the last segment's zeros off (preallocate_bytes): what is left is data.
    recording_files trimmed = pristine.crash_image();
    {
        recorded_log log(crash_options(), trimmed);
        REQUIRE_FALSE(log.recover());
        REQUIRE(log.first_index() == log_index{3});
        REQUIRE(log.last_index() == log_index{7});
    }
    std::size_t flips = 0;
    // One image, each bit flipped and flipped back: a refused recovery changes no file.
    recording_files image = pristine.crash_image();
    image.set_tracing(false);
    for (const std::string& path : pristine.files()) {
        if (path == "/log/LOCK") {
            continue;
        }
        const std::uint64_t data_bytes = trimmed.contents(path)->size();
        const std::string name = path.substr(5);
        for (std::uint64_t offset = 0; offset < data_bytes; ++offset) {
            for (unsigned bit = 0; bit < 8; ++bit) {
                image.flip_bit(path, offset, bit);
                std::error_code ec;
                std::string detail;
                {
                    recorded_log log(crash_options(), image);
                    ec = log.recover();
                    detail = log.last_error_detail();
                }
                std::error_code ec2;
                std::string detail2;
                {
                    recorded_log log(two_thread_options(), image);
                    ec2 = log.recover();
                    detail2 = log.last_error_detail();
                }
                image.flip_bit(path, offset, bit);
                ++flips;
                if (ec != errc::corrupt_storage ||
                    detail.find(name + " offset ") == std::string::npos || ec2 != ec ||
                    detail2 != detail) {
                    FAIL("flip of bit " << bit << " at " << path << " offset " << offset
                                        << " gave '" << ec.message() << "', detail '" << detail
                                        << "'; on two threads '" << ec2.message() << "', '"
                                        << detail2 << "'");
                }
            }
        }
    }
    CHECK(flips > 8 * 1500);
    CHECK(image.contents(seg_of(1)) == pristine.contents(seg_of(1))); // nothing was repaired
}

} // namespace
