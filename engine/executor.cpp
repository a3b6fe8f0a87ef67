#include "engine/executor.hpp"

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

void Executor::submit(std::vector<ClaimedRun> runs) {
  if (runs.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (auto& r : runs) queue_.push_back(std::move(r));
  }
  work_cv_.notify_all();
}

int Executor::reserve(int n) {
  std::lock_guard lock(mu_);
  if (!started_ || stopping_) return 0;
  int free = workers_ - executing_ - static_cast<int>(queue_.size()) - reserved_;
  int granted = std::max(0, std::min(n, free));
  reserved_ += granted;
  return granted;
}

void Executor::unreserve(int n) {
  {
    std::lock_guard lock(mu_);
    reserved_ -= n;
  }
  if (n > 0) on_slot_free_();
}

void Executor::submit_reserved(std::vector<ClaimedRun> runs) {
  {
    std::lock_guard lock(mu_);
    reserved_ -= static_cast<int>(runs.size());
    for (auto& r : runs) queue_.push_back(std::move(r));
  }
  work_cv_.notify_all();
}

int Executor::free_slots() const {
  std::lock_guard lock(mu_);
  if (!started_ || stopping_) return 0;
  return std::max(0, workers_ - executing_ - static_cast<int>(queue_.size()) - reserved_);
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

void Executor::worker_loop() {
  for (;;) {
    ClaimedRun run;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return !queue_.empty() || !started_; });
      if (queue_.empty()) return;  // no longer started, nothing left
      run = std::move(queue_.front());
      queue_.pop_front();
      ++executing_;
    }
    RunExecution execution(env_, std::move(run));
    if (env_.stopping.load()) {
      execution.release();
    } else {
      execution.execute();
    }
    {
      std::lock_guard lock(mu_);
      --executing_;
    }
    done_cv_.notify_all();
    on_slot_free_();
  }
}

}  // namespace durable
