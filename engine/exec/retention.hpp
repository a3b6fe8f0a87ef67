// Retention: deletes finished runs (completed, failed, cancelled) older than a configured age,
// with their journals, and then the events no run refers to any more. It works in small
// batches, each its own short transaction, so the engine's own commits interleave and never
// wait long. A background thread does it periodically; POST /v1/gc (`durable gc`) on demand.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/store/store.hpp"

namespace durable {

// How many runs and events one retention pass (or POST /v1/gc) deleted.
struct GcResult {
  int64_t runs_deleted = 0;
  int64_t events_deleted = 0;
};

struct RetentionOptions {
  std::chrono::milliseconds max_age{std::chrono::hours(24 * 30)};  // 0: keep everything
  std::chrono::milliseconds interval{std::chrono::minutes(10)};   // between background passes
  int batch = 500;                                                 // rows per transaction
};

class Retention {
 public:
  Retention(RetentionOptions options, Store& store, Clock& clock);
  // Stops the thread.
  ~Retention();

  // Starts the background passes (none when max_age is 0). Idempotent.
  void start();
  // Stops the thread, and makes a collect() in progress (and every later one) return after
  // its current batch. Idempotent.
  void stop();

  // Deletes runs that finished before `cutoff` and the events, received before `cutoff`,
  // that no run refers to. Events younger than the deduplication window are always kept, so
  // a retried send is still recognised. Thread-safe.
  GcResult collect(TimePoint cutoff);

 private:
  void loop();

  const RetentionOptions options_;
  Store& store_;
  Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};  // set under mu_ (the thread waits on cv_ with it)
  std::thread thread_;
};

}  // namespace durable
