#!/usr/bin/env bash
# Installs missing dependencies, then configures and builds everything into build/
# (or $DURABLE_BUILD_DIR). Extra arguments go to the build (e.g. a target name).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=${DURABLE_BUILD_TYPE:-RelWithDebInfo} >/dev/null
cmake --build "$build" -j "$(nproc)" "$@"
