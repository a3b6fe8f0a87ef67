#!/usr/bin/env bash
# Installs missing dependencies, then configures and builds everything into build/
# (or $DURABLE_BUILD_DIR). Extra arguments go to the build (e.g. a target name).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
# DURABLE_SANITIZE=address|thread: an instrumented build (scripts/sanitize.sh), in its own directory.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=${DURABLE_BUILD_TYPE:-RelWithDebInfo} \
  ${DURABLE_SANITIZE:+-DDURABLE_SANITIZE=$DURABLE_SANITIZE -DDURABLE_BUILD_BENCH=OFF} >/dev/null
cmake --build "$build" -j "$(nproc)" "$@"
