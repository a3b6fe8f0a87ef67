// What operators do to runs, through the REST API of real engines on 127.0.0.1: cancel (a
// queued, a sleeping and a running run; in bulk by filter, page by page), resume a failed run,
// replay (whole, from a step, with an edited output; in bulk), and the lifecycle events runs
// emit when they end.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kApiKey = "api-key-1";

// Counts the executions of each step body.
struct Counts {
  std::atomic<int> a{0}, b{0}, c{0}, next{0};
};

// A step body that, the first time it runs, signals `inside` and waits for `release`.
struct Gate {
  std::latch inside{1};
  std::latch release{1};
  std::atomic<int> calls{0};
  void pass() {
    if (++calls == 1) {
      inside.count_down();
      release.wait();
    }
  }
};

// An engine on a manual clock serving the API on a free port; `define` registers its functions.
struct Server {
  template <class Define>
  explicit Server(Define define, int workers = 4)
      : clock(std::make_shared<ManualClock>()), engine(options(workers)) {
    define(engine);
    port = engine.listen({.port = 0, .event_keys = {"event-key"}, .api_keys = {kApiKey}});
    http = std::make_unique<httplib::Client>("127.0.0.1", port);
    http->set_bearer_token_auth(kApiKey);
  }

  EngineOptions options(int workers) {
    EngineOptions o = engine_options(dir.file("t.db"), clock);
    o.workers = workers;
    return o;
  }

  json get(const std::string& path, int status = 200) { return answer(http->Get(path.c_str()), status); }
  json post(const std::string& path, const json& body = json::object(), int status = 200) {
    return answer(http->Post(path.c_str(), body.dump(), "application/json"), status);
  }
  json answer(const httplib::Result& res, int status) {
    REQUIRE(res);
    CHECK_MESSAGE(res->status == status, res->body);
    return json::parse(res->body);
  }

  // Sends an event and returns the id of the one run it started.
  std::string start(const std::string& name, json data = json::object()) {
    return only_run(engine, engine.send(Event{.name = name, .data = std::move(data)})).id;
  }
  std::vector<JournalEntry> journal(const std::string& run_id) { return read_journal(dir.file("t.db"), run_id); }
  std::string status(const std::string& run_id) { return get("/v1/runs/" + run_id)["status"]; }
  int64_t ms(std::chrono::milliseconds after_start = 0ms) const { return to_millis(start_time + after_start); }

  TempDir dir;
  std::shared_ptr<ManualClock> clock;
  TimePoint start_time = clock->now();
  Engine engine;
  int port = 0;
  std::unique_ptr<httplib::Client> http;
};

// Function `id` on `event`: step a, a 1 h sleep "nap" (unless data.awake), step b.
void define_nap(Engine& engine, const std::string& id, const std::string& event, Counts& counts) {
  engine.function({.id = id}, on_event(event), [&counts](Context& ctx) {
    ctx.step.run("a", [&] { return ++counts.a; });
    if (!ctx.event.data.value("awake", false)) ctx.step.sleep("nap", 1h);
    return ctx.step.run("b", [&] { return ++counts.b; });
  });
}

// "chain" on test/chain: a = data.n, b = a + 1, c = b * 10; returns c.
void define_chain(Engine& engine, Counts& counts) {
  engine.function({.id = "chain"}, on_event("test/chain"), [&counts](Context& ctx) {
    int a = ctx.step.run("a", [&] {
      ++counts.a;
      return ctx.event.data.value("n", 0);
    });
    int b = ctx.step.run("b", [&] {
      ++counts.b;
      return a + 1;
    });
    return ctx.step.run("c", [&] {
      ++counts.c;
      return b * 10;
    });
  });
}

std::set<std::string> as_set(const json& ids) { return ids.get<std::set<std::string>>(); }

}  // namespace

