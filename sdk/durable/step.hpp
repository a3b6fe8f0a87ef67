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
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/errors.hpp>
#include <durable/event.hpp>
#include <durable/runtime.hpp>

namespace durable {

namespace detail {

// What a step body's result is stored as: void becomes null.
template <class R>
using ResultOf = std::conditional_t<std::is_void_v<R>, std::nullptr_t, std::decay_t<R>>;
template <class Fn>
using StepResult = ResultOf<std::invoke_result_t<Fn&>>;

// A body as the runtime takes it: returning its result as JSON. It refers to `fn`, which
// outlives it: run_parallel returns only once every body has ended.
template <class Fn>
std::function<nlohmann::json()> erase(Fn& fn) {
  return [&fn]() -> nlohmann::json {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn&>>) {
      std::invoke(fn);
      return nullptr;
    } else {
      return nlohmann::json(std::invoke(fn));
    }
  };
}

template <class Tuple, size_t... I>
Tuple unpack(const std::vector<std::optional<nlohmann::json>>& outputs, std::index_sequence<I...>) {
  return Tuple{outputs[I]->template get<std::tuple_element_t<I, Tuple>>()...};
}

}  // namespace detail

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

  // Runs step bodies at once on the engine's worker pool and returns all their results, in
  // order, as a tuple. Each body is a step of its own, "id[0]", "id[1]", ..., recorded as
  // soon as it finishes, so a replay after a crash runs only those that had not. Bodies must
  // not take steps themselves (use invoke for a sub-workflow). If one fails, the others still
  // finish and are recorded, and the failed one is retried like a step.
  //   auto [profile, orders] = ctx.step.run_all("load",
  //       [&] { return fetch_profile(id); }, [&] { return fetch_orders(id); });
  template <class... Fns>
  auto run_all(std::string_view id, Fns&&... fns) -> std::tuple<detail::StepResult<Fns>...> {
    auto outputs = runtime_->run_parallel(id, {detail::erase(fns)...}, false);
    return detail::unpack<std::tuple<detail::StepResult<Fns>...>>(outputs, std::index_sequence_for<Fns...>{});
  }

  // The same over a list: fn(item) for every item, at once, as steps "id[0]", "id[1]", ...
  //   auto thumbnails = ctx.step.run_each("resize", sizes, [&](int size) { return resize(path, size); });
  template <class Items, class Fn>
  auto run_each(std::string_view id, const Items& items, Fn&& fn) {
    using Item = typename Items::value_type;
    using Result = detail::ResultOf<std::invoke_result_t<Fn&, const Item&>>;
    std::vector<std::function<nlohmann::json()>> bodies;
    for (const Item& item : items) {
      bodies.push_back([&fn, &item]() -> nlohmann::json {
        if constexpr (std::is_void_v<std::invoke_result_t<Fn&, const Item&>>) {
          std::invoke(fn, item);
          return nullptr;
        } else {
          return nlohmann::json(std::invoke(fn, item));
        }
      });
    }
    std::vector<Result> results;
    for (auto& output : runtime_->run_parallel(id, std::move(bodies), false)) results.push_back(output->template get<Result>());
    return results;
  }

  // Runs the bodies at once and picks the first to complete: returns its index and result.
  // Only the winner is recorded; the others' results are dropped. (A running C++ function
  // cannot be stopped, so the call returns when every body has ended.) All bodies must return
  // the same type. On replay, the recorded winner is returned and nothing runs.
  //   auto [which, quote] = ctx.step.run_first("quote", [&] { return quote_a(); }, [&] { return quote_b(); });
  template <class Fn, class... Fns>
  auto run_first(std::string_view id, Fn&& fn, Fns&&... fns) -> std::pair<size_t, detail::StepResult<Fn>> {
    static_assert((std::is_same_v<detail::StepResult<Fn>, detail::StepResult<Fns>> && ...),
                  "run_first: every body must return the same type");
    auto outputs = runtime_->run_parallel(id, {detail::erase(fn), detail::erase(fns)...}, true);
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i]) return {i, outputs[i]->template get<detail::StepResult<Fn>>()};
    }
    throw UsageError("run_first: no body completed");  // not reached: the runtime throws first
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
