// What an operator does to runs: cancel, resume, replay (whole, or from a step with an
// optionally edited output), one at a time or in bulk by filter. Everything goes through the
// store, so it works on runs of any process sharing the database. Failures the caller must
// fix throw RequestError with their HTTP status (404 no such run, 409 wrong state, 400 bad
// argument).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/ids.hpp"
#include "engine/exec/metrics.hpp"
#include "engine/store/store.hpp"

namespace durable {

struct ReplayOptions {
  // Keep the original's memoized steps before this step key, and run from it. Empty: a
  // fresh run from the same event.
  std::string from_step;
  // With from_step: record this as that step's output instead of running it (the run goes
  // on from the step after it).
  std::optional<nlohmann::json> output;
};

// One page of a bulk action. Call again with `next_cursor` until it is empty.
struct BulkResult {
  std::vector<std::string> run_ids;  // the runs acted on (replays: the new runs)
  std::vector<std::pair<std::string, std::string>> replayed;  // replays: (original, new run)
  std::string next_cursor;           // empty: done
  std::optional<int64_t> total;      // how many runs matched in all (first page only)
};

class RunControl {
 public:
  // `notify` tells this process's scheduler that runs became due.
  RunControl(Store& store, Clock& clock, IdGenerator& ids, Metrics& metrics, std::function<void()> notify);

  Run cancel(const std::string& run_id);
  // A failed or cancelled run continues where it stopped: memoized steps stay, the failed
  // step is tried again with fresh attempts.
  Run resume(const std::string& run_id);
  // A new run of the same function and event, linked to the original (Run::replay_of).
  Run replay(const std::string& run_id, const ReplayOptions& options);

  // Up to `limit` runs matching `filter` (newest first, below `cursor`), per call. Runs
  // created after the first call never match later pages, so a bulk replay never replays
  // its own replays.
  BulkResult cancel_matching(const RunFilter& filter, int limit, const std::string& cursor);
  BulkResult replay_matching(const RunFilter& filter, int limit, const std::string& cursor);

 private:
  Run must_find(const std::string& run_id);
  // The page of a bulk action: up to `limit` runs below `cursor`; sets result.next_cursor,
  // and result.total on the first page.
  std::vector<Run> next_page(const RunFilter& filter, int limit, const std::string& cursor, BulkResult& result);
  // The new run replaying `original` (not stored yet).
  NewRun replay_of(const Run& original, const ReplayOptions& options);
  // Throws 409 unless some process recorded `function_id` (else the run would never start).
  void check_registered(const std::string& function_id, const std::vector<FunctionRecord>& functions);

  Store& store_;
  Clock& clock_;
  IdGenerator& ids_;
  Metrics& metrics_;
  std::function<void()> notify_;
};

}  // namespace durable
