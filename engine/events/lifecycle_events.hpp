// The data of the lifecycle events a run emits when it ends (kFunctionFinishedEvent,
// kFunctionFailedEvent; <durable/event.hpp> gives the shape), built in one place for the run
// that ends by itself (RunExecution) and for the cancelled run the store tells an invoking
// parent about (RuleStore).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace durable {

struct FinishedRun {
  std::string run_id;
  std::string function_id;
  std::string event_id;    // the run's event
  std::string event_name;
};

// {"run_id", "function_id", "event": {"id", "name"}, "status": status, result_field: result}.
// `result_field` is "output" (completed) or "error" (failed, cancelled).
inline nlohmann::json function_finished_data(const FinishedRun& run, const char* status, const char* result_field,
                                             nlohmann::json result) {
  return nlohmann::json{{"run_id", run.run_id},
                        {"function_id", run.function_id},
                        {"event", {{"id", run.event_id}, {"name", run.event_name}}},
                        {"status", status},
                        {result_field, std::move(result)}};
}

}  // namespace durable
