// A run: one execution history of a function, started by one event. Engine::get_run() returns
// this snapshot of it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>

namespace durable {

// Where a run is. Stored as these exact words.
enum class RunStatus {
  queued,     // waiting for a worker: new, or retrying a failed step at available_at
  running,    // a worker holds its lease
  sleeping,   // in step.sleep until available_at
  waiting,    // in step.wait_for_event or step.invoke, until the event arrives or available_at (the timeout)
  completed,  // the function returned; `output` holds what it returned
  failed,     // failed for good; `error` says why
  cancelled,  // stopped by a user
};

inline constexpr RunStatus kAllRunStatuses[] = {RunStatus::queued,    RunStatus::running, RunStatus::sleeping,
                                               RunStatus::waiting,   RunStatus::completed, RunStatus::failed,
                                               RunStatus::cancelled};

std::string_view to_string(RunStatus status);
// Throws durable::Error for an unknown word.
RunStatus parse_run_status(std::string_view text);

// True for completed, failed and cancelled: the run will not change any more by itself.
inline bool is_finished(RunStatus s) {
  return s == RunStatus::completed || s == RunStatus::failed || s == RunStatus::cancelled;
}

struct Run {
  std::string id;
  std::string function_id;
  std::string event_id;
  RunStatus status = RunStatus::queued;
  int attempt = 0;                  // failures so far of the step (or body) now being retried
  nlohmann::json output;            // what the function returned (completed runs), else null
  nlohmann::json error;             // {"name", "message", "step"?} (failed runs), else null
  TimePoint created_at{};
  std::optional<TimePoint> started_at;  // first claimed by a worker
  std::optional<TimePoint> ended_at;    // finished
  TimePoint available_at{};             // when it may next be claimed (queued, sleeping, waiting)
  std::string replay_of;                // the run this one replays, if it is a replay
  std::string parent_run_id;            // the run whose step.invoke started this one, if any
};

}  // namespace durable
