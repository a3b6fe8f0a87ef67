#include "engine/exec/scheduler.hpp"

#include <algorithm>

#include "engine/base/crash_points.hpp"
#include "engine/base/log.hpp"
#include "engine/base/thread_name.hpp"

namespace durable {

Scheduler::Scheduler(SchedulerOptions options, Store& store, Executor& executor, Clock& clock)
    : options_(std::move(options)),
      store_(store),
      executor_(executor),
      clock_(clock),
      steps_(clock.advances_by_itself()) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
  }
  // A clock moved by hand makes deadlines due without any real time passing: look again.
  clock_subscription_ = clock_.subscribe([this] { notify(); });
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  idle_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  clock_.unsubscribe(clock_subscription_);
}

void Scheduler::stop_claiming() {
  std::lock_guard lock(mu_);
  claiming_ = false;
}

void Scheduler::notify() {
  {
    std::lock_guard lock(mu_);
    ++work_seq_;
  }
  cv_.notify_all();
}

void Scheduler::notify_slot_free() {
  {
    std::lock_guard lock(mu_);
    if (!backlog_ && drainers_ == 0) return;
    ++work_seq_;
  }
  cv_.notify_all();
}

void Scheduler::wake_at(TimePoint at, bool sleep) {
  // A sleeping run may be claimed claim_ahead before its deadline (the executor holds it
  // until then); a run waiting for a retry only once it is due.
  if (sleep) at -= options_.claim_ahead;
  {
    std::lock_guard lock(mu_);
    timers_.push(at);
    // A future deadline needs no claim round now, only a shorter wait, if it is the earliest.
    if (at <= clock_.now()) {
      ++work_seq_;
    } else {
      timers_changed_ = true;
    }
  }
  cv_.notify_all();
}

bool Scheduler::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  uint64_t target = ++work_seq_;  // forces a claim round that starts after this call
  ++drainers_;
  cv_.notify_all();
  bool done = idle_cv_.wait_for(lock, timeout, [&] { return stopping_ || (idle_seq_ >= target && idle_seq_ == work_seq_); });
  --drainers_;
  return done && !stopping_;
}

void Scheduler::loop() {
  name_this_thread("durable-sched");
  std::unique_lock lock(mu_);
  TimePoint next_round{};  // when renewals, recovery or polling are next due; the epoch: now
  while (!stopping_) {
    TimePoint now = clock_.now();
    if (std::chrono::milliseconds step = steps_.observe(now); step.count() != 0) {
      lock.unlock();
      clock_stepped(step, now);
      lock.lock();
      next_round = now;
    }
    bool timer_due = !timers_.empty() && timers_.top() <= now;
    bool told = work_seq_ != scanned_seq_ && executor_.claim_budget() > 0;
    if (now >= next_round || timer_due || told) {
      lock.unlock();
      try {
        next_round = run_due_work(now);
      } catch (const std::exception& e) {
        // A store failure (the disk, a lock held too long by another process): try again soon.
        log(LogLevel::error, "scheduler round failed", {{"error", e.what()}});
        next_round = now + std::min<std::chrono::milliseconds>(options_.poll_interval, std::chrono::seconds(1));
      }
      lock.lock();
      continue;
    }
    TimePoint wake = next_round;
    if (!timers_.empty()) wake = std::min(wake, timers_.top());
    timers_changed_ = false;
    auto woken = [&] {
      return stopping_ || timers_changed_ || (work_seq_ != scanned_seq_ && executor_.claim_budget() > 0);
    };
    if (clock_.advances_by_itself()) {
      // A clock that advances by itself reads the system clock. Wait for the time left on the
      // monotonic clock: a wait for a system-clock time would last as long as the step if the
      // clock stepped back meanwhile, and the next round notices steps (rounds are at most a
      // poll interval apart). The time left is taken from a precise reading: the engine's
      // millisecond readings would wake us up to 1 ms late.
      cv_.wait_for(lock, std::chrono::system_clock::time_point(wake) - std::chrono::system_clock::now(), woken);
    } else {
      // A clock moved back by hand is a step: look at once.
      cv_.wait(lock, [&] {
        TimePoint t = clock_.now();
        return woken() || t >= wake || t < now;
      });
    }
  }
}

