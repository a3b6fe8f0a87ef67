// on_cron: each tick starts one run, with several engines on one database and across
// restarts; after downtime the latest missed tick runs once; schedules are checked at
// registration.
#include <doctest/doctest.h>

#include "engine/http/api_json.hpp"
#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

const TimePoint kStart = ManualClock().now();  // 2030-01-01T00:00:00Z, a Tuesday

// The runs of `function_id`, oldest first, as the tick times of their events.
std::vector<TimePoint> ticks_of(const std::string& db, const std::string& function_id) {
  auto store_owner = open_store(db, {});
  Store& store = *store_owner;
  auto runs = store.list_runs(RunFilter{.function_id = function_id}, 1000, "");
  std::vector<TimePoint> ticks;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    auto event = store.find_event(it->event_id);
    REQUIRE(event);
    CHECK(event->event.name == kCronEvent);
    ticks.push_back(event->event.ts);
  }
  return ticks;
}

void define_report(Engine& engine, const std::string& schedule = "*/15 * * * *") {
  engine.function({.id = "report"}, on_cron(schedule), [](Context& ctx) {
    return ctx.step.run("build", [&] { return ctx.event.data.at("cron"); });
  });
}

}  // namespace

TEST_SUITE("cron_trigger") {
  TEST_CASE("each tick starts one run whose event carries the tick; a new schedule does not fire its past tick") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>(kStart + 1min);
    Engine engine(engine_options(dir.file("t.db"), clock));
    define_report(engine);
    engine.start();
    REQUIRE(engine.drain());
    CHECK(ticks_of(dir.file("t.db"), "report").empty());  // 00:00 passed before it existed
    advance(engine, *clock, 14min - 1ms);
    CHECK(ticks_of(dir.file("t.db"), "report").empty());
    advance(engine, *clock, 1ms);
    CHECK(ticks_of(dir.file("t.db"), "report") == std::vector<TimePoint>{kStart + 15min});
    advance(engine, *clock, 15min);
    auto ticks = ticks_of(dir.file("t.db"), "report");
    CHECK(ticks == std::vector<TimePoint>{kStart + 15min, kStart + 30min});
    auto store_owner = open_store(dir.file("t.db"), {});
    Store& store = *store_owner;
    for (const Run& run : store.list_runs(RunFilter{.function_id = "report"}, 10, "")) {
      CHECK(run.status == RunStatus::completed);
      CHECK(run.output == "*/15 * * * *");
    }
  }

  TEST_CASE("with two engines on one database, each tick still starts one run") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>(kStart + 1min);
    Engine a(engine_options(dir.file("t.db"), clock));
    Engine b(engine_options(dir.file("t.db"), clock));
    define_report(a);
    define_report(b);
    a.start();
    b.start();
    for (int i = 0; i < 4; ++i) {
      clock->advance(15min);
      REQUIRE(a.drain());
      REQUIRE(b.drain());
    }
    CHECK(ticks_of(dir.file("t.db"), "report") ==
          std::vector<TimePoint>{kStart + 15min, kStart + 30min, kStart + 45min, kStart + 60min});
  }

  TEST_CASE("after downtime the most recent missed tick runs once, and a restart fires nothing twice") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>(kStart + 1min);
    {
      Engine engine(engine_options(dir.file("t.db"), clock));
      define_report(engine);
      engine.start();
      advance(engine, *clock, 14min);
    }
    clock->advance(2h);  // 8 ticks while nothing runs
    {
      Engine engine(engine_options(dir.file("t.db"), clock));
      define_report(engine);
      engine.start();
      REQUIRE(engine.drain());
    }
    std::vector<TimePoint> expected{kStart + 15min, kStart + 2h + 15min};
    CHECK(ticks_of(dir.file("t.db"), "report") == expected);
    Engine engine(engine_options(dir.file("t.db"), clock));
    define_report(engine);
    engine.start();
    REQUIRE(engine.drain());
    CHECK(ticks_of(dir.file("t.db"), "report") == expected);
  }

  TEST_CASE("a schedule in a time zone ticks at its local time") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>(kStart);
    Engine engine(engine_options(dir.file("t.db"), clock));
    define_report(engine, "TZ=Europe/Paris 0 8 * * *");
    engine.start();
    advance(engine, *clock, 7h - 1ms);  // 07:59:59.999 in Paris (UTC+1 in winter)
    CHECK(ticks_of(dir.file("t.db"), "report").empty());
    advance(engine, *clock, 1ms);
    CHECK(ticks_of(dir.file("t.db"), "report") == std::vector<TimePoint>{kStart + 7h});
  }

  TEST_CASE("an invalid schedule is refused at registration, with the reason; valid ones are listed with the triggers") {
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<ManualClock>()));
    CHECK_THROWS_WITH_AS(define_report(engine, "61 * * * *"),
                         "function 'report': the cron schedule '61 * * * *' is invalid: minute field: 61 is out of range 0-59",
                         Error);
    CHECK_THROWS_WITH_AS(engine.function({.id = "both"}, Trigger{.event = "a/b", .cron = "* * * * *"}, [](Context&) {}),
                         "function 'both': a trigger has both a cron schedule and an event", Error);
    engine.function({.id = "digest"}, {on_cron("TZ=Europe/Paris 0 8 * * MON-FRI"), on_event("digest/now")}, [](Context&) {});
    engine.start();
    auto store_owner = open_store(dir.file("t.db"), {});
    Store& store = *store_owner;
    auto functions = store.list_functions();
    REQUIRE(functions.size() == 1);
    nlohmann::json listed = function_json(functions[0]);
    CHECK(listed["triggers"] == nlohmann::json::parse(R"([{"cron":"TZ=Europe/Paris 0 8 * * MON-FRI"},{"event":"digest/now"}])"));
    CHECK_FALSE(listed.contains("cron"));
  }
}
