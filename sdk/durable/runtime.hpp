// The seam between the SDK and the engine: Step forwards every call to a Runtime, which the
// engine implements for each execution of a run. Users never call it; it is public only so
// that Step's templates can be written in a header.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/event.hpp>

namespace durable {

// The kinds of step a function can take. A step id belongs to one kind.
enum class StepKind { run, sleep, send_event, wait_for_event, invoke };

// Thrown by the engine through user code to unwind an execution that must stop where it is:
// the run sleeps, waits for a retry, or this worker lost its lease. It deliberately does not
// derive from std::exception, so `catch (const std::exception&)` lets it pass. If user code
// swallows it with `catch (...)`, the engine still knows the execution is suspended: every
// later step call throws it again, and the engine ignores what the function returns.
struct Suspend {};

// Options of one step.run, overriding the function's.
struct StepOptions {
  // How often this step's body is tried again before it fails for good. Default: the
  // function's FunctionOptions::retries. 0: a failure is final (e.g. a payment).
  std::optional<int> retries;
};

// What step.wait_for_event waits for.
struct WaitForEventOptions {
  // The awaited event's name. Required.
  std::string event;
  // A field path, e.g. "data.invoiceId": only an event whose field there equals the same
  // field of the event that started this run. Default: none.
  std::string match;
  // An expression (docs/expressions.md) over `event` (the run's event) and `async` (the
  // candidate), e.g. "async.data.amount >= event.data.total": only events for which it is
  // true. Default: none.
  std::string if_;
  // How long to wait; then the wait returns nothing. Required (more than 0).
  std::chrono::milliseconds timeout{0};
};

// What step.invoke starts.
struct InvokeOptions {
  // The id of the function to run. Required; some process must register it.
  std::string function;
  // The `data` of the event the invoked run receives (its name is durable/function.invoked).
  nlohmann::json data = nlohmann::json::object();
  // How long to wait for the invoked run to finish; then invoke throws StepError. Default
  // (0): a year.
  std::chrono::milliseconds timeout{0};
};

// What begin_step() found out about a step.
struct StepStart {
  std::string key;                       // the id plus its occurrence: "send", "send:1", ...
  const nlohmann::json* memo = nullptr;  // the recorded output, when the step completed before;
                                         // valid for the rest of the execution
  std::optional<int> retries;            // StepOptions::retries, for fail_step()
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  // Starts step `id` of kind run: returns its key, and its recorded output if it completed in
  // an earlier execution. Throws UsageError for an empty id or an id already used by another
  // kind of step, StepError when the journal records the step as failed for good, Suspend
  // when the execution must stop.
  virtual StepStart begin_step(std::string_view id) = 0;

  // Records `output` as the result of the step begun as `start`. The record is durable
  // before the next step's body runs and before the run's outcome is recorded (it shares
  // that commit); code between steps is deterministic, so it never needs to wait sooner.
  // Throws Suspend when the execution must stop.
  virtual void complete_step(const StepStart& start, nlohmann::json output) = 0;

  // Records that the body of the step begun as `start` threw `error`. Never returns: throws
  // Suspend when a retry has been scheduled, StepError when the step failed for good.
  [[noreturn]] virtual void fail_step(const StepStart& start, std::exception_ptr error) = 0;

  // Sleeps until `until` (or for `duration` from the first time this sleep is reached). The
  // deadline is recorded in the journal the first time; returns at once when it has passed,
  // else throws Suspend and the run is woken at the deadline. Throws UsageError like
  // begin_step().
  virtual void sleep_until(std::string_view id, TimePoint until) = 0;
  virtual void sleep_for(std::string_view id, std::chrono::milliseconds duration) = 0;

  // Stores `events` (each starts the functions it triggers and resolves the waits it
  // matches) atomically with the step's record, and returns their ids; on replay, returns
  // the recorded ids and sends nothing. Throws UsageError for an invalid event.
  virtual std::vector<std::string> send_events(std::string_view id, std::vector<Event> events) = 0;

  // Waits for an event (see WaitForEventOptions): returns it, or nothing after the timeout.
  // Throws Suspend while waiting (the run holds no thread), UsageError for invalid options.
  virtual std::optional<Event> wait_for_event(std::string_view id, const WaitForEventOptions& options) = 0;

  // Starts a run of another function and waits for it to finish: returns its output, or
  // throws StepError with its error (or a timeout). Throws Suspend while waiting.
  virtual nlohmann::json invoke(std::string_view id, const InvokeOptions& options) = 0;

  // Runs `bodies` at once, as steps "id[0]", "id[1]", ..., each recorded when it finishes;
  // recorded ones are not run again. Returns every output (all), or only the output of the
  // first to complete, the others left empty (`first`); either way once every body has ended.
  // A failed body is retried like a step once the others have ended (all: any failure; first:
  // when none completed); StepError once it failed for good.
  virtual std::vector<std::optional<nlohmann::json>> run_parallel(std::string_view id,
                                                                  std::vector<std::function<nlohmann::json()>> bodies,
                                                                  bool first) = 0;
};

}  // namespace durable
