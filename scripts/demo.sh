#!/usr/bin/env bash
# Builds and runs synod's demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target synod_demo -j "$(nproc)" >/dev/null
exec build/release/examples/synod_demo
