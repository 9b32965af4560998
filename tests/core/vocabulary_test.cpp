#include <doctest/doctest.h>

#include <synod/core/bytes.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/membership.hpp>
#include <synod/core/result.hpp>

#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using namespace synod;

// Strong types: a term is not an index, and neither is a bare integer.
static_assert(!std::is_convertible_v<term, log_index>);
static_assert(!std::is_convertible_v<log_index, term>);
static_assert(!std::is_convertible_v<std::uint64_t, term>);
static_assert(!std::is_convertible_v<node_id, std::uint64_t>);
static_assert(std::is_trivially_copyable_v<log_index>);

TEST_CASE("ids: arithmetic and ordering stay within one type") {
    log_index i{5};
    CHECK(i + 1 == log_index{6});
    CHECK(i - 1 == log_index{4});
    CHECK(log_index{9} - i == 4U);
    CHECK(++i == log_index{6});
    CHECK(term{2} > term{1});
    CHECK(no_node == node_id{0});
    std::ostringstream os;
    os << node_id{3} << ' ' << term{4} << ' ' << log_index{7};
    CHECK(os.str() == "n3 t4 i7");
}

TEST_CASE("shared_bytes: copies share one buffer, compare by content") {
    shared_bytes a("hello");
    shared_bytes b = a;
    CHECK(a.data() == b.data());
    CHECK(b.str() == "hello");
    shared_bytes c("hello");
    CHECK(a == c);
    CHECK_FALSE(a == shared_bytes("hellO"));
    shared_bytes moved = std::move(b);
    CHECK(moved.str() == "hello");
    CHECK(b.empty()); // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    CHECK(shared_bytes().size() == 0);
    CHECK(shared_bytes(std::string_view{}) == shared_bytes());
    auto built = shared_bytes::build(3, [](std::span<std::byte> out) {
        for (auto& x : out) {
            x = std::byte{'z'};
        }
    });
    CHECK(built.str() == "zzz");
}

TEST_CASE("errc: messages tell the user what to do") {
    std::error_code ec = errc::not_leader;
    CHECK(ec.category().name() == std::string("synod"));
    CHECK(ec.message().find("retry at the leader") != std::string::npos);
    CHECK(make_error_code(errc::frame_too_large).message().find("max_frame_size") !=
          std::string::npos);
    CHECK(make_error_code(errc::disk_full).message().find("nothing was written") !=
          std::string::npos);
    CHECK(std::error_code(static_cast<int>(999), error_category()).message() ==
          "unknown synod error 999");
}

TEST_CASE("errc: every value has its own message, and the machine errcs say what to do") {
    const std::vector<errc> all{
        errc::not_leader,
        errc::leader_unknown,
        errc::outcome_unknown,
        errc::proposal_too_large,
        errc::uncommitted_limit,
        errc::transfer_in_progress,
        errc::change_in_progress,
        errc::shutting_down,
        errc::timeout,
        errc::stale_read,
        errc::proposal_dropped,
        errc::learner_behind,
        errc::truncated_input,
        errc::bad_crc,
        errc::unknown_version,
        errc::unknown_message_type,
        errc::length_mismatch,
        errc::value_out_of_range,
        errc::frame_too_large,
        errc::storage_failure,
        errc::corrupt_storage,
        errc::disk_full,
        errc::index_out_of_range,
        errc::log_locked,
        errc::invalid_argument,
        errc::unknown_node,
        errc::queue_full,
        errc::user_limit,
        errc::not_found,
        errc::already_exists,
        errc::corrupt_snapshot,
        errc::conflicting_service,
        errc::unknown_service,
        errc::duplicate_service,
        errc::invalid_capability,
        errc::missing_field,
        errc::field_too_large,
        errc::revision_compacted,
        errc::revision_not_reached,
        errc::stale_epoch,
        errc::unknown_command_tag,
        errc::unknown_session,
        errc::session_expired,
        errc::stale_sequence,
        errc::too_many_sessions,
        errc::too_many_outstanding,
        errc::unknown_execution,
        errc::execution_finished,
        errc::not_running,
        errc::already_dispatched,
        errc::not_ready,
        errc::invalid_priority,
        errc::invalid_admission_config,
    };
    std::set<std::string> messages;
    for (errc e : all) {
        const std::string message = make_error_code(e).message();
        INFO(static_cast<int>(e) << ": " << message);
        CHECK(message.find("unknown synod error") == std::string::npos);
        CHECK(messages.insert(message).second);
    }
    // Values are stable: they appear in logs and results.
    CHECK(static_cast<int>(errc::corrupt_snapshot) == 66);
    CHECK(static_cast<int>(errc::conflicting_service) == 80);
    CHECK(static_cast<int>(errc::unknown_command_tag) == 89);
    CHECK(static_cast<int>(errc::unknown_session) == 90);
    CHECK(static_cast<int>(errc::too_many_outstanding) == 94);
    CHECK(static_cast<int>(errc::unknown_execution) == 100);
    CHECK(static_cast<int>(errc::invalid_admission_config) == 106);
    CHECK(make_error_code(errc::session_expired).message().find("register a new session") !=
          std::string::npos);
    CHECK(make_error_code(errc::revision_compacted).message().find("read the whole directory") !=
          std::string::npos);
    CHECK(make_error_code(errc::stale_epoch).message().find("must stop") != std::string::npos);
}

TEST_CASE("result: holds a value or an error, never both") {
    result<int> ok = 4;
    CHECK(ok.has_value());
    CHECK(*ok == 4);
    CHECK_FALSE(ok.error());
    result<int> bad = errc::bad_crc;
    CHECK_FALSE(bad.has_value());
    CHECK(bad.error() == errc::bad_crc);
}

TEST_CASE("membership: normalized sets, joint form, validity") {
    membership m({node_id{3}, node_id{1}, node_id{2}, node_id{1}}, {node_id{5}});
    CHECK(m.voters() == std::vector<node_id>{node_id{1}, node_id{2}, node_id{3}});
    CHECK(m.is_voter(node_id{2}));
    CHECK(m.is_learner(node_id{5}));
    CHECK_FALSE(m.is_member(node_id{9}));
    CHECK_FALSE(m.is_joint());
    CHECK(m.valid());

    membership joint({node_id{1}, node_id{4}}, {}, {node_id{1}, node_id{2}});
    CHECK(joint.is_joint());
    CHECK(joint.is_voter(node_id{2})); // a voter of C_old still votes during the joint phase
    CHECK(joint.members() == std::vector<node_id>{node_id{1}, node_id{2}, node_id{4}});

    CHECK_FALSE(membership().valid());                           // no voters
    CHECK_FALSE(membership({node_id{1}}, {node_id{1}}).valid()); // voter and learner
    CHECK_FALSE(membership({node_id{0}, node_id{1}}).valid());   // no_node
}

} // namespace
