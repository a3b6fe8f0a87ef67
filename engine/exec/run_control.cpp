#include "engine/exec/run_control.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "engine/base/json_text.hpp"
#include "engine/base/log.hpp"
#include "engine/base/request_error.hpp"
#include "engine/exec/function_registry.hpp"

namespace durable {

namespace {

RequestError no_such_run(const std::string& run_id) {
  return RequestError(404, fmt::format("no run with id '{}'", run_id));
}

bool is_step_entry(JournalKind kind) {
  return kind == JournalKind::step_completed || kind == JournalKind::step_failed ||
         kind == JournalKind::sleep_scheduled || kind == JournalKind::wait_started;
}

// An operator's action is logged here, once per run, whichever API made it: the run's own
// lines (started, completed...) say only what it did next.
void log_cancelled(const std::string& run_id, const std::string& function_id) {
  log(LogLevel::info, "run cancelled", {{"run", run_id}, {"function", function_id}});
}

void log_replayed(const NewRun& run) {
  log(LogLevel::info, "run replayed", {{"run", run.id}, {"function", run.function_id}, {"replay_of", run.replay_of}});
}

}  // namespace

RunControl::RunControl(Store& store, Clock& clock, IdGenerator& ids, Metrics& metrics, std::function<void()> notify)
    : store_(store), clock_(clock), ids_(ids), metrics_(metrics), notify_(std::move(notify)) {}

Run RunControl::must_find(const std::string& run_id) {
  std::optional<Run> run = store_.find_run(run_id);
  if (!run) throw no_such_run(run_id);
  return *run;
}

Run RunControl::cancel(const std::string& run_id) {
  auto result = store_.cancel_runs({run_id}, clock_.now()).at(0);
  if (result == RunAdmin::Change::not_found) throw no_such_run(run_id);
  Run run = must_find(run_id);
  if (result == RunAdmin::Change::refused) {
    throw RequestError(409, fmt::format("run '{}' is already {}: only a run that has not finished can be cancelled",
                                        run_id, to_string(run.status)));
  }
  metrics_.run_finished(run.function_id, RunStatus::cancelled);
  log_cancelled(run.id, run.function_id);
  return run;
}

Run RunControl::resume(const std::string& run_id) {
  Run before = must_find(run_id);
  // Only a run that can be resumed is worth the check that some process will execute it.
  if (before.status == RunStatus::failed || before.status == RunStatus::cancelled) {
    check_registered(before.function_id, store_.list_functions());
  }
  auto result = store_.resume_run(run_id, clock_.now());
  if (result == RunAdmin::Change::not_found) throw no_such_run(run_id);
  if (result == RunAdmin::Change::refused) {
    throw RequestError(409, fmt::format("run '{}' is {}: only a failed or cancelled run can be resumed (replay it instead)",
                                        run_id, to_string(must_find(run_id).status)));
  }
  log(LogLevel::info, "run resumed", {{"run", run_id}, {"function", before.function_id}});
  // Read before the scheduler is told: the answer is the run as resumed, not whatever a
  // worker has made of it a moment later.
  Run resumed = must_find(run_id);
  notify_();
  return resumed;
}

void RunControl::check_registered(const std::string& function_id, const std::vector<FunctionRecord>& functions) {
  bool known = std::any_of(functions.begin(), functions.end(), [&](const FunctionRecord& f) { return f.id == function_id; });
  if (!known) {
    throw RequestError(409, fmt::format("function '{}' is not registered by any worker, so the run could not start; "
                                        "deploy it first",
                                        function_id));
  }
}

NewRun RunControl::replay_of(const Run& original, const ReplayOptions& options) {
  NewRun run{.id = ids_.next(clock_.now()), .function_id = original.function_id, .event_id = original.event_id,
             .replay_of = original.id};
  nlohmann::json started{{"replay_of", original.id}};
  // The journal is needed to copy steps, and by a failure handler's run, which gets the
  // failure it handles from its run_started entry; a bulk replay reads no other.
  bool failure_handler = original.function_id.ends_with(FunctionRegistry::kFailureSuffix);
  std::vector<JournalEntry> journal;
  if (failure_handler || !options.from_step.empty()) journal = store_.load_journal(original.id);
  if (!journal.empty() && journal[0].kind == JournalKind::run_started) {
    nlohmann::json original_start = nlohmann::json::parse(journal[0].payload, nullptr, false);
    if (original_start.is_object() && original_start.contains("failure")) started["failure"] = original_start["failure"];
  }
  if (!options.from_step.empty()) {
    auto from = std::find_if(journal.begin(), journal.end(), [&](const JournalEntry& e) {
      return is_step_entry(e.kind) && e.step_key == options.from_step;
    });
    if (from == journal.end()) {
      throw RequestError(400, fmt::format("run '{}' has no step '{}'", original.id, options.from_step));
    }
    // The steps recorded before it are kept as they are: their results (and sleeps' deadlines,
    // long passed) are what the new run's replay reads. Failed attempts are not copied.
    for (auto it = journal.begin(); it != from; ++it) {
      // A wait that ended before the step is memoized like a step: its start and its event.
      if (it->kind == JournalKind::step_completed || it->kind == JournalKind::sleep_scheduled ||
          it->kind == JournalKind::wait_started || it->kind == JournalKind::wait_resolved) {
        run.entries.push_back(*it);
      }
    }
    if (options.output) {
      if (from->kind != JournalKind::step_completed && from->kind != JournalKind::step_failed) {
        throw RequestError(400, fmt::format("step '{}' is {}: only a step.run has an output to replace",
                                            options.from_step,
                                            from->kind == JournalKind::sleep_scheduled ? "a sleep" : "a wait"));
      }
      run.entries.push_back(JournalEntry{.kind = JournalKind::step_completed,
                                         .step_key = options.from_step,
                                         .payload = to_json_text(*options.output),
                                         .started_at = clock_.now(),
                                         .recorded_at = clock_.now()});
    }
    started["from_step"] = options.from_step;
  } else if (options.output) {
    throw RequestError(400, "\"output\" needs \"from_step\": the step whose output it replaces");
  }
  started["copied"] = run.entries.size();
  run.started_payload = to_json_text(started);
  return run;
}

Run RunControl::replay(const std::string& run_id, const ReplayOptions& options) {
  Run original = must_find(run_id);
  check_registered(original.function_id, store_.list_functions());
  NewRun run = replay_of(original, options);
  store_.create_runs({run}, clock_.now());
  log_replayed(run);
  Run created = must_find(run.id);  // before the scheduler is told, as in resume()
  notify_();
  return created;
}

std::vector<Run> RunControl::next_page(const RunFilter& filter, int limit, const std::string& cursor,
                                      BulkResult& result) {
  if (cursor.empty()) result.total = store_.count_runs(filter);
  std::vector<Run> page = store_.list_runs(filter, limit + 1, cursor);
  result.next_cursor = trim_page(page, limit);
  return page;
}

BulkResult RunControl::cancel_matching(const RunFilter& filter, int limit, const std::string& cursor) {
  BulkResult result;
  std::vector<Run> page = next_page(filter, limit, cursor, result);
  std::vector<std::string> ids;
  for (const Run& r : page) ids.push_back(r.id);
  auto changes = store_.cancel_runs(ids, clock_.now());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (changes[i] != RunAdmin::Change::done) continue;
    result.run_ids.push_back(ids[i]);
    metrics_.run_finished(page[i].function_id, RunStatus::cancelled);
    log_cancelled(ids[i], page[i].function_id);
  }
  return result;
}

BulkResult RunControl::replay_matching(const RunFilter& filter, int limit, const std::string& cursor) {
  BulkResult result;
  std::vector<Run> page = next_page(filter, limit, cursor, result);
  std::vector<FunctionRecord> functions = store_.list_functions();
  std::vector<NewRun> runs;
  for (const Run& original : page) {
    check_registered(original.function_id, functions);
    runs.push_back(replay_of(original, {}));
    result.run_ids.push_back(runs.back().id);
    result.replayed.emplace_back(original.id, runs.back().id);
  }
  store_.create_runs(runs, clock_.now());
  for (const NewRun& run : runs) log_replayed(run);
  if (!runs.empty()) notify_();
  return result;
}

}  // namespace durable