TEST_SUITE("run_control") {
  // A function whose step "slow" records the run and, the first time, blocks on `gate`; an
  // engine with one worker, busy with that first run. The executor holds up to 4 runs per
  // worker: the next 3 wait in it, claimed ("running"); a 5th waits in the database ("queued").
  struct OneBusyWorker {
    Gate gate;
    std::mutex mu;
    std::vector<std::string> started;  // the runs whose step "slow" ran
    Server s{[this](Engine& e) {
               e.function({.id = "gated"}, on_event("test/gated"), [this](Context& ctx) {
                 ctx.step.run("slow", [&] {
                   {
                     std::lock_guard lock(mu);
                     started.push_back(ctx.run_id);
                   }
                   gate.pass();
                 });
               });
             },
             /*workers=*/1};
    std::string busy = s.start("test/gated");
    std::vector<std::string> waiting;

    OneBusyWorker() {
      gate.inside.wait();
      for (int i = 0; i < 4; ++i) waiting.push_back(s.start("test/gated"));
    }

    // Cancels `id` through the API, then lets the busy run go on and waits for the engine.
    void cancel_and_finish(const std::string& id) {
      json answer = s.post("/v1/runs/" + id + "/cancel");
      CHECK(answer["run"]["id"] == id);
      CHECK(answer["run"]["status"] == "cancelled");
      CHECK(answer["run"]["ended_at"] == s.ms());
      gate.release.count_down();
      REQUIRE(s.engine.drain());
      std::lock_guard lock(mu);
      CHECK(std::count(started.begin(), started.end(), id) == 0);
      CHECK(started.size() == 4);  // the busy run and the other three
      json run = s.get("/v1/runs/" + id);
      CHECK(run["status"] == "cancelled");
      CHECK(run["steps"] == json::array());
      auto journal = s.journal(id);
      REQUIRE(journal.size() == 2);
      CHECK(journal[1].kind == JournalKind::run_cancelled);
    }
  };

  TEST_CASE("cancelling a queued run: it never starts" * doctest::timeout(30)) {
    OneBusyWorker w;
    std::string queued = w.waiting.back();
    REQUIRE(w.s.status(queued) == "queued");
    w.cancel_and_finish(queued);
    CHECK(w.s.get("/v1/runs/" + queued)["started_at"].is_null());
    CHECK(w.s.status(w.busy) == "completed");
  }

  // A run claimed at ingest is loaded without reading the store, so only the lease check
  // before its first step body can see that it was cancelled while it waited for a thread.
  TEST_CASE("cancelling a run claimed but still waiting for a worker: it never starts a step" * doctest::timeout(30)) {
    OneBusyWorker w;
    std::string claimed = w.waiting.front();
    REQUIRE(w.s.status(claimed) == "running");
    w.cancel_and_finish(claimed);
  }

  TEST_CASE("cancelling a sleeping run: it never wakes") {
    Counts counts;
    Server s([&](Engine& e) { define_nap(e, "nap", "test/nap", counts); });
    std::string id = s.start("test/nap");
    REQUIRE(s.engine.drain());
    REQUIRE(s.status(id) == "sleeping");
    CHECK(s.post("/v1/runs/" + id + "/cancel")["run"]["status"] == "cancelled");
    advance(s.engine, *s.clock, 2h);
    CHECK(counts.b == 0);
    json run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "cancelled");
    CHECK(run["ended_at"] == s.ms());
    // The sleep never ended: it shows as cancelled, not completed.
    REQUIRE(run["steps"].size() == 2);
    CHECK(run["steps"][1]["status"] == "cancelled");
    CHECK(run["steps"][1]["ended_at"] == s.ms());
    CHECK(entries_of(s.journal(id), JournalKind::run_cancelled).size() == 1);
    // Cancelling it again: 409; an unknown run: 404.
    CHECK(s.post("/v1/runs/" + id + "/cancel", {}, 409)["error"].get<std::string>().find("already cancelled") != std::string::npos);
    s.post("/v1/runs/nope/cancel", {}, 404);
  }

  TEST_CASE("cancelling a run while its step runs: the step finishes, its successor never starts" * doctest::timeout(30)) {
    Gate gate;
    Counts counts;
    Server s([&](Engine& e) {
      e.function({.id = "gated"}, on_event("test/gated"), [&](Context& ctx) {
        ctx.step.run("slow", [&] { gate.pass(); return 1; });
        ctx.step.run("next", [&] { ++counts.next; return 2; });
        return 3;
      });
    });
    std::string id = s.start("test/gated");
    gate.inside.wait();
    CHECK(s.status(id) == "running");
    CHECK(s.post("/v1/runs/" + id + "/cancel")["run"]["status"] == "cancelled");
    gate.release.count_down();  // the step body returns
    REQUIRE(s.engine.drain());
    CHECK(gate.calls == 1);
    CHECK(counts.next == 0);
    json run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "cancelled");
    CHECK(run["output"].is_null());
    auto journal = s.journal(id);
    CHECK(entries_of(journal, JournalKind::run_cancelled).size() == 1);
    CHECK(entries_of(journal, JournalKind::step_completed).empty());  // fenced out: recorded nothing
    CHECK(entries_of(journal, JournalKind::run_completed).empty());
    // Time passing changes nothing.
    advance(s.engine, *s.clock, 1h);
    CHECK(counts.next == 0);
    CHECK(s.status(id) == "cancelled");
  }

  TEST_CASE("bulk cancel by function, status, event and start time, page by page, after a dry run that counts") {
    Counts counts;
    Server s([&](Engine& e) {
      define_nap(e, "nap", "test/nap", counts);
      define_nap(e, "other", "test/other", counts);
    });
    std::string early = s.start("test/nap");
    std::string early_done = s.start("test/nap", {{"awake", true}});
    s.clock->advance(1min);
    std::vector<std::string> targets;
    for (int i = 0; i < 3; ++i) targets.push_back(s.start("test/nap"));
    std::string other = s.start("test/other");
    std::string done = s.start("test/nap", {{"awake", true}});
    s.clock->advance(1min);
    std::string late = s.start("test/nap");
    REQUIRE(s.engine.drain());
    REQUIRE(s.status(done) == "completed");

    json filter{{"function", "nap"}, {"status", "sleeping"}, {"started_after", s.ms(1min)},
                {"started_before", s.ms(2min)}, {"limit", 2}};
    // A dry run only counts, as a confirmation prompt needs.
    json dry = filter;
    dry["dry_run"] = true;
    CHECK(s.post("/v1/cancellations", dry) == json{{"dry_run", true}, {"total", 3}});
    CHECK(s.post("/v1/replays", dry) == json{{"dry_run", true}, {"total", 3}});
    for (const auto& id : targets) CHECK(s.status(id) == "sleeping");
    CHECK(s.post("/v1/cancellations", json{{"event", "no-such-event"}, {"dry_run", true}})["total"] == 0);
    json first = s.post("/v1/cancellations", filter);
    CHECK(first["total"] == 3);
    CHECK(first["count"] == 2);
    CHECK(first["run_ids"] == json{targets[2], targets[1]});
    REQUIRE(first["next_cursor"] == targets[1]);
    filter["cursor"] = first["next_cursor"];
    json second = s.post("/v1/cancellations", filter);
    CHECK(second["count"] == 1);
    CHECK(second["run_ids"] == json{targets[0]});
    CHECK(second["next_cursor"].is_null());
    CHECK(!second.contains("total"));

    for (const auto& id : targets) CHECK(s.status(id) == "cancelled");
    for (const auto& id : {early, other, late}) CHECK(s.status(id) == "sleeping");
    // By event: the run that one event started.
    json by_event = s.post("/v1/cancellations", json{{"event", s.get("/v1/runs/" + late)["event_id"]}});
    CHECK(by_event["run_ids"] == json{late});
    CHECK(s.status(late) == "cancelled");
    CHECK(s.status(early_done) == "completed");
    CHECK(s.status(done) == "completed");
    counts.b = 0;
    advance(s.engine, *s.clock, 2h);
    CHECK(counts.b == 2);  // early and other woke up; the cancelled did not
  }

  TEST_CASE("resume: a failed run goes on where it failed, keeping its memoized steps, with fresh attempts") {
    Counts counts;
    std::atomic<int> failures_left{2};
    Server s([&](Engine& e) {
      e.function({.id = "flaky", .retries = 1, .backoff = fast_backoff()}, on_event("test/flaky"), [&](Context& ctx) {
        int a = ctx.step.run("a", [&] { return ++counts.a; });
        int b = ctx.step.run("b", [&] {
          ++counts.b;
          if (failures_left-- > 0) throw std::runtime_error("database unreachable");
          return a + 1;
        });
        return ctx.step.run("c", [&] {
          ++counts.c;
          return b * 10;
        });
      });
    });
    std::string id = s.start("test/flaky");
    REQUIRE(s.engine.drain());
    advance(s.engine, *s.clock, 1s);  // the one retry fails too
    json failed = s.get("/v1/runs/" + id);
    REQUIRE(failed["status"] == "failed");
    CHECK(failed["error"]["step"] == "b");
    CHECK(counts.a == 1);
    CHECK(counts.b == 2);

    // "The bug is fixed": b fails once more, then works. With retries = 1 that one failure is
    // retried only if the attempts start over.
    failures_left = 1;
    json resumed = s.post("/v1/runs/" + id + "/resume")["run"];
    CHECK(resumed["status"] == "queued");
    CHECK(resumed["attempt"] == 0);
    CHECK(resumed["error"].is_null());
    CHECK(resumed["ended_at"].is_null());
    REQUIRE(s.engine.drain());
    json retrying = s.get("/v1/runs/" + id);
    CHECK(retrying["status"] == "queued");
    CHECK(retrying["attempt"] == 1);
    advance(s.engine, *s.clock, 1s);

    json run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "completed");
    CHECK(run["output"] == 20);
    CHECK(counts.a == 1);  // memoized, never re-run
    CHECK(counts.b == 4);
    CHECK(counts.c == 1);
    auto journal = s.journal(id);
    REQUIRE(entries_of(journal, JournalKind::run_resumed).size() == 1);
    auto failures = entries_of(journal, JournalKind::step_failed);
    REQUIRE(failures.size() == 3);
    CHECK(failures[2].attempt == 0);  // after the resume, attempts count from 0 again

    // Only a failed or cancelled run can be resumed.
    CHECK(s.post("/v1/runs/" + id + "/resume", {}, 409)["error"].get<std::string>().find("is completed") != std::string::npos);
    s.post("/v1/runs/nope/resume", {}, 404);
  }

  TEST_CASE("resume: a cancelled run goes on too; a sleeping one answers 409") {
    Counts counts;
    Server s([&](Engine& e) { define_nap(e, "nap", "test/nap", counts); });
    std::string id = s.start("test/nap");
    REQUIRE(s.engine.drain());
    s.post("/v1/runs/" + id + "/resume", {}, 409);
    CHECK(s.status(id) == "sleeping");
    s.post("/v1/runs/" + id + "/cancel");
    CHECK(s.post("/v1/runs/" + id + "/resume")["run"]["status"] == "queued");
    REQUIRE(s.engine.drain());
    CHECK(s.status(id) == "sleeping");  // back in the sleep it had, with the same deadline
    CHECK(s.get("/v1/runs/" + id)["available_at"] == s.ms(1h));
    advance(s.engine, *s.clock, 1h);
    CHECK(s.status(id) == "completed");
    CHECK(counts.a == 1);
    CHECK(counts.b == 1);
  }

  TEST_CASE("replay: a new run of the same event, linked to the original, runs every step again") {
    Counts counts;
    Server s([&](Engine& e) { define_chain(e, counts); });
    std::string original = s.start("test/chain", {{"n", 1}});
    REQUIRE(s.engine.drain());
    s.clock->advance(1s);
    json replay = s.post("/v1/runs/" + original + "/replay", json::object(), 201)["run"];
    std::string id = replay["id"];
    CHECK(id != original);
    CHECK(replay["replay_of"] == original);
    CHECK(replay["function_id"] == "chain");
    CHECK(replay["event_id"] == s.get("/v1/runs/" + original)["event_id"]);
    CHECK(replay["status"] == "queued");  // as created: answered before any worker takes it
    REQUIRE(s.engine.drain());
    json run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "completed");
    CHECK(run["output"] == 20);
    CHECK(counts.a == 2);
    CHECK(counts.b == 2);
    CHECK(counts.c == 2);
    CHECK(s.get("/v1/runs/" + original)["replays"] == json{id});
    CHECK(s.get("/v1/runs/" + original)["status"] == "completed");  // the original is untouched
    s.post("/v1/runs/nope/replay", json::object(), 404);
  }

  TEST_CASE("replay from a step keeps the steps before it and runs it and the rest again; output replaces its result") {
    Counts counts;
    Server s([&](Engine& e) { define_chain(e, counts); });
    std::string original = s.start("test/chain", {{"n", 1}});
    REQUIRE(s.engine.drain());
    json original_steps = s.get("/v1/runs/" + original)["steps"];
    s.clock->advance(1s);

    std::string from_b = s.post("/v1/runs/" + original + "/replay", {{"from_step", "b"}}, 201)["run"]["id"];
    REQUIRE(s.engine.drain());
    json run = s.get("/v1/runs/" + from_b);
    CHECK(run["status"] == "completed");
    CHECK(run["output"] == 20);
    CHECK(counts.a == 1);  // kept
    CHECK(counts.b == 2);
    CHECK(counts.c == 2);
    CHECK(run["steps"][0] == original_steps[0]);  // a, as the original recorded it
    CHECK(run["steps"][1]["started_at"] == s.ms(1s));

    std::string edited = s.post("/v1/runs/" + original + "/replay", {{"from_step", "b"}, {"output", 41}}, 201)["run"]["id"];
    REQUIRE(s.engine.drain());
    run = s.get("/v1/runs/" + edited);
    CHECK(run["status"] == "completed");
    CHECK(run["output"] == 410);  // c saw the edited b
    CHECK(counts.a == 1);
    CHECK(counts.b == 2);  // b did not run
    CHECK(counts.c == 3);
    CHECK(run["steps"][1]["key"] == "b");
    CHECK(run["steps"][1]["output"] == 41);
    CHECK(as_set(s.get("/v1/runs/" + original)["replays"]) == std::set<std::string>{from_b, edited});

    // A replay of a replay names its own original.
    std::string again = s.post("/v1/runs/" + edited + "/replay", {{"from_step", "c"}}, 201)["run"]["id"];
    REQUIRE(s.engine.drain());
    CHECK(s.get("/v1/runs/" + again)["output"] == 410);
    CHECK(s.get("/v1/runs/" + again)["replay_of"] == edited);

    auto answer = s.post("/v1/runs/" + original + "/replay", {{"from_step", "d"}}, 400);
    CHECK(answer["error"].get<std::string>().find("has no step 'd'") != std::string::npos);
    CHECK(s.get("/v1/runs?function=chain")["runs"].size() == 4);
  }

  TEST_CASE("bulk replay answers the count and the new runs, page by page, and never replays its own replays") {
    Counts counts;
    std::atomic<int> failures{0};
    Server s([&](Engine& e) {
      define_chain(e, counts);
      e.function({.id = "fails", .retries = 0}, on_event("test/fails"), [&](Context& ctx) {
        ctx.step.run("x", [&] {
          if (++failures <= 2) throw std::runtime_error("not yet");
        });
      });
    });
    std::set<std::string> originals;
    for (int n = 0; n < 3; ++n) originals.insert(s.start("test/chain", {{"n", n}}));
    std::string failed_1 = s.start("test/fails");
    std::string failed_2 = s.start("test/fails");
    REQUIRE(s.engine.drain());
    s.clock->advance(1s);

    std::set<std::string> replayed, replays;
    json body{{"function", "chain"}, {"limit", 2}};
    int pages = 0;
    for (;;) {
      json page = s.post("/v1/replays", body);
      ++pages;
      if (pages == 1) CHECK(page["total"] == 3);
      CHECK(page["count"] == page["run_ids"].size());
      std::set<std::string> new_runs;
      for (const auto& pair : page["replayed"]) {
        CHECK(replayed.insert(pair["original"].get<std::string>()).second);
        new_runs.insert(pair["run"].get<std::string>());
      }
      CHECK(as_set(page["run_ids"]) == new_runs);
      replays.insert(new_runs.begin(), new_runs.end());
      if (page["next_cursor"].is_null()) break;
      body["cursor"] = page["next_cursor"];
    }
    CHECK(pages == 2);
    CHECK(replayed == originals);  // each original once, no replay replayed
    CHECK(replays.size() == 3);
    REQUIRE(s.engine.drain());
    for (const auto& id : replays) {
      json run = s.get("/v1/runs/" + id);
      CHECK(run["status"] == "completed");
      CHECK(originals.count(run["replay_of"].get<std::string>()) == 1);
    }
    CHECK(counts.c == 6);

    // The failed runs of "fails", now that it works.
    json page = s.post("/v1/replays", {{"function", "fails"}, {"status", "failed"}});
    CHECK(page["count"] == 2);
    CHECK(page["total"] == 2);
    CHECK(page["next_cursor"].is_null());
    std::set<std::string> failed_originals;
    for (const auto& pair : page["replayed"]) failed_originals.insert(pair["original"].get<std::string>());
    CHECK(failed_originals == std::set<std::string>{failed_1, failed_2});
    REQUIRE(s.engine.drain());
    for (const auto& id : page["run_ids"]) CHECK(s.status(id.get<std::string>()) == "completed");
  }

  TEST_CASE("runs emit durable/function.finished, failed runs durable/function.failed too; runs they start emit none") {
    std::atomic<int> watched{0};
    Server s([&](Engine& e) {
      e.function({.id = "ok"}, on_event("test/ok"), [](Context& ctx) { return ctx.step.run("x", [] { return 7; }); });
      e.function({.id = "bad", .retries = 0}, on_event("test/bad"), [](Context& ctx) {
        ctx.step.run("x", []() -> int { throw std::runtime_error("card declined"); });
      });
      e.function({.id = "watcher"}, on_event("durable/function.failed"), [&](Context& ctx) {
        ctx.step.run("note", [&] { ++watched; });
        return ctx.event.data.at("run_id");
      });
    });
    std::string ok_event = s.engine.send(Event{.name = "test/ok"});
    std::string ok = only_run(s.engine, ok_event).id;
    std::string bad = s.start("test/bad");
    REQUIRE(s.engine.drain());

    json finished = s.get("/v1/events?name=durable/function.finished")["events"];
    REQUIRE(finished.size() == 2);  // not the watcher's run
    std::map<std::string, json> by_run;
    for (const auto& e : finished) by_run[e["data"]["run_id"].get<std::string>()] = e["data"];
    REQUIRE(by_run.count(ok) == 1);
    CHECK(by_run[ok]["function_id"] == "ok");
    CHECK(by_run[ok]["status"] == "completed");
    CHECK(by_run[ok]["output"] == 7);
    CHECK(by_run[ok]["event"] == json{{"id", ok_event}, {"name", "test/ok"}});
    REQUIRE(by_run.count(bad) == 1);
    CHECK(by_run[bad]["status"] == "failed");
    CHECK(by_run[bad]["error"]["message"] == "card declined");
    CHECK(by_run[bad]["error"]["step"] == "x");

    json failed = s.get("/v1/events?name=durable/function.failed")["events"];
    REQUIRE(failed.size() == 1);
    CHECK(failed[0]["data"]["run_id"] == bad);
    CHECK(failed[0]["data"]["function_id"] == "bad");
    CHECK(failed[0]["data"]["error"]["message"] == "card declined");

    json watcher_runs = s.get("/v1/events/" + failed[0]["id"].get<std::string>() + "/runs")["runs"];
    REQUIRE(watcher_runs.size() == 1);
    CHECK(watcher_runs[0]["function_id"] == "watcher");
    CHECK(watcher_runs[0]["status"] == "completed");
    CHECK(watcher_runs[0]["output"] == bad);
    CHECK(watched == 1);
    CHECK(s.get("/v1/events?name=durable/function.finished")["events"].size() == 2);
  }
}
