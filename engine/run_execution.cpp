#include "engine/run_execution.hpp"

#include <cassert>
#include <cmath>

#include <fmt/format.h>

#include <durable/context.hpp>
#include <durable/errors.hpp>

#include "engine/json_text.hpp"
#include "engine/log.hpp"
#include "engine/sqlite.hpp"

namespace durable {

namespace {

std::string_view kind_name(StepKind kind) { return kind == StepKind::run ? "step.run" : "step.sleep"; }

// False if `value` holds a NaN or an infinity anywhere.
bool is_storable(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::number_float:
      return std::isfinite(value.get<double>());
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
      for (const auto& item : value) {
        if (!is_storable(item)) return false;
      }
      return true;
    default:
      return true;
  }
}

Failure failure_from(const nlohmann::json& payload) {
  const nlohmann::json& f = payload.value("failure", nlohmann::json::object());
  return Failure{f.value("run_id", ""), f.value("function_id", ""), f.value("step", ""),
                 f.value("name", ""), f.value("message", "")};
}

}  // namespace

RunExecution::RunExecution(const ExecutionEnv& env, ClaimedRun claim) : env_(env), claim_(std::move(claim)) {}

void RunExecution::execute() {
  try {
    function_ = env_.functions.find(claim_.function_id);
    // claim() only hands out runs of functions registered here.
    assert(function_ && "claimed a run of a function that is not registered");
    if (!load()) return;
    if (env_.stopping.load()) {
      release();
      return;
    }
    call_function();
  } catch (const std::exception& e) {
    // Only a failure to load the run gets here (user code runs inside call_function's
    // handlers, and commits report failures through append). The run stays leased to us;
    // when the lease expires it is recovered and replayed.
    log(LogLevel::error, "execution abandoned: the run could not be loaded; lease recovery will replay it",
        {{"run", claim_.run_id}, {"function", claim_.function_id}, {"error", e.what()}});
  }
}

void RunExecution::release() {
  try {
    // A run claimed ahead of the end of its sleep goes back to sleep until then; any other
    // run is due at once.
    TimePoint now = env_.clock.now();
    bool asleep = claim_.available_at > now;
    append({}, RunTransition{.status = asleep ? RunStatus::sleeping : RunStatus::queued,
                             .available_at = asleep ? claim_.available_at : now,
                             .attempt = claim_.attempt});
    env_.wake_at(std::max(now, claim_.available_at), asleep);
  } catch (const std::exception& e) {
    log(LogLevel::warn, "could not release a run; lease recovery will take it",
        {{"run", claim_.run_id}, {"error", e.what()}});
  }
}

bool RunExecution::load() {
  if (claim_.fresh_event) {
    // Created at ingest and claimed by us in the same transaction: the journal is exactly
    // run_started with an empty payload. Reading it back would cost a query per run.
    journal_.push_back(JournalEntry{.seq = 0, .kind = JournalKind::run_started, .payload = "{}"});
    event_ = claim_.fresh_event;
  } else if (std::optional<CachedRun> cached = env_.cache.take(claim_.run_id, claim_.lease_epoch)) {
    // Suspended by this process and untouched since (see RunCache): no reads either.
    journal_ = std::move(cached->journal);
    event_ = std::move(cached->event);
  } else {
    journal_ = env_.store.load_journal(claim_.run_id);
    std::optional<StoredEvent> stored = env_.store.find_event(claim_.event_id);
    event_ = std::make_shared<const Event>(stored ? std::move(stored->event) : Event{});
  }
  if (journal_.empty()) {
    log(LogLevel::error, "claimed run has no journal", {{"run", claim_.run_id}});
    return false;
  }
  next_seq_ = static_cast<int64_t>(journal_.size());
  bool finished = false;
  for (const JournalEntry& e : journal_) {
    switch (e.kind) {
      case JournalKind::run_started:
        started_payload_ = nlohmann::json::parse(e.payload);
        break;
      case JournalKind::step_completed:
        outputs_[e.step_key] = nlohmann::json::parse(e.payload);
        break;
      case JournalKind::step_failed: {
        int& failures = failed_attempts_[e.step_key];
        failures = std::max(failures, e.attempt.value_or(0) + 1);
        auto payload = nlohmann::json::parse(e.payload);
        if (payload.value("final", false)) final_errors_[e.step_key] = payload.at("error");
        break;
      }
      case JournalKind::sleep_scheduled:
        sleeps_[e.step_key] = from_millis(nlohmann::json::parse(e.payload).at("until").get<int64_t>());
        break;
      case JournalKind::body_failed:
        ++body_failures_;
        break;
      case JournalKind::run_completed:
      case JournalKind::run_failed:
      case JournalKind::run_cancelled:
        finished = true;
        break;
      case JournalKind::run_resumed:
        // An operator resumed the run after fixing what made it fail: memoized steps stay,
        // and the step (or body) that failed gets a fresh set of attempts.
        finished = false;
        final_errors_.clear();
        failed_attempts_.clear();
        body_failures_ = 0;
        break;
    }
  }
  if (finished) {
    log(LogLevel::error, "claimed run has already finished", {{"run", claim_.run_id}});
    return false;
  }
  // A replay starts with the steps it copied from the original run.
  starting_ = next_seq_ == 1 + started_payload_.value("copied", 0) && claim_.attempt == 0;
  return true;
}

