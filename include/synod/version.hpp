#pragma once

/// \file
/// synod's version, for consumers that want to check it at compile time.

#define SYNOD_VERSION_MAJOR 0
#define SYNOD_VERSION_MINOR 1
#define SYNOD_VERSION_PATCH 0

namespace synod {

struct version_info {
    int major;
    int minor;
    int patch;
};

inline constexpr version_info version{SYNOD_VERSION_MAJOR, SYNOD_VERSION_MINOR,
                                      SYNOD_VERSION_PATCH};

} // namespace synod
