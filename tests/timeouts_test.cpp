// FunctionOptions::timeouts: a run not started in time is cancelled; one not finished in time
// fails with a TimeoutError, and its failure handler runs.
#include <atomic>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

TEST_SUITE("timeouts") {
  TEST_CASE("a run that no worker started within the start timeout is cancelled without running") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> bodies{0};
    engine.function({.id = "report", .timeouts = {.start = 10min}}, on_event("report/requested"), [&](Context& ctx) {
      ++bodies;
      return ctx.event.data.at("n");
    });
    // Sent while no worker runs (before start): one waits too long, one does not.
    auto late = engine.send({.name = "report/requested", .data = {{"n", 1}}});
    clock->advance(10min - 1ms);
    auto in_time = engine.send({.name = "report/requested", .data = {{"n", 2}}});
    clock->advance(2ms);
    engine.start();
    REQUIRE(engine.drain());
    Run cancelled = only_run(engine, late);
    CHECK(cancelled.status == RunStatus::cancelled);
    auto journal = read_journal(dir.file("t.db"), cancelled.id);
    auto entries = entries_of(journal, JournalKind::run_cancelled);
    REQUIRE(entries.size() == 1);
    CHECK(nlohmann::json::parse(entries[0].payload)["reason"] == "start timeout");
    CHECK(only_run(engine, in_time).output == 2);
    CHECK(bodies == 1);
  }

  TEST_CASE("a run not finished within the finish timeout fails with a TimeoutError at its deadline; its failure handler runs") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> after{0}, handled{0};
    std::string handled_error;
    engine.function({.id = "slow", .on_failure = [&](Context&, const Failure& f) { handled_error = f.error_name; ++handled; },
                     .timeouts = {.finish = 1h}},
                    on_event("test/slow"), [&](Context& ctx) {
                      ctx.step.run("first", [] { return 1; });
                      ctx.step.sleep("nap", std::chrono::milliseconds(ctx.event.data.at("nap_ms").get<int64_t>()));
                      ctx.step.run("after", [&] { return ++after; });
                    });
    engine.start();
    auto quick = engine.send({.name = "test/slow", .data = {{"nap_ms", 30 * 60 * 1000}}});
    auto slow = engine.send({.name = "test/slow", .data = {{"nap_ms", 2 * 60 * 60 * 1000}}});
    REQUIRE(engine.drain());
    advance(engine, *clock, 30min);
    CHECK(only_run(engine, quick).status == RunStatus::completed);
    // The sleeping run is woken at the deadline, not at the end of its sleep.
    Run sleeping = only_run(engine, slow);
    CHECK(sleeping.status == RunStatus::sleeping);
    CHECK(sleeping.available_at == sleeping.started_at.value() + 1h);
    advance(engine, *clock, 30min - 1ms);
    CHECK(only_run(engine, slow).status == RunStatus::sleeping);
    advance(engine, *clock, 1ms);
    auto runs = engine.runs_for_event(slow);  // the run and its failure handler's
    REQUIRE(runs.size() == 2);
    Run failed = runs[0];
    CHECK(failed.status == RunStatus::failed);
    CHECK(failed.error.at("name") == "TimeoutError");
    CHECK(failed.error.at("message") == "the run did not finish within its finish timeout of 3600000 ms");
    CHECK(after == 1);  // only the quick run's
    CHECK(handled == 1);
    CHECK(handled_error == "TimeoutError");
  }

  TEST_CASE("negative timeouts are refused at registration") {
    Engine engine(engine_options(":memory:", std::make_shared<ManualClock>()));
    CHECK_THROWS_WITH_AS(engine.function({.id = "f", .timeouts = {.finish = -1ms}}, on_event("x"), [](Context&) {}),
                         "function 'f': timeouts must not be negative (0: none)", Error);
  }
}