void RunExecution::lease_confirmed() {
  lease_confirmed_ = true;
  // Reported only now: a run cancelled while it waited for a worker never started.
  if (starting_) {
    starting_ = false;
    log(LogLevel::info, "run started", {{"run", claim_.run_id}, {"function", claim_.function_id}});
    env_.metrics.run_started(claim_.function_id);
  }
}

void RunExecution::call_function() {
  Context ctx(*this, *event_, claim_.event_id, claim_.run_id, claim_.function_id, claim_.attempt);
  nlohmann::json output;
  std::exception_ptr error;
  try {
    if (function_->failure_handler) {
      function_->failure_handler(ctx, failure_from(started_payload_));
    } else {
      output = function_->handler(ctx);
    }
  } catch (const Suspend&) {
    // The outcome was committed before the signal was thrown; see state_ below.
  } catch (...) {
    error = std::current_exception();
  }
  // Once suspended or fenced, the execution is over whatever the function did next: it may
  // have swallowed the signal and returned, or thrown something else.
  if (state_ != State::running) return;
  if (!error) {
    complete_run(output);
    return;
  }
  try {
    std::rethrow_exception(error);
  } catch (const StepError& e) {
    fail_run(ErrorInfo{e.error_name(), e.what(), ErrorInfo::Kind::non_retriable, {}}, e.step_id());
    return;
  } catch (...) {
  }
  ErrorInfo info = describe_error(error);
  if (info.kind == ErrorInfo::Kind::non_retriable) {
    fail_run(info, "");
  } else {
    retry_body(info);
  }
}

void RunExecution::check_can_continue() {
  if (state_ != State::running) throw Suspend{};
  if (env_.stopping.load(std::memory_order_relaxed)) {
    // Shutting down: the step already finished is recorded; give the run back so that the
    // next process (or another one) continues from here at once.
    log(LogLevel::info, "run handed back for shutdown", {{"run", claim_.run_id}});
    suspend_until({}, RunStatus::queued, env_.clock.now(), claim_.attempt);
  }
}

std::string RunExecution::next_key(std::string_view id, StepKind kind) {
  if (id.empty()) throw UsageError("step id must not be empty");
  auto [it, inserted] = kinds_.try_emplace(std::string(id), kind);
  if (!inserted && it->second != kind) {
    throw UsageError(fmt::format("step id '{}' is used by both {} and {}: give each step its own id", id,
                                 kind_name(it->second), kind_name(kind)));
  }
  int n = occurrences_[it->first]++;
  std::string key = n == 0 ? std::string(id) : fmt::format("{}:{}", id, n);
  if (!used_keys_.insert(key).second) {
    throw UsageError(fmt::format("step key '{}' is used twice in this run (an id ending in ':<n>' collides "
                                 "with the key of a repeated id): rename the step",
                                 key));
  }
  return key;
}

StepStart RunExecution::begin_step(std::string_view id) {
  flush();
  check_can_continue();
  std::string key = next_key(id, StepKind::run);
  if (auto it = outputs_.find(key); it != outputs_.end()) return StepStart{std::move(key), &it->second};
  if (auto it = final_errors_.find(key); it != final_errors_.end()) {
    throw StepError(key, it->second.value("name", ""), it->second.value("message", ""));
  }
  confirm_lease();
  step_started_at_[key] = env_.clock.now();
  step_began_ = std::chrono::steady_clock::now();
  return StepStart{std::move(key), nullptr};
}

