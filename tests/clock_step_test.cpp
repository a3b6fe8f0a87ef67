// Clock steps: the wall clock jumping 2 h ahead and back, or 2 h back and forward, while runs
// retry, run, sleep and arrive. Once the clock is back, every run that is not in a user sleep
// finishes without the clock advancing by the step; user sleeps end at their recorded
// wall-clock deadlines (docs/operations.md, "Clock steps").
//
// The engine cases drive an engine with a test clock that steps both ways. The last case steps
// the real system clock of a worker process with libfaketime (Debian's faketime package), and
// waits in real time for that process, never for a deadline.
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/base/clock_step.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "engine/store/sqlite/sqlite_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// A clock moved by hand, forward or back: the wall clock of a machine whose clock is stepped.
// (ManualClock never goes back.)
class SteppedClock final : public Clock {
 public:
  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  bool advances_by_itself() const override { return false; }
  int subscribe(std::function<void()> listener) override {
    std::lock_guard lock(mu_);
    listeners_.emplace(next_id_, std::move(listener));
    return next_id_++;
  }
  void unsubscribe(int id) override {
    {
      std::lock_guard lock(mu_);
      listeners_.erase(id);
    }
    std::lock_guard calls(calls_mu_);  // a move may still be calling it
  }

  // Moves the clock by `d`, forward or back, then tells every subscriber.
  void move(std::chrono::milliseconds d) {
    std::lock_guard calls(calls_mu_);
    std::vector<std::function<void()>> listeners;
    {
      std::lock_guard lock(mu_);
      now_ += d;
      for (auto& [id, fn] : listeners_) listeners.push_back(fn);
    }
    for (auto& fn : listeners) fn();
  }

 private:
  std::mutex calls_mu_;
  mutable std::mutex mu_;
  TimePoint now_ = from_millis(1893456000000);  // 2030-01-01T00:00:00Z, like ManualClock
  int next_id_ = 1;
  std::map<int, std::function<void()>> listeners_;
};

// Step bodies wait here until the test opens it.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// An engine with three workers on a SteppedClock, and functions that leave runs in every state a
// step can find them in:
//   "hold" (test/hold): a step that waits at the gate: a running run, its lease renewed;
//   "gated" (test/gated): the same; many of them fill the executor, and the rest stay queued;
//   "flaky" (test/flaky): a step that fails once and is retried 1 s later;
//   "nap" (test/nap): a user sleep of 30 min between two steps;
//   "orphan" (test/orphan): a run a dead process held (orphan()), continued from its journal.
struct SteppedEngine {
  // Declared before the engine, whose workers use them until it is destroyed.
  Gate gate;
  std::atomic<int> hold_bodies{0}, gated_bodies{0}, flaky_bodies{0}, after_nap{0}, orphan_bodies{0};
  std::mutex mu;
  std::set<std::string> failed_once;  // guarded by mu: flaky runs whose step failed already
  TempDir dir;
  std::shared_ptr<SteppedClock> clock = std::make_shared<SteppedClock>();
  Engine engine{options(dir.file("t.db"), clock)};

  static EngineOptions options(const std::string& path, std::shared_ptr<Clock> clock) {
    EngineOptions o = engine_options(path, std::move(clock));
    o.workers = 3;
    o.lease_ttl = 30s;
    return o;
  }

  SteppedEngine() {
    engine.function({.id = "hold"}, on_event("test/hold"), [this](Context& ctx) {
      return ctx.step.run("hold", [this] {
        ++hold_bodies;
        gate.wait();
        return 1;
      });
    });
    engine.function({.id = "gated"}, on_event("test/gated"), [this](Context& ctx) {
      return ctx.step.run("work", [this] {
        ++gated_bodies;
        gate.wait();
        return 1;
      });
    });
    engine.function({.id = "flaky", .retries = 3, .backoff = fast_backoff()}, on_event("test/flaky"),
                    [this](Context& ctx) {
                      return ctx.step.run("call", [&] {
                        ++flaky_bodies;
                        std::lock_guard lock(mu);
                        if (failed_once.insert(ctx.run_id).second) throw std::runtime_error("down for a moment");
                        return 1;
                      });
                    });
    engine.function({.id = "nap"}, on_event("test/nap"), [this](Context& ctx) {
      ctx.step.run("before", [] { return 1; });
      ctx.step.sleep("nap", 30min);
      return ctx.step.run("after", [this] { return ++after_nap; });
    });
    engine.function({.id = "orphan"}, on_event("test/orphan"), [this](Context& ctx) {
      int a = ctx.step.run("a", [] { return 1; });  // recorded by the dead process: 10
      int b = ctx.step.run("b", [this] { return ++orphan_bodies; });
      return a + b;
    });
    engine.start();
  }
  ~SteppedEngine() { gate.open(); }  // lets held steps end, so the engine can stop

