#!/usr/bin/env bash
# The suite under sanitizers, each build in its own directory:
#
#   bash scripts/sanitize.sh address   # ASan + LeakSanitizer + UBSan, the whole suite (build-asan/)
#   bash scripts/sanitize.sh thread    # TSan: the store, executor and HTTP suites (build-tsan/)
#   bash scripts/sanitize.sh           # both
#
# Every target is instrumented, the child processes the tests start too (crash worker, CLI);
# any report fails the run (UBSan does not recover, ASan and TSan exit non-zero).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The suites TSan runs: those where threads meet (group commit, scheduler and executor, the
# HTTP server and its clients). The rest gain little from TSan's 5-15x slowdown.
tsan_suites="store,sqlite_store,engine,step,parallel,sleep,lease,run_control,wait_for_event,shutdown,http_front,http_api,hostile_server,fail_stop"

address() {
  # halt_on_error: the first report fails the test that caused it. detect_leaks: at exit.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  DURABLE_BUILD_DIR=${DURABLE_ASAN_BUILD_DIR:-$root/build-asan} DURABLE_SANITIZE=address \
    bash "$root/scripts/test.sh"
}

thread() {
  TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
  DURABLE_BUILD_DIR=${DURABLE_TSAN_BUILD_DIR:-$root/build-tsan} DURABLE_SANITIZE=thread \
    bash "$root/scripts/test.sh" -ts="$tsan_suites"
}

case "${1:-all}" in
  address) address ;;
  thread) thread ;;
  all) address; thread ;;
  *) echo "usage: scripts/sanitize.sh [address|thread]" >&2; exit 2 ;;
esac
