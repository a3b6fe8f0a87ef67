// Steps: the units of work that durable memoizes. Each step's result is recorded in the run's
// journal once it succeeds; when the function is replayed (after a crash, a retry or a sleep)
// a recorded step returns its result without running its body again.
//
//   auto sizes = ctx.step.run("resize", [&] { return resize(path); });  // any JSON-convertible type
//   ctx.step.sleep("cool-down", std::chrono::minutes(5));                 // holds no thread
//   ctx.step.run("save", [&] { save(sizes); });                           // void is fine too
//
// Step ids name the step in the journal. The same id may be used again (in a loop): the
// second occurrence in an execution gets the key "id:1", the third "id:2", and so on. Code
// outside steps runs again on every replay and must make the same step calls in the same
// order each time: put clocks, randomness and I/O inside steps.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/errors.hpp>
#include <durable/event.hpp>
#include <durable/runtime.hpp>

namespace durable {

class Step {
 public:
  explicit Step(Runtime& runtime) : runtime_(&runtime) {}
  Step(const Step&) = delete;
  Step& operator=(const Step&) = delete;

  // Runs `fn` once and records its result, or returns the result recorded earlier. The result
  // type is whatever `fn` returns (void, or any type nlohmann::json converts both ways, user
  // structs with to_json/from_json included). If `fn` throws, the step is retried on the
  // function's schedule (the execution unwinds and resumes later); once it has failed for
  // good, run() throws StepError. Throws UsageError for an empty id or one used by another
  // kind of step in this execution.
  template <class Fn>
  auto run(std::string_view id, Fn&& fn) -> std::decay_t<std::invoke_result_t<Fn&>> {
    return run(id, StepOptions{}, std::forward<Fn>(fn));
  }

  // The same, with options for this step only:
  //   ctx.step.run("charge", {.retries = 0}, [&] { return charge(card); });
  // Throws UsageError for negative retries.
  template <class Fn>
  auto run(std::string_view id, StepOptions options, Fn&& fn) -> std::decay_t<std::invoke_result_t<Fn&>> {
    using Result = std::decay_t<std::invoke_result_t<Fn&>>;
    if (options.retries && *options.retries < 0) {
      throw UsageError("step '" + std::string(id) + "': retries must not be negative");
    }
    StepStart start = runtime_->begin_step(id);
    start.retries = options.retries;
    if constexpr (std::is_void_v<Result>) {
      if (start.memo) return;
      try {
        std::invoke(fn);
      } catch (...) {
        runtime_->fail_step(start, std::current_exception());
      }
      runtime_->complete_step(start, nullptr);
    } else {
      if (start.memo) return start.memo->template get<Result>();
      std::optional<Result> result;
      try {
        result.emplace(std::invoke(fn));
      } catch (...) {
        runtime_->fail_step(start, std::current_exception());
      }
      // Outside the try: a lost lease while recording must unwind, not count as a failure.
      runtime_->complete_step(start, nlohmann::json(*result));
      return std::move(*result);
    }
  }

  // Pauses the run for `duration`, counted from the first time this sleep is reached (the
  // deadline is recorded; replays do not push it back). No thread is held while sleeping,
  // and the sleep survives restarts. Never wakes early.
  void sleep(std::string_view id, std::chrono::milliseconds duration) {
    runtime_->sleep_for(id, duration);
  }

  // Pauses the run until `until` (returns at once if it has passed).
  void sleep_until(std::string_view id, std::chrono::system_clock::time_point until) {
    runtime_->sleep_until(id, std::chrono::time_point_cast<std::chrono::milliseconds>(until));
  }

  // Sends events from the run, exactly once: they are stored in the same commit that records
  // the step, so a replay sends nothing again and returns the same ids. Every function they
  // trigger starts; waits they match resolve. Throws UsageError for an invalid event.
  //   ctx.step.send_event("fan-out", events);   // one run per event
  std::vector<std::string> send_event(std::string_view id, Event event) {
    std::vector<Event> events;
    events.push_back(std::move(event));
    return runtime_->send_events(id, std::move(events));
  }
  std::vector<std::string> send_event(std::string_view id, std::vector<Event> events) {
    return runtime_->send_events(id, std::move(events));
  }

  // Waits for an event, holding no thread: returns the first one that matches, or nothing
  // once `timeout` has passed. An event that arrives after the wait began counts, even if it
  // arrives before the wait is recorded.
  //   auto paid = ctx.step.wait_for_event("wait-for-payment",
  //       {.event = "invoice/paid", .match = "data.invoiceId", .timeout = std::chrono::hours(24 * 7)});
  //   if (!paid) ctx.step.run("remind", [&] { ... });
  std::optional<Event> wait_for_event(std::string_view id, WaitForEventOptions options) {
    return runtime_->wait_for_event(id, options);
  }

  // Runs another function (in its own run, on any worker) and waits for it, holding no
  // thread: returns its output, converted to T, or throws StepError with its error, or when
  // it has not finished within the timeout. The two runs name each other in the API.
  //   auto total = ctx.step.invoke<double>("price", {.function = "compute-price", .data = {{"sku", sku}}});
  template <class T = nlohmann::json>
  T invoke(std::string_view id, InvokeOptions options) {
    return runtime_->invoke(id, options).template get<T>();
  }

 private:
  Runtime* runtime_;
};

}  // namespace durable
