#!/usr/bin/env bash
# The crash torture's long form (docs/operations.md, "Crash torture"): builds, then kills the
# crash worker for MINUTES while it takes 1,000 runs of 20 steps over HTTP with resends, at
# least max(200, 22 x MINUTES) times, each crash point of engine/base/crash_points.hpp at least 5 of
# them, and checks the store and the ledger afterwards. Prints the report (kills by kind, runs
# lost, committed steps re-run, duplicate runs per event id); exits non-zero if any of those
# three is not 0 or anything else was found wrong. Not part of scripts/test.sh, which runs the
# short form (the same test, 100 runs, at least 20 kills).
#
#   bash scripts/torture.sh [MINUTES]    # default 10
#
# DURABLE_BUILD_DIR: the build directory (default build); DURABLE_TORTURE_SEED=S repeats the
# random choices of an earlier run (its report prints its seed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
minutes=${1:-10}
if ! [[ $minutes =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ]; then
  echo "usage: scripts/torture.sh [MINUTES]  (a whole number of minutes, at least 1; default 10)" >&2
  exit 2
fi
bash "$root/scripts/build.sh" --target durable_tests
DURABLE_TORTURE_MINUTES=$minutes "$build/durable_tests" -ts=torture
