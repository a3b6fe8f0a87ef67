// The test kit (durable/testing.hpp), used as a user would: a workflow in a few lines.
#include <durable/testing.hpp>

#include <atomic>

#include <doctest/doctest.h>

using namespace durable;
using namespace std::chrono_literals;

TEST_SUITE("test_kit") {
  TEST_CASE("a workflow with a mocked step, a wait delivered, a sleep fired by advancing time, and its journal") {
    testing::TestEngine t;
    std::atomic<int> charged{0};
    t.function({.id = "subscribe"}, on_event("user/subscribed"), [&](Context& ctx) {
      auto customer = ctx.step.run("create-customer", [] { return std::string("would call the payment API"); });
      auto confirmed = ctx.step.wait_for_event("confirm", {.event = "user/confirmed", .match = "data.user", .timeout = 1h});
      if (!confirmed) return std::string("unconfirmed");
      ctx.step.sleep("trial", 24h * 14);
      ctx.step.run("charge", [&] { return ++charged; });
      return customer;
    });
    t.mock_step("subscribe", "create-customer", "cus_123");

    auto run = t.trigger({.name = "user/subscribed", .data = {{"user", "u1"}}});
    CHECK(run.status() == RunStatus::waiting);
    CHECK(run.step("create-customer").output == "cus_123");
    t.send({.name = "user/confirmed", .data = {{"user", "u1"}}});
    CHECK(run.status() == RunStatus::sleeping);
    CHECK(run.step("confirm").status == "completed");
    t.advance(24h * 14 - 1ms);
    CHECK(charged == 0);
    t.advance(1ms);
    CHECK(run.status() == RunStatus::completed);
    CHECK(run.output() == "cus_123");
    CHECK(charged == 1);

    std::vector<std::string> keys;
    for (const auto& s : run.steps()) keys.push_back(s.key);
    CHECK(keys == std::vector<std::string>{"create-customer", "confirm", "trial", "charge"});
    nlohmann::json journal = run.journal();
    CHECK(journal.front()["kind"] == "run_started");
    CHECK(journal.back()["kind"] == "run_completed");
    CHECK(journal.back()["payload"] == "cus_123");
  }

  TEST_CASE("timeouts pass when the clock is advanced; trigger insists on one run") {
    testing::TestEngine t;
    t.function({.id = "wait"}, on_event("a/b"), [](Context& ctx) {
      return ctx.step.wait_for_event("w", {.event = "a/c", .timeout = 10min}).has_value();
    });
    auto run = t.trigger({.name = "a/b"});
    t.advance(10min);
    CHECK(run.output() == false);
    CHECK(run.step("w").details["timed_out"] == true);
    CHECK_THROWS_WITH_AS(t.trigger({.name = "nothing/listens"}),
                         "event 'nothing/listens' started 0 runs, not one: use send() and runs_for_event()", Error);
    CHECK_THROWS_WITH_AS(run.step("nope"), doctest::Contains("has no step 'nope'"), Error);
  }
}
