// Counters and a histogram for GET /metrics, rendered in the Prometheus text format
// (version 0.0.4). Counters count what this process did since it started (Prometheus sums
// them across processes); queue depths and store figures are read when rendered.
//
//   durable_runs_started_total{function}            runs this process began executing
//   durable_runs_finished_total{function,status}    completed | failed | cancelled
//   durable_steps_total{function,outcome}           completed | retried | failed
//   durable_step_duration_seconds{function}         histogram of step bodies' run time
//   durable_events_ingested_total                   events accepted by this process
//   durable_lease_recoveries_total                  runs taken back from expired leases
//   durable_store_commits_total                     write transactions committed
//   durable_store_commit_writes_total               operations in them (writes / commits =
//                                                   entries per commit)
//   durable_queue_depth{state}                      runnable | scheduled | sleeping | waiting | running
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <durable/run.hpp>

#include "engine/store/store.hpp"

namespace durable {

class Metrics {
 public:
  // All thread-safe.
  void run_started(const std::string& function_id);
  void run_finished(const std::string& function_id, RunStatus status);
  // outcome: "completed", "retried" (an attempt failed, another follows) or "failed".
  void step_finished(const std::string& function_id, std::string_view outcome, std::chrono::nanoseconds duration);
  void events_ingested(size_t count);
  void leases_recovered(int count);

  // The exposition text, with the store's figures added.
  std::string render(const StoreStats& store, const QueueDepth& queue) const;

  // Upper bounds (seconds) of the step duration histogram's buckets.
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,   1,    5,     30,   300};

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};  // not cumulative; summed when rendered
    uint64_t count = 0;
    double sum = 0;
  };

  mutable std::mutex mu_;
  std::map<std::string, uint64_t> runs_started_;                             // by function
  std::map<std::pair<std::string, std::string>, uint64_t> runs_finished_;    // (function, status)
  std::map<std::pair<std::string, std::string>, uint64_t> steps_;            // (function, outcome)
  std::map<std::string, Histogram> step_durations_;                          // by function
  uint64_t events_ingested_ = 0;
  uint64_t lease_recoveries_ = 0;
};

}  // namespace durable
