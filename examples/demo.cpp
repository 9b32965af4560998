// synod demo: what the library can do today.
//  1. The wire codec: an AppendEntries request framed, decoded, and a damaged copy refused.
//  2. Three coordinators on the deterministic simulator, as a timeline: an election, gateways
//     registering their services (one through a follower), the director starting with epoch 1,
//     the leader killed, a new leader whose director starts with epoch 2 and the complete
//     directory, a stale director's late write fenced off, and the old leader catching up.

#include <synod/synod.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace synod;
using namespace std::chrono_literals;

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

/// Simulated milliseconds since the demo's cluster started.
struct demo_clock {
    const sim::world* world = nullptr;
    sim::time_point origin{};
    [[nodiscard]] long long ms() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(world->now() - origin).count();
    }
};

/// A resource (say, a storage server) that obeys only the newest director.
struct fenced_resource {
    coord::epoch_fence fence;
};

/// The host's director: it narrates what it is told and locks the resource for its recovery.
struct narrating_director {
    node_id self;
    const demo_clock* clock;
    fenced_resource* resource;

    std::error_code start(epoch e, const coord::directory_view& v) {
        std::printf("[%5lld ms] director on n%llu STARTS with epoch %llu and the directory at "
                    "revision %llu:\n",
                    clock->ms(), static_cast<unsigned long long>(self.value()),
                    static_cast<unsigned long long>(e.value()),
                    static_cast<unsigned long long>(v.revision));
        for (const auto& s : v.services) {
            std::printf("              %-12s %-10s on node %llu at %s\n", s.id.c_str(),
                        s.kind.c_str(), static_cast<unsigned long long>(s.node.value()),
                        s.address.c_str());
        }
        const auto locked = resource->fence.lock_for_recovery(e);
        std::printf("[%5lld ms] director epoch %llu locks the storage resource for recovery: %s\n",
                    clock->ms(), static_cast<unsigned long long>(e.value()),
                    locked ? locked.message().c_str() : "ok");
        return {};
    }
    void directory_changed(const machines::directory_change& c) {
        std::printf("[%5lld ms] director on n%llu told: directory revision %llu (%zu upserted, "
                    "%zu removed)\n",
                    clock->ms(), static_cast<unsigned long long>(self.value()),
                    static_cast<unsigned long long>(c.revision), c.upserted.size(),
                    c.removed.size());
    }
    void stop(coord::stop_reason why) {
        std::printf("[%5lld ms] director on n%llu STOPS (%s)\n", clock->ms(),
                    static_cast<unsigned long long>(self.value()),
                    std::string(coord::to_string(why)).c_str());
    }
};
static_assert(coord::director<narrating_director>);

using demo_cluster = coord::simulated_cluster<narrating_director>;

void watch(demo_cluster& cluster, const demo_clock& clock, node_id id) {
    cluster.at_node(id).watch_readiness([&clock, id](const coord::readiness_event& ev) {
        if (ev.readiness == coord::readiness::not_leader) {
            if (ev.leader != no_node) {
                std::printf("[%5lld ms] n%llu follows leader n%llu (term %llu)\n", clock.ms(),
                            static_cast<unsigned long long>(id.value()),
                            static_cast<unsigned long long>(ev.leader.value()),
                            static_cast<unsigned long long>(ev.t.value()));
            }
            return;
        }
        std::printf("[%5lld ms] n%llu is %s (term %llu)\n", clock.ms(),
                    static_cast<unsigned long long>(id.value()),
                    std::string(coord::to_string(ev.readiness)).c_str(),
                    static_cast<unsigned long long>(ev.t.value()));
    });
}

bool register_gateway(demo_cluster& cluster, const demo_clock& clock, node_id via, node_id gateway,
                      std::vector<machines::service_endpoint> services,
                      std::vector<std::string> capabilities) {
    std::optional<coord::write_result> out;
    cluster.at_node(via).register_gateway(gateway, services, capabilities,
                                          [&](coord::write_result r) { out = r; });
    cluster.run_until([&] { return out.has_value(); }, 5s);
    std::printf("[%5lld ms] gateway of node %llu registers %zu services through n%llu: %s, "
                "revision %llu\n",
                clock.ms(), static_cast<unsigned long long>(gateway.value()), services.size(),
                static_cast<unsigned long long>(via.value()),
                !out         ? "no reply"
                : out->error ? out->error.message().c_str()
                             : "ok",
                out ? static_cast<unsigned long long>(out->revision) : 0ULL);
    return out && !out->error;
}

int coordinator_demo() {
    std::printf("\n== 3 coordinators on the simulator: elections, gateways, directors, epochs "
                "==\n");
    demo_clock clock;
    fenced_resource storage;
    demo_cluster cluster(3, 2026, [&](node_id id) {
        return std::make_unique<narrating_director>(narrating_director{id, &clock, &storage});
    });
    clock.world = &cluster.world();
    clock.origin = cluster.world().now();
    cluster.start_all();
    for (node_id id : cluster.ids()) {
        watch(cluster, clock, id);
    }
    const auto first = cluster.wait_ready();
    if (!first) {
        std::printf("no leader became ready\n");
        return 1;
    }
    auto follower = [&](node_id leader) {
        for (node_id id : cluster.ids()) {
            if (id != leader && cluster.is_up(id)) {
                return id;
            }
        }
        return leader;
    };
    bool ok = register_gateway(
        cluster, clock, follower(*first), node_id{11},
        {{"log-1", "log", "10.0.0.11:7001"}, {"storage-1", "storage", "10.0.0.11:7002"}},
        {"log", "storage"});
    ok = register_gateway(cluster, clock, *first, node_id{12},
                          {{"resolver-1", "resolution", "10.0.0.12:7003"}}, {"resolution"}) &&
         ok;
    cluster.run_for(20ms);

    std::printf("[%5lld ms] n%llu, the leader, is killed\n", clock.ms(),
                static_cast<unsigned long long>(first->value()));
    cluster.crash(*first);
    const auto second = cluster.wait_ready();
    if (!second) {
        std::printf("no new leader became ready\n");
        return 1;
    }
    cluster.run_for(10ms);
    const epoch stale = cluster.at_node(*second).current_epoch() - 1;
    const auto refused = storage.fence.admit(stale);
    std::printf("[%5lld ms] a late write from the old director (epoch %llu) reaches the storage "
                "resource: %s\n",
                clock.ms(), static_cast<unsigned long long>(stale.value()),
                refused ? refused.message().c_str() : "ADMITTED (BUG)");

    std::printf("[%5lld ms] n%llu restarts\n", clock.ms(),
                static_cast<unsigned long long>(first->value()));
    cluster.start(*first);
    watch(cluster, clock, *first);
    cluster.run_for(500ms);
    const auto& dir = cluster.at_node(*first).stale_directory();
    std::printf(
        "[%5lld ms] n%llu caught up: directory revision %llu with %zu services, last "
        "epoch issued %llu\n",
        clock.ms(), static_cast<unsigned long long>(first->value()),
        static_cast<unsigned long long>(dir.revision()), dir.all().value.size(),
        static_cast<unsigned long long>(cluster.at_node(*first).last_issued_epoch().value()));
    ok = ok && refused == errc::stale_epoch && dir.all().value.size() == 3 &&
         cluster.at_node(*second).current_epoch() == epoch{2};
    std::printf("%s\n", ok ? "every step behaved" : "SOMETHING WENT WRONG");
    return ok ? 0 : 1;
}

} // namespace

int main() {
    return wire_demo() | coordinator_demo();
}
