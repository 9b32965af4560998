# Driver for synod's consumer/packaging tests; run with `cmake -P`.
#
# Configures, builds and runs a tiny consumer project in a fresh directory, the way a user
# of synod would, with the outer build's compiler and flags (so sanitizer builds stay
# consistent). Registered as CTest tests by tests/consumers/CMakeLists.txt.
#
# Required:
#   -DMODE=add_subdirectory|find_package|fetchcontent|conan_test_package
#   -DSYNOD_ROOT=<synod source tree>
#   -DCONSUMER_DIR=<consumer CMake project>
#   -DWORK_DIR=<scratch directory, wiped first>
#   -DEXPECTED_VERSION=<synod's project version, e.g. 0.1.0>
# Optional (passed through from the outer build when non-empty):
#   -DCXX_COMPILER= -DCXX_FLAGS= -DEXE_LINKER_FLAGS= -DGENERATOR= -DMAKE_PROGRAM=
#   -DTOOLCHAIN_FILE= -DBOOST_DIR= -DEXE_NAME=<consumer executable, default "consumer">

cmake_minimum_required(VERSION 3.21)

foreach(var IN ITEMS MODE SYNOD_ROOT CONSUMER_DIR WORK_DIR EXPECTED_VERSION)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(add_subdirectory|find_package|fetchcontent|conan_test_package)$")
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()
if(NOT EXPECTED_VERSION MATCHES "^([0-9]+)\\.([0-9]+)\\.([0-9]+)$")
  message(FATAL_ERROR "run_consumer.cmake: EXPECTED_VERSION '${EXPECTED_VERSION}' is not X.Y.Z")
endif()
set(expected_defines
  -DSYNOD_EXPECTED_VERSION_MAJOR=${CMAKE_MATCH_1}
  -DSYNOD_EXPECTED_VERSION_MINOR=${CMAKE_MATCH_2}
  -DSYNOD_EXPECTED_VERSION_PATCH=${CMAKE_MATCH_3})
if(NOT DEFINED EXE_NAME OR EXE_NAME STREQUAL "")
  set(EXE_NAME consumer)
endif()

# run(<what> COMMAND...): echo, run, and fail the test on a non-zero exit code.
function(run what)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[${MODE}] ${what} failed (exit code: ${rc})")
  endif()
endfunction()

