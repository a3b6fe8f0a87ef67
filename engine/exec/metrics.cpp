#include "engine/exec/metrics.hpp"

#include <fmt/format.h>

namespace durable {

namespace {

// A label value escaped as the text format requires: backslash, double quote and newline.
std::string escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

void Metrics::run_started(const std::string& function_id) {
  std::lock_guard lock(mu_);
  ++runs_started_[function_id];
}

void Metrics::run_finished(const std::string& function_id, RunStatus status) {
  std::lock_guard lock(mu_);
  ++runs_finished_[{function_id, std::string(to_string(status))}];
}

void Metrics::step_finished(const std::string& function_id, std::string_view outcome, std::chrono::nanoseconds duration) {
  double seconds = std::chrono::duration<double>(duration).count();
  std::lock_guard lock(mu_);
  ++steps_[{function_id, std::string(outcome)}];
  Histogram& h = step_durations_[function_id];
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  if (i < kBuckets.size()) ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
}

void Metrics::events_ingested(size_t count) {
  std::lock_guard lock(mu_);
  events_ingested_ += count;
}

void Metrics::leases_recovered(int count) {
  std::lock_guard lock(mu_);
  lease_recoveries_ += static_cast<uint64_t>(count);
}

std::string Metrics::render(const StoreStats& store, const QueueDepth& queue) const {
  std::string out;
  std::lock_guard lock(mu_);

  header(out, "durable_runs_started_total", "counter", "Runs this process began executing.");
  for (const auto& [fn, n] : runs_started_) out += fmt::format("durable_runs_started_total{{function=\"{}\"}} {}\n", escape(fn), n);

  header(out, "durable_runs_finished_total", "counter", "Runs that ended, by final status.");
  for (const auto& [key, n] : runs_finished_) {
    out += fmt::format("durable_runs_finished_total{{function=\"{}\",status=\"{}\"}} {}\n", escape(key.first), key.second, n);
  }

  header(out, "durable_steps_total", "counter", "Step attempts that ended, by outcome (completed, retried, failed).");
  for (const auto& [key, n] : steps_) {
    out += fmt::format("durable_steps_total{{function=\"{}\",outcome=\"{}\"}} {}\n", escape(key.first), key.second, n);
  }

  header(out, "durable_step_duration_seconds", "histogram", "How long step bodies ran.");
  for (const auto& [fn, h] : step_durations_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      out += fmt::format("durable_step_duration_seconds_bucket{{function=\"{}\",le=\"{}\"}} {}\n", escape(fn), kBuckets[i], cumulative);
    }
    out += fmt::format("durable_step_duration_seconds_bucket{{function=\"{}\",le=\"+Inf\"}} {}\n", escape(fn), h.count);
    out += fmt::format("durable_step_duration_seconds_sum{{function=\"{}\"}} {}\n", escape(fn), h.sum);
    out += fmt::format("durable_step_duration_seconds_count{{function=\"{}\"}} {}\n", escape(fn), h.count);
  }

  header(out, "durable_events_ingested_total", "counter", "Events this process accepted.");
  out += fmt::format("durable_events_ingested_total {}\n", events_ingested_);

  header(out, "durable_lease_recoveries_total", "counter", "Runs taken back from expired leases (crashed workers).");
  out += fmt::format("durable_lease_recoveries_total {}\n", lease_recoveries_);

  header(out, "durable_store_commits_total", "counter", "Write transactions this process committed.");
  out += fmt::format("durable_store_commits_total {}\n", store.commits);
  header(out, "durable_store_commit_writes_total", "counter",
         "Operations in those transactions; divided by commits: entries per commit.");
  out += fmt::format("durable_store_commit_writes_total {}\n", store.writes);

  header(out, "durable_queue_depth", "gauge", "Runs in the database by queue state.");
  out += fmt::format("durable_queue_depth{{state=\"runnable\"}} {}\n", queue.runnable);
  out += fmt::format("durable_queue_depth{{state=\"scheduled\"}} {}\n", queue.scheduled);
  out += fmt::format("durable_queue_depth{{state=\"sleeping\"}} {}\n", queue.sleeping);
  out += fmt::format("durable_queue_depth{{state=\"waiting\"}} {}\n", queue.waiting);
  out += fmt::format("durable_queue_depth{{state=\"running\"}} {}\n", queue.running);
  return out;
}

}  // namespace durable
