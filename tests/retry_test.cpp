// Retries: per step, on Inngest's schedule (or the function's), NonRetriableError,
// RetryAfterError, StepError reaching the function, failure handlers, and errors outside steps.
#include <atomic>
#include <mutex>

#include <doctest/doctest.h>

#include "engine/exec/retry_policy.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

TEST_SUITE("retry") {
  TEST_CASE("the default schedule is Inngest's: 15 s, 30 s, 1 m, 2 m, 5 m ... capped at 2 h, plus 0-30 s jitter") {
    Backoff backoff;  // the default
    const TimePoint now = from_millis(1'000'000);
    std::vector<std::chrono::milliseconds> expected = {15s, 30s, 1min, 2min, 5min, 10min, 20min, 40min, 1h, 2h, 2h, 2h};
    for (int attempt = 0; attempt < static_cast<int>(expected.size()); ++attempt) {
      for (int sample = 0; sample < 50; ++sample) {
        auto delay = next_attempt_at(backoff, attempt, now) - now;
        CHECK(delay >= expected[attempt]);
        CHECK(delay <= expected[attempt] + 30s);
      }
    }
    FunctionOptions options;
    CHECK(options.retries == 4);
  }

  TEST_CASE("RetryAfterError delays are clamped to [1 s, 24 h]") {
    const TimePoint now = from_millis(1'000'000);
    CHECK(retry_after_at(10ms, now) == now + 1s);
    CHECK(retry_after_at(90s, now) == now + 90s);
    CHECK(retry_after_at(48h, now) == now + 24h);
  }

  TEST_CASE("a failing step is retried on the schedule, then reaches the function as StepError and fails the run") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> attempts{0}, before{0};
    std::vector<int> seen_attempts;
    std::mutex mu;
    engine.function({.id = "flaky"}, on_event("test/flaky"), [&](Context& ctx) {
      {
        std::lock_guard lock(mu);
        seen_attempts.push_back(ctx.attempt);
      }
      ctx.step.run("before", [&] { return ++before; });
      ctx.step.run("charge", [&]() -> int {
        ++attempts;
        throw std::runtime_error("card service down");
      });
    });
    engine.start();
    auto event_id = engine.send({.name = "test/flaky"});
    REQUIRE(engine.drain());

    // Default: 4 retries after the first attempt, at 15 s, 30 s, 1 m and 2 m (+ up to 30 s).
    std::vector<std::chrono::milliseconds> delays = {15s, 30s, 1min, 2min};
    for (size_t i = 0; i < delays.size(); ++i) {
      Run waiting = only_run(engine, event_id);
      REQUIRE(waiting.status == RunStatus::queued);
      CHECK(attempts == static_cast<int>(i) + 1);
      auto delay = waiting.available_at - clock->now();
      CHECK(delay >= delays[i]);
      CHECK(delay <= delays[i] + 30s);
      advance(engine, *clock, delays[i] - 1ms);
      CHECK(attempts == static_cast<int>(i) + 1);  // never early
      advance(engine, *clock, 31s);
    }
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::failed);
    CHECK(attempts == 5);
    CHECK(before == 1);  // memoized across every retry
    CHECK(run.error["step"] == "charge");
    CHECK(run.error["message"] == "card service down");
    CHECK(run.error["name"] == "std::runtime_error");
    CHECK(seen_attempts == std::vector<int>{0, 1, 2, 3, 4});

    auto failures = entries_of(read_journal(dir.file("t.db"), run.id), JournalKind::step_failed);
    REQUIRE(failures.size() == 5);
    CHECK(failures[4].attempt == 4);
    CHECK(nlohmann::json::parse(failures[4].payload)["final"] == true);
  }

  TEST_CASE("NonRetriableError fails the step at once") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> attempts{0};
    engine.function({.id = "declined", .retries = 10}, on_event("test/declined"), [&](Context& ctx) {
      ctx.step.run("charge", [&]() -> int {
        ++attempts;
        throw NonRetriableError("card declined");
      });
    });
    engine.start();
    auto event_id = engine.send({.name = "test/declined"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::failed);
    CHECK(attempts == 1);
    CHECK(run.error["message"] == "card declined");
    CHECK(run.error["name"] == "durable::NonRetriableError");
  }

  TEST_CASE("RetryAfterError retries at now + the given delay, clamped") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> attempts{0};
    engine.function({.id = "limited"}, on_event("test/limited"), [&](Context& ctx) {
      return ctx.step.run("call-api", [&] {
        if (++attempts == 1) throw RetryAfterError("rate limited", 90s);
        if (attempts == 2) throw RetryAfterError("rate limited harder", 100h);
        return attempts.load();
      });
    });
    engine.start();
    auto event_id = engine.send({.name = "test/limited"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).available_at == clock->now() + 90s);
    advance(engine, *clock, 90s);
    CHECK(attempts == 2);
    CHECK(only_run(engine, event_id).available_at == clock->now() + 24h);
    advance(engine, *clock, 24h);
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == 3);
  }

  TEST_CASE("a function may catch StepError and go on; replay throws it again without running the step") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> sms_attempts{0};
    engine.function({.id = "notify", .retries = 1, .backoff = fast_backoff()}, on_event("test/notify"), [&](Context& ctx) {
      std::string outcome;
      try {
        ctx.step.run("sms", [&]() -> int {
          ++sms_attempts;
          throw std::runtime_error("no signal");
        });
      } catch (const StepError& e) {
        outcome = e.step_id() + ": " + e.what() + " (" + e.error_name() + ")";
      }
      ctx.step.sleep("later", 1h);  // forces a replay through the failed step
      ctx.step.run("email", [] { return 1; });
      return outcome;
    });
    engine.start();
    auto event_id = engine.send({.name = "test/notify"});
    REQUIRE(engine.drain());
    advance(engine, *clock, 1s);  // the one retry
    CHECK(sms_attempts == 2);
    CHECK(only_run(engine, event_id).status == RunStatus::sleeping);
    advance(engine, *clock, 1h);
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == "sms: no signal (std::runtime_error)");
    CHECK(sms_attempts == 2);
  }

  TEST_CASE("retries = 0 fails on the first error") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> attempts{0};
    engine.function({.id = "once", .retries = 0}, on_event("test/once"), [&](Context& ctx) {
      ctx.step.run("try", [&]() -> int {
        ++attempts;
        throw std::runtime_error("nope");
      });
    });
    engine.start();
    auto event_id = engine.send({.name = "test/once"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).status == RunStatus::failed);
    CHECK(attempts == 1);
  }

  TEST_CASE("a step's own retries override the function's, both ways") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> charges{0}, emails{0};
    engine.function({.id = "pay", .retries = 4, .backoff = fast_backoff()}, on_event("test/pay"), [&](Context& ctx) {
      ctx.step.run("charge", {.retries = 0}, [&]() -> int {
        ++charges;
        throw std::runtime_error("declined");
      });
    });
    engine.function({.id = "notify", .retries = 0, .backoff = fast_backoff()}, on_event("test/notify"), [&](Context& ctx) {
      ctx.step.run("email", {.retries = 2}, [&] {
        if (++emails < 3) throw std::runtime_error("smtp down");
      });
    });
    engine.function({.id = "bad"}, on_event("test/bad"), [&](Context& ctx) {
      ctx.step.run("x", {.retries = -1}, [] { return 1; });
    });
    engine.start();
    auto pay = engine.send({.name = "test/pay"});
    auto notify = engine.send({.name = "test/notify"});
    auto bad = engine.send({.name = "test/bad"});
    REQUIRE(engine.drain());
    for (int i = 0; i < 3; ++i) advance(engine, *clock, std::chrono::seconds(1));
    CHECK(only_run(engine, pay).status == RunStatus::failed);
    CHECK(charges == 1);  // no retry, though the function allows 4
    CHECK(only_run(engine, notify).status == RunStatus::completed);
    CHECK(emails == 3);   // 2 retries, though the function allows none
    Run failed = only_run(engine, bad);
    CHECK(failed.status == RunStatus::failed);
    CHECK(failed.error.value("message", "").find("retries must not be negative") != std::string::npos);
  }

  TEST_CASE("on_failure runs durably with the event and the error once a run fails for good") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::mutex mu;
    std::optional<Failure> received;
    nlohmann::json received_data;
    std::atomic<int> alert_steps{0};
    engine.function({.id = "invoice",
                     .retries = 0,
                     .on_failure = [&](Context& ctx, const Failure& failure) {
                       ctx.step.run("alert", [&] { return ++alert_steps; });
                       std::lock_guard lock(mu);
                       received = failure;
                       received_data = ctx.event.data;
                     }},
                    on_event("invoice/created"), [](Context& ctx) {
                      ctx.step.run("send", []() -> int { throw std::runtime_error("smtp refused"); });
                    });
    engine.start();
    auto event_id = engine.send({.name = "invoice/created", .data = {{"invoice", 7}}});
    REQUIRE(engine.drain());

    auto runs = engine.runs_for_event(event_id);
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].function_id == "invoice");
    CHECK(runs[0].status == RunStatus::failed);
    CHECK(runs[1].function_id == "invoice-failure");
    CHECK(runs[1].status == RunStatus::completed);
    REQUIRE(received);
    CHECK(received->run_id == runs[0].id);
    CHECK(received->function_id == "invoice");
    CHECK(received->step_id == "send");
    CHECK(received->message == "smtp refused");
    CHECK(received_data == nlohmann::json{{"invoice", 7}});
    CHECK(alert_steps == 1);
  }

  TEST_CASE("an error thrown outside any step retries the body on the same schedule") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> calls{0}, step_runs{0};
    engine.function({.id = "body", .retries = 2, .backoff = fast_backoff()}, on_event("test/body"), [&](Context& ctx) {
      ctx.step.run("first", [&] { return ++step_runs; });
      if (++calls < 3) throw std::runtime_error("config not loaded");
      return calls.load();
    });
    engine.start();
    auto event_id = engine.send({.name = "test/body"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).status == RunStatus::queued);
    advance(engine, *clock, 1s);
    advance(engine, *clock, 1s);
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == 3);
    CHECK(step_runs == 1);
    CHECK(entries_of(read_journal(dir.file("t.db"), run.id), JournalKind::body_failed).size() == 2);
  }

  TEST_CASE("a body that keeps throwing fails the run after its retries") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> calls{0};
    engine.function({.id = "broken", .retries = 1, .backoff = fast_backoff()}, on_event("test/broken"), [&](Context&) -> int {
      ++calls;
      throw std::logic_error("bug");
    });
    engine.start();
    auto event_id = engine.send({.name = "test/broken"});
    REQUIRE(engine.drain());
    advance(engine, *clock, 1s);
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::failed);
    CHECK(calls == 2);
    CHECK(run.error["name"] == "std::logic_error");
    CHECK_FALSE(run.error.contains("step"));
  }
}
