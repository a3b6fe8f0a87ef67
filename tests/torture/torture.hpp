// The crash torture: a worker process (tests/crash/crash_worker) serves the HTTP API and runs
// "crash-20", a function of 20 steps with a durable sleep among them, whose step bodies append
// "<incarnation> <run> <step>" to a ledger. The driver sends it one event per run over HTTP
// (POST /e/{key}, each with an Inngest-style "id"), sends some acknowledged requests again, and
// resends every request whose answer it did not get. Meanwhile it kills the worker again and
// again, restarting it each time: with SIGKILL at a random moment, or by starting it with
// DURABLE_CRASH_AT so that it dies at a named crash point (engine/base/crash_points.hpp: before and
// after a commit's journal write, before and after COMMIT, in ingest, in lease recovery, while
// replaying a journal). Between two incarnations, while no worker is alive, it reads which steps
// are committed. Then the last incarnation finishes every run, and the driver checks the store
// and the ledger:
//
//   TortureReport report = run_torture({.runs = 100, .min_kills = 20});
//   CHECK(report.runs_lost == 0);
//
// run_torture uses doctest's REQUIRE for what makes the torture impossible (the worker does not
// start); everything it finds wrong in the engine goes into the report.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace durable::testing {

struct TortureOptions {
  // Events sent, each starting one run of crash-20.
  int runs = 100;
  // Incarnations ended by a kill (plain or at a crash point), at least.
  int min_kills = 20;
  // The killing lasts at least this long (and until min_kills and hits_per_point are reached);
  // the events are sent over its first three quarters.
  std::chrono::milliseconds duration{8000};
  // A plain kill lands between 20 ms and this long after the worker was started. 0: twice the
  // mean interval, 2 * duration / min_kills.
  std::chrono::milliseconds max_life{0};
  // The share of incarnations started with a crash point armed (the others are killed from
  // outside), and how often each crash point must have killed a worker before the killing
  // ends (0: no crash points).
  double point_share = 0.5;
  int hits_per_point = 1;
  // Every event in one request when the first worker is up, instead of requests of 1-4
  // events paced over the killing.
  bool one_request = false;
  // The share of acknowledged requests sent again 0-3 s later (they must start nothing).
  double resend_share = 0.1;
  // The worker's settings: work in each step body, its lease TTL (a short one makes recovery
  // quick), its worker threads.
  int step_ms = 15;
  int lease_ttl_ms = 500;
  int workers = 4;
  // The random seed (printed in the report, to replay a failure's choices).
  unsigned seed = 1;
  // Prints a line on stderr every 30 s of the killing (for the long form).
  bool progress = false;
};

struct TortureReport {
  // The three numbers, each of which must be 0. Acknowledged events without a run that
  // completed (none, or none finished once the last incarnation stopped making progress):
  int runs_lost = 0;
  // Step bodies run in an incarnation that started after the step's result was committed:
  int committed_steps_rerun = 0;
  // Runs beyond the first started by one event id (the "id" field), resends included:
  int duplicate_runs = 0;

  // The killing. `kills` = plain_kills + the sum of point_kills.
  int incarnations = 0;  // the last one, which finishes the runs, included
  int kills = 0;
  int plain_kills = 0;               // SIGKILL from the driver at a random moment
  int plain_kills_before_ready = 0;  // of those, before the worker listened (its start, recovery)
  std::map<std::string, int> point_kills;    // crash point -> workers it killed
  std::map<std::string, int> points_missed;  // crash point -> armed workers killed by the driver
                                             // before they reached it (in plain_kills)
  int kills_with_unfinished_runs = 0;        // kills after which some run was unfinished
  int steps_committed_at_last_kill = 0;

  // The load.
  int steps = 0;             // runs x 20
  int requests = 0;          // requests acknowledged, resends included
  int attempts_unanswered = 0;  // attempts that got no answer (refused, or cut by a kill), each resent
  int events_stored_unanswered = 0;  // events stored by an attempt whose answer was lost
  int resends = 0;           // acknowledged requests sent again on purpose
  int step_executions = 0;   // ledger lines
  int reruns_after_kill = 0;          // a step run again in a later incarnation, uncommitted at the kill
  int reruns_within_incarnation = 0;  // a step run again after its execution was fenced

  std::chrono::milliseconds kill_phase{0}, drain{0}, total{0};
  std::string integrity;  // PRAGMA integrity_check
  unsigned seed = 0;
  // Everything found wrong, one sentence each (the first few in detail).
  std::vector<std::string> problems;

  // The three numbers are 0 and nothing was found wrong.
  bool ok() const;
  // The report as text, a few lines.
  std::string summary() const;
};

// Runs the torture in a fresh temporary directory (removed afterwards). Takes about
// `duration`, plus the time the last incarnation needs to finish the runs.
TortureReport run_torture(const TortureOptions& options);

}  // namespace durable::testing
