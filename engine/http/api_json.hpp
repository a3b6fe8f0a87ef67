// The JSON forms the REST API answers with (docs/http-api.md): runs, events, functions, and
// a run's step timeline derived from its journal. Times are ms since the Unix epoch.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "engine/store/store.hpp"

namespace durable {

nlohmann::json run_json(const Run& run);
nlohmann::json event_json(const StoredEvent& event);
nlohmann::json function_json(const FunctionRecord& function);

// A run's steps in the order they were first reached, each with its status (completed,
// failed, retrying, sleeping, cancelled), attempts, times, output or error, and the error of
// every failed attempt. Sleeps whose deadline is after `now` in an unfinished run are
// "sleeping"; what a cancelled run was waiting for (a sleep, a retry) is "cancelled"; a step
// that had failed for good is "retrying" again once the run is resumed.
nlohmann::json steps_json(const std::vector<JournalEntry>& journal, TimePoint now);

// The errors of the attempts where the function threw outside any step.
nlohmann::json body_errors_json(const std::vector<JournalEntry>& journal);

}  // namespace durable
