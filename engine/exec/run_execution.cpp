#include "engine/exec/run_execution.hpp"

#include <cassert>
#include <cctype>
#include <cmath>
#include <thread>

#include <fmt/format.h>

#include <durable/context.hpp>
#include <durable/errors.hpp>

#include "engine/base/crash_points.hpp"
#include "engine/base/json_text.hpp"
#include "engine/base/log.hpp"
#include "engine/events/event_format.hpp"
#include "engine/events/expression.hpp"
#include "engine/events/lifecycle_events.hpp"
#include "engine/exec/journal_decoder.hpp"
#include "engine/exec/parallel_group.hpp"
#include "engine/store/store_error.hpp"

namespace durable {

namespace {

std::string_view kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::run: return "step.run";
    case StepKind::sleep: return "step.sleep";
    case StepKind::send_event: return "step.send_event";
    case StepKind::wait_for_event: return "step.wait_for_event";
    case StepKind::invoke: return "step.invoke";
  }
  return "step";
}

// How long step.invoke waits when InvokeOptions::timeout is 0.
constexpr std::chrono::hours kDefaultInvokeTimeout{24 * 365};

// Throws UsageError unless `path` is a field path: names of letters, digits and '_' joined by
// dots ("data.invoiceId"), as an expression writes them.
void check_field_path(std::string_view step, std::string_view path) {
  bool ok = !path.empty() && path.front() != '.' && path.back() != '.' && path.find("..") == std::string_view::npos;
  for (char c : path) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.');
  if (!ok) {
    throw UsageError(fmt::format("step '{}': match '{}' is not a field path such as \"data.invoiceId\"", step, path));
  }
}

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
    if (started_too_late()) return;
    const Timeouts& timeouts = function_->options.timeouts;
    if (timeouts.finish.count() > 0 && claim_.started_at) finish_deadline_ = *claim_.started_at + timeouts.finish;
    call_function();
  } catch (const std::exception& e) {
    // Only a failure to load the run gets here (user code runs inside call_function's
    // handlers, and commits report failures through append). The run stays leased to us;
    // when the lease expires it is recovered and replayed.
    log(LogLevel::error, "execution abandoned: the run could not be loaded; lease recovery will replay it",
        {{"run", claim_.run_id}, {"function", claim_.function_id}, {"error", e.what()}});
  }
}

ReplayCheck RunExecution::check_replay() {
  replay_only_ = true;
  function_ = env_.functions.find(claim_.function_id);
  if (!function_) throw Error(fmt::format("function '{}' is not registered in this process", claim_.function_id));
  if (load()) call_function();
  replay_check_.steps_replayed = static_cast<int>(std::min(reached_, recorded_order_.size()));
  return replay_check_;
}

void RunExecution::stop_if_replay_only() {
  if (!replay_only_) return;
  state_ = State::replayed;
  throw Suspend{};
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
  } else if (std::optional<CachedRun> cached = replay_only_ ? std::nullopt : env_.cache.take(claim_.run_id, claim_.lease_epoch)) {
    // Suspended by this process and untouched since (see RunCache): no reads either.
    journal_ = std::move(cached->journal);
    event_ = std::move(cached->event);
  } else {
    journal_ = env_.store.load_journal(claim_.run_id);
    std::optional<StoredEvent> stored = env_.store.find_event(claim_.event_id);
    event_ = std::make_shared<const Event>(stored ? std::move(stored->event) : Event{});
    crash_point(CrashPoint::replay_after_load);
  }
  if (journal_.empty()) {
    log(LogLevel::error, "claimed run has no journal", {{"run", claim_.run_id}});
    return false;
  }
  next_seq_ = static_cast<int64_t>(journal_.size());
  // A malformed entry throws CorruptJournalError here, before the function runs (see execute).
  JournalMemo memo = decode_journal(journal_);
  started_payload_ = std::move(memo.started);
  outputs_ = std::move(memo.outputs);
  final_errors_ = std::move(memo.final_errors);
  failed_attempts_ = std::move(memo.failed_attempts);
  sleeps_ = std::move(memo.sleeps);
  waits_ = std::move(memo.waits);
  resolved_ = std::move(memo.resolved);
  body_failures_ = memo.body_failures;
  recorded_order_ = std::move(memo.order);
  recorded_kinds_ = std::move(memo.kinds);
  if (memo.finished && !replay_only_) {
    log(LogLevel::error, "claimed run has already finished", {{"run", claim_.run_id}});
    return false;
  }
  // A replay starts with the steps it copied from the original run.
  starting_ = next_seq_ == 1 + memo.copied && claim_.attempt == 0;
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
  owner_thread_ = std::this_thread::get_id();
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
  if (state_ != State::running || replay_only_) return;
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