  // The run started by an event of `name` sent now.
  std::string start(const std::string& name) { return only_run(engine, engine.send({.name = name})).id; }
  Run run(const std::string& id) const { return *engine.get_run(id); }
  RunStatus status(const std::string& id) const { return run(id).status; }

  // Moves the clock by `d` and waits until the engine has nothing due.
  void advance(std::chrono::milliseconds d) {
    clock->move(d);
    REQUIRE(engine.drain());
  }

  // A run that another process created already leased to itself at `now` (by its clock), that
  // recorded step "a" and died holding the lease.
  std::string orphan(TimePoint now) {
    SqliteStore store({.path = dir.file("t.db")});
    IngestStore::Item item{"E-orphan", Event{.name = "test/orphan", .ts = now},
                           {NewRun{.id = "R-orphan", .function_id = "orphan", .event_id = "E-orphan",
                                   .lease = Lease{"dead-process", now + 30s}}}};
    store.ingest({item}, now, 24h);
    Commit c{.run_id = "R-orphan", .lease_epoch = 1,
             .entries = {JournalEntry{.seq = 1, .kind = JournalKind::step_completed, .step_key = "a", .payload = "10",
                                      .recorded_at = now}},
             .now = now};
    REQUIRE(store.commit(c) == JournalStore::CommitResult::committed);
    return "R-orphan";
  }

  // The deadline recorded in a nap run's journal.
  TimePoint recorded_deadline(const std::string& run_id) {
    auto sleeps = entries_of(read_journal(dir.file("t.db"), run_id), JournalKind::sleep_scheduled);
    REQUIRE(sleeps.size() == 1);
    return from_millis(nlohmann::json::parse(sleeps[0].payload).at("until").get<int64_t>());
  }

  // The lease owner of a run ("" when none).
  std::string lease_owner(const std::string& run_id) {
    SqliteDb db(dir.file("t.db"), 5s);
    Statement s(db.handle(), "SELECT coalesce(lease_owner, '') FROM runs WHERE id = ?");
    s.bind(1, run_id);
    REQUIRE(s.step());
    return s.get_text(0);
  }

  // How many runs of `function` are queued in the store, due at or after `at`.
  int64_t queued_from(const std::string& function, TimePoint at) {
    SqliteDb db(dir.file("t.db"), 5s);
    Statement s(db.handle(), "SELECT count(*) FROM runs WHERE function_id = ? AND status = 'queued' AND available_at >= ?");
    s.bind(1, function).bind(2, to_millis(at));
    REQUIRE(s.step());
    return s.get_int(0);
  }
};

// For waiting on the engine's threads (never on a deadline).
constexpr auto kThreads = 20s;

}  // namespace

