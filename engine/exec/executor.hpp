// The executor: a fixed pool of worker threads that execute claimed runs. Each worker takes
// one run at a time and runs it until it completes, fails, sleeps or waits for a retry; a
// sleeping run holds no thread. The number of workers bounds the runs in flight, and with it
// how many steps share each group commit.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <string>
#include <unordered_set>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/exec/run_execution.hpp"
#include "engine/store/store.hpp"

namespace durable {

class Executor {
 public:
  // `on_slot_free` is called (from a worker thread, with no lock held) after every execution.
  Executor(const ExecutionEnv& env, int workers, std::function<void()> on_slot_free);
  // Stops with no grace (see stop()) and joins the workers.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Starts the worker threads. Idempotent.
  void start();

  // Executes `runs` (claimed by the scheduler, within claim_budget()).
  void submit(std::vector<ClaimedRun> runs);

  // Reserves up to `n` slots for runs the caller is about to claim itself (at ingest) and
  // then passes to submit_reserved() or gives back with unreserve(). Returns how many it
  // reserved: 0 before start() and after stop().
  int reserve(int n);
  void unreserve(int n);
  void submit_reserved(std::vector<ClaimedRun> runs);

  // How many runs the scheduler should claim now: 0 while enough claimed runs wait for a
  // thread, else as many as fill the executor up. It holds up to four times its workers:
  // one running on each, the rest waiting (due, or claimed ahead of the end of a sleep), so
  // that threads never wait for a claim.
  int claim_budget() const;

  // Runs `task` (a body of a parallel step group) on a free worker, ahead of queued runs. It
  // does not count as a run; the execution that hands it over also runs it itself if no
  // worker has taken it yet (ParallelGroup), so it never waits for a worker. Thread-safe.
  void run_task(std::function<void()> task);

  // True when no run is queued, reserved or executing.
  bool idle() const;

  // The ids of the runs queued or executing here: the leases to renew. (Reserved runs are
  // being created with a fresh lease.)
  std::vector<std::string> held_runs() const;

  // Stops taking runs: queued ones are handed back to the store, due at once; executions
  // hand their run back before their next step. Waits up to `grace` for executions to end.
  // Returns true if all did (the workers are then joined), false if some are still inside a
  // step body. Idempotent.
  bool stop(std::chrono::milliseconds grace);

 private:
  void worker_loop();
  // Queues `runs`, of which `was_reserved` fill reserved slots, and wakes workers for them.
  void enqueue(std::vector<ClaimedRun> runs, int was_reserved);
  int capacity() const { return 4 * workers_; }
  int unheld() const;  // capacity minus the runs held (executing, queued, reserved); needs mu_

  const ExecutionEnv& env_;
  const int workers_;
  std::function<void()> on_slot_free_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // a run was queued, or stopping
  std::condition_variable done_cv_;   // an execution ended
  // Claimed runs waiting for a thread: a heap (std::push_heap) with the earliest available_at
  // at the front. Guarded by mu_.
  struct LaterFirst {
    bool operator()(const ClaimedRun& a, const ClaimedRun& b) const { return a.available_at > b.available_at; }
  };
  std::vector<ClaimedRun> queue_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_: see run_task
  int executing_ = 0;                 // guarded by mu_
  std::unordered_multiset<std::string> executing_ids_;  // guarded by mu_
  int reserved_ = 0;                  // guarded by mu_
  bool started_ = false;              // guarded by mu_
  bool stopping_ = false;             // guarded by mu_; env_.stopping mirrors it for executions
  std::vector<std::thread> threads_;
};

}  // namespace durable