void RunExecution::count_step(std::string_view outcome) {
  env_.metrics.step_finished(claim_.function_id, outcome, std::chrono::steady_clock::now() - step_began_);
}

void RunExecution::complete_step(const StepStart& start, nlohmann::json output) {
  if (state_ != State::running) throw Suspend{};
  if (!is_storable(output)) {
    // JSON has no NaN or infinity: stored, it would come back as null, and every replay
    // would then fail to convert it to the step's type. Better to fail the step now.
    fail_step(start, std::make_exception_ptr(NonRetriableError(
                         "the step returned a number that is not finite (NaN or infinity), which JSON cannot hold")));
  }
  // Not committed here: the result must be durable before anything that could act on it
  // outside this process, and the only such thing is the next step's body (code between
  // steps is deterministic and has no side effects, by the rules of durable functions). So
  // the entry waits for the next commit: the next step's begin_step() (flush), or the one
  // that records how this execution ends, which a last step thereby shares.
  count_step("completed");
  pending_.push_back(JournalEntry{.kind = JournalKind::step_completed,
                                  .step_key = start.key,
                                  .payload = to_json_text(output),
                                  .started_at = step_started_at_[start.key],
                                  .recorded_at = env_.clock.now()});
}

void RunExecution::confirm_lease() {
  // Until this execution has committed, nothing has checked that the run is still ours: it
  // may have been cancelled (or taken over) while it waited in the queue or replayed its
  // memoized steps. A step body must not start then. Once a commit succeeded, the next one
  // (made before the next body starts, see flush) checks it again.
  if (lease_confirmed_) return;
  bool ours = false;
  try {
    ours = env_.store.holds_lease(claim_.run_id, claim_.lease_epoch);
  } catch (const StoreError& e) {
    state_ = State::abandoned;
    log(LogLevel::error, "execution abandoned after a store failure; lease recovery will replay the run",
        {{"run", claim_.run_id}, {"function", claim_.function_id}, {"error", e.what()}});
    throw Suspend{};
  }
  if (!ours) {
    state_ = State::fenced;
    log(LogLevel::info, "run no longer held (cancelled or taken over); its next step does not start",
        {{"run", claim_.run_id}, {"function", claim_.function_id}});
    throw Suspend{};
  }
  lease_confirmed();
}

void RunExecution::flush() {
  if (!pending_.empty() && !append({})) throw Suspend{};
}

void RunExecution::fail_step(const StepStart& start, std::exception_ptr error) {
  if (state_ != State::running) throw Suspend{};
  ErrorInfo info = describe_error(error);
  int attempt = failed_attempts_[start.key];
  bool final = info.kind == ErrorInfo::Kind::non_retriable || attempt >= start.retries.value_or(function_->options.retries);
  nlohmann::json err = error_json(info);
  JournalEntry e{.kind = JournalKind::step_failed,
                 .step_key = start.key,
                 .attempt = attempt,
                 .started_at = step_started_at_[start.key]};
  count_step(final ? "failed" : "retried");
  if (final) {
    e.payload = to_json_text({{"error", err}, {"final", true}});
    if (!append({std::move(e)})) throw Suspend{};
    log(LogLevel::warn, "step failed for good",
        {{"run", claim_.run_id}, {"function", claim_.function_id}, {"step", start.key},
         {"attempt", std::to_string(attempt)}, {"error", info.message}});
    final_errors_[start.key] = err;
    throw StepError(start.key, info.name, info.message);
  }
  TimePoint now = env_.clock.now();
  TimePoint retry_at = info.kind == ErrorInfo::Kind::retry_after ? retry_after_at(info.retry_after, now)
                                                                  : next_attempt_at(function_->options.backoff, attempt, now);
  e.payload = to_json_text({{"error", err}, {"retry_at", to_millis(retry_at)}});
  log(LogLevel::warn, "step failed; retrying",
      {{"run", claim_.run_id}, {"function", claim_.function_id}, {"step", start.key}, {"attempt", std::to_string(attempt)},
       {"retry_in_ms", std::to_string((retry_at - now).count())}, {"error", info.message}});
  suspend_until({std::move(e)}, RunStatus::queued, retry_at, attempt + 1);
}