TEST_SUITE("clock step") {
  TEST_CASE("a step is a move of the wall clock that time passing does not explain") {
    using steady = std::chrono::steady_clock;
    const TimePoint t0 = from_millis(1893456000000);
    const steady::time_point s0{};
    SUBCASE("a clock that advances by itself is compared with the monotonic clock") {
      ClockStepDetector steps(true);
      CHECK(steps.observe(t0, s0) == 0ms);                    // the first reading
      CHECK(steps.observe(t0 + 10s, s0 + 10s) == 0ms);        // time passed
      CHECK(steps.observe(t0 + 10s + 2h, s0 + 11s) == 2h - 1s);  // stepped ahead
      CHECK(steps.observe(t0 + 12s, s0 + 12s) == -(2h - 1s));  // and back
      CHECK(steps.observe(t0 + 12s + 900ms, s0 + 12s) == 0ms);  // within the tolerance
      CHECK(steps.observe(t0 + 14s, s0 + 13s + 800ms) == 0ms);  // so is a reading taken late
    }
    SUBCASE("a clock moved by hand steps only when it goes back") {
      ClockStepDetector steps(false);
      CHECK(steps.observe(t0, s0) == 0ms);
      CHECK(steps.observe(t0 + 2h, s0) == 0ms);  // moved forward: time passing
      CHECK(steps.observe(t0, s0) == -2h);
      CHECK(steps.observe(t0 - 500ms, s0) == 0ms);
    }
  }

  TEST_CASE("the store moves back the due times and leases a clock ahead wrote, and no user deadline") {
    TempDir dir;
    for (const std::string path : {std::string(":memory:"), dir.file("t.db")}) {
      CAPTURE(path);
      SqliteStore store({.path = path});
      const TimePoint t0 = from_millis(1893456000000);
      const TimePoint ahead = t0 + 2h;
      auto new_run = [](const std::string& id) { return NewRun{.id = id, .function_id = "fn", .event_id = "E-" + id}; };
      auto ingest = [&](const std::string& id, TimePoint now) {
        store.ingest({IngestStore::Item{"E-" + id, Event{.name = "x", .ts = now}, {new_run(id)}}}, now, 24h);
      };
      // Written with the clock 2 h ahead: a queued run due at once, a retry due 10 s later, a
      // sleep and a wait ending 10 s later, and a lease of 30 s renewed 10 s later.
      const std::vector<std::string> ids = {"Rdue", "Rretry", "Rsleep", "Rwait", "Rleased"};
      for (const auto& id : ids) ingest(id, ahead);
      auto claimed = store.claim({"fn"}, ahead, Lease{"w", ahead + 30s}, 10);
      REQUIRE(claimed.size() == ids.size());
      const std::map<std::string, RunTransition> parked = {
          {"Rdue", {.status = RunStatus::queued, .available_at = ahead}},
          {"Rretry", {.status = RunStatus::queued, .available_at = ahead + 10s}},
          {"Rsleep", {.status = RunStatus::sleeping, .available_at = ahead + 10s}},
          {"Rwait", {.status = RunStatus::waiting, .available_at = ahead + 10s}}};
      for (const auto& run : claimed) {
        if (run.run_id == "Rleased") continue;
        Commit c{.run_id = run.run_id, .lease_epoch = run.lease_epoch, .transition = parked.at(run.run_id), .now = ahead};
        REQUIRE(store.commit(c) == JournalStore::CommitResult::committed);
      }
      CHECK(store.renew_leases("w", {"Rleased"}, ahead + 40s, ahead + 10s) == 1);
      // And a queued run written by a clock only 500 ms ahead: not told apart from skew.
      ingest("Rnear", t0 + 500ms);

      // The clock is back at t0 + 1 s.
      const TimePoint now = t0 + 1s;
      CHECK(store.correct_ahead_times(now, kClockStepTolerance) == 3);
      CHECK(store.find_run("Rdue")->available_at == now);
      CHECK(store.find_run("Rretry")->available_at == now + 10s);  // its backoff, from now
      CHECK(store.find_run("Rsleep")->available_at == ahead + 10s);  // the user's deadlines
      CHECK(store.find_run("Rwait")->available_at == ahead + 10s);
      CHECK(store.find_run("Rnear")->available_at == t0 + 500ms);  // within the tolerance
      CHECK(store.correct_ahead_times(now, kClockStepTolerance) == 0);  // nothing left to correct
      CHECK(store.recover_expired_leases(now + 30s - 1ms).empty());  // the whole TTL again, from now
      CHECK(store.recover_expired_leases(now + 30s).size() == 1);
      auto runs = store.claim({"fn"}, now + 30s, Lease{"w", now + 60s}, 10);
      std::set<std::string> due;
      for (const auto& r : runs) due.insert(r.run_id);
      CHECK(due == std::set<std::string>{"Rdue", "Rleased", "Rnear", "Rretry"});
    }
  }

  TEST_CASE("after the clock runs 2 h ahead and comes back, every run not in a user sleep finishes without waiting for the 2 h" *
            doctest::timeout(60)) {
    SteppedEngine s;
    const TimePoint t0 = s.clock->now();
    std::string nap_before = s.start("test/nap");
    std::string flaky_before = s.start("test/flaky");
    REQUIRE(s.engine.drain());
    REQUIRE(s.status(nap_before) == RunStatus::sleeping);
    REQUIRE(s.status(flaky_before) == RunStatus::queued);  // its retry is due at t0 + 1 s
    std::vector<std::string> holds = {s.start("test/hold"), s.start("test/hold")};
    REQUIRE(wait_until([&] { return s.hold_bodies == 2; }, kThreads));  // two workers held, one free

    s.clock->move(2h);
    const TimePoint ahead = s.clock->now();
    // On the free worker, with the clock ahead: a step fails and is retried 1 s later; a run
    // goes to sleep for 30 min; and before the step, the retry and the sleep due meanwhile
    // end (nap_before's deadline, t0 + 30 min, has passed).
    std::string flaky_ahead = s.start("test/flaky");
    REQUIRE(wait_until([&] { return s.run(flaky_ahead).status == RunStatus::queued && s.run(flaky_ahead).attempt == 1; },
                       kThreads));
    std::string nap_ahead = s.start("test/nap");
    REQUIRE(wait_until([&] { return s.status(nap_ahead) == RunStatus::sleeping; }, kThreads));
    // Another process dies holding a run, its lease set by the clock ahead.
    std::string orphan = s.orphan(ahead);
    // New events: the last worker takes one and waits; the executor holds a few more, and the
    // rest stay queued, due at times of the clock ahead.
    std::vector<std::string> gated;
    for (int i = 0; i < 20; ++i) gated.push_back(s.start("test/gated"));
    REQUIRE(wait_until([&] { return s.gated_bodies == 1; }, kThreads));
    REQUIRE(s.queued_from("gated", ahead) > 0);

    // The clock comes back. Nothing advances it by the 2 h.
    s.clock->move(-2h);
    s.gate.open();
    REQUIRE(s.engine.drain());
    for (const auto& id : holds) CHECK(s.status(id) == RunStatus::completed);
    for (const auto& id : gated) CHECK(s.status(id) == RunStatus::completed);
    CHECK(s.hold_bodies == 2);
    CHECK(s.gated_bodies == 20);
    CHECK(s.status(flaky_before) == RunStatus::completed);
    CHECK(s.status(nap_before) == RunStatus::completed);
    CHECK(s.recorded_deadline(nap_before) == t0 + 30min);
    // The retry set while ahead is due its 1 s backoff after the clock came back.
    CHECK(s.status(flaky_ahead) == RunStatus::queued);
    CHECK(s.run(flaky_ahead).available_at <= s.clock->now() + 1s);
    s.advance(1s);
    CHECK(s.status(flaky_ahead) == RunStatus::completed);
    CHECK(s.flaky_bodies == 4);  // two runs, two attempts each
    // The dead process's lease got its 30 s again from when the clock came back, not 2 h.
    CHECK(s.status(orphan) == RunStatus::running);
    s.advance(30s);
    CHECK(s.status(orphan) == RunStatus::completed);
    CHECK(s.run(orphan).output == 11);  // "a" from the dead process's journal
    CHECK(s.orphan_bodies == 1);

    // The user's sleep keeps the deadline recorded while the clock was ahead.
    CHECK(s.status(nap_ahead) == RunStatus::sleeping);
    const TimePoint deadline = s.recorded_deadline(nap_ahead);
    CHECK(deadline == ahead + 30min);
    CHECK(s.run(nap_ahead).available_at == deadline);
    CHECK(s.after_nap == 1);  // nap_before's
    s.advance(deadline - s.clock->now() - 1ms);
    CHECK(s.status(nap_ahead) == RunStatus::sleeping);
    s.advance(1ms);
    CHECK(s.status(nap_ahead) == RunStatus::completed);
    CHECK(s.after_nap == 2);
  }

  TEST_CASE("after the clock runs 2 h behind and comes back, live runs keep their leases and overdue runs go at once" *
            doctest::timeout(60)) {
    SteppedEngine s;
    const TimePoint t0 = s.clock->now();
    std::string nap_before = s.start("test/nap");
    REQUIRE(s.engine.drain());
    REQUIRE(s.status(nap_before) == RunStatus::sleeping);  // until t0 + 30 min

    s.clock->move(-2h);
    const TimePoint behind = s.clock->now();
    std::string flaky_behind = s.start("test/flaky");
    REQUIRE(wait_until([&] { return s.run(flaky_behind).status == RunStatus::queued && s.run(flaky_behind).attempt == 1; },
                       kThreads));
    std::string nap_behind = s.start("test/nap");
    REQUIRE(wait_until([&] { return s.status(nap_behind) == RunStatus::sleeping; }, kThreads));
    // Runs executing here hold leases that end 30 s after a time 2 h behind.
    std::vector<std::string> holds = {s.start("test/hold"), s.start("test/hold")};
    REQUIRE(wait_until([&] { return s.hold_bodies == 2; }, kThreads));
    std::string orphan = s.orphan(behind);
    std::vector<std::string> gated;
    for (int i = 0; i < 20; ++i) gated.push_back(s.start("test/gated"));
    REQUIRE(wait_until([&] { return s.gated_bodies == 1; }, kThreads));

    // The clock comes back: every lease written while it was behind looks expired by 2 h. The
    // dead holder's is recovered at once; ours are renewed first, and stay ours.
    s.clock->move(2h);
    REQUIRE(wait_until([&] { return s.lease_owner(orphan) != "dead-process"; }, kThreads));
    for (const auto& id : holds) CHECK(s.status(id) == RunStatus::running);
    s.gate.open();
    REQUIRE(s.engine.drain());
    for (const auto& id : holds) CHECK(s.status(id) == RunStatus::completed);
    for (const auto& id : gated) CHECK(s.status(id) == RunStatus::completed);
    CHECK(s.hold_bodies == 2);  // no step of a live run ran again
    CHECK(s.gated_bodies == 20);
    CHECK(s.orphan_bodies == 1);
    CHECK(s.status(flaky_behind) == RunStatus::completed);  // its retry was overdue
    // A sleep keeps its recorded deadline: the one set while behind has passed...
    CHECK(s.recorded_deadline(nap_behind) == behind + 30min);
    CHECK(s.status(nap_behind) == RunStatus::completed);
    // ... and the one set before is still to come.
    CHECK(s.status(nap_before) == RunStatus::sleeping);
    CHECK(s.clock->now() == t0);
    s.advance(30min - 1ms);
    CHECK(s.status(nap_before) == RunStatus::sleeping);
    s.advance(1ms);
    CHECK(s.status(nap_before) == RunStatus::completed);
  }
}

