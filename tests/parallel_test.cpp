// Parallel steps: run_all, run_each and run_first run their bodies at once on the worker
// pool, each recorded on its own, so a retry or replay runs only the unfinished ones.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// A meeting point for `n` bodies: arrive() returns true once all n are inside at the same
// time, false if that does not happen within 10 s (the bodies did not run at once).
class Rendezvous {
 public:
  explicit Rendezvous(int n) : n_(n) {}
  bool arrive() {
    std::unique_lock lock(mu_);
    if (++inside_ == n_) cv_.notify_all();
    return cv_.wait_for(lock, 10s, [&] { return inside_ >= n_; });
  }

 private:
  int n_;
  int inside_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace

TEST_SUITE("parallel") {
  TEST_CASE("run_all runs its bodies at the same time and returns their results in order") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));  // 4 workers: this one and 3 more
    Rendezvous all_inside(4);
    engine.function({.id = "fetch"}, on_event("test/fetch"), [&](Context& ctx) {
      auto [a, b, c, d] = ctx.step.run_all(
          "load", [&] { return all_inside.arrive() ? 1 : -1; }, [&] { return all_inside.arrive() ? std::string("two") : ""; },
          [&] { all_inside.arrive(); }, [&] { return all_inside.arrive() ? 4.5 : -1.0; });
      return nlohmann::json{a, b, c, d};
    });
    engine.start();
    auto id = engine.send({.name = "test/fetch"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, id);
    CHECK(run.output == nlohmann::json::parse(R"([1, "two", null, 4.5])"));
    auto completed = entries_of(read_journal(dir.file("t.db"), run.id), JournalKind::step_completed);
    std::set<std::string> keys;
    for (const auto& e : completed) keys.insert(e.step_key);
    CHECK(keys == std::set<std::string>{"load[0]", "load[1]", "load[2]", "load[3]"});
  }

  TEST_CASE("a failed body is retried alone: the others' results are recorded and not run again") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> runs[3] = {0, 0, 0};
    engine.function({.id = "resize", .retries = 2, .backoff = fast_backoff()}, on_event("test/resize"), [&](Context& ctx) {
      std::vector<int> sizes{64, 128, 512};
      return ctx.step.run_each("resize", sizes, [&](int size) {
        int i = size == 64 ? 0 : size == 128 ? 1 : 2;
        if (++runs[i] == 1 && size == 128) throw std::runtime_error("out of memory");
        return size * 2;
      });
    });
    engine.start();
    auto id = engine.send({.name = "test/resize"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, id).status == RunStatus::queued);  // waiting for its retry
    advance(engine, *clock, 1s);
    Run run = only_run(engine, id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == nlohmann::json{128, 256, 1024});
    CHECK(runs[0] == 1);
    CHECK(runs[1] == 2);
    CHECK(runs[2] == 1);
  }

  TEST_CASE("run_first returns the first body to complete with a result, records only it, and replays it") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> bodies{0};
    std::atomic<bool> fast_done{false};
    engine.function({.id = "quote"}, on_event("test/quote"), [&](Context& ctx) {
      auto [which, price] = ctx.step.run_first(
          "quote",
          [&]() -> int {
            ++bodies;
            // The slow quote ends after the fast one, and with no result: had it returned one,
            // which of two bodies ending a moment apart is collected first would be a race
            // on a busy machine. The winner is the second body, not the first listed.
            while (!fast_done.load()) std::this_thread::yield();
            throw std::runtime_error("too late");
          },
          [&] {
            ++bodies;
            fast_done = true;
            return 10;
          });
      ctx.step.sleep("nap", 1min);  // the replay after it returns the recorded winner
      return nlohmann::json{which, price};
    });
    engine.start();
    auto id = engine.send({.name = "test/quote"});
    REQUIRE(engine.drain());
    advance(engine, *clock, 1min);
    Run run = only_run(engine, id);
    CHECK(run.output == nlohmann::json{1, 10});
    CHECK(bodies == 2);
    auto completed = entries_of(read_journal(dir.file("t.db"), run.id), JournalKind::step_completed);
    REQUIRE(completed.size() == 1);
    CHECK(completed[0].step_key == "quote[1]");
  }

  TEST_CASE("a body that takes a step fails the run with a UsageError") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "nested"}, on_event("test/nested"), [&](Context& ctx) {
      ctx.step.run_all("outer", [&] { return ctx.step.run("inner", [] { return 1; }); });
    });
    engine.start();
    auto id = engine.send({.name = "test/nested"});
    REQUIRE(engine.drain());
    Run run = only_run(engine, id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error["message"].get<std::string>().find("inside a body of a parallel step group") != std::string::npos);
  }
}