void RunExecution::sleep_until(std::string_view id, TimePoint until) {
  check_can_continue();
  std::string key = next_key(id, StepKind::sleep);
  sleep_to(key, until);
}

void RunExecution::sleep_for(std::string_view id, std::chrono::milliseconds duration) {
  check_can_continue();
  std::string key = next_key(id, StepKind::sleep);
  // The deadline is fixed the first time the sleep is reached; replays read it back.
  auto it = sleeps_.find(key);
  sleep_to(key, it != sleeps_.end() ? it->second : env_.clock.now() + duration);
}

void RunExecution::sleep_to(const std::string& key, TimePoint requested) {
  TimePoint now = env_.clock.now();
  if (auto it = sleeps_.find(key); it != sleeps_.end()) {
    // Recorded earlier: the recorded deadline wins. Normally it has passed (the run was
    // claimed because it was due); if not, go back to sleep without a new entry.
    if (it->second <= now) return;
    suspend_until({}, RunStatus::sleeping, it->second, 0);
  }
  sleeps_[key] = requested;
  JournalEntry e{.kind = JournalKind::sleep_scheduled,
                 .step_key = key,
                 .payload = to_json_text({{"until", to_millis(requested)}})};
  if (requested <= now) {
    if (!append({std::move(e)})) throw Suspend{};
    return;
  }
  suspend_until({std::move(e)}, RunStatus::sleeping, requested, 0);
}

bool RunExecution::append(std::vector<JournalEntry> entries, std::optional<RunTransition> transition,
                          std::vector<NewRun> new_runs, std::vector<IngestStore::Item> new_events) {
  if (!pending_.empty()) {
    entries.insert(entries.begin(), std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.end()));
    pending_.clear();
  }
  Commit c;
  c.run_id = claim_.run_id;
  c.lease_epoch = claim_.lease_epoch;
  c.now = env_.clock.now();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].seq = next_seq_ + static_cast<int64_t>(i);
    if (entries[i].recorded_at == TimePoint{}) entries[i].recorded_at = c.now;
  }
  c.entries = std::move(entries);
  c.transition = std::move(transition);
  c.new_runs = std::move(new_runs);
  c.new_events = std::move(new_events);
  JournalStore::CommitResult result;
  try {
    result = env_.store.commit(c);
  } catch (const StoreError& e) {
    // The run stays leased to this process until the lease runs out (it is no longer
    // renewed once this execution ends); then it is recovered and replayed.
    state_ = State::abandoned;
    log(LogLevel::error, "execution abandoned after a store failure; lease recovery will replay the run",
        {{"run", claim_.run_id}, {"function", claim_.function_id}, {"error", e.what()}});
    return false;
  }
  if (result == JournalStore::CommitResult::lease_lost) {
    state_ = State::fenced;
    log(LogLevel::warn, "commit refused: the run was cancelled, or another worker owns it now; this execution stops",
        {{"run", claim_.run_id}, {"epoch", std::to_string(claim_.lease_epoch)}});
    return false;
  }
  next_seq_ += static_cast<int64_t>(c.entries.size());
  lease_confirmed();
  journal_.insert(journal_.end(), std::make_move_iterator(c.entries.begin()), std::make_move_iterator(c.entries.end()));
  return true;
}

void RunExecution::suspend_until(std::vector<JournalEntry> entries, RunStatus status, TimePoint at, int attempt) {
  if (!append(std::move(entries), RunTransition{.status = status, .available_at = at, .attempt = attempt})) {
    throw Suspend{};
  }
  state_ = State::suspended;
  // Keep the journal for when this process claims the run again (see RunCache). A run
  // handed back for shutdown is not coming back here.
  if (!env_.stopping.load()) env_.cache.put(claim_.run_id, CachedRun{claim_.lease_epoch, std::move(journal_), event_});
  env_.wake_at(at, status == RunStatus::sleeping);
  throw Suspend{};
}

std::vector<IngestStore::Item> RunExecution::lifecycle_events(const char* status, const char* result_field,
                                                             const nlohmann::json& result) {
  std::vector<IngestStore::Item> items;
  if (event_->name.rfind("durable/function.", 0) == 0) return items;  // see kFunctionFinishedEvent
  TimePoint now = env_.clock.now();
  nlohmann::json data{{"run_id", claim_.run_id},
                      {"function_id", claim_.function_id},
                      {"event", {{"id", claim_.event_id}, {"name", event_->name}}},
                      {"status", status},
                      {result_field, result}};
  items.push_back(IngestStore::Item{env_.ids.next(now), Event{.name = kFunctionFinishedEvent, .data = data, .ts = now}, {}});
  if (std::string_view(status) == "failed") {
    items.push_back(IngestStore::Item{env_.ids.next(now), Event{.name = kFunctionFailedEvent, .data = data, .ts = now}, {}});
  }
  return items;
}

