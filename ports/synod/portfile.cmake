# vcpkg port for synod, a header-only C++20 Raft library.
#
# Sources, in order of preference:
#   1. $ENV{SYNOD_SOURCE_PATH}: a local checkout, for trying the port before a release
#      (vcpkg scrubs the environment, so also set VCPKG_KEEP_ENV_VARS=SYNOD_SOURCE_PATH);
#   2. the synod checkout this port lives in, when used as an overlay port straight from
#      synod's repository (`vcpkg install synod --overlay-ports=<synod>/ports`);
#   3. the release tarball: REPO, REF and SHA512 below are PLACEHOLDERS, to be filled in
#      when synod is first tagged and published (the curated registry copies only this
#      directory, so it always takes this branch).

set(VCPKG_BUILD_TYPE release) # header-only: the debug configuration would be identical

if(DEFINED ENV{SYNOD_SOURCE_PATH})
    set(SOURCE_PATH "$ENV{SYNOD_SOURCE_PATH}")
elseif(EXISTS "${CMAKE_CURRENT_LIST_DIR}/../../include/synod/version.hpp"
       AND EXISTS "${CMAKE_CURRENT_LIST_DIR}/../../CMakeLists.txt")
    get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
else()
    vcpkg_from_github(
        OUT_SOURCE_PATH SOURCE_PATH
        REPO synod-developers/synod # PLACEHOLDER: the real repository, at release
        REF "v${VERSION}"
        SHA512 0 # PLACEHOLDER: `vcpkg install` prints the real hash on first use
        HEAD_REF main
    )
endif()

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DSYNOD_BUILD_TESTS=OFF
        -DSYNOD_BUILD_EXAMPLES=OFF
        -DSYNOD_BUILD_BENCHMARKS=OFF
        -DSYNOD_INSTALL=ON
)
vcpkg_cmake_install()

# synod installs its CMake package to share/cmake/synod; vcpkg wants share/synod.
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/synod)
vcpkg_fixup_pkgconfig()

# Header-only: nothing of the (skipped) debug tree; the license goes to share/synod/copyright.
file(REMOVE_RECURSE
    "${CURRENT_PACKAGES_DIR}/debug"
    "${CURRENT_PACKAGES_DIR}/share/doc"
)

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