namespace {

// libfaketime's preload library, or "" (scripts/install-deps.sh installs Debian's faketime).
std::string faketime_library() {
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"}) {
    std::string path = std::string(dir) + "/libfaketime.so.1";
    if (std::filesystem::exists(path)) return path;
  }
  return {};
}

// Sets the offset of the faked clock ("+2h", "-2h", "+0"), through a rename so that the
// worker never reads half a file.
void set_offset(const TempDir& dir, const std::string& offset) {
  {
    std::ofstream out(dir.file("faketime.tmp"), std::ios::trunc);
    out << offset << '\n';
  }
  std::filesystem::rename(dir.file("faketime.tmp"), dir.file("faketime.rc"));
}

int64_t real_now_ms() { return to_millis(std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now())); }

// The number `sql` counts in the database at `path`, with `params` bound in order.
int64_t count(const std::string& path, const char* sql, std::vector<int64_t> params = {}) {
  SqliteDb db(path, 5s);
  Statement s(db.handle(), sql);
  for (size_t i = 0; i < params.size(); ++i) s.bind(static_cast<int>(i) + 1, params[i]);
  REQUIRE(s.step());
  return s.get_int(0);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_SUITE("clock step") {
  TEST_CASE("a worker process whose system clock is stepped 2 h both ways leaves no run stranded" * doctest::timeout(180)) {
    const std::string faketime = faketime_library();
    REQUIRE_MESSAGE(!faketime.empty(), "libfaketime is not installed: run scripts/install-deps.sh");
    TempDir dir;
    const std::string db = dir.file("clock.db");
    set_offset(dir, "+0");
    std::vector<std::string> env = preload_env(faketime);
    env.insert(env.end(), {"FAKETIME_TIMESTAMP_FILE=" + dir.file("faketime.rc"), "FAKETIME_DONT_FAKE_MONOTONIC=1",
                           "FAKETIME_CACHE_DURATION=1"});
    ChildProcess worker({DURABLE_CLOCK_STEP_WORKER, "--database", db, "--port-file", dir.file("port"), "--workers", "4",
                         "--lease-ttl-ms", "3000"},
                        dir.file("worker.log"), env);
    int port = 0;
    REQUIRE(wait_until([&] {
      std::ifstream in(dir.file("port"));
      return static_cast<bool>(in >> port) && port > 0;
    }, 20s));
    Client client(fmt::format("http://127.0.0.1:{}", port), "clock");
    int chains = 0;
    auto send = [&](int n, int naps) {
      std::vector<Event> events;
      for (int i = 0; i < n; ++i) events.push_back(Event{.name = "clock/chain", .data = {{"i", chains++}}});
      for (int i = 0; i < naps; ++i) events.push_back(Event{.name = "clock/nap", .data = {{"ms", 5000}}});
      client.send(events);
    };
    // Sends runs until the worker writes with its clock `offset_ms` off (the faked clock is
    // read from the file at most a second late), then a larger batch.
    auto step_clock = [&](const std::string& offset, int64_t offset_ms) {
      set_offset(dir, offset);
      const char* sql = offset_ms > 0 ? "SELECT count(*) FROM runs WHERE written_at > ?"
                                      : "SELECT count(*) FROM runs WHERE written_at < ?";
      auto last_send = std::chrono::steady_clock::now() - 1s;
      REQUIRE_MESSAGE(wait_until([&] {
        if (std::chrono::steady_clock::now() - last_send > 200ms) {
          send(2, 0);
          last_send = std::chrono::steady_clock::now();
        }
        return count(db, sql, {real_now_ms() + offset_ms / 2}) > 0;
      }, 30s), "the worker's clock never moved by " << offset);
      send(40, 4);
    };

    send(20, 2);
    // Ahead, then back: what was written ahead must not wait for the clock to catch up.
    step_clock("+2h", 2 * 3600 * 1000);
    // Some runs wait in the queue, due at times of the clock ahead, when it comes back.
    REQUIRE(wait_until([&] { return count(db, "SELECT count(*) FROM runs WHERE status = 'queued' AND available_at > ?",
                                          {real_now_ms() + 3600 * 1000}) > 0; }, 30s));
    set_offset(dir, "+0");
    send(20, 2);
    // Behind, then forward: every lease written behind looks expired when the clock returns.
    step_clock("-2h", -2 * 3600 * 1000);
    REQUIRE(wait_until([&] { return count(db, "SELECT count(*) FROM runs WHERE status = 'running' AND lease_expires_at < ?",
                                          {real_now_ms() - 3600 * 1000}) > 0; }, 30s));
    set_offset(dir, "+0");
    send(20, 2);

    // Every chain finishes; only naps may still sleep, until their recorded deadlines.
    const char* unfinished = "SELECT count(*) FROM runs WHERE function_id = 'chain' AND status != 'completed'";
    bool finished = wait_until([&] { return count(db, unfinished) == 0; }, 90s);
    CHECK_MESSAGE(finished, count(db, unfinished) << " chain runs unfinished; worker log:\n" << read_file(dir.file("worker.log")));
    REQUIRE(worker.running());
    worker.stop(SIGKILL);

    SqliteStore store({.path = db});
    auto chain_runs = store.list_runs(RunFilter{.function_id = "chain"}, 10000, "");
    CHECK(static_cast<int>(chain_runs.size()) == chains);
    for (const Run& run : chain_runs) {
      CAPTURE(run.id);
      CHECK(run.status == RunStatus::completed);
      CHECK(run.output == 10);
      std::set<std::string> keys;
      for (const auto& e : entries_of(store.load_journal(run.id), JournalKind::step_completed)) {
        CHECK(keys.insert(e.step_key).second);  // each step recorded once
      }
      CHECK(keys.size() == 5);
    }
    int sleeping = 0;
    for (const Run& run : store.list_runs(RunFilter{.function_id = "nap"}, 1000, "")) {
      CAPTURE(run.id);
      if (run.status == RunStatus::completed) continue;
      // Asleep until the deadline it recorded (2 h away when the clock was ahead), not stranded.
      REQUIRE(run.status == RunStatus::sleeping);
      auto sleeps = entries_of(store.load_journal(run.id), JournalKind::sleep_scheduled);
      REQUIRE(sleeps.size() == 1);
      CHECK(to_millis(run.available_at) == nlohmann::json::parse(sleeps[0].payload).at("until").get<int64_t>());
      ++sleeping;
    }
    std::string log = read_file(dir.file("worker.log"));
    CHECK(log.find("the system clock stepped back") != std::string::npos);
    CHECK(log.find("the system clock stepped forward") != std::string::npos);
    MESSAGE(chains << " chain runs completed; " << sleeping << " naps still sleeping until their recorded deadlines");
  }
}