void RunExecution::wake_lifecycle_subscribers(const std::vector<IngestStore::Item>& events) {
  // Runs of other processes' functions are found by their polling; ours need a wake-up.
  for (const auto& item : events) {
    if (!env_.functions.match(item.event).empty()) {
      env_.wake_at(env_.clock.now(), false);
      return;
    }
  }
}

void RunExecution::complete_run(const nlohmann::json& output) {
  std::string text = to_json_text(output);
  JournalEntry e{.kind = JournalKind::run_completed, .payload = text};
  auto events = lifecycle_events("completed", "output", output);
  if (!append({std::move(e)},
              RunTransition{.status = RunStatus::completed,
                            .available_at = env_.clock.now(),
                            .attempt = claim_.attempt,
                            .output = text},
              {}, events)) {
    return;
  }
  state_ = State::finished;
  log(LogLevel::info, "run completed", {{"run", claim_.run_id}, {"function", claim_.function_id}});
  env_.metrics.run_finished(claim_.function_id, RunStatus::completed);
  wake_lifecycle_subscribers(events);
}

void RunExecution::fail_run(const ErrorInfo& error, const std::string& step_key,
                            std::vector<JournalEntry> entries) {
  nlohmann::json err = error_json(error, step_key);
  std::string text = to_json_text(err);
  entries.push_back(JournalEntry{.kind = JournalKind::run_failed, .payload = text});
  std::vector<NewRun> new_runs;
  std::string failure_id = claim_.function_id + std::string(FunctionRegistry::kFailureSuffix);
  if (function_->options.on_failure && env_.functions.find(failure_id)) {
    nlohmann::json failure{{"run_id", claim_.run_id}, {"function_id", claim_.function_id}, {"step", step_key},
                           {"name", error.name}, {"message", error.message}};
    new_runs.push_back(NewRun{.id = env_.ids.next(env_.clock.now()),
                              .function_id = failure_id,
                              .event_id = claim_.event_id,
                              .started_payload = to_json_text({{"failure", failure}})});
  }
  bool has_handler = !new_runs.empty();
  auto events = lifecycle_events("failed", "error", err);
  if (!append(std::move(entries),
              RunTransition{.status = RunStatus::failed,
                            .available_at = env_.clock.now(),
                            .attempt = claim_.attempt,
                            .error = text},
              std::move(new_runs), events)) {
    return;
  }
  state_ = State::finished;
  env_.metrics.run_finished(claim_.function_id, RunStatus::failed);
  log(LogLevel::error, "run failed",
      {{"run", claim_.run_id}, {"function", claim_.function_id}, {"step", step_key}, {"error", error.message}});
  if (has_handler) env_.wake_at(env_.clock.now(), false);
  wake_lifecycle_subscribers(events);
}

void RunExecution::retry_body(const ErrorInfo& error) {
  int attempt = body_failures_;
  bool final = attempt >= function_->options.retries;
  JournalEntry e{.kind = JournalKind::body_failed, .attempt = attempt};
  if (final) {
    e.payload = to_json_text({{"error", error_json(error)}, {"final", true}});
    fail_run(error, "", {std::move(e)});
    return;
  }
  TimePoint now = env_.clock.now();
  TimePoint retry_at = error.kind == ErrorInfo::Kind::retry_after ? retry_after_at(error.retry_after, now)
                                                                   : next_attempt_at(function_->options.backoff, attempt, now);
  e.payload = to_json_text({{"error", error_json(error)}, {"retry_at", to_millis(retry_at)}});
  log(LogLevel::warn, "function threw outside a step; retrying",
      {{"run", claim_.run_id}, {"function", claim_.function_id}, {"attempt", std::to_string(attempt)}, {"error", error.message}});
  try {
    suspend_until({std::move(e)}, RunStatus::queued, retry_at, attempt + 1);
  } catch (const Suspend&) {
    // Expected: we are already outside the function, there is nothing to unwind.
  }
}

}  // namespace durable
