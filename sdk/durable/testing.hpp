// The test kit: run your functions in-process, against an in-memory database, on a virtual
// clock that moves only when the test says so. Fire sleeps and timeouts by advancing time,
// deliver events to waits, mock steps' results, and read the journal back.
//
//   durable::testing::TestEngine t;
//   t.function({.id = "invoice"}, durable::on_event("invoice/created"), invoice_workflow);
//   t.mock_step("invoice", "send-invoice", {{"sent", true}});   // its body does not run
//   auto run = t.trigger({.name = "invoice/created", .data = {{"invoiceId", "A"}}});
//   CHECK(run.status() == durable::RunStatus::waiting);
//   t.send({.name = "invoice/paid", .data = {{"invoiceId", "A"}}});
//   CHECK(run.output() == "paid");
//   CHECK(run.step("send-invoice").output["sent"] == true);
//
// Every call that can make runs progress (trigger, send, advance) returns once nothing is
// executing and nothing is due at the virtual time. Functions run on the engine's worker
// threads, exactly as in production; only the clock and the database differ.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/engine.hpp>
#include <durable/errors.hpp>
#include <durable/event.hpp>
#include <durable/function.hpp>
#include <durable/run.hpp>

namespace durable::testing {

// A step of a run as the journal records it (the REST API's view, GET /v1/runs/{id}).
struct StepRecord {
  std::string key;          // "send", "send:1", ...
  std::string kind;         // "run", "sleep", "wait_for_event", "invoke"
  std::string status;       // "completed", "failed", "retrying", "sleeping", "waiting", "cancelled"
  nlohmann::json output;    // completed steps; a resolved wait: {"event_id", "event"}
  nlohmann::json error;     // failed or retrying steps: {"name", "message"}
  int attempts = 0;
  nlohmann::json details;   // everything the API shows of the step
};

class TestEngine;

// A run, read afresh on every call.
class TestRun {
 public:
  const std::string& id() const { return id_; }
  Run snapshot() const;
  RunStatus status() const { return snapshot().status; }
  nlohmann::json output() const { return snapshot().output; }
  nlohmann::json error() const { return snapshot().error; }
  // The event that started it (a cron run's: durable/cron, with the tick as its ts).
  Event event() const;
  // Its steps, in the order they were first recorded.
  std::vector<StepRecord> steps() const;
  // One step by key. Throws durable::Error if the run has no such step.
  StepRecord step(std::string_view key) const;
  // The raw journal: [{"seq", "kind", "step", "attempt", "payload", "recorded_at"}, ...]
  // (docs/journal.md).
  nlohmann::json journal() const;

 private:
  friend class TestEngine;
  TestRun(TestEngine& t, std::string id) : t_(&t), id_(std::move(id)) {}
  TestEngine* t_;
  std::string id_;
};

struct TestOptions {
  // Where the virtual clock starts. Default: 2030-01-01T00:00:00Z.
  TimePoint start = from_millis(1893456000000);
  // Worker threads. Default: 4.
  int workers = 4;
  // Engine log level. Default: "off".
  std::string log_level = "off";
};

class TestEngine {
 public:
  explicit TestEngine(TestOptions options = {});
  ~TestEngine();
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;

  // Registers a function, as Engine::function does. Register all before the first trigger.
  template <class Fn>
  void function(FunctionOptions options, Triggers triggers, Fn&& handler) {
    engine_->function(std::move(options), std::move(triggers), std::forward<Fn>(handler));
  }

  // From now on, step `step_key` of `function_id` returns `output` without running its body
  // (and records it, like a body's result). The key is the step's id, or "id:n" for its
  // (n+1)-th call in a run.
  void mock_step(std::string function_id, std::string step_key, nlohmann::json output);

  // Sends `event` and runs what it starts until nothing is left to do at the virtual time.
  // Returns the run it started; throws durable::Error unless it started exactly one.
  TestRun trigger(const Event& event);
  // Sends events (to waits, to other functions) and runs until idle. Returns their ids.
  std::string send(const Event& event);
  std::vector<std::string> send(const std::vector<Event>& events);
  // Moves the virtual clock forward by `d` (sleeps end, timeouts pass, cron ticks fire) and
  // runs until idle.
  void advance(std::chrono::milliseconds d);

  // The runs an event started, oldest first.
  std::vector<TestRun> runs_for_event(std::string_view event_id);
  // The runs of a function, oldest first (cron runs, invoked runs, fan-outs).
  std::vector<TestRun> runs_of(std::string_view function_id);
  // A run by id. Throws durable::Error if there is none.
  TestRun run(std::string_view run_id);

  TimePoint now() const { return clock_->now(); }
  ManualClock& clock() { return *clock_; }
  Engine& engine() { return *engine_; }

 private:
  friend class TestRun;
  void start_if_needed();
  void settle();

  std::shared_ptr<ManualClock> clock_;
  std::unique_ptr<Engine> engine_;
  bool started_ = false;
};

}  // namespace durable::testing
