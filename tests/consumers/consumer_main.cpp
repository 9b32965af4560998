// The program every consumer project builds, however it found synod (add_subdirectory,
// find_package, FetchContent, the Conan test package): SYNOD_CONSUMED_VIA names the way.
//
// Uses the public headers and checks at run time (not with assert: this is built in Release,
// where NDEBUG is defined) that they behave as documented — including the umbrella header,
// which needs synod's Boost dependency to have been found for the consumer.

#include <synod/core/ids.hpp>
#include <synod/synod.hpp>
#include <synod/version.hpp>

#include <cstdint>
#include <cstdio>
#include <type_traits>

#ifndef SYNOD_CONSUMED_VIA
#error "the consumer's CMakeLists.txt must define SYNOD_CONSUMED_VIA"
#endif
#if !defined(SYNOD_EXPECTED_VERSION_MAJOR) || !defined(SYNOD_EXPECTED_VERSION_MINOR) ||            \
    !defined(SYNOD_EXPECTED_VERSION_PATCH)
#error "the consumer's CMakeLists.txt must define SYNOD_EXPECTED_VERSION_{MAJOR,MINOR,PATCH}"
#endif

// The strong types do not convert implicitly, neither from integers nor into each other.
static_assert(std::is_constructible_v<synod::term, std::uint64_t>);
static_assert(!std::is_convertible_v<std::uint64_t, synod::term>);
static_assert(!std::is_convertible_v<std::uint64_t, synod::log_index>);
static_assert(!std::is_convertible_v<std::uint64_t, synod::node_id>);
static_assert(!std::is_convertible_v<synod::term, synod::log_index>);
static_assert(!std::is_constructible_v<synod::log_index, synod::term>);

namespace {

int failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "consumer check failed: %s\n", what);
        ++failures;
    }
}

} // namespace

int main() {
    const synod::node_id leader{3};
    const synod::term current{7};
    const synod::log_index first{1};
    const synod::log_index second = first + 1;

    check(leader.value() == 3, "node_id round-trips its value");
    check(current.value() == 7, "term round-trips its value");
    check(second.value() == 2, "log_index + 1");
    check(first < second, "log_index ordering");
    check(current == synod::term{7}, "term equality");
    check(synod::term{8} > current, "term ordering");
    check(leader != synod::node_id{4}, "node_id inequality");

    check(synod::version.major == SYNOD_VERSION_MAJOR, "version.major matches its macro");
    check(synod::version.minor == SYNOD_VERSION_MINOR, "version.minor matches its macro");
    check(synod::version.patch == SYNOD_VERSION_PATCH, "version.patch matches its macro");
    check(synod::version.major == SYNOD_EXPECTED_VERSION_MAJOR &&
              synod::version.minor == SYNOD_EXPECTED_VERSION_MINOR &&
              synod::version.patch == SYNOD_EXPECTED_VERSION_PATCH,
          "header version matches the CMake project version");

    // A message through the wire codec and back.
    const synod::message sent = synod::timeout_now{leader, synod::node_id{4}, current};
    const auto decoded = synod::wire::decode_frame(synod::wire::encode_frame(sent));
    check(decoded.has_value() && *decoded == sent, "a frame decodes to the message encoded");

    if (failures != 0) {
        return 1;
    }
    std::printf("synod %d.%d.%d consumed via %s: OK\n", synod::version.major, synod::version.minor,
                synod::version.patch, SYNOD_CONSUMED_VIA);
    return 0;
}
