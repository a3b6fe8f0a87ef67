// The scheduler: one thread that decides when to claim runs and keeps leases alive. It claims
// due runs whenever workers are free and there may be work: when told (an event arrived, a
// worker finished), when a timer this process set comes due (a sleep deadline, a retry time),
// and every poll interval for work other processes created. It renews this process's leases
// every third of the lease TTL and returns expired leases (of crashed workers) to the queue.
// In-process wake-ups use a condition variable and a timer heap; the database is polled only
// as the fallback for other processes. It also notices steps of the wall clock and corrects
// what a clock that ran ahead left behind (docs/operations.md, "Clock steps").
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "engine/base/clock_step.hpp"
#include "engine/exec/executor.hpp"
#include "engine/store/store.hpp"

namespace durable {

struct SchedulerOptions {
  std::string owner;                         // this process's lease owner id
  std::vector<std::string> function_ids;     // claim only runs of these functions
  std::chrono::milliseconds lease_ttl{30000};
  std::chrono::milliseconds poll_interval{500};
  // Sleeping runs are claimed this long before their sleep ends and held by a worker until
  // it does, so that the claim's commit and the journal read are done by then. 0 with a
  // clock that does not advance by itself.
  std::chrono::milliseconds claim_ahead{0};
  // Told how many runs each lease recovery took back (for metrics).
  std::function<void(int)> on_recovered;
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, Store& store, Executor& executor, Clock& clock);
  // Stops and joins the thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the thread, whose first round recovers expired leases. Idempotent.
  void start();
  // Stops claiming runs and recovering leases; leases go on being renewed until stop().
  void stop_claiming();
  // Stops everything; joins the thread. Idempotent.
  void stop();

  // There may be runs due now (new queued runs, a clock move). Thread-safe.
  void notify();
  // A worker finished a run. Starts a claim round only if one may find work: the last claim
  // filled its budget (more may wait), or drain() waits for the executor to go idle. (A
  // round per finished run would cost a write each.) Thread-safe.
  void notify_slot_free();
  // A run becomes due at `at`; `sleep`: it sleeps until then (and may be claimed a little
  // early, see SchedulerOptions::claim_ahead). Thread-safe.
  void wake_at(TimePoint at, bool sleep);

  // See Engine::drain(). False also when the scheduler stops meanwhile.
  bool drain(std::chrono::milliseconds timeout);

 private:
  void loop();
  // One round: renew, recover, claim. Returns when renewal, recovery or polling is next due.
  TimePoint run_due_work(TimePoint now);
  // The clock stepped by `step` (forward > 0) just before `now`: reschedules renewal, recovery
  // and polling.
  void clock_stepped(std::chrono::milliseconds step, TimePoint now);

  const SchedulerOptions options_;
  Store& store_;
  Executor& executor_;
  Clock& clock_;
  int clock_subscription_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;        // the thread waits here
  std::condition_variable idle_cv_;   // drain() waits here
  bool stopping_ = false;             // guarded by mu_
  bool started_ = false;              // guarded by mu_
  uint64_t work_seq_ = 0;             // guarded by mu_: bumped by every notify()
  uint64_t scanned_seq_ = 0;          // guarded by mu_: work_seq_ when the last claim round began
  uint64_t idle_seq_ = 0;             // guarded by mu_: work_seq_ at the last round that found nothing to do
  bool timers_changed_ = false;       // guarded by mu_: a timer was added while the thread waited
  bool claiming_ = true;              // guarded by mu_
  bool backlog_ = false;              // guarded by mu_: the last claim may have left due runs behind
  int drainers_ = 0;                  // guarded by mu_: drain() calls waiting
  // When to look for due runs again (for sleeps, claim_ahead before the deadline). Guarded by mu_.
  std::priority_queue<TimePoint, std::vector<TimePoint>, std::greater<>> timers_;

  // Used by the scheduler thread only.
  ClockStepDetector steps_;
  TimePoint next_renewal_{};
  TimePoint next_recovery_{};
  TimePoint next_poll_{};
  std::thread thread_;
};

}  // namespace durable