bool RunExecution::started_too_late() {
  std::chrono::milliseconds limit = function_->options.timeouts.start;
  if (limit.count() <= 0 || !starting_ || !claim_.started_at || *claim_.started_at - claim_.created_at <= limit) {
    return false;
  }
  // Its first claim came too late: it is cancelled without running. (Only a run that has not
  // begun: one resumed by an operator, say, has.)
  JournalEntry e{.kind = JournalKind::run_cancelled, .payload = to_json_text({{"reason", "start timeout"}})};
  if (append({std::move(e)}, RunTransition{.status = RunStatus::cancelled, .available_at = env_.clock.now()})) {
    state_ = State::finished;
    env_.metrics.run_finished(claim_.function_id, RunStatus::cancelled);
    log(LogLevel::warn, "run cancelled: not started within its start timeout",
        {{"run", claim_.run_id}, {"function", claim_.function_id},
         {"waited_ms", std::to_string((*claim_.started_at - claim_.created_at).count())}});
  }
  return true;
}

void RunExecution::check_can_continue() {
  if (state_ != State::running) throw Suspend{};
  if (replay_only_) return;
  if (finish_deadline_ && env_.clock.now() >= *finish_deadline_) {
    fail_run(ErrorInfo{.name = "TimeoutError",
                       .message = fmt::format("the run did not finish within its finish timeout of {} ms",
                                              function_->options.timeouts.finish.count()),
                       .kind = ErrorInfo::Kind::non_retriable},
             "");
    throw Suspend{};
  }
  if (env_.stopping.load(std::memory_order_relaxed)) {
    // Shutting down: the step already finished is recorded; give the run back so that the
    // next process (or another one) continues from here at once.
    log(LogLevel::info, "run handed back for shutdown", {{"run", claim_.run_id}});
    suspend_until({}, RunStatus::queued, env_.clock.now(), claim_.attempt);
  }
}

namespace {

// What the journal can tell of a step's kind: step.run and step.send_event both record
// step_completed (and may both be replaced by one another without changing a replay's
// result); sleeps, waits and invokes record their own entries.
std::string_view recorded_kind(StepKind kind) {
  switch (kind) {
    case StepKind::run:
    case StepKind::send_event: return "step.run or step.send_event";
    case StepKind::sleep: return "step.sleep";
    case StepKind::wait_for_event: return "step.wait_for_event";
    case StepKind::invoke: return "step.invoke";
  }
  return "step";
}

}  // namespace

void RunExecution::check_order(const std::string& key, StepKind kind) {
  // The n-th step a replay reaches must be the n-th step the journal recorded: otherwise
  // memoized results would be handed to other calls than those that made them. Past the
  // recorded steps, the run makes progress and anything goes.
  size_t position = reached_++;
  if (position >= recorded_order_.size()) return;
  const std::string& expected = recorded_order_[position];
  if (key != expected) {
    bool recorded = recorded_kinds_.count(key) > 0;
    diverge(expected, key,
            fmt::format("nondeterminism: the journal has step '{}' next, but the function reached step '{}'{}", expected,
                        key,
                        recorded ? ", which the journal has later: the steps are taken in another order than recorded"
                                 : ", which the journal does not have: a recorded step was removed, renamed or skipped"));
  }
  StepKind was = recorded_kinds_.at(key);
  if (recorded_kind(was) != recorded_kind(kind)) {
    diverge(expected, key,
            fmt::format("nondeterminism: step '{}' is a {} in the journal but a {} in the function", key,
                        recorded_kind(was), kind_name(kind)));
  }
}

