// synod demo: what the library can do today.
//  1. The wire codec: an AppendEntries request framed, decoded, and a damaged copy refused.
//  2. A 3-node Raft group on the deterministic simulator: it elects a leader, commits
//     commands, loses its leader to a crash, elects another and keeps every committed command.

#include <synod/synod.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace synod;
using namespace std::chrono_literals;

/// A replicated list of commands: the simplest useful state machine.
struct command_list {
    using result_type = std::size_t;
    std::vector<std::string> commands;

    result_type apply(const log_entry& e) {
        commands.emplace_back(e.payload.str());
        return commands.size();
    }
    [[nodiscard]] shared_bytes snapshot() const { return {}; }
    std::error_code restore(byte_span) { return {}; }
};

int wire_demo() {
    std::printf("== wire codec ==\n");
    append_request request{node_id{1}, node_id{2},    term{7}, log_index{41},
                           term{7},    log_index{41}, 1,       {}};
    request.entries.push_back(
        {term{7}, log_index{42}, entry_kind::normal, shared_bytes("register gateway g1")});
    byte_vector frame = wire::encode_frame(request);
    auto decoded = wire::decode_frame(frame);
    std::printf("append_request with %zu entry -> %zu-byte frame -> decoded %s (crc32c %s)\n",
                request.entries.size(), frame.size(),
                decoded && *decoded == message(request) ? "identical" : "DIFFERENT",
                wire::crc32c_uses_hardware() ? "in hardware" : "portable");
    frame[frame.size() / 2] ^= std::byte{0x10};
    auto damaged = wire::decode_frame(frame);
    std::printf("one flipped bit -> %s\n",
                damaged ? "accepted (BUG)" : damaged.error().message().c_str());
    return decoded && !damaged ? 0 : 1;
}

int cluster_demo() {
    std::printf("\n== 3-node Raft group on the simulator ==\n");
    sim::cluster_options options;
    options.size = 3;
    options.seed = 2026;
    options.min_latency = 1ms;
    options.max_latency = 5ms;
    sim::cluster<command_list> group(options);
    group.start_all();

    auto leader = group.wait_for_leader();
    if (!leader) {
        std::printf("no leader elected\n");
        return 1;
    }
    std::printf("node %llu leads term %llu\n", static_cast<unsigned long long>(leader->value()),
                static_cast<unsigned long long>(group.node(*leader).current_term().value()));

    for (const char* cmd : {"register gateway g1", "issue epoch", "admit job 17"}) {
        auto r = group.propose_and_wait(cmd);
        std::printf("  propose \"%s\" -> %s at index %llu\n", cmd,
                    r && !r->error ? "committed" : "FAILED",
                    r ? static_cast<unsigned long long>(r->index.value()) : 0ULL);
    }

    std::printf("crash node %llu (the leader)\n", static_cast<unsigned long long>(leader->value()));
    group.crash(*leader);
    auto next = group.wait_for_leader();
    if (!next) {
        std::printf("no new leader\n");
        return 1;
    }
    std::printf("node %llu leads term %llu\n", static_cast<unsigned long long>(next->value()),
                static_cast<unsigned long long>(group.node(*next).current_term().value()));
    auto r = group.propose_and_wait("admit job 18");
    std::printf("  propose \"admit job 18\" -> %s\n", r && !r->error ? "committed" : "FAILED");

    group.start(*leader);
    group.run_for(1s);
    bool same = true;
    for (node_id id : group.ids()) {
        const auto& cmds = group.machine(id).commands;
        std::printf("node %llu applied %zu commands:", static_cast<unsigned long long>(id.value()),
                    cmds.size());
        for (const auto& c : cmds) {
            std::printf(" [%s]", c.c_str());
        }
        std::printf("\n");
        same = same && cmds == group.machine(*next).commands && cmds.size() == 4;
    }
    std::printf("every node holds the same 4 commands: %s\n", same ? "yes" : "NO");
    return same ? 0 : 1;
}

} // namespace

int main() {
    return wire_demo() | cluster_demo();
}
