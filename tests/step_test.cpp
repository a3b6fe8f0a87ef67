// Steps: typed results, memoization on replay, step keys, and usage errors.
#include <atomic>
#include <cmath>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

struct Thumbnail {
  std::string path;
  int width = 0;
};
void to_json(nlohmann::json& j, const Thumbnail& t) { j = {{"path", t.path}, {"width", t.width}}; }
void from_json(const nlohmann::json& j, Thumbnail& t) {
  t.path = j.at("path").get<std::string>();
  t.width = j.at("width").get<int>();
}

}  // namespace

TEST_SUITE("step") {
  TEST_CASE("a run of N steps calls the function once and appends N step_completed entries") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> calls{0};
    constexpr int kSteps = 25;
    engine.function({.id = "many"}, on_event("test/many"), [&](Context& ctx) {
      ++calls;
      int sum = 0;
      for (int i = 0; i < kSteps; ++i) sum += ctx.step.run("add", [i] { return i; });
      return sum;
    });
    engine.start();
    auto event_id = engine.send({.name = "test/many"});
    REQUIRE(engine.drain());

    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == kSteps * (kSteps - 1) / 2);
    CHECK(calls == 1);
    auto journal = read_journal(dir.file("t.db"), run.id);
    CHECK(entries_of(journal, JournalKind::step_completed).size() == kSteps);
    CHECK(journal.front().kind == JournalKind::run_started);
    CHECK(journal.back().kind == JournalKind::run_completed);
  }

  TEST_CASE("a step's result is durable before the next step's body runs") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::vector<std::string> seen_by_second;
    engine.function({.id = "order"}, on_event("test/order"), [&](Context& ctx) {
      ctx.step.run("first", [] { return 1; });
      ctx.step.run("second", [&] {
        // What another process would find in the database at this moment.
        for (auto& e : entries_of(read_journal(dir.file("t.db"), ctx.run_id), JournalKind::step_completed)) {
          seen_by_second.push_back(e.step_key);
        }
        return 2;
      });
    });
    engine.start();
    auto event_id = engine.send({.name = "test/order"});
    REQUIRE(engine.drain());
    CHECK(seen_by_second == std::vector<std::string>{"first"});
    auto journal = read_journal(dir.file("t.db"), only_run(engine, event_id).id);
    REQUIRE(journal.size() == 4);
    CHECK(journal[2].step_key == "second");
    CHECK(journal[3].kind == JournalKind::run_completed);
  }

  TEST_CASE("step results keep their type: scalars, strings, user structs and void") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> void_calls{0};
    engine.function({.id = "typed"}, on_event("test/typed"), [&](Context& ctx) {
      int n = ctx.step.run("int", [] { return 41; });
      std::string s = ctx.step.run("string", [] { return std::string("hello"); });
      Thumbnail t = ctx.step.run("struct", [] { return Thumbnail{"/img/64.webp", 64}; });
      std::vector<Thumbnail> list = ctx.step.run("list", [&] { return std::vector<Thumbnail>{t, t}; });
      ctx.step.run("void", [&] { ++void_calls; });
      ctx.step.sleep("nap", 1min);  // forces a replay: every value above comes back from the journal
      return nlohmann::json{{"n", n + 1}, {"s", s}, {"t", t}, {"count", list.size()}};
    });
    engine.start();
    auto event_id = engine.send({.name = "test/typed"});
    REQUIRE(engine.drain());
    advance(engine, *clock, 1min);

    Run run = only_run(engine, event_id);
    REQUIRE(run.status == RunStatus::completed);
    CHECK(run.output["n"] == 42);
    CHECK(run.output["s"] == "hello");
    CHECK(run.output["t"]["path"] == "/img/64.webp");
    CHECK(run.output["t"]["width"] == 64);
    CHECK(run.output["count"] == 2);
    CHECK(void_calls == 1);
  }

  TEST_CASE("memoized steps return their recorded values on replay without running their bodies") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> first_body{0}, second_body{0}, function_calls{0};
    engine.function({.id = "replay"}, on_event("test/replay"), [&](Context& ctx) {
      ++function_calls;
      // A value that differs on every call: replay must return the recorded one.
      int stamp = ctx.step.run("first", [&] { return 1000 + (++first_body); });
      ctx.step.sleep("wait", 10min);
      int again = ctx.step.run("second", [&] { ++second_body; return stamp; });
      return again;
    });
    engine.start();
    auto event_id = engine.send({.name = "test/replay"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).status == RunStatus::sleeping);
    advance(engine, *clock, 10min);

    Run run = only_run(engine, event_id);
    REQUIRE(run.status == RunStatus::completed);
    CHECK(run.output == 1001);
    CHECK(first_body == 1);
    CHECK(second_body == 1);
    CHECK(function_calls == 2);  // once until the sleep, once replayed after it
  }

  TEST_CASE("a repeated step id gets the keys id, id:1, id:2 in order") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "keys"}, on_event("test/keys"), [](Context& ctx) {
      for (int i = 0; i < 3; ++i) ctx.step.run("send", [i] { return i; });
      ctx.step.run("other", [] { return 0; });
    });
    engine.start();
    Run run = [&] {
      auto id = engine.send({.name = "test/keys"});
      REQUIRE(engine.drain());
      return only_run(engine, id);
    }();
    auto steps = entries_of(read_journal(dir.file("t.db"), run.id), JournalKind::step_completed);
    REQUIRE(steps.size() == 4);
    CHECK(steps[0].step_key == "send");
    CHECK(steps[1].step_key == "send:1");
    CHECK(steps[2].step_key == "send:2");
    CHECK(steps[3].step_key == "other");
    CHECK(steps[2].payload == "2");
  }

  TEST_CASE("an empty step id or one id used by two kinds of step fails the run with a clear error") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::string message;
    engine.function({.id = "misuse", .retries = 3}, on_event("test/misuse"), [](Context& ctx) {
      std::string kind = ctx.event.data.at("kind");
      if (kind == "empty") ctx.step.run("", [] { return 1; });
      if (kind == "clash") {
        ctx.step.run("x", [] { return 1; });
        ctx.step.sleep("x", 1s);
      }
      if (kind == "collision") {
        ctx.step.run("a", [] { return 1; });
        ctx.step.run("a", [] { return 2; });    // key "a:1"
        ctx.step.run("a:1", [] { return 3; });  // would also be "a:1"
      }
    });
    engine.start();
    auto empty = engine.send({.name = "test/misuse", .data = {{"kind", "empty"}}});
    auto clash = engine.send({.name = "test/misuse", .data = {{"kind", "clash"}}});
    auto collision = engine.send({.name = "test/misuse", .data = {{"kind", "collision"}}});
    REQUIRE(engine.drain());

    Run e = only_run(engine, empty);
    CHECK(e.status == RunStatus::failed);  // at once: no retries for a usage error
    CHECK(e.error["name"] == "durable::UsageError");
    CHECK(e.error["message"] == "step id must not be empty");
    Run c = only_run(engine, clash);
    CHECK(c.status == RunStatus::failed);
    CHECK(c.error["message"] == "step id 'x' is used by both step.run and step.sleep: give each step its own id");
    Run k = only_run(engine, collision);
    CHECK(k.status == RunStatus::failed);
    CHECK(std::string(k.error["message"]).find("'a:1' is used twice") != std::string::npos);
  }

  TEST_CASE("a catch (...) that swallows the suspend signal does not break the run") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> after_sleep{0}, swallowed{0};
    engine.function({.id = "swallow"}, on_event("test/swallow"), [&](Context& ctx) -> nlohmann::json {
      try {
        ctx.step.sleep("nap", 1h);
      } catch (...) {
        ++swallowed;  // user code that catches everything and carries on
      }
      // Still inside the same execution after swallowing: this step must not run or record.
      try {
        ctx.step.run("after", [&] { ++after_sleep; return 1; });
      } catch (...) {
        ++swallowed;
      }
      return "returned";
    });
    engine.start();
    auto event_id = engine.send({.name = "test/swallow"});
    REQUIRE(engine.drain());

    Run sleeping = only_run(engine, event_id);
    CHECK(sleeping.status == RunStatus::sleeping);  // the return value was ignored
    CHECK(sleeping.output.is_null());
    CHECK(after_sleep == 0);
    CHECK(swallowed == 2);

    advance(engine, *clock, 1h);
    Run done = only_run(engine, event_id);
    CHECK(done.status == RunStatus::completed);
    CHECK(done.output == "returned");
    CHECK(after_sleep == 1);
  }

  TEST_CASE("a step that returns NaN or infinity fails at once, saying why") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "nan"}, on_event("test/nan"), [](Context& ctx) {
      return ctx.step.run("ratio", [] { return std::vector<double>{1.0, std::nan("")}; });
    });
    engine.start();
    auto event_id = engine.send({.name = "test/nan"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error["step"] == "ratio");
    CHECK(std::string(run.error["message"]).find("not finite") != std::string::npos);
  }

  TEST_CASE("the suspend signal is not a std::exception") {
    CHECK_FALSE(std::is_base_of_v<std::exception, Suspend>);
  }
}
