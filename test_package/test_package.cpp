#include <synod/core/ids.hpp>
#include <synod/version.hpp>

#include <cstdio>

int main() {
    const synod::term term{1};
    const synod::log_index first{1};
    const synod::log_index next = first + 1;
    const synod::node_id node{1};

    if (next.value() != 2 || !(first < next) || term.value() != 1 || node.value() != 1) {
        std::fprintf(stderr, "synod strong types misbehave\n");
        return 1;
    }
    if (synod::version.major != SYNOD_VERSION_MAJOR ||
        synod::version.minor != SYNOD_VERSION_MINOR ||
        synod::version.patch != SYNOD_VERSION_PATCH) {
        std::fprintf(stderr, "synod::version disagrees with its macros\n");
        return 1;
    }
    std::printf("synod %d.%d.%d\n", synod::version.major, synod::version.minor,
                synod::version.patch);
    return 0;
}
