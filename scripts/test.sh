#!/usr/bin/env bash
# Builds everything and runs every test (the doctest suite, which includes the crash test
# that SIGKILLs real processes). Extra arguments go to the doctest binary (e.g. -ts=store).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
# The inngest npm package for tests/inngest_compat_test.cpp, from its package-lock.json: when
# it is missing or older than the lock (npm rewrites node_modules/.package-lock.json each time).
compat="$root/tests/inngest_compat"
if [ "$compat/package-lock.json" -nt "$compat/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$compat" --no-audit --no-fund --silent
fi
# The suite takes well under a minute; a hang must fail the run, not stall CI for its hours.
timeout --kill-after=10s 15m "$build/durable_tests" "$@"
