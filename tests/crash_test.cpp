// Crash recovery with a real process: tests/crash/crash_worker runs 200 runs of a 20-step
// function (with a short durable sleep halfway) and is killed with SIGKILL at random moments,
// then restarted. The step bodies write
// a ledger; the journal is read between incarnations, while no worker is alive. Afterwards
// every run must have completed with the right output, and no step committed before a kill
// may have run again after it.
//
// A second test kills a worker running "crash-primitives" (a send, an invoke, a parallel group
// and a wait): every event is sent once, every child invoked once, every body recorded once.
//
// This test waits in real time: it kills a real process at random moments, and the restarted
// worker takes over the runs of the killed one only when their leases expire.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/sqlite_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kRuns = 200;
constexpr int kSteps = 20;
constexpr int kMinKills = 20;
constexpr int kLeaseTtlMs = 750;
// Work in each step body. Long enough that the 20 kills (30-300 ms apart) all land before the
// last run completes: the 4000 steps take about 8 s of work on 4 workers.
constexpr int kStepMs = 6;
constexpr auto kCompletionTimeout = 40s;

using RealTime = std::chrono::steady_clock;

// A step of a run: "<run_id> <step_key>", the way the ledger names it.
using StepId = std::string;
StepId step_id(const std::string& run_id, const std::string& key) { return run_id + " " + key; }

std::string expected_key(int i) { return fmt::format("step-{}", i); }

// The worker process of one generation, SIGKILLed on destruction.
class Worker {
 public:
  Worker(const TempDir& dir, int generation)
      : generation_(generation),
        process_({DURABLE_CRASH_WORKER, "--database", dir.file("crash.db"), "--ledger", dir.file("ledger.txt"),
                  "--port-file", dir.file("port"), "--generation", std::to_string(generation), "--workers", "4",
                  "--lease-ttl-ms", std::to_string(kLeaseTtlMs), "--step-ms", std::to_string(kStepMs)},
                 log_path(dir, generation)) {}

  // Where generation `g` writes its stdout and stderr (the engine's log, level warn).
  static std::string log_path(const TempDir& dir, int g) { return dir.file(fmt::format("worker-{}.log", g)); }

  // SIGKILLs the worker and reaps it. Fails the test if it had already exited by itself.
  void kill_now() {
    REQUIRE_MESSAGE(process_.running(), "worker generation " << generation_ << " exited by itself (see its log)");
    int status = process_.stop(SIGKILL);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
  }

 private:
  int generation_;
  ChildProcess process_;
};

// Waits for the worker to write its port file.
int wait_for_port(const std::string& path) {
  auto deadline = RealTime::now() + 10s;
  while (RealTime::now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    std::this_thread::sleep_for(10ms);
  }
  FAIL("the worker did not write " << path << " within 10 s");
  return 0;
}

// The steps that have a step_completed entry, i.e. whose result is committed.
std::set<StepId> committed_steps(SqliteStore& store, const std::vector<std::string>& run_ids) {
  std::set<StepId> out;
  for (const auto& run_id : run_ids) {
    for (const auto& e : entries_of(store.load_journal(run_id), JournalKind::step_completed)) {
      out.insert(step_id(run_id, e.step_key));
    }
  }
  return out;
}

struct LedgerLine {
  int generation = 0;
  std::string run_id;
  std::string key;
};

std::vector<LedgerLine> read_ledger(const std::string& path) {
  std::ifstream in(path);
  std::vector<LedgerLine> lines;
  std::string text;
  while (std::getline(in, text)) {
    std::istringstream fields(text);
    LedgerLine line;
    std::string rest;
    bool ok = static_cast<bool>(fields >> line.generation >> line.run_id >> line.key) && !(fields >> rest);
    REQUIRE_MESSAGE(ok, "malformed ledger line: '" << text << "'");
    lines.push_back(std::move(line));
  }
  return lines;
}

// True when the worker log of a generation says that the execution of `run_id` lost its lease
// (only then may a step run twice within one incarnation).
bool lost_lease(const TempDir& dir, int generation, const std::string& run_id) {
  std::ifstream in(Worker::log_path(dir, generation));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("lease lost") != std::string::npos && line.find("run=" + run_id) != std::string::npos) return true;
  }
  return false;
}

std::string tail_of(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

std::string describe_journal(const std::vector<JournalEntry>& journal) {
  std::string out;
  for (const auto& e : journal) {
    out += fmt::format("  {} {} {} payload={} started_at={} recorded_at={}\n", e.seq, to_string(e.kind), e.step_key,
                       e.payload, e.started_at ? std::to_string(to_millis(*e.started_at)) : "-",
                       to_millis(e.recorded_at));
  }
  return out;
}

}  // namespace

