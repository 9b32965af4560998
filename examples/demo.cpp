// synod demo: what the library can do today. Encodes a Raft AppendEntries request into a wire
// frame, decodes it back, and shows what happens to a damaged frame.

#include <synod/synod.hpp>

#include <cstdio>
#include <string>

int main() {
    using namespace synod;

    append_request request;
    request.from = node_id{1};
    request.to = node_id{2};
    request.term = term{7};
    request.prev_log_index = log_index{41};
    request.prev_log_term = term{7};
    request.leader_commit = log_index{41};
    request.entries.push_back(
        {term{7}, log_index{42}, entry_kind::normal, shared_bytes("register gateway g1")});
    request.entries.push_back(
        {term{7}, log_index{43}, entry_kind::normal, shared_bytes("issue epoch")});

    byte_vector frame = wire::encode_frame(request);
    std::printf("encoded append_request with %zu entries into a %zu-byte frame (crc32c %s)\n",
                request.entries.size(), frame.size(),
                wire::crc32c_uses_hardware() ? "in hardware" : "portable");

    auto decoded = wire::decode_frame(frame);
    if (!decoded || *decoded != message(request)) {
        std::printf("round trip FAILED: %s\n", decoded.error().message().c_str());
        return 1;
    }
    const auto& back = std::get<append_request>(*decoded);
    std::printf("decoded: from %llu to %llu, term %llu, entries %zu, first payload \"%s\"\n",
                static_cast<unsigned long long>(back.from.value()),
                static_cast<unsigned long long>(back.to.value()),
                static_cast<unsigned long long>(back.term.value()), back.entries.size(),
                std::string(back.entries[0].payload.str()).c_str());

    frame[frame.size() / 2] ^= std::byte{0x10};
    auto damaged = wire::decode_frame(frame);
    std::printf("one flipped bit: %s\n",
                damaged ? "accepted (BUG)" : damaged.error().message().c_str());
    frame.resize(frame.size() - 5);
    auto truncated = wire::decode_frame(frame);
    std::printf("truncated frame: %s\n",
                truncated ? "accepted (BUG)" : truncated.error().message().c_str());
    return damaged || truncated ? 1 : 0;
}
