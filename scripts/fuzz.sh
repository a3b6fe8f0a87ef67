#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cpp: clang, ASan and UBSan, every report
# fatal) in their own build directory, and runs each for a fixed time on a copy of its seed
# corpus (tests/fuzz/corpus/<target>/), so the committed corpus never changes. Exits non-zero
# on any finding: a crash, an abort of the harness, a leak, a sanitizer report, an input that
# runs longer than 10 s, or more than 2 GiB of memory. A finding's input is kept in
# <build>/fuzz-artifacts/ (reproduce with `<build>/<target>_fuzz <file>`).
#
#   bash scripts/fuzz.sh [SECONDS]    # SECONDS per target; default $DURABLE_FUZZ_SECONDS, else 60
#
# DURABLE_FUZZ_BUILD_DIR: the build directory (default build-fuzz); DURABLE_FUZZ_TARGETS: the
# targets to run (default all: cron cursor events event_id_seed expression journal);
# DURABLE_FUZZ_JOBS: how many run at once (default: the number of CPUs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-${DURABLE_FUZZ_SECONDS:-60}}
build=${DURABLE_FUZZ_BUILD_DIR:-$root/build-fuzz}
read -r -a targets <<<"${DURABLE_FUZZ_TARGETS:-cron cursor events event_id_seed expression journal}"
jobs=${DURABLE_FUZZ_JOBS:-$(nproc)}

bash "$root/scripts/install-deps.sh"
# clang and its runtime libraries (libFuzzer, the sanitizers) are needed here only, not by the
# ordinary build: installed when a trivial fuzz target does not link.
probe='extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }'
if ! echo "$probe" | clang++ -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null; then
  echo "fuzz: installing clang and libclang-rt-dev" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
fi

# Only the fuzz targets: no tests, examples or benchmark, and only the sources they reach.
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDURABLE_FUZZ=ON \
  -DDURABLE_BUILD_TESTS=OFF -DDURABLE_BUILD_EXAMPLES=OFF -DDURABLE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/%/_fuzz}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

# Runs target $1 for $seconds; its output goes to $work/$1.log.
run() {
  local name=$1
  mkdir -p "$work/$name"
  if [ -d "$root/tests/fuzz/corpus/$name" ]; then cp -r "$root/tests/fuzz/corpus/$name/." "$work/$name/"; fi
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/${name}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-" "$work/$name" >"$work/$name.log" 2>&1
}

declare -A pids
failed=0
finish() {  # waits for target $1 and reports it
  local name=$1 status=0
  wait "${pids[$name]}" || status=$?
  local runs time
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -1)
  time=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$name.log" | tail -1)
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $name: ok, ${runs:-?} inputs in ${time:-$seconds} s, corpus $(ls "$work/$name" | wc -l) files"
  else
    failed=1
    echo "fuzz: $name: FAILED (exit $status); the end of its log:" >&2
    tail -n 60 "$work/$name.log" >&2
  fi
}

running=()
for name in "${targets[@]}"; do
  run "$name" &
  pids[$name]=$!
  running+=("$name")
  if [ ${#running[@]} -ge "$jobs" ]; then
    finish "${running[0]}"
    running=("${running[@]:1}")
  fi
done
for name in "${running[@]}"; do finish "$name"; done
exit $failed