void Scheduler::clock_stepped(std::chrono::milliseconds step, TimePoint now) {
  // Renewal, recovery and polling were scheduled on the clock before the step: after a step
  // back they would not come for as long as the step. Renew at once either way: after a step
  // forward the leases we hold look expired to every process; after a step back they lie as
  // far ahead as the clock was, and would outlive us that long if we died.
  next_renewal_ = now;
  next_poll_ = now;
  if (step.count() > 0) {
    // Every lease looks expired now, those of live holders too (other processes on this
    // machine see the same step). Each holder renews within a third of the TTL once it has
    // noticed; recovering before then would fence live executions.
    next_recovery_ = now + options_.lease_ttl;
    log(LogLevel::warn, "the system clock stepped forward: leases are recovered again after one lease TTL",
        {{"step_ms", std::to_string(step.count())}});
  } else {
    // Correct what the clock wrote while it was ahead at once (correct_ahead_times).
    next_recovery_ = now;
    log(LogLevel::warn, "the system clock stepped back: correcting the due times and leases it set while ahead",
        {{"step_ms", std::to_string(step.count())}});
  }
}

TimePoint Scheduler::run_due_work(TimePoint now) {
  const auto ttl = options_.lease_ttl;
  if (now >= next_renewal_) {
    // Renew before recovering: after a jump of the clock our own live leases must not look
    // expired to ourselves.
    store_.renew_leases(options_.owner, executor_.held_runs(), now + ttl, now);
    next_renewal_ = now + ttl / 3;
  }
  bool claiming;
  uint64_t seq;
  {
    // Timers only wake the thread; every round claims whatever is due, so a due timer has
    // done its job once this round starts.
    std::lock_guard lock(mu_);
    while (!timers_.empty() && timers_.top() <= now) timers_.pop();
    seq = work_seq_;
    scanned_seq_ = seq;
    claiming = claiming_;
  }
  if (!claiming) return next_renewal_;

  bool poll = false;
  if (now >= next_recovery_) {
    // First what a clock that ran ahead wrote (this process's, before it stepped back, or
    // another's): queued runs it made due late, leases it made last too long. Then recovery,
    // which may find those leases expired the next time.
    if (int corrected = store_.correct_ahead_times(now, kClockStepTolerance); corrected > 0) {
      log(LogLevel::warn, "runs whose due time or lease a clock running ahead had set were moved back",
          {{"runs", std::to_string(corrected)}});
    }
    auto recovered = store_.recover_expired_leases(now);
    if (!recovered.empty()) crash_point(CrashPoint::recovery_after_commit);
    for (const auto& r : recovered) {
      log(LogLevel::warn, "lease recovered: the run's worker stopped renewing it; the run will be replayed",
          {{"run", r.run_id}, {"function", r.function_id}});
    }
    if (!recovered.empty() && options_.on_recovered) options_.on_recovered(static_cast<int>(recovered.size()));
    next_recovery_ = now + ttl / 2;
    poll = true;
  }
  if (now >= next_poll_) {
    poll = true;
    next_poll_ = now + options_.poll_interval;
  }

  // Claim while workers are free and the last claim filled every slot (more may be due).
  int claimed_total = 0;
  bool backlog = true;  // unless a claim comes back short, due runs may be left
  for (;;) {
    int free = executor_.claim_budget();
    if (free <= 0) break;
    auto runs = store_.claim(options_.function_ids, now, Lease{options_.owner, now + ttl}, free, options_.claim_ahead);
    int n = static_cast<int>(runs.size());
    claimed_total += n;
    executor_.submit(std::move(runs));
    if (n < free) {
      backlog = false;
      break;
    }
  }
  {
    std::lock_guard lock(mu_);
    backlog_ = backlog;
  }

  if (poll) {
    // Runs created or put to sleep by other processes have no timer here: set one, unless
    // an earlier one is set already (each poll would otherwise add the same time again).
    if (auto due = store_.next_due(options_.function_ids); due && *due > now) {
      std::lock_guard lock(mu_);
      if (timers_.empty() || *due < timers_.top()) timers_.push(*due);
    }
  }
  if (claimed_total == 0 && executor_.idle()) {
    std::lock_guard lock(mu_);
    idle_seq_ = seq;
    idle_cv_.notify_all();
  }
  return std::min({next_renewal_, next_recovery_, next_poll_});
}

}  // namespace durable
