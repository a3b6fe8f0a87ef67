// An event: a named fact ("image/profile.uploaded") with a JSON payload. Events start runs of
// the functions whose triggers match their name. The fields and their JSON form are those of
// Inngest's event API, so Inngest clients can send to durable.
//
//   durable::Event e{.name = "image/profile.uploaded", .data = {{"userId", "u_1"}}};
//   engine.send(e);
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>

namespace durable {

struct Event {
  // The sender's idempotency key (Inngest's `id`): a second event with the same key within
  // 24 hours is acknowledged and stored but starts no run. Empty: no deduplication.
  std::string id;

  // What happened, e.g. "image/profile.uploaded". Required; at most 512 characters.
  std::string name;

  // The payload: always a JSON object. Default: {}.
  nlohmann::json data = nlohmann::json::object();

  // Data about the user the event concerns (Inngest's `user`): a JSON object. Default: {}.
  nlohmann::json user = nlohmann::json::object();

  // When it happened, as the sender saw it. Default (the epoch): the time it was received.
  TimePoint ts{};

  // The sender's schema version of this event, free text. Default: empty.
  std::string v;
};

// Lifecycle events the engine emits when a run ends, like any event: functions may trigger
// on them. Their data: {"run_id", "function_id", "event": {"id", "name"}, "status", and
// "output" (completed) or "error" ({"name", "message", "step"?}, failed)}. Runs started by
// a lifecycle event emit none (a function on them would otherwise trigger itself for ever).
inline constexpr const char* kFunctionFinishedEvent = "durable/function.finished";  // completed or failed
inline constexpr const char* kFunctionFailedEvent = "durable/function.failed";      // failed, after finished

// The event of a run started by step.invoke: its data is InvokeOptions::data.
inline constexpr const char* kFunctionInvokedEvent = "durable/function.invoked";
// The event of a run started by a cron trigger (on_cron): its ts is the tick's time, its data
// {"cron": the schedule, "function_id"}.
inline constexpr const char* kCronEvent = "durable/cron";

// The wire form: {"name", "data", "user", "id"?, "ts"? (ms), "v"?}. Empty `id`, `v` and an
// unset `ts` are left out. from_json is lenient (missing fields keep their defaults); the
// engine's ingest validates strictly and reports what is wrong.
void to_json(nlohmann::json& j, const Event& e);
void from_json(const nlohmann::json& j, Event& e);

}  // namespace durable
