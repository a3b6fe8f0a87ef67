// step.send_event and step.invoke: events sent from a run exactly once; a run of another
// function awaited without a thread, its output or error returned, the two runs linked.
#include <atomic>

#include <doctest/doctest.h>

#include "engine/http/api_json.hpp"
#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

TEST_SUITE("send_event") {
  TEST_CASE("send_event starts every function the events trigger, returns their ids, and a replay sends nothing again") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> flaky{0}, greeted{0}, audited{0};
    std::vector<std::string> first_ids, last_ids;
    engine.function({.id = "fan-out", .retries = 2, .backoff = fast_backoff()}, on_event("digest/start"), [&](Context& ctx) {
      std::vector<Event> events;
      for (std::string user : {"ann", "bob", "cy"}) events.push_back({.name = "digest/user", .data = {{"user", user}}});
      auto ids = ctx.step.send_event("send-digests", events);
      if (first_ids.empty()) first_ids = ids;
      last_ids = ids;
      // Fails once after the send: the retry replays the send from the journal.
      ctx.step.run("flaky", [&] {
        if (++flaky == 1) throw std::runtime_error("once");
      });
      return ids.size();
    });
    engine.function({.id = "greet"}, on_event("digest/user"), [&](Context& ctx) {
      ctx.step.run("greet", [&] { return ++greeted; });
    });
    engine.function({.id = "audit"}, on_event("digest/*"), [&](Context&) { ++audited; });
    engine.start();
    auto start = engine.send({.name = "digest/start"});
    REQUIRE(engine.drain());
    advance(engine, *clock, 1s);  // the retry
    auto runs = engine.runs_for_event(start);
    REQUIRE(runs.size() == 2);  // fan-out and audit
    Run run = runs[0].function_id == "fan-out" ? runs[0] : runs[1];
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == 3);
    CHECK(flaky == 2);
    REQUIRE(first_ids.size() == 3);
    CHECK(last_ids == first_ids);
    CHECK(greeted == 3);
    CHECK(audited == 4);  // digest/start and the three digest/user
    for (const auto& id : first_ids) {
      auto runs = engine.runs_for_event(id);
      CHECK(runs.size() == 2);  // greet and audit
    }
  }

  TEST_CASE("an invalid event fails the step's run, naming the step and the event, and sends nothing") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> received{0};
    engine.function({.id = "sender"}, on_event("test/send"), [&](Context& ctx) {
      ctx.step.send_event("bad", std::vector<Event>{{.name = "test/ok"}, {.name = ""}});
    });
    engine.function({.id = "receiver"}, on_event("test/ok"), [&](Context&) { ++received; });
    engine.start();
    auto id = engine.send({.name = "test/send"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, id);
    CHECK(run.status == RunStatus::failed);
    std::string message = run.error.at("message");
    CHECK(message.find("step 'bad'") != std::string::npos);
    CHECK(message.find("event 1") != std::string::npos);
    CHECK(received == 0);
  }

  TEST_CASE("a sent event with a sender id is deduplicated like an ingested one") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> received{0};
    engine.function({.id = "sender"}, on_event("test/send"), [&](Context& ctx) {
      ctx.step.send_event("notify", Event{.id = "order-1-shipped", .name = "order/shipped"});
    });
    engine.function({.id = "receiver"}, on_event("order/shipped"), [&](Context&) { ++received; });
    engine.start();
    engine.send({.name = "test/send"});
    engine.send({.name = "test/send"});
    REQUIRE(engine.drain());
    CHECK(received == 1);
  }
}

TEST_SUITE("invoke") {
  TEST_CASE("invoke runs the other function and returns its output; the runs name each other") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> before{0};
    engine.function({.id = "checkout"}, on_event("shop/checkout"), [&](Context& ctx) {
      ctx.step.run("before", [&] { return ++before; });
      double total = ctx.step.invoke<double>("price", {.function = "compute-price", .data = {{"qty", 3}}});
      return total * 2;
    });
    engine.function({.id = "compute-price"}, on_event("shop/never"), [&](Context& ctx) {
      CHECK(ctx.event.name == kFunctionInvokedEvent);
      int qty = ctx.event.data.at("qty");
      return ctx.step.run("multiply", [&] { return qty * 1.5; });
    });
    engine.start();
    auto id = engine.send({.name = "shop/checkout"});
    REQUIRE(engine.drain());
    Run parent = only_run(engine, id);
    CHECK(parent.status == RunStatus::completed);
    CHECK(parent.output == 9.0);
    CHECK(before == 1);

    auto journal = read_journal(dir.file("t.db"), parent.id);
    nlohmann::json steps = steps_json(journal, clock->now());
    REQUIRE(steps.size() == 2);
    CHECK(steps[1]["kind"] == "invoke");
    CHECK(steps[1]["status"] == "completed");
    CHECK(steps[1]["output"] == 4.5);
    std::string child_id = steps[1]["invoked_run_id"];
    std::optional<Run> child = engine.get_run(child_id);
    REQUIRE(child);
    CHECK(child->function_id == "compute-price");
    CHECK(child->parent_run_id == parent.id);
    CHECK(child->output == 4.5);
    CHECK(run_json(*child)["parent_run_id"] == parent.id);
  }

  TEST_CASE("invoke throws StepError with the invoked run's error") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "parent"}, on_event("test/parent"), [&](Context& ctx) {
      try {
        ctx.step.invoke("child", {.function = "child"});
        return std::string("no error");
      } catch (const StepError& e) {
        return e.step_id() + ": " + e.error_name() + ": " + e.what();
      }
    });
    engine.function({.id = "child", .retries = 0}, on_event("test/never"), [](Context&) -> int {
      throw NonRetriableError("out of stock");
    });
    engine.start();
    auto id = engine.send({.name = "test/parent"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, id).output == "child: durable::NonRetriableError: out of stock");
  }

  TEST_CASE("invoke throws when the invoked run does not finish in time, and at once when it is cancelled") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "parent"}, on_event("test/parent"), [&](Context& ctx) {
      try {
        ctx.step.invoke("slow", {.function = "slow", .timeout = 1h});
        return std::string("finished");
      } catch (const StepError& e) {
        return e.error_name();
      }
    });
    engine.function({.id = "slow"}, on_event("test/never"), [](Context& ctx) { ctx.step.sleep("long", 2h); });
    engine.start();
    auto timed_out = engine.send({.name = "test/parent"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, timed_out).status == RunStatus::waiting);
    advance(engine, *clock, 1h);
    CHECK(only_run(engine, timed_out).output == "InvokeTimeout");

    auto cancelled = engine.send({.name = "test/parent"});
    REQUIRE(engine.drain());
    auto journal = read_journal(dir.file("t.db"), only_run(engine, cancelled).id);
    std::string child = steps_json(journal, clock->now())[0]["invoked_run_id"];
    auto store_owner = open_store(dir.file("t.db"), {});
    Store& store = *store_owner;
    REQUIRE(store.cancel_runs({child}, clock->now()).at(0) == RunAdmin::Change::done);
    REQUIRE(engine.drain());
    CHECK(wait_until([&] { return only_run(engine, cancelled).status == RunStatus::completed; }, 5s));
    CHECK(only_run(engine, cancelled).output == "Cancelled");
  }

  TEST_CASE("invoking a function no worker registers fails the run, saying so") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "parent"}, on_event("test/parent"), [&](Context& ctx) {
      return ctx.step.invoke("x", {.function = "nowhere"});
    });
    engine.start();
    auto id = engine.send({.name = "test/parent"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error.at("message").get<std::string>().find("no worker registers function 'nowhere'") != std::string::npos);
  }
}
