#!/usr/bin/env bash
# Builds everything and runs every test (the doctest suite, which includes the crash test
# that SIGKILLs real processes). Extra arguments go to the doctest binary (e.g. -ts=store).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
# The suite takes well under a minute; a hang must fail the run, not stall CI for its hours.
timeout --kill-after=10s 15m "$build/durable_tests" "$@"
