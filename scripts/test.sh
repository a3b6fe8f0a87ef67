#!/usr/bin/env bash
# Builds everything and runs every test (the doctest suite, which includes the crash test
# that SIGKILLs real processes). Extra arguments go to the doctest binary (e.g. -ts=store).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
# An instrumented build (scripts/sanitize.sh) needs only the suite and the programs it starts.
bash "$root/scripts/build.sh" ${DURABLE_SANITIZE:+--target durable_tests}
# The npm packages of the tests that run node, each from its package-lock.json: the inngest SDK
# (tests/inngest_compat_test.cpp) and playwright-core (tests/dashboard_e2e_test.cpp). Installed
# when missing or older than the lock (npm rewrites node_modules/.package-lock.json each time).
for dir in "$root/tests/inngest_compat" "$root/tests/dashboard_e2e"; do
  if [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --silent
  fi
done
# Where tests leave files for a person to look at (the dashboard's screenshots).
export DURABLE_TEST_ARTIFACTS="$build/test-artifacts"
# The suite takes well under a minute; a hang must fail the run, not stall CI for its hours.
timeout --kill-after=10s 15m "$build/durable_tests" "$@"
