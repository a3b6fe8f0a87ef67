// Leases: renewed while a run executes, recovered when their holder dies (at start and
// periodically), and fencing a worker whose lease was taken.
#include <atomic>
#include <latch>
#include <thread>

#include <doctest/doctest.h>

#include "engine/store/open_store.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

struct LeaseRow {
  std::string owner;
  int64_t expires_at_ms = 0;
  int64_t epoch = 0;
  std::string status;
};

LeaseRow lease_of(const std::string& path, const std::string& run_id) {
  SqliteDb db(path, 5s);
  Statement s(db.handle(), "SELECT coalesce(lease_owner, ''), coalesce(lease_expires_at, 0), lease_epoch, status FROM runs WHERE id = ?");
  s.bind(1, run_id);
  REQUIRE(s.step());
  return LeaseRow{s.get_text(0), s.get_int(1), s.get_int(2), s.get_text(3)};
}

// Waits (in real time, for the engine's threads, not for a deadline) until `done` holds.
template <class Fn>
bool eventually(Fn done, std::chrono::seconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// A step whose first execution blocks until `release`, once it has signalled `inside`.
struct BlockedStep {
  std::latch inside{1};
  std::latch release{1};
  std::atomic<int> runs{0};
};

// Registers a function "blocked" whose one step is `step`, starts the engine, sends it an
// event, and returns the run's id once the step is blocked inside its body.
std::string start_blocked_run(Engine& engine, BlockedStep& step) {
  engine.function({.id = "blocked"}, on_event("test/blocked"), [&step](Context& ctx) {
    return ctx.step.run("slow", [&step] {
      if (++step.runs == 1) {
        step.inside.count_down();
        step.release.wait();
      }
      return 7;
    });
  });
  engine.start();
  auto event_id = engine.send({.name = "test/blocked"});
  step.inside.wait();
  return only_run(engine, event_id).id;
}

// Advances `clock` by 10 s `times` times; after each, the run's 30 s lease must be renewed
// to end 30 s after the new time (engines renew every third of the TTL).
void expect_renewals(ManualClock& clock, const std::string& path, const std::string& run_id, int times) {
  for (int i = 0; i < times; ++i) {
    clock.advance(10s);
    int64_t want = to_millis(clock.now() + 30s);
    REQUIRE(eventually([&] { return lease_of(path, run_id).expires_at_ms == want; }));
  }
}

// A run that a worker of a dead process claimed: it completed step "a", then the process
// died holding the lease until `expires`.
std::string abandoned_run(const std::string& path, const std::string& function_id, TimePoint now, TimePoint expires) {
  auto store_owner = open_store(path, {});
  Store& store = *store_owner;
  IngestStore::Item item{"E-dead", Event{.name = "test/abandoned", .ts = now},
                         {NewRun{.id = "R-dead", .function_id = function_id, .event_id = "E-dead"}}};
  store.ingest({item}, now, 24h);
  auto claimed = store.claim({function_id}, now, Lease{"dead-process", expires}, 1);
  REQUIRE(claimed.size() == 1);
  Commit c{.run_id = "R-dead", .lease_epoch = claimed[0].lease_epoch,
           .entries = {JournalEntry{.seq = 1, .kind = JournalKind::step_completed, .step_key = "a", .payload = "10", .recorded_at = now}},
           .now = now};
  REQUIRE(store.commit(c) == JournalStore::CommitResult::committed);
  return "R-dead";
}

}  // namespace

