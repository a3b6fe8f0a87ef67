// Crash recovery with a real process, tests/crash/crash_worker, killed with SIGKILL at random
// moments and restarted:
//
// - 200 runs of its 20-step function "crash-20" (with a short durable sleep): the crash
//   torture's driver (tests/torture/torture.hpp) without crash points or resends, every event
//   in one request and 20 kills. Every run must complete with the right output, and no step
//   committed before a kill may run again after it.
// - "crash-primitives" (a send, an invoke, a parallel group and a wait): every event is sent
//   once, every child invoked once, every body recorded once.
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
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"
#include "tests/torture/torture.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kLeaseTtlMs = 750;
constexpr int kStepMs = 6;  // work in each step body

using RealTime = std::chrono::steady_clock;

// The worker process of one generation, SIGKILLed on destruction.
class Worker {
 public:
  Worker(const TempDir& dir, int generation)
      : generation_(generation),
        process_({DURABLE_CRASH_WORKER, "--database", dir.file("crash.db"), "--ledger", dir.file("ledger.txt"),
                  "--port-file", dir.file("port"), "--generation", std::to_string(generation), "--workers", "4",
                  "--lease-ttl-ms", std::to_string(kLeaseTtlMs), "--step-ms", std::to_string(kStepMs)},
                 dir.file(fmt::format("worker-{}.log", generation))) {}

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

}  // namespace

TEST_SUITE("crash") {
  TEST_CASE("a SIGKILLed worker loses no committed step and redoes none" * doctest::timeout(60)) {
    // Each kill lands 20-300 ms after its worker started; the steps (6 ms of work each, 4,000
    // on 4 workers) last long enough that the 20 kills all land before the last run completes.
    const TortureOptions options{.runs = 200,
                                 .min_kills = 20,
                                 .duration = 0ms,
                                 .max_life = 300ms,
                                 .hits_per_point = 0,
                                 .one_request = true,
                                 .resend_share = 0,
                                 .step_ms = kStepMs,
                                 .lease_ttl_ms = kLeaseTtlMs,
                                 .seed = std::random_device{}()};
    MESSAGE("random seed " << options.seed);
    TortureReport report = run_torture(options);
    MESSAGE(report.summary());
    CHECK(report.runs_lost == 0);
    CHECK(report.committed_steps_rerun == 0);
    CHECK(report.duplicate_runs == 0);
    CHECK_MESSAGE(report.problems.empty(), report.problems.size() << " problems (above)");
    CHECK(report.kills == options.min_kills);
    CHECK_MESSAGE(report.steps_committed_at_last_kill < report.steps,
                  "every step had committed before the last kill: the kills did not all land mid-run; make the "
                  "steps slower (step_ms)");
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
    auto store_owner = open_store(dir.file("crash.db"), {});
    Store& store = *store_owner;
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
