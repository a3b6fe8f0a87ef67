#include "engine/exec/retention.hpp"

#include <algorithm>

#include "engine/base/log.hpp"
#include "engine/base/thread_name.hpp"
#include "engine/events/event_format.hpp"

namespace durable {

Retention::Retention(RetentionOptions options, Store& store, Clock& clock)
    : options_(options), store_(store), clock_(clock) {}

Retention::~Retention() { stop(); }

void Retention::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_.load() || options_.max_age.count() <= 0) return;
  thread_ = std::thread([this] { loop(); });
}

void Retention::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

GcResult Retention::collect(TimePoint cutoff) {
  GcResult result;
  // Runs first: their events become unreferenced, and go in the same pass.
  // Each batch is its own write: the engine's commits queued meanwhile go in between.
  for (int n = options_.batch; n == options_.batch && !stopping_.load();) {
    n = store_.delete_finished_runs(cutoff, options_.batch);
    result.runs_deleted += n;
  }
  TimePoint event_cutoff = std::min(cutoff, clock_.now() - kDedupWindow);
  for (int n = options_.batch; n == options_.batch && !stopping_.load();) {
    n = store_.delete_unreferenced_events(event_cutoff, options_.batch);
    result.events_deleted += n;
  }
  if (result.runs_deleted > 0 || result.events_deleted > 0) {
    log(LogLevel::info, "retention deleted old runs and events",
        {{"runs", std::to_string(result.runs_deleted)}, {"events", std::to_string(result.events_deleted)}});
  }
  return result;
}

void Retention::loop() {
  name_this_thread("durable-gc");
  std::unique_lock lock(mu_);
  while (!stopping_.load()) {
    lock.unlock();
    try {
      collect(clock_.now() - options_.max_age);
    } catch (const std::exception& e) {
      log(LogLevel::warn, "retention pass failed; trying again later", {{"error", e.what()}});
    }
    lock.lock();
    // Real time: retention is housekeeping, not part of any run's schedule.
    cv_.wait_for(lock, options_.interval, [this] { return stopping_.load(); });
  }
}

}  // namespace durable