void RunExecution::diverge(const std::string& expected, const std::string& actual, const std::string& message) {
  if (replay_only_) {
    replay_check_ = ReplayCheck{.diverged = true, .expected = expected, .actual = actual, .message = message};
    state_ = State::replayed;
    throw Suspend{};
  }
  log(LogLevel::error, "nondeterminism: the function does not replay its journal",
      {{"run", claim_.run_id}, {"function", claim_.function_id}, {"expected", expected}, {"actual", actual}});
  fail_run(ErrorInfo{.name = "NondeterminismError", .message = message, .kind = ErrorInfo::Kind::non_retriable}, actual,
           {}, {{"expected", expected}, {"actual", actual}});
  throw Suspend{};
}

std::string RunExecution::next_key(std::string_view id, StepKind kind, bool check) {
  if (id.empty()) throw UsageError("step id must not be empty");
  if (in_parallel_body_ || std::this_thread::get_id() != owner_thread_) {
    throw UsageError(fmt::format("step '{}' was called inside a body of a parallel step group: those bodies take no "
                                 "steps (use step.invoke for a sub-workflow)",
                                 id));
  }
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
  if (check) check_order(key, kind);
  return key;
}

void RunExecution::check_group(const std::vector<std::string>& keys) {
  std::unordered_set<std::string> group(keys.begin(), keys.end());
  size_t recorded = 0;
  for (const std::string& key : keys) recorded += recorded_kinds_.count(key);
  for (size_t i = 0; i < recorded; ++i) {
    size_t position = reached_ + i;
    if (position < recorded_order_.size() && group.count(recorded_order_[position])) continue;
    const std::string expected = position < recorded_order_.size() ? recorded_order_[position] : std::string("(none)");
    diverge(expected, keys.front(),
            fmt::format("nondeterminism: the journal has step '{}' next, but the function reached the parallel steps "
                        "'{}' to '{}'",
                        expected, keys.front(), keys.back()));
  }
  for (const std::string& key : keys) {
    auto it = recorded_kinds_.find(key);
    if (it != recorded_kinds_.end() && it->second != StepKind::run) {
      diverge(key, key, fmt::format("nondeterminism: step '{}' is a {} in the journal but a parallel step.run in the "
                                    "function", key, recorded_kind(it->second)));
    }
  }
  reached_ += recorded;
}