TEST_SUITE("lease") {
  TEST_CASE("a run's lease is renewed while its step runs, so a long step is not taken over" * doctest::timeout(20)) {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    EngineOptions options = engine_options(dir.file("t.db"), clock);
    options.lease_ttl = 30s;
    Engine engine(options);
    BlockedStep step;
    std::string run_id = start_blocked_run(engine, step);
    LeaseRow before = lease_of(dir.file("t.db"), run_id);

    // Two minutes pass, ten seconds at a time: four times the TTL.
    expect_renewals(*clock, dir.file("t.db"), run_id, 12);
    LeaseRow during = lease_of(dir.file("t.db"), run_id);
    CHECK(during.status == "running");
    CHECK(during.epoch == before.epoch);  // never recovered, never re-claimed
    CHECK(during.owner == before.owner);

    step.release.count_down();
    REQUIRE(engine.drain());
    CHECK(engine.get_run(run_id)->status == RunStatus::completed);
    CHECK(step.runs == 1);
  }

  TEST_CASE("at start, runs whose lease expired are recovered and replayed from their journal") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    std::string run_id = abandoned_run(dir.file("t.db"), "resume", clock->now(), clock->now() + 30s);
    clock->advance(31s);  // the dead process's lease has expired

    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> a_runs{0}, b_runs{0};
    engine.function({.id = "resume"}, on_event("test/abandoned"), [&](Context& ctx) {
      int a = ctx.step.run("a", [&] { return ++a_runs; });
      int b = ctx.step.run("b", [&] { ++b_runs; return 5; });
      return a + b;
    });
    engine.start();
    REQUIRE(engine.drain());
    auto run = engine.get_run(run_id);
    REQUIRE(run);
    CHECK(run->status == RunStatus::completed);
    CHECK(run->output == 15);  // "a" came from the journal: 10
    CHECK(a_runs == 0);
    CHECK(b_runs == 1);
  }

  TEST_CASE("a running engine recovers expired leases periodically") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    EngineOptions options = engine_options(dir.file("t.db"), clock);
    options.lease_ttl = 30s;
    Engine engine(options);
    engine.function({.id = "resume"}, on_event("test/abandoned"), [&](Context& ctx) {
      return ctx.step.run("a", [] { return 1; }) + ctx.step.run("b", [] { return 1; });
    });
    engine.start();
    REQUIRE(engine.drain());
    std::string run_id = abandoned_run(dir.file("t.db"), "resume", clock->now(), clock->now() + 60s);
    advance(engine, *clock, 30s);
    CHECK(engine.get_run(run_id)->status == RunStatus::running);  // still the dead process's
    advance(engine, *clock, 31s);
    CHECK(engine.get_run(run_id)->status == RunStatus::completed);
    CHECK(engine.get_run(run_id)->output == 11);
  }

  TEST_CASE("an execution whose lease was taken cannot commit and stops; the new holder finishes the run" * doctest::timeout(20)) {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::latch inside(1), release(1);
    std::atomic<int> slow_runs{0}, after_runs{0};
    engine.function({.id = "fenced"}, on_event("test/fenced"), [&](Context& ctx) {
      int v = ctx.step.run("slow", [&] {
        if (++slow_runs == 1) {
          inside.count_down();
          release.wait();
          return 1;  // the stale execution's result: must never be recorded
        }
        return 2;
      });
      ctx.step.run("after", [&] { return ++after_runs; });
      return v;
    });
    engine.start();
    auto event_id = engine.send({.name = "test/fenced"});
    inside.wait();
    std::string run_id = only_run(engine, event_id).id;

    // Another worker takes the run over (as recovery does when a lease expires): the epoch
    // moves on and the run goes back to the queue.
    {
      SqliteDb db(dir.file("t.db"), 5s);
      db.exec("UPDATE runs SET lease_epoch = lease_epoch + 1, status = 'queued', lease_owner = NULL WHERE id = '" + run_id + "'");
    }
    release.count_down();
    REQUIRE(engine.drain());

    Run run = only_run(engine, event_id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == 2);  // the stale result (1) was refused
    CHECK(slow_runs == 2);
    CHECK(after_runs == 1);  // the stale execution stopped at its refused commit
    auto steps = entries_of(read_journal(dir.file("t.db"), run.id), JournalKind::step_completed);
    REQUIRE(steps.size() == 2);
    CHECK(steps[0].step_key == "slow");
    CHECK(steps[0].payload == "2");
  }

  TEST_CASE("a commit that fails in the store abandons the execution instead of failing the run" * doctest::timeout(20)) {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    EngineOptions options = engine_options(dir.file("t.db"), clock);
    options.lease_ttl = 30s;
    Engine engine(options);
    std::atomic<int> a_runs{0};
    std::atomic<bool> caught{false};
    engine.function({.id = "flaky-store", .retries = 0}, on_event("test/store"), [&](Context& ctx) {
      ctx.step.run("a", [&] { return ++a_runs; });
      try {
        ctx.step.run("b", [] { return 2; });  // "a" is committed here, and that commit fails
      } catch (const std::exception&) {
        caught = true;  // a store failure must never reach user code
      }
      return 3;
    });
    {
      SqliteDb db(dir.file("t.db"), 5s);
      db.exec("CREATE TRIGGER fail_a BEFORE INSERT ON journal WHEN NEW.step_key = 'a' "
              "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
    }
    engine.start();
    auto event_id = engine.send({.name = "test/store"});
    REQUIRE(engine.drain());
    Run stuck = only_run(engine, event_id);
    CHECK(stuck.status == RunStatus::running);  // still leased: not failed, not retried
    CHECK_FALSE(caught);
    auto journal = read_journal(dir.file("t.db"), stuck.id);
    CHECK(journal.size() == 1);  // run_started only: no body_failed, no run_failed

    // The disk recovers; the abandoned run's lease is no longer renewed, expires, and the
    // run is recovered and replayed.
    {
      SqliteDb db(dir.file("t.db"), 5s);
      db.exec("DROP TRIGGER fail_a");
    }
    advance(engine, *clock, 31s);
    advance(engine, *clock, 15s);
    Run done = only_run(engine, event_id);
    CHECK(done.status == RunStatus::completed);
    CHECK(done.output == 3);
    CHECK(a_runs == 2);  // its first result was never committed
  }

  TEST_CASE("leases are still renewed while a stopping engine waits for running steps" * doctest::timeout(20)) {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    EngineOptions options = engine_options(dir.file("t.db"), clock);
    options.lease_ttl = 30s;
    Engine engine(options);
    BlockedStep step;
    std::string run_id = start_blocked_run(engine, step);
    std::thread stopper([&] { CHECK(engine.stop(20s)); });  // waits for the step
    // Leases must not lapse meanwhile, or another process would start the run a second time.
    expect_renewals(*clock, dir.file("t.db"), run_id, 9);
    step.release.count_down();
    stopper.join();
  }
}