# Arguments common to every configure step: same compiler, flags and generator as the outer
# build, Release, and the Boost the outer build found.
set(common_args -DCMAKE_BUILD_TYPE=Release)
if(GENERATOR)
  list(APPEND common_args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
  list(APPEND common_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
list(APPEND common_args "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
if(TOOLCHAIN_FILE)
  list(APPEND common_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
endif()
if(BOOST_DIR)
  list(APPEND common_args "-DBoost_DIR=${BOOST_DIR}")
endif()

# A fresh directory every time, so that reruns never see a stale cache or install.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# --- Install synod into a private prefix (find_package and the Conan test_package) -------
if(MODE STREQUAL "find_package" OR MODE STREQUAL "conan_test_package")
  set(prefix "${WORK_DIR}/prefix")
  # Configure with a different CMAKE_INSTALL_PREFIX than the one installed to, so that the
  # check below catches any install-time file that hard-codes the configure-time prefix
  # (package managers install with `cmake --install --prefix` into a staging directory).
  run("configure synod for install"
    "${CMAKE_COMMAND}" -S "${SYNOD_ROOT}" -B "${WORK_DIR}/synod-build" ${common_args}
    "-DCMAKE_INSTALL_PREFIX=${WORK_DIR}/configure-time-prefix-unused"
    -DSYNOD_BUILD_TESTS=OFF -DSYNOD_BUILD_EXAMPLES=OFF -DSYNOD_BUILD_BENCHMARKS=OFF
    -DSYNOD_INSTALL=ON)
  run("build synod" "${CMAKE_COMMAND}" --build "${WORK_DIR}/synod-build" --config Release)
  run("install synod"
    "${CMAKE_COMMAND}" --install "${WORK_DIR}/synod-build" --config Release --prefix "${prefix}")

  foreach(f IN ITEMS
      include/synod/version.hpp
      include/synod/core/ids.hpp
      share/cmake/synod/synodConfig.cmake
      share/cmake/synod/synodConfigVersion.cmake
      share/cmake/synod/synodTargets.cmake
      share/pkgconfig/synod.pc
      share/doc/synod/LICENSE)
    if(NOT EXISTS "${prefix}/${f}")
      message(FATAL_ERROR "[${MODE}] install is missing ${f}")
    endif()
  endforeach()
  file(GLOB_RECURSE installed RELATIVE "${prefix}" "${prefix}/*")
  foreach(f IN LISTS installed)
    if(f MATCHES "\\.(cmake|pc)$")
      file(READ "${prefix}/${f}" text)
      string(FIND "${text}" "configure-time-prefix-unused" hit)
      if(NOT hit EQUAL -1)
        message(FATAL_ERROR "[${MODE}] ${f} hard-codes the configure-time install prefix; "
          "the installed package is not relocatable")
      endif()
    endif()
  endforeach()
  list(APPEND common_args "-DCMAKE_PREFIX_PATH=${prefix}")
endif()

# --- Configure, build and run the consumer ----------------------------------------------
set(build "${WORK_DIR}/consumer-build")
set(consumer_args "")
if(MODE STREQUAL "add_subdirectory" OR MODE STREQUAL "fetchcontent")
  list(APPEND consumer_args "-DSYNOD_ROOT=${SYNOD_ROOT}")
endif()
if(NOT MODE STREQUAL "conan_test_package") # test_package is conan's, and takes no options
  list(APPEND consumer_args "-DSYNOD_EXPECTED_VERSION=${EXPECTED_VERSION}")
endif()
run("configure consumer"
  "${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${build}" ${common_args} ${consumer_args})
run("build consumer" "${CMAKE_COMMAND}" --build "${build}" --config Release)

set(exe "")
foreach(candidate IN ITEMS "${build}/${EXE_NAME}" "${build}/${EXE_NAME}.exe"
    "${build}/Release/${EXE_NAME}" "${build}/Release/${EXE_NAME}.exe")
  if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
    set(exe "${candidate}")
    break()
  endif()
endforeach()
if(NOT exe)
  message(FATAL_ERROR "[${MODE}] consumer executable '${EXE_NAME}' not found under ${build}")
endif()
run("run consumer" "${exe}")

# --- pkg-config (find_package only; skipped when pkg-config is not installed) -------------
if(MODE STREQUAL "find_package")
  find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
  if(NOT PKG_CONFIG_EXECUTABLE)
    message(STATUS "[${MODE}] pkg-config not found: skipping the synod.pc check")
  else()
    set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
    unset(ENV{PKG_CONFIG_LIBDIR})
    execute_process(COMMAND "${PKG_CONFIG_EXECUTABLE}" --modversion synod
      RESULT_VARIABLE rc OUTPUT_VARIABLE pc_version OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0 OR NOT pc_version STREQUAL EXPECTED_VERSION)
      message(FATAL_ERROR "[${MODE}] pkg-config --modversion synod gave '${pc_version}' "
        "(exit code ${rc}), expected ${EXPECTED_VERSION}")
    endif()
    execute_process(COMMAND "${PKG_CONFIG_EXECUTABLE}" --cflags synod
      RESULT_VARIABLE rc OUTPUT_VARIABLE pc_cflags OUTPUT_STRIP_TRAILING_WHITESPACE)
    message(STATUS "[${MODE}] pkg-config --cflags synod: ${pc_cflags}")
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "[${MODE}] pkg-config --cflags synod failed (exit code ${rc})")
    endif()
    # pkg-config may print the include directory through a relative ${pcfiledir} path;
    # compare canonical paths.
    separate_arguments(pc_flag_list UNIX_COMMAND "${pc_cflags}")
    set(found_include FALSE)
    file(REAL_PATH "${prefix}/include" want_include)
    foreach(flag IN LISTS pc_flag_list)
      if(flag MATCHES "^-I(.+)$")
        file(REAL_PATH "${CMAKE_MATCH_1}" got_include)
        if(got_include STREQUAL want_include)
          set(found_include TRUE)
        endif()
      endif()
    endforeach()
    if(NOT found_include)
      message(FATAL_ERROR "[${MODE}] pkg-config --cflags synod does not point at "
        "${prefix}/include: '${pc_cflags}'")
    endif()
    # And the flags are enough on their own: compile the consumer without CMake's help.
    if(CXX_COMPILER AND NOT CMAKE_HOST_WIN32)
      separate_arguments(outer_flags UNIX_COMMAND "${CXX_FLAGS} ${EXE_LINKER_FLAGS}")
      run("compile consumer with pkg-config flags"
        "${CXX_COMPILER}" ${outer_flags} ${pc_flag_list}
        ${expected_defines} "-DSYNOD_CONSUMED_VIA=\"pkg-config\""
        "${CONSUMER_DIR}/../consumer_main.cpp" -o "${WORK_DIR}/consumer-pkgconfig")
      run("run consumer built with pkg-config flags" "${WORK_DIR}/consumer-pkgconfig")
    endif()
  endif()
endif()

message(STATUS "[${MODE}] consumer OK")
