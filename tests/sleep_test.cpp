// Sleeps: the deadline is journaled, never fires early, holds no thread, survives restarts.
#include <atomic>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

TEST_SUITE("sleep") {
  TEST_CASE("the deadline is recorded in the journal and the sleep never fires early") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> after{0};
    engine.function({.id = "nap"}, on_event("test/nap"), [&](Context& ctx) {
      ctx.step.sleep("cool-down", 5min);
      ctx.step.run("after", [&] { return ++after; });
    });
    engine.start();
    TimePoint start = clock->now();
    auto event_id = engine.send({.name = "test/nap"});
    REQUIRE(engine.drain());

    Run sleeping = only_run(engine, event_id);
    CHECK(sleeping.status == RunStatus::sleeping);
    CHECK(sleeping.available_at == start + 5min);
    auto sleeps = entries_of(read_journal(dir.file("t.db"), sleeping.id), JournalKind::sleep_scheduled);
    REQUIRE(sleeps.size() == 1);
    CHECK(sleeps[0].step_key == "cool-down");
    CHECK(nlohmann::json::parse(sleeps[0].payload)["until"] == to_millis(start + 5min));

    advance(engine, *clock, 5min - 1ms);
    CHECK(after == 0);
    CHECK(only_run(engine, event_id).status == RunStatus::sleeping);
    advance(engine, *clock, 1ms);
    CHECK(after == 1);
    CHECK(only_run(engine, event_id).status == RunStatus::completed);
  }

  TEST_CASE("a sleeping run holds no thread") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    EngineOptions options = engine_options(dir.file("t.db"), clock);
    options.workers = 1;
    Engine engine(options);
    engine.function({.id = "nap"}, on_event("test/nap"), [](Context& ctx) {
      ctx.step.sleep("long", 24h);
      return 1;
    });
    engine.function({.id = "quick"}, on_event("test/quick"), [](Context& ctx) {
      return ctx.step.run("now", [] { return 2; });
    });
    engine.start();
    std::vector<std::string> sleepers;
    for (int i = 0; i < 20; ++i) sleepers.push_back(engine.send({.name = "test/nap"}));
    auto quick = engine.send({.name = "test/quick"});
    REQUIRE(engine.drain());
    // One worker thread, twenty runs asleep, and the quick run still went through.
    CHECK(only_run(engine, quick).status == RunStatus::completed);
    for (auto& id : sleepers) CHECK(only_run(engine, id).status == RunStatus::sleeping);
    advance(engine, *clock, 24h);
    for (auto& id : sleepers) CHECK(only_run(engine, id).status == RunStatus::completed);
  }

  TEST_CASE("a sleep still fires after a restart, at the deadline recorded before it") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    std::atomic<int> first{0}, after{0};
    auto define = [&](Engine& engine) {
      engine.function({.id = "nap"}, on_event("test/nap"), [&](Context& ctx) {
        ctx.step.run("first", [&] { return ++first; });
        ctx.step.sleep("wait", 10min);
        ctx.step.run("after", [&] { return ++after; });
      });
    };
    std::string event_id;
    {
      Engine engine(engine_options(dir.file("t.db"), clock));
      define(engine);
      engine.start();
      event_id = engine.send({.name = "test/nap"});
      REQUIRE(engine.drain());
      CHECK(only_run(engine, event_id).status == RunStatus::sleeping);
    }  // the process goes away mid-sleep
    clock->advance(4min);
    Engine engine(engine_options(dir.file("t.db"), clock));
    define(engine);
    engine.start();
    REQUIRE(engine.drain());
    CHECK(after == 0);
    // Replaying after the restart must not push the deadline back to now + 10 min.
    advance(engine, *clock, 6min);
    CHECK(only_run(engine, event_id).status == RunStatus::completed);
    CHECK(first == 1);
    CHECK(after == 1);
  }

  TEST_CASE("sleep_until a time that has passed returns at once; one in the future suspends until then") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "until"}, on_event("test/until"), [&](Context& ctx) {
      ctx.step.sleep_until("past", clock->now() - 1h);
      auto wake = ctx.step.run("deadline", [&] { return to_millis(clock->now() + 2h); });
      ctx.step.sleep_until("future", from_millis(wake));
      return 1;
    });
    engine.start();
    auto event_id = engine.send({.name = "test/until"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::sleeping);
    CHECK(run.available_at == clock->now() + 2h);
    advance(engine, *clock, 2h);
    CHECK(only_run(engine, event_id).status == RunStatus::completed);
  }
}
