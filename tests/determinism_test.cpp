// Nondeterminism: a replay that reaches the journal's steps in another order, or new steps
// where recorded ones should be, fails the run with the expected and actual step keys instead
// of handing memoized results to the wrong calls.
#include <atomic>
#include <functional>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// Runs version 1 of function "order" until it sleeps, then replays it with version 2 (a
// deploy while the run slept) and returns the run.
Run replay_with(const std::function<void(Context&)>& v1, const std::function<void(Context&)>& v2) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>();
  std::string event_id;
  {
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "order"}, on_event("order/placed"), v1);
    engine.start();
    event_id = engine.send({.name = "order/placed"});
    REQUIRE(engine.drain());
    REQUIRE(only_run(engine, event_id).status == RunStatus::sleeping);
  }
  Engine engine(engine_options(dir.file("t.db"), clock));
  engine.function({.id = "order"}, on_event("order/placed"), v2);
  engine.start();
  advance(engine, *clock, 1h);
  return only_run(engine, event_id);
}

}  // namespace

TEST_SUITE("determinism") {
  auto v1 = [](Context& ctx) {
    ctx.step.run("reserve", [] { return 1; });
    ctx.step.run("charge", [] { return 2; });
    ctx.step.sleep("wait", 1h);
    ctx.step.run("ship", [] { return 3; });
  };

  TEST_CASE("steps reached in another order than recorded fail the run, naming both keys, running no body") {
    std::atomic<int> bodies{0};
    Run run = replay_with(v1, [&](Context& ctx) {
      ctx.step.run("charge", [&] { return ++bodies; });
      ctx.step.run("reserve", [&] { return ++bodies; });
      ctx.step.sleep("wait", 1h);
      ctx.step.run("ship", [&] { return ++bodies; });
    });
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error["name"] == "NondeterminismError");
    CHECK(run.error["expected"] == "reserve");
    CHECK(run.error["actual"] == "charge");
    CHECK(run.error["message"] ==
          "nondeterminism: the journal has step 'reserve' next, but the function reached step 'charge', which the "
          "journal has later: the steps are taken in another order than recorded");
    CHECK(bodies == 0);
  }

  TEST_CASE("a recorded step that no longer appears while a new one does fails the run") {
    std::atomic<int> bodies{0};
    Run run = replay_with(v1, [&](Context& ctx) {
      ctx.step.run("reserve", [&] { return ++bodies; });
      ctx.step.run("charge-card", [&] { return ++bodies; });  // renamed
      ctx.step.sleep("wait", 1h);
      ctx.step.run("ship", [&] { return ++bodies; });
    });
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error["expected"] == "charge");
    CHECK(run.error["actual"] == "charge-card");
    CHECK(run.error["message"].get<std::string>().find("which the journal does not have") != std::string::npos);
    CHECK(bodies == 0);
  }

  TEST_CASE("a step whose kind changed fails the run") {
    Run run = replay_with(v1, [](Context& ctx) {
      ctx.step.run("reserve", [] { return 1; });
      ctx.step.sleep("charge", 1min);
    });
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error["message"] == "nondeterminism: step 'charge' is a step.run or step.send_event in the journal but a step.sleep in the function");
  }

  TEST_CASE("new steps after the recorded ones, and changed code between steps, replay fine") {
    std::atomic<int> bodies{0};
    Run run = replay_with(v1, [&](Context& ctx) {
      ctx.step.run("reserve", [&] { return ++bodies; });
      ctx.step.run("charge", [&] { return ++bodies; });
      ctx.step.sleep("wait", 1h);
      ctx.step.run("ship", [&] { return ++bodies; });
      ctx.step.run("notify", [&] { return ++bodies; });  // new
    });
    CHECK(run.status == RunStatus::completed);
    CHECK(bodies == 2);  // ship and notify: the others are memoized
  }
}

#include <httplib.h>

TEST_SUITE("determinism") {
  TEST_CASE("verify replays stored runs against the code without running a body, and reports those that diverge") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    std::vector<std::string> events;
    {
      Engine engine(engine_options(dir.file("t.db"), clock));
      engine.function({.id = "order"}, on_event("order/placed"), [](Context& ctx) {
        ctx.step.run("reserve", [] { return 1; });
        if (ctx.event.data.value("express", false)) ctx.step.run("charge", [] { return 2; });
        ctx.step.sleep("wait", 1h);
      });
      engine.start();
      events.push_back(engine.send({.name = "order/placed", .data = {{"express", true}}}));
      events.push_back(engine.send({.name = "order/placed"}));
      REQUIRE(engine.drain());
    }
    // The new version renames "charge": the express order's run would diverge, the other not.
    std::atomic<int> bodies{0};
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "order"}, on_event("order/placed"), [&](Context& ctx) {
      ctx.step.run("reserve", [&] { return ++bodies; });
      if (ctx.event.data.value("express", false)) ctx.step.run("charge-card", [&] { return ++bodies; });
      ctx.step.sleep("wait", 1h);
      ctx.step.run("ship", [&] { return ++bodies; });
    });
    engine.function({.id = "other"}, on_event("x/y"), [](Context&) {});
    VerifyReport report = engine.verify("order");  // before start(): nothing executes
    CHECK(report.checked == 2);
    REQUIRE(report.diverged.size() == 1);
    CHECK(report.diverged[0].run_id == only_run(engine, events[0]).id);
    CHECK(report.diverged[0].expected == "charge");
    CHECK(report.diverged[0].actual == "charge-card");
    CHECK(report.diverged[0].status == RunStatus::sleeping);
    CHECK(bodies == 0);
    CHECK(only_run(engine, events[1]).status == RunStatus::sleeping);  // nothing written
    CHECK_THROWS_WITH_AS(engine.verify("nope"), doctest::Contains("function 'nope' is not registered in this process"), Error);

    // The same over HTTP, as `durable verify --function order` asks it.
    int port = engine.listen({.port = 0, .event_keys = {"ek"}, .api_keys = {"ak"}});
    httplib::Client http("127.0.0.1", port);
    httplib::Headers auth{{"Authorization", "Bearer ak"}};
    auto answer = http.Post("/v1/functions/order/verify", auth, "", "application/json");
    REQUIRE(answer);
    CHECK(answer->status == 200);
    auto body = nlohmann::json::parse(answer->body);
    CHECK(body["checked"] == 2);
    CHECK(body["diverged"][0]["expected"] == "charge");
    CHECK(body["diverged"][0]["message"].get<std::string>().find("which the journal does not have") != std::string::npos);
    CHECK(http.Post("/v1/functions/unknown/verify", auth, "", "application/json")->status == 404);
    CHECK(http.Post("/v1/functions/order/verify?limit=0", auth, "", "application/json")->status == 400);
    engine.stop();
  }
}