TEST_SUITE("crash") {
  TEST_CASE("a SIGKILLed worker loses no committed step and redoes none" * doctest::timeout(60)) {
    TempDir dir;
    const auto test_start = RealTime::now();
    const unsigned seed = std::random_device{}();
    MESSAGE("random seed " << seed);
    std::mt19937 rng(seed);

    int generation = 0;
    auto worker = std::make_unique<Worker>(dir, generation);
    int port = wait_for_port(dir.file("port"));

    std::vector<std::string> event_ids;
    {
      Client client(fmt::format("http://127.0.0.1:{}", port), "crash");
      std::vector<Event> events;
      for (int i = 0; i < kRuns; ++i) {
        events.push_back(Event{.id = fmt::format("crash-{}", i), .name = "crash/test", .data = {{"seed", i}}});
      }
      event_ids = client.send(events);
    }
    REQUIRE(event_ids.size() == kRuns);

    // committed_before[g]: the steps committed when generation g started (read while no worker
    // was alive). Committed results never go away, so each set contains the one before it.
    std::vector<std::set<StepId>> committed_before = {{}};
    std::unique_ptr<SqliteStore> store;
    std::vector<std::string> run_ids;    // run_ids[i] was started by event i (seed i)
    std::map<std::string, int> seed_of;  // run id -> seed
    std::uniform_int_distribution<int> pause_ms(30, 300);
    for (int kill = 1; kill <= kMinKills; ++kill) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
      worker->kill_now();
      worker.reset();
      if (!store) {
        store = std::make_unique<SqliteStore>(SqliteStoreOptions{.path = dir.file("crash.db")});
        for (int i = 0; i < kRuns; ++i) {
          auto runs = store->runs_for_event(event_ids[i]);
          REQUIRE_MESSAGE(runs.size() == 1, "event " << i << " started " << runs.size() << " runs");
          run_ids.push_back(runs[0].id);
          seed_of[runs[0].id] = i;
        }
      }
      std::set<StepId> committed = committed_steps(*store, run_ids);
      const auto& before = committed_before.back();
      CHECK_MESSAGE(std::includes(committed.begin(), committed.end(), before.begin(), before.end()),
                    "a step committed before kill " << kill - 1 << " has no step_completed entry after kill " << kill);
      committed_before.push_back(std::move(committed));
      worker = std::make_unique<Worker>(dir, ++generation);
    }
    const size_t committed_at_last_kill = committed_before.back().size();
    CHECK_MESSAGE(committed_at_last_kill < size_t{kRuns * kSteps},
                  "every step had committed before the last kill: the kills did not all land mid-run; "
                  "make the steps slower (kStepMs)");

    // Let the last generation finish everything.
    std::vector<Run> unfinished;
    const auto deadline = RealTime::now() + kCompletionTimeout;
    for (;;) {
      unfinished.clear();
      for (const auto& id : run_ids) {
        auto run = store->find_run(id);
        if (!run || !is_finished(run->status)) unfinished.push_back(run.value_or(Run{.id = id}));
      }
      if (unfinished.empty() || RealTime::now() > deadline) break;
      std::this_thread::sleep_for(50ms);
    }
    worker->kill_now();
    worker.reset();
    if (!unfinished.empty()) {
      std::string detail;
      for (size_t i = 0; i < unfinished.size() && i < 5; ++i) {
        const Run& run = unfinished[i];
        detail += fmt::format("run {} status={} attempt={} available_at={}\n{}", run.id, to_string(run.status),
                              run.attempt, to_millis(run.available_at), describe_journal(store->load_journal(run.id)));
      }
      FAIL(unfinished.size() << " runs still unfinished " << kCompletionTimeout.count()
                             << " s after the last kill, e.g.\n" << detail << "last worker log:\n"
                             << tail_of(Worker::log_path(dir, generation), 30));
    }

    // Every run completed with the right output, and its journal holds exactly its 20 steps.
    std::map<StepId, const JournalEntry*> final_entry;
    std::map<std::string, std::vector<JournalEntry>> journals;
    for (const auto& run_id : run_ids) {
      const int64_t s = seed_of[run_id];
      auto run = store->find_run(run_id);
      REQUIRE(run);
      CHECK_MESSAGE(run->status == RunStatus::completed, "run " << run_id << " is " << to_string(run->status));
      CHECK_MESSAGE(run->output == s * 100 * kSteps + kSteps * (kSteps - 1) / 2,
                    "run " << run_id << " (seed " << s << ") returned " << run->output.dump());
      auto& journal = journals[run_id] = store->load_journal(run_id);
      auto steps = entries_of(journal, JournalKind::step_completed);
      CHECK_MESSAGE(steps.size() == kSteps, "run " << run_id << " journal:\n" << describe_journal(journal));
      for (size_t i = 0; i < steps.size() && i < kSteps; ++i) {
        CHECK_MESSAGE(steps[i].step_key == expected_key(static_cast<int>(i)), "run " << run_id);
        CHECK_MESSAGE(steps[i].payload == std::to_string(s * 100 + static_cast<int64_t>(i)), "run " << run_id);
      }
      REQUIRE(!journal.empty());
      CHECK(journal.back().kind == JournalKind::run_completed);
      for (const auto& e : journal) {
        if (e.kind == JournalKind::step_completed) final_entry[step_id(run_id, e.step_key)] = &e;
      }
    }
    for (const auto& step : committed_before.back()) {
      CHECK_MESSAGE(final_entry.count(step) == 1,
                    "step '" << step << "' was committed at the last kill but is not in the final journal");
    }

    // The ledger: every step ran, and none ran in a generation that started after its result
    // was committed.
    auto ledger = read_ledger(dir.file("ledger.txt"));
    std::map<StepId, std::vector<int>> generations_of;  // step -> generations its body ran in, in ledger order
    for (const auto& line : ledger) {
      REQUIRE_MESSAGE(seed_of.count(line.run_id) == 1, "ledger names an unknown run: " << line.run_id);
      REQUIRE(line.generation >= 0);
      REQUIRE(line.generation <= generation);
      generations_of[step_id(line.run_id, line.key)].push_back(line.generation);
    }
    for (const auto& run_id : run_ids) {
      for (int i = 0; i < kSteps; ++i) {
        CHECK_MESSAGE(generations_of.count(step_id(run_id, expected_key(i))) == 1,
                      "step " << expected_key(i) << " of run " << run_id << " never ran");
      }
    }
    int redone_committed = 0, rerun_after_kill = 0, rerun_within_generation = 0;
    for (const auto& [step, gens] : generations_of) {
      for (int g : gens) {
        if (committed_before[g].count(step) == 0) continue;
        if (++redone_committed > 5) continue;  // the first few, in detail; the count below says how many
        const JournalEntry* e = final_entry[step];
        std::string run_id = step.substr(0, step.find(' '));
        FAIL_CHECK("step '" << step << "' ran in generation " << g << " although its result was committed "
                            << "before that generation started; it ran in generations "
                            << fmt::format("{}", fmt::join(gens, ",")) << "; committed entry: seq "
                            << (e ? e->seq : -1) << " payload " << (e ? e->payload : "?") << "; journal:\n"
                            << describe_journal(journals[run_id]));
      }
      for (size_t i = 1; i < gens.size(); ++i) {
        if (gens[i] != gens[i - 1]) {
          ++rerun_after_kill;  // ran, the worker was killed before the result was committed, ran again
          continue;
        }
        // Within one incarnation nothing was killed: only a lost lease explains a second run.
        ++rerun_within_generation;
        std::string run_id = step.substr(0, step.find(' '));
        CHECK_MESSAGE(lost_lease(dir, gens[i], run_id), "step '" << step << "' ran twice in generation " << gens[i]
                                                                 << " and that worker never lost the run's lease");
      }
    }
    CHECK_MESSAGE(redone_committed == 0, redone_committed << " executions of steps whose result was already committed");

    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(RealTime::now() - test_start);
    MESSAGE(kMinKills << " kills, " << ledger.size() << " step executions for " << kRuns * kSteps << " steps: "
                      << rerun_after_kill << " re-run after a kill (not yet committed when it landed), "
                      << rerun_within_generation << " re-run within one incarnation after a lost lease; "
                      << committed_at_last_kill << " steps committed at the last kill; " << elapsed.count() << " ms");
  }
}