std::vector<std::optional<nlohmann::json>> RunExecution::run_parallel(
    std::string_view id, std::vector<std::function<nlohmann::json()>> bodies, bool first) {
  flush();
  check_can_continue();
  std::vector<std::string> keys;
  for (size_t i = 0; i < bodies.size(); ++i) {
    keys.push_back(next_key(fmt::format("{}[{}]", id, i), StepKind::run, false));
  }
  check_group(keys);
  std::vector<std::optional<nlohmann::json>> results(bodies.size());
  if (first) {
    // A winner recorded earlier is the winner: the first of the group in the journal.
    for (const JournalEntry& e : journal_) {
      if (e.kind != JournalKind::step_completed) continue;
      auto it = std::find(keys.begin(), keys.end(), e.step_key);
      if (it == keys.end()) continue;
      results[static_cast<size_t>(it - keys.begin())] = outputs_.at(e.step_key);
      return results;
    }
  }
  // What is left to run: not recorded as completed (nor as failed for good: that throws,
  // like a step's memo).
  std::vector<size_t> pending;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (auto it = outputs_.find(keys[i]); it != outputs_.end()) {
      results[i] = it->second;
    } else if (auto f = final_errors_.find(keys[i]); f != final_errors_.end()) {
      if (!first) throw StepError(keys[i], f->second.value("name", ""), f->second.value("message", ""));
    } else {
      pending.push_back(i);
    }
  }
  if (pending.empty()) {
    if (first) throw StepError(keys.front(), "ParallelError", "every body of the group failed");
    return results;
  }
  stop_if_replay_only();
  confirm_lease();
  std::vector<std::function<nlohmann::json()>> to_run;
  TimePoint now = env_.clock.now();
  for (size_t i : pending) {
    to_run.push_back(std::move(bodies[i]));
    step_started_at_[keys[i]] = now;
  }
  // Bodies go to free workers; this thread runs those no worker has taken yet, then collects.
  auto group = std::make_shared<ParallelGroup>(std::move(to_run));
  for (size_t g = 0; g < pending.size(); ++g) env_.run_task([group, g] { group->run(g); });
  size_t collected = 0;
  // The next outcome; this thread runs a body no worker has taken yet rather than wait.
  auto next_outcome = [&]() -> ParallelGroup::Outcome {
    while (!group->has_finished()) {
      std::optional<size_t> g = group->untaken();
      if (!g) break;
      in_parallel_body_ = true;
      group->run(*g);
      in_parallel_body_ = false;
    }
    ++collected;
    return group->next();
  };
  std::optional<ParallelGroup::Outcome> failure;
  bool won = false;
  while (collected < pending.size()) {
    ParallelGroup::Outcome o = next_outcome();
    size_t i = pending[o.index];
    env_.metrics.step_finished(claim_.function_id, o.error ? "failed" : "completed", o.took);
    if (!o.error && !is_storable(*o.output)) {
      // JSON cannot hold it (see complete_step): the body fails, as step.run's would.
      o.error = std::make_exception_ptr(
          NonRetriableError("the body returned a number that is not finite (NaN or infinity), which JSON cannot hold"));
    }
    if (o.error) {
      if (!failure) failure = std::move(o);
      continue;
    }
    if (won) continue;  // run_first: only the winner is recorded
    // Recorded at once, while the others still run: a crash now loses only those.
    JournalEntry e{.kind = JournalKind::step_completed, .step_key = keys[i], .payload = to_json_text(*o.output),
                   .started_at = step_started_at_[keys[i]]};
    if (!append({std::move(e)})) {
      // Fenced or abandoned: let the rest end (they refer to the function's frame), then stop.
      while (collected < pending.size()) next_outcome();
      throw Suspend{};
    }
    outputs_[keys[i]] = *o.output;
    results[i] = std::move(o.output);
    won = first;
  }
  if (won || !failure) return results;
  StepStart start{.key = keys[pending[failure->index]]};
  fail_step(start, failure->error);  // a retry (Suspend) or StepError
}

