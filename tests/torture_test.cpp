// The crash torture (tests/torture/torture.hpp), in its short form: 100 runs of 20 steps sent
// over HTTP with resends, at least 20 kills of the worker, every crash point of
// engine/base/crash_points.hpp among them at least once. The long form is this test with
// DURABLE_TORTURE_MINUTES=M set (`bash scripts/torture.sh [M]`, docs/operations.md "Crash
// torture"): 1,000 runs, at least M minutes of killing, at least max(200, 22 M) kills, every
// crash point at least 5 times. DURABLE_TORTURE_SEED=S repeats a run's random choices (the kill
// moments still fall differently).
//
// Real time passes: real processes are killed and restarted, and the restarted worker takes
// the runs of the killed one over when their leases expire. Nothing is asserted about
// durations; the driver's waits are bounded by progress. No doctest timeout: the long form
// takes as long as it is asked to.
#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>

#include <doctest/doctest.h>

#include "engine/base/crash_points.hpp"
#include "tests/torture/torture.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// The short form, or the long one when DURABLE_TORTURE_MINUTES is set.
TortureOptions torture_options() {
  TortureOptions options;
  const char* seed = std::getenv("DURABLE_TORTURE_SEED");
  options.seed = seed && *seed ? static_cast<unsigned>(std::strtoul(seed, nullptr, 10)) : std::random_device{}();
  const char* minutes_text = std::getenv("DURABLE_TORTURE_MINUTES");
  const int minutes = minutes_text && *minutes_text ? std::atoi(minutes_text) : 0;
  if (minutes <= 0) return options;  // the defaults are the short form
  options.runs = 1000;
  options.duration = std::chrono::minutes(minutes);
  options.min_kills = std::max(200, 22 * minutes);
  options.hits_per_point = 5;
  // Slower steps: 1,000 runs sent over three quarters of the time are then in flight at most
  // moments, so that most kills find steps running.
  options.step_ms = 40;
  options.progress = true;
  return options;
}

}  // namespace

TEST_SUITE("torture") {
  TEST_CASE("killed at random moments and at every crash point, the worker loses no acknowledged event, re-runs no "
            "committed step and starts no event id twice") {
    const TortureOptions options = torture_options();
    MESSAGE("random seed " << options.seed);
    TortureReport report = run_torture(options);
    MESSAGE(report.summary());
    CHECK(report.runs_lost == 0);
    CHECK(report.committed_steps_rerun == 0);
    CHECK(report.duplicate_runs == 0);
    CHECK(report.integrity == "ok");
    CHECK_MESSAGE(report.problems.empty(), report.problems.size() << " problems (above)");
    CHECK(report.kills >= options.min_kills);
    for (CrashPoint point : kCrashPoints) {
      std::string name(to_string(point));
      CHECK_MESSAGE(report.point_kills[name] >= options.hits_per_point, "crash point " << name << " killed "
                                                                                        << report.point_kills[name]
                                                                                        << " workers");
    }
    CHECK_MESSAGE(report.kills_with_unfinished_runs > 0, "no kill found a run unfinished");
  }
}
