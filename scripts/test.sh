#!/usr/bin/env bash
# Builds synod and runs its tests with one CMake preset (default: dev = Debug, -Werror).
#   scripts/test.sh [preset [ctest arguments...]]   presets: dev release asan-ubsan tsan clang
# SYNOD_SEEDS=N raises the iteration count of the seeded property and simulation sweeps.
# SYNOD_CONFIGURE_ARGS adds CMake arguments (CI's sanitizer stage leaves out benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dev}
shift || true

scripts/deps.sh
# shellcheck disable=SC2086 # the arguments are meant to split
cmake --preset "$preset" ${SYNOD_CONFIGURE_ARGS:-} >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)" "$@"