StepStart RunExecution::begin_step(std::string_view id) {
  flush();
  check_can_continue();
  std::string key = next_key(id, StepKind::run);
  if (auto it = outputs_.find(key); it != outputs_.end()) {
    crash_point(CrashPoint::replay_after_memo_hit);
    return StepStart{std::move(key), &it->second};
  }
  if (auto it = final_errors_.find(key); it != final_errors_.end()) {
    throw StepError(key, it->second.value("name", ""), it->second.value("message", ""));
  }
  stop_if_replay_only();
  if (std::optional<nlohmann::json> mock = env_.mocks.find(claim_.function_id, key)) {
    // The test kit's result: recorded like a body's, returned like a memo.
    TimePoint now = env_.clock.now();
    pending_.push_back(JournalEntry{.kind = JournalKind::step_completed, .step_key = key,
                                    .payload = to_json_text(*mock), .started_at = now, .recorded_at = now});
    auto it = outputs_.insert_or_assign(key, std::move(*mock)).first;
    return StepStart{std::move(key), &it->second};
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
    abandon(e);
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
    stop_if_replay_only();
    suspend_until({}, RunStatus::sleeping, it->second, 0);
  }
  stop_if_replay_only();
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

std::vector<std::string> RunExecution::send_events(std::string_view id, std::vector<Event> events) {
  check_can_continue();
  std::string key = next_key(id, StepKind::send_event);
  if (auto it = outputs_.find(key); it != outputs_.end()) return it->second.get<std::vector<std::string>>();
  stop_if_replay_only();
  TimePoint now = env_.clock.now();
  std::vector<IngestStore::Item> items;
  std::vector<std::string> ids;
  for (size_t i = 0; i < events.size(); ++i) {
    try {
      validate_event(events[i]);
    } catch (const RequestError& e) {
      throw UsageError(fmt::format("step '{}': event {} cannot be sent: {}", key, i, e.what()));
    }
    if (events[i].ts == TimePoint{}) events[i].ts = now;
    ids.push_back(env_.ids.next(now));
    items.push_back(IngestStore::Item{ids.back(), std::move(events[i]), {}});
  }
  nlohmann::json output = ids;
  // The events and the step's record share one commit: sent once, whatever happens next.
  JournalEntry e{.kind = JournalKind::step_completed, .step_key = key, .payload = to_json_text(output), .started_at = now};
  if (!append({std::move(e)}, std::nullopt, {}, items)) throw Suspend{};
  outputs_[key] = std::move(output);
  wake_local_subscribers(items);
  return ids;
}

std::optional<Event> RunExecution::wait_for_event(std::string_view id, const WaitForEventOptions& options) {
  check_can_continue();
  std::string key = next_key(id, StepKind::wait_for_event);
  auto resolved = resolved_.find(key);
  nlohmann::json result = resolved != resolved_.end() ? resolved->second : nlohmann::json();
  if (resolved == resolved_.end()) {
    if (options.event.empty()) {
      throw UsageError(fmt::format("step '{}': wait_for_event needs .event, the name of the event to wait for", key));
    }
    if (options.timeout <= std::chrono::milliseconds(0)) {
      throw UsageError(fmt::format("step '{}': wait_for_event needs a .timeout longer than 0", key));
    }
    WaitRegistration wait{.step_key = key, .event = options.event, .condition = options.if_,
                          .trigger_event_id = claim_.event_id};
    if (!options.match.empty()) {
      check_field_path(key, options.match);
      nlohmann::json event = *event_;
      wait.match_path = options.match;
      wait.match_value = match_text(Expression::parse("event." + options.match).evaluate({{"event", &event}}));
    }
    if (!options.if_.empty()) {
      try {
        Expression::parse(options.if_);
      } catch (const ExpressionError& e) {
        throw UsageError(fmt::format("step '{}': the if_ expression is invalid: {}", key, e.what()));
      }
    }
    std::optional<JournalEntry> started;
    if (auto it = waits_.find(key); it != waits_.end()) {
      // Begun in an earlier execution: its window and deadline stand.
      wait.since = from_millis(it->second.at("since").get<int64_t>());
      wait.expires_at = from_millis(it->second.at("until").get<int64_t>());
    } else {
      wait.since = env_.clock.now();
      wait.expires_at = wait.since + options.timeout;
      started = JournalEntry{.kind = JournalKind::wait_started,
                             .step_key = key,
                             .payload = to_json_text({{"event", options.event},
                                                      {"match", options.match},
                                                      {"if", options.if_},
                                                      {"since", to_millis(wait.since)},
                                                      {"until", to_millis(wait.expires_at)}})};
    }
    result = await(std::move(wait), std::move(started));
  }
  if (result.value("timeout", false)) return std::nullopt;
  return result.at("event").get<Event>();
}

nlohmann::json RunExecution::invoke(std::string_view id, const InvokeOptions& options) {
  check_can_continue();
  std::string key = next_key(id, StepKind::invoke);
  auto resolved = resolved_.find(key);
  nlohmann::json result = resolved != resolved_.end() ? resolved->second : nlohmann::json();
  std::string function = options.function;
  if (resolved == resolved_.end()) {
    if (options.function.empty()) throw UsageError(fmt::format("step '{}': invoke needs .function, the id of the function to run", key));
    if (!options.data.is_object()) throw UsageError(fmt::format("step '{}': invoke's .data must be a JSON object", key));
    WaitRegistration wait{.step_key = key, .event = kFunctionFinishedEvent, .match_path = "data.run_id",
                          .trigger_event_id = claim_.event_id};
    std::optional<JournalEntry> started;
    std::vector<IngestStore::Item> events;
    std::string child;
    if (auto it = waits_.find(key); it != waits_.end()) {
      child = it->second.at("invoke").at("run_id").get<std::string>();
      wait.since = from_millis(it->second.at("since").get<int64_t>());
      wait.expires_at = from_millis(it->second.at("until").get<int64_t>());
    } else {
      if (!env_.functions.find(function)) {
        auto recorded = env_.store.list_functions();
        bool known = std::any_of(recorded.begin(), recorded.end(), [&](const FunctionRecord& f) { return f.id == function; });
        if (!known) throw UsageError(fmt::format("step '{}': no worker registers function '{}' to invoke", key, function));
      }
      TimePoint now = env_.clock.now();
      child = env_.ids.next(now);
      std::string event_id = env_.ids.next(now);
      // The child is created with the commit that starts the wait, so it cannot finish
      // before its parent waits for it.
      events.push_back(IngestStore::Item{
          event_id, Event{.name = kFunctionInvokedEvent, .data = options.data, .ts = now},
          {NewRun{.id = child, .function_id = function, .event_id = event_id, .parent_run_id = claim_.run_id}}});
      wait.since = now;
      wait.expires_at = now + (options.timeout > std::chrono::milliseconds(0) ? options.timeout : kDefaultInvokeTimeout);
      started = JournalEntry{.kind = JournalKind::wait_started,
                             .step_key = key,
                             .payload = to_json_text({{"invoke", {{"function", function}, {"run_id", child}}},
                                                      {"event", kFunctionFinishedEvent},
                                                      {"since", to_millis(wait.since)},
                                                      {"until", to_millis(wait.expires_at)}})};
    }
    wait.match_value = to_json_text(child);
    result = await(std::move(wait), std::move(started), std::move(events));
  } else if (auto it = waits_.find(key); it != waits_.end()) {
    function = it->second.at("invoke").value("function", function);
  }
  if (result.value("timeout", false)) {
    throw StepError(key, "InvokeTimeout", fmt::format("the invoked run of '{}' did not finish in time", function));
  }
  const nlohmann::json& data = result.at("event").at("data");
  if (data.value("status", "") == "completed") return data.value("output", nlohmann::json());
  const nlohmann::json& error = data.value("error", nlohmann::json::object());
  throw StepError(key, error.value("name", "Error"), error.value("message", "the invoked run failed"));
}

nlohmann::json RunExecution::await(WaitRegistration wait, std::optional<JournalEntry> started,
                                   std::vector<IngestStore::Item> new_events) {
  stop_if_replay_only();
  std::string key = wait.step_key;
  std::vector<JournalEntry> entries;
  if (started) entries.push_back(*started);
  if (wait.expires_at <= env_.clock.now()) {
    // Claimed at the deadline: nothing came. The entry ends the registration (see commit).
    nlohmann::json timeout{{"timeout", true}};
    entries.push_back(JournalEntry{.kind = JournalKind::wait_resolved, .step_key = key, .payload = to_json_text(timeout)});
    if (!append(std::move(entries), std::nullopt, {}, std::move(new_events))) throw Suspend{};
    resolved_[key] = timeout;
    return timeout;
  }
  TimePoint wake = until_deadline(wait.expires_at);
  Commit c = make_commit(std::move(entries), RunTransition{.status = RunStatus::waiting, .available_at = wake, .attempt = 0});
  c.new_events = std::move(new_events);
  JournalStore::WaitOutcome outcome;
  try {
    outcome = env_.store.commit_wait(c, wait);
  } catch (const StoreError& e) {
    abandon(e);
    throw Suspend{};
  }
  if (!committed(c, outcome.result)) throw Suspend{};
  if (started) waits_[key] = nlohmann::json::parse(started->payload);
  wake_local_subscribers(c.new_events);
  if (outcome.arrived) {
    // It had come already (between the start of the wait and now): the store recorded it.
    nlohmann::json payload{{"event_id", outcome.arrived->id}, {"event", outcome.arrived->event}};
    journal_.push_back(JournalEntry{.seq = next_seq_++, .kind = JournalKind::wait_resolved, .step_key = key,
                                    .payload = to_json_text(payload), .recorded_at = c.now});
    resolved_[key] = payload;
    return payload;
  }
  state_ = State::suspended;
  if (!env_.stopping.load()) env_.cache.put(claim_.run_id, CachedRun{claim_.lease_epoch, std::move(journal_), event_});
  env_.wake_at(wake, false);
  throw Suspend{};
}

TimePoint RunExecution::until_deadline(TimePoint at) const {
  // A run that must finish by its deadline is claimed then at the latest, to fail.
  return finish_deadline_ ? std::min(at, *finish_deadline_) : at;
}

Commit RunExecution::make_commit(std::vector<JournalEntry> entries, std::optional<RunTransition> transition) {
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
  c.dedup_window = kDedupWindow;  // for the ids of events sent by step.send_event
  return c;
}

void RunExecution::abandon(const std::exception& e) {
  // The run stays leased to this process until the lease runs out (it is no longer renewed
  // once this execution ends); then it is recovered and replayed.
  state_ = State::abandoned;
  log(LogLevel::error, "execution abandoned after a store failure; lease recovery will replay the run",
      {{"run", claim_.run_id}, {"function", claim_.function_id}, {"error", e.what()}});
}

bool RunExecution::committed(Commit& c, JournalStore::CommitResult result) {
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

bool RunExecution::append(std::vector<JournalEntry> entries, std::optional<RunTransition> transition,
                          std::vector<NewRun> new_runs, std::vector<IngestStore::Item> new_events) {
  Commit c = make_commit(std::move(entries), std::move(transition));
  c.new_runs = std::move(new_runs);
  c.new_events = std::move(new_events);
  JournalStore::CommitResult result;
  try {
    result = env_.store.commit(c);
  } catch (const StoreError& e) {
    abandon(e);
    return false;
  }
  return committed(c, result);
}

void RunExecution::suspend_until(std::vector<JournalEntry> entries, RunStatus status, TimePoint at, int attempt) {
  at = until_deadline(at);
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
  // See kFunctionFinishedEvent. (Invoked runs do emit them: that is how their parent learns.)
  if (event_->name == kFunctionFinishedEvent || event_->name == kFunctionFailedEvent) return items;
  TimePoint now = env_.clock.now();
  nlohmann::json data = function_finished_data(
      FinishedRun{claim_.run_id, claim_.function_id, claim_.event_id, event_->name}, status, result_field, result);
  items.push_back(IngestStore::Item{env_.ids.next(now), Event{.name = kFunctionFinishedEvent, .data = data, .ts = now}, {}});
  if (std::string_view(status) == "failed") {
    items.push_back(IngestStore::Item{env_.ids.next(now), Event{.name = kFunctionFailedEvent, .data = data, .ts = now}, {}});
  }
  return items;
}

void RunExecution::wake_local_subscribers(const std::vector<IngestStore::Item>& events) {
  // Runs of other processes' functions are found by their polling; ours need a wake-up.
  for (const auto& item : events) {
    bool ours = !env_.functions.match(item.event).empty();
    for (const NewRun& run : item.runs) ours = ours || env_.functions.find(run.function_id);
    if (ours) {
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
  wake_local_subscribers(events);
}

void RunExecution::fail_run(const ErrorInfo& error, const std::string& step_key, std::vector<JournalEntry> entries,
                            const nlohmann::json& details) {
  nlohmann::json err = error_json(error, step_key);
  if (details.is_object()) err.update(details);
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
  wake_local_subscribers(events);
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
