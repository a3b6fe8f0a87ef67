// A function: durable code that runs when a matching event arrives. Its options set its id,
// its retries and what to do when a run fails for good; its triggers say which events start it.
//
//   engine.function({.id = "process-profile-image", .retries = 3},
//                   durable::on_event("image/profile.uploaded"),
//                   [](durable::Context& ctx) { ... });
//   engine.function({.id = "audit"}, {durable::on_event("image/*"), durable::on_event("user/*")},
//                   [](durable::Context& ctx) { ... });
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/context.hpp>

namespace durable {

// When a failed step is tried again. Attempt n (0-based) waits delays[n] (the last entry for
// every later attempt) plus a random jitter in [0, max_jitter].
struct Backoff {
  // Default: Inngest's table, 15 s doubling-ish up to 2 h.
  std::vector<std::chrono::milliseconds> delays = {
      std::chrono::seconds(15), std::chrono::seconds(30), std::chrono::minutes(1),
      std::chrono::minutes(2),  std::chrono::minutes(5),  std::chrono::minutes(10),
      std::chrono::minutes(20), std::chrono::minutes(40), std::chrono::hours(1),
      std::chrono::hours(2)};
  // Upper bound of the random delay added to each retry. Default: 30 s.
  std::chrono::milliseconds max_jitter = std::chrono::seconds(30);
};

// Why a run failed for good, as given to the function's on_failure handler.
struct Failure {
  std::string run_id;       // the run that failed
  std::string function_id;  // its function
  std::string step_id;      // the step key that failed, or empty when the body itself threw
  std::string error_name;   // the error's type, e.g. "std::runtime_error"
  std::string message;      // the error's message
};

// The body of a function. Engine::function() also accepts lambdas that return void or any
// JSON-convertible type.
using Handler = std::function<nlohmann::json(Context&)>;

// Runs after a run of the function failed for good. It is itself a durable run (of the
// function "<id>-failure", started by the same event): it may take steps, and is retried.
using FailureHandler = std::function<void(Context&, const Failure&)>;

// Time limits of each run (FunctionOptions::timeouts). 0: none.
struct Timeouts {
  // A run that no worker has started within this of its event's arrival is cancelled
  // instead of started (its queue was too long, or no worker was up).
  std::chrono::milliseconds start{0};
  // A run not finished within this of its start fails with a TimeoutError (its failure
  // handler runs): at its next step, or at the deadline if it sleeps, waits or awaits a
  // retry then. A step body already running is not interrupted.
  std::chrono::milliseconds finish{0};
};

struct FunctionOptions {
  // Unique, stable identifier: runs in the database refer to it. Required; letters, digits,
  // '-', '_', '.' and '/' only.
  std::string id;
  // Display name. Default: the id.
  std::string name;
  // How often a failed step (or a body that threw outside any step) is tried again before it
  // fails for good. Default: 4, so at most 5 attempts. 0: no retries.
  int retries = 4;
  // The delays between attempts. Default: Inngest's schedule.
  Backoff backoff;
  // Called (durably) after a run fails for good. Default: none.
  FailureHandler on_failure;
  // Time limits of each run: {.start = 10min, .finish = 1h}. Default: none.
  Timeouts timeouts;
};

// Starts the function when an event of that name arrives (and passes the filter, if any), or
// on a cron schedule.
struct Trigger {
  std::string event;   // an exact name, or "prefix/*" for every name that starts with "prefix/"
  std::string filter;  // an expression over `event` (docs/expressions.md); empty: every event
  std::string cron;    // a cron schedule (docs/cron.md) instead of an event name
};

// A trigger on events named `name`; "prefix/*" matches every event under "prefix/". With a
// filter, only the events for which it is true:
//   on_event("order/created", "event.data.amount > 100 && event.data.currency == 'EUR'")
// Invalid names and filters are reported when the function is registered.
inline Trigger on_event(std::string name, std::string filter = {}) {
  return Trigger{std::move(name), std::move(filter)};
}

// A trigger on a cron schedule (docs/cron.md): the standard 5 fields, in UTC or in the zone
// of a "TZ=" prefix. Each tick starts one run, whatever the number of processes; after
// downtime, the most recent missed tick runs once. The run's event is durable/cron, with the
// tick's time as its ts and {"cron", "function_id"} as its data.
//   on_cron("*/15 * * * *"), on_cron("TZ=Europe/Paris 0 8 * * MON-FRI")
// Invalid schedules are reported, with the reason, when the function is registered.
inline Trigger on_cron(std::string schedule) { return Trigger{.cron = std::move(schedule)}; }

// One trigger or several: `on_event("a")` or `{on_event("a"), on_event("b/*")}`.
struct Triggers {
  Triggers(Trigger t) : list{std::move(t)} {}
  Triggers(std::initializer_list<Trigger> ts) : list(ts) {}
  std::vector<Trigger> list;
};

}  // namespace durable
