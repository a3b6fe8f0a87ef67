#include "engine/exec/executor.hpp"

#include <algorithm>

#include "engine/base/clock_step.hpp"
#include "engine/base/thread_name.hpp"

namespace durable {

Executor::Executor(const ExecutionEnv& env, int workers, std::function<void()> on_slot_free)
    : env_(env), workers_(workers), on_slot_free_(std::move(on_slot_free)) {}

Executor::~Executor() {
  stop(std::chrono::milliseconds(0));
  {
    std::lock_guard lock(mu_);
    started_ = false;  // lets idle workers leave their loop
  }
  work_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Executor::start() {
  std::lock_guard lock(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  threads_.reserve(workers_);
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { worker_loop(); });
}

void Executor::submit(std::vector<ClaimedRun> runs) { enqueue(std::move(runs), 0); }

void Executor::enqueue(std::vector<ClaimedRun> runs, int was_reserved) {
  size_t n = runs.size();
  {
    std::lock_guard lock(mu_);
    reserved_ -= was_reserved;
    for (auto& r : runs) {
      queue_.push_back(std::move(r));
      std::push_heap(queue_.begin(), queue_.end(), LaterFirst{});
    }
  }
  // One worker per run: waking them all for one run would cost dozens of context switches.
  for (size_t i = 0; i < std::min(n, static_cast<size_t>(workers_)); ++i) work_cv_.notify_one();
}

int Executor::reserve(int n) {
  std::lock_guard lock(mu_);
  if (!started_ || stopping_) return 0;
  int granted = std::max(0, std::min(n, unheld()));
  reserved_ += granted;
  return granted;
}

void Executor::unreserve(int n) {
  {
    std::lock_guard lock(mu_);
    reserved_ -= n;
  }
  done_cv_.notify_all();  // stop() may be waiting for reserved_ to drop to 0
  if (n > 0) on_slot_free_();
}

void Executor::submit_reserved(std::vector<ClaimedRun> runs) {
  int n = static_cast<int>(runs.size());
  enqueue(std::move(runs), n);
}

int Executor::unheld() const {
  return capacity() - executing_ - static_cast<int>(queue_.size()) - reserved_;
}

int Executor::claim_budget() const {
  std::lock_guard lock(mu_);
  if (!started_ || stopping_) return 0;
  // Claim in batches of at least half the workers, unless no run waiting is due (workers
  // would go idle): one claim per finished run would cost a write each. And claim early,
  // long before the runs waiting are used up: a claim is a write that may wait a few
  // milliseconds behind other commits, and the runs still waiting keep the workers busy
  // meanwhile. Runs claimed ahead of the end of their sleep count as held, not as due.
  int free = unheld();
  bool none_due = queue_.empty() || (env_.clock.advances_by_itself() && queue_.front().available_at > env_.clock.now());
  return free >= std::max(1, workers_ / 2) || (free > 0 && none_due) ? free : 0;
}

std::vector<std::string> Executor::held_runs() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids(executing_ids_.begin(), executing_ids_.end());
  for (const auto& run : queue_) ids.push_back(run.run_id);
  return ids;
}

bool Executor::idle() const {
  std::lock_guard lock(mu_);
  return executing_ == 0 && queue_.empty() && reserved_ == 0;
}

bool Executor::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mu_);
  stopping_ = true;
  work_cv_.notify_all();
  // Queued runs are still drained by the workers, which hand them back instead of running
  // them (RunExecution::release) because env_.stopping is set.
  bool done = done_cv_.wait_for(lock, grace, [&] { return executing_ == 0 && queue_.empty() && reserved_ == 0; });
  if (!done) return false;
  started_ = false;
  lock.unlock();
  work_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  return true;
}

void Executor::run_task(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  work_cv_.notify_one();
}

void Executor::worker_loop() {
  name_this_thread("durable-worker");
  for (;;) {
    ClaimedRun run;
    bool hand_back = false;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (!tasks_.empty()) break;
        if (queue_.empty()) {
          if (!started_) return;  // stopped, nothing left
          work_cv_.wait(lock);
          continue;
        }
        // Runs claimed ahead of the end of their sleep wait here, not on a thread, until
        // due. Only a clock that advances by itself claims ahead (see Scheduler), and its
        // time is the system clock's. When stopping, they are taken at once to be handed back.
        TimePoint due = queue_.front().available_at;
        TimePoint now = env_.clock.now();
        if (stopping_ || !env_.clock.advances_by_itself() || due <= now) break;
        // Claims are never made more than the tolerance ahead: a deadline further off means
        // the clock stepped back since. Holding the run (and its lease, and a slot) for as
        // long as the step is no use: it goes back to sleep in the store.
        if (due - now > kClockStepTolerance) {
          hand_back = true;
          break;
        }
        // The time left, waited for on the monotonic clock: a wait for a system-clock time
        // would last as long as the step if the clock stepped back meanwhile. The duration is
        // taken from a precise reading, not from the engine's milliseconds.
        work_cv_.wait_for(lock, std::chrono::system_clock::time_point(due) - std::chrono::system_clock::now());
      }
      if (!tasks_.empty()) {
        std::function<void()> task = std::move(tasks_.front());
        tasks_.pop_front();
        lock.unlock();
        task();
        continue;
      }
      std::pop_heap(queue_.begin(), queue_.end(), LaterFirst{});
      run = std::move(queue_.back());
      queue_.pop_back();
      ++executing_;
      executing_ids_.insert(run.run_id);
    }
    std::string run_id = run.run_id;
    RunExecution execution(env_, std::move(run));
    if (env_.stopping.load() || hand_back) {
      execution.release();
    } else {
      execution.execute();
    }
    {
      std::lock_guard lock(mu_);
      --executing_;
      executing_ids_.erase(executing_ids_.find(run_id));
    }
    done_cv_.notify_all();
    on_slot_free_();
  }
}

}  // namespace durable