TEST_SUITE("crash") {
  TEST_CASE("SIGKILLs during sends, invokes, parallel steps and waits: nothing sent, invoked or recorded twice" *
            doctest::timeout(90)) {
    constexpr int kParents = 40;
    constexpr int kKills = 8;
    TempDir dir;
    const unsigned seed = std::random_device{}();
    MESSAGE("random seed " << seed);
    std::mt19937 rng(seed);
    auto start_worker = [&](int generation) {
      std::filesystem::remove(dir.file("port"));  // the new one's, not the last one's
      auto worker = std::make_unique<Worker>(dir, generation);
      return std::make_pair(std::move(worker), wait_for_port(dir.file("port")));
    };
    int generation = 0;
    auto [worker, port] = start_worker(generation);
    std::vector<Event> events;
    for (int i = 0; i < kParents; ++i) events.push_back(Event{.name = "crash/primitives", .data = {{"seed", i}}});
    std::vector<std::string> event_ids = Client(fmt::format("http://127.0.0.1:{}", port), "crash").send(events);
    SqliteStore store({.path = dir.file("crash.db")});
    std::vector<std::string> run_ids;
    auto waiting_for_ack = [&](const std::string& run_id) {
      for (const auto& e : entries_of(store.load_journal(run_id), JournalKind::wait_started)) {
        if (e.step_key == "ack") return true;
      }
      return false;
    };
    std::uniform_int_distribution<int> pause_ms(20, 200);
    long at_wait_after_last_kill = 0;  // runs past their primitives when the last kill landed
    for (int kill = 0; kill < kKills; ++kill) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
      worker->kill_now();
      worker.reset();
      if (run_ids.empty()) {
        for (const auto& id : event_ids) {
          auto runs = store.runs_for_event(id);
          REQUIRE(runs.size() == 1);
          run_ids.push_back(runs[0].id);
        }
      }
      at_wait_after_last_kill = std::count_if(run_ids.begin(), run_ids.end(), waiting_for_ack);
      std::tie(worker, port) = start_worker(++generation);
    }
    CHECK_MESSAGE(at_wait_after_last_kill < kParents,
                  "every run had reached its wait before the last kill: the kills did not land mid-flow");

    // Every run waits for its acknowledgement before it is sent (one sent earlier would not
    // count): then the last worker gets them all.
    REQUIRE(wait_until([&] { return std::all_of(run_ids.begin(), run_ids.end(), waiting_for_ack); }, 60s));
    std::vector<Event> acks;
    for (int i = 0; i < kParents; ++i) acks.push_back(Event{.name = "crash/ack", .data = {{"seed", i}}});
    Client(fmt::format("http://127.0.0.1:{}", port), "crash").send(acks);
    REQUIRE(wait_until([&] {
      return std::all_of(run_ids.begin(), run_ids.end(), [&](const std::string& id) {
        auto run = store.find_run(id);
        return run && is_finished(run->status);
      });
    }, 30s));
    worker->kill_now();

    std::map<std::string, int> children_of;  // parent run -> invoked runs
    for (const Run& child : store.list_runs(RunFilter{.function_id = "crash-double"}, 1000, "")) {
      ++children_of[child.parent_run_id];
      CHECK(child.status == RunStatus::completed);
    }
    std::map<int64_t, int> pings;  // seed -> crash/ping events sent
    for (const StoredEvent& e : store.list_events(EventFilter{.name = "crash/ping"}, 1000, "")) {
      ++pings[e.event.data.at("seed").get<int64_t>()];
    }
    CHECK(store.count_runs(RunFilter{.function_id = "crash-ping"}) == kParents);
    for (int i = 0; i < kParents; ++i) {
      CAPTURE(i);
      auto run = store.find_run(run_ids[i]);
      REQUIRE(run);
      CHECK(run->status == RunStatus::completed);
      CHECK(run->output == 5 * i + 3 + 1000);
      CHECK(pings[i] == 1);                      // sent once, whatever the kills
      CHECK(children_of[run_ids[i]] == 1);       // invoked once
      auto journal = store.load_journal(run_ids[i]);
      std::map<std::string, int> completed;
      for (const auto& e : entries_of(journal, JournalKind::step_completed)) ++completed[e.step_key];
      CHECK(completed == std::map<std::string, int>{{"ping", 1}, {"fan[0]", 1}, {"fan[1]", 1}, {"fan[2]", 1}});
      auto resolved = entries_of(journal, JournalKind::wait_resolved);
      REQUIRE(resolved.size() == 2);  // the invoke and the ack
      CHECK(resolved[0].step_key == "double");
      CHECK(resolved[1].step_key == "ack");
    }
    MESSAGE(kKills << " kills across " << kParents << " runs of send, invoke, run_all and wait_for_event; "
                   << at_wait_after_last_kill << " had reached their wait at the last kill");
  }
}
