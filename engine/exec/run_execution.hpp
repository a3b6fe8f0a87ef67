// One execution of a claimed run: it loads the run's journal, calls the function, answers its
// step calls from the journal (memoized) or by running them and appending the result, and
// records how the execution ended (completed, failed, sleeping, retrying). This is the
// engine's Runtime: Step forwards every call here.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <thread>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <durable/runtime.hpp>

#include "engine/base/ids.hpp"
#include "engine/exec/function_registry.hpp"
#include "engine/exec/metrics.hpp"
#include "engine/exec/retry_policy.hpp"
#include "engine/exec/run_cache.hpp"
#include "engine/exec/step_mocks.hpp"
#include "engine/store/store.hpp"

namespace durable {

// What executions share: the store, the time, the functions, and how to ask for a wake-up.
struct ExecutionEnv {
  Store& store;
  Clock& clock;
  IdGenerator& ids;
  const FunctionRegistry& functions;
  // A run this process suspended becomes due at the time given; true: it sleeps till then.
  std::function<void(TimePoint, bool)> wake_at;
  const std::atomic<bool>& stopping;       // the engine is stopping: start no new step
  RunCache& cache;                         // journals of runs suspended by this process
  Metrics& metrics;
  const StepMocks& mocks;                  // the test kit's mocked step results
  // Runs a body of a parallel step group on a free worker (Executor::run_task).
  std::function<void(std::function<void()>)> run_task;
};

// How a run's journal replays against the functions of this process (Engine::verify).
struct ReplayCheck {
  bool diverged = false;
  std::string expected, actual;  // the step keys, when diverged
  std::string message;           // why it diverged
  int steps_replayed = 0;        // recorded steps the replay went through
};

class RunExecution final : public Runtime {
 public:
  RunExecution(const ExecutionEnv& env, ClaimedRun claim);

  // Replays the run's journal through the function without running any step body or
  // writing anything, up to the first step the journal does not have, and says whether the
  // function took the recorded steps in their order. The run need not be claimed.
  ReplayCheck check_replay();

  // Runs the function to its next stopping point and records the outcome. Never throws: a
  // store failure is logged and the run is left to lease recovery, which replays it.
  void execute();

  // Hands the run back without executing it (the engine is stopping, or the clock stepped
  // back while the run was held for the end of its sleep): a sleep claimed ahead of its end
  // goes back to sleep until then, any other run is queued, due now.
  void release();

  StepStart begin_step(std::string_view id) override;
  void complete_step(const StepStart& start, nlohmann::json output) override;
  [[noreturn]] void fail_step(const StepStart& start, std::exception_ptr error) override;
  void sleep_until(std::string_view id, TimePoint until) override;
  void sleep_for(std::string_view id, std::chrono::milliseconds duration) override;
  std::vector<std::string> send_events(std::string_view id, std::vector<Event> events) override;
  std::optional<Event> wait_for_event(std::string_view id, const WaitForEventOptions& options) override;
  nlohmann::json invoke(std::string_view id, const InvokeOptions& options) override;
  std::vector<std::optional<nlohmann::json>> run_parallel(std::string_view id,
                                                          std::vector<std::function<nlohmann::json()>> bodies,
                                                          bool first) override;

 private:
  enum class State {
    replayed,   // check_replay(): reached what the journal does not record; stop there
    running,    // the function may go on
    suspended,  // the outcome is committed (sleep, retry, release); unwind
    fenced,     // a commit was refused: another worker owns the run now; unwind, write nothing
    abandoned,  // a commit failed (the store): unwind; lease recovery replays the run later
    finished,   // completed or failed for good
  };

  // Reads the journal into the memo tables (decode_journal). Returns false when there is
  // nothing to execute; throws CorruptJournalError for a malformed entry.
  bool load();
  void call_function();
  // The key of the next step call with `id`, checked against the journal (check_order) unless
  // it belongs to a parallel group (check_group).
  std::string next_key(std::string_view id, StepKind kind, bool check = true);
  // Like check_order for the keys of a parallel group, whose bodies record their results in
  // whatever order they finish: the journal's next recorded steps must be the group's.
  void check_group(const std::vector<std::string>& keys);
  // Fails the run with a NondeterminismError (and throws Suspend) unless step `key` of `kind`
  // is the step the journal recorded at this point of the function.
  void check_order(const std::string& key, StepKind kind);
  [[noreturn]] void diverge(const std::string& expected, const std::string& actual, const std::string& message);
  // In check_replay(), the function reached what the journal does not record: stop.
  void stop_if_replay_only();
  // Throws Suspend if the execution must stop: suspended, fenced, the engine stopping (the run
  // is handed back), or past the run's finish timeout (the run is failed).
  void check_can_continue();
  // The start timeout: cancels the run, and returns true, if its first claim came too late.
  bool started_too_late();
  // `at`, or the finish deadline if that comes first.
  TimePoint until_deadline(TimePoint at) const;
  // Commits the pending entries, if any. Throws Suspend if the commit is refused.
  void flush();
  // Throws Suspend unless the run is still held under our lease epoch, checked once per
  // execution before its first step body when nothing was committed yet.
  void confirm_lease();
  // A commit or a check showed the run is ours; a fresh run is reported started then.
  void lease_confirmed();
  // The step body now running ended this way (see Metrics::step_finished).
  void count_step(std::string_view outcome);
  // A commit of the pending entries, then `entries` (numbering them all), with `transition`.
  Commit make_commit(std::vector<JournalEntry> entries, std::optional<RunTransition> transition);
  // After the store answered `result` to `c`: records what was committed and returns true,
  // or sets fenced and returns false.
  bool committed(Commit& c, JournalStore::CommitResult result);
  // A store failure ends the execution: sets abandoned and logs why.
  void abandon(const std::exception& e);
  // Commits the pending entries, then `entries` (numbering them all), with `transition`.
  // Returns false, and sets fenced or abandoned, if the commit was refused or failed: the
  // execution must then stop. Never throws for a store failure: user code must not see one
  // (it would count as the function's own error).
  bool append(std::vector<JournalEntry> entries, std::optional<RunTransition> transition = std::nullopt,
              std::vector<NewRun> new_runs = {}, std::vector<IngestStore::Item> new_events = {});
  // The lifecycle events of this run ending with `status` (see kFunctionFinishedEvent), with
  // `result` as their `result_field` ("output" or "error").
  std::vector<IngestStore::Item> lifecycle_events(const char* status, const char* result_field,
                                                  const nlohmann::json& result);
  // Wakes the scheduler if functions of this process trigger on `events`.
  void wake_local_subscribers(const std::vector<IngestStore::Item>& events);
  // Waits for what `wait` describes, as step `wait.step_key`, first recording `started` (a
  // wait_started entry) and storing `new_events` (an invoked run's event) with it. Returns
  // the wait_resolved payload once resolved; throws Suspend while waiting.
  nlohmann::json await(WaitRegistration wait, std::optional<JournalEntry> started,
                       std::vector<IngestStore::Item> new_events = {});
  // Commits `entries` with a transition to `status` due `at`, asks for a wake-up then, and
  // throws Suspend. Throws Suspend without waking anyone if the commit is refused.
  [[noreturn]] void suspend_until(std::vector<JournalEntry> entries, RunStatus status, TimePoint at, int attempt);
  void sleep_to(const std::string& key, TimePoint requested);
  void complete_run(const nlohmann::json& output);
  // Fails the run for good (after `entries`), starting its failure handler if it has one.
  // `details`: fields added to the recorded error.
  void fail_run(const ErrorInfo& error, const std::string& step_key, std::vector<JournalEntry> entries = {},
                const nlohmann::json& details = nullptr);
  void retry_body(const ErrorInfo& error);

  const ExecutionEnv& env_;
  const ClaimedRun claim_;
  const RegisteredFunction* function_ = nullptr;
  State state_ = State::running;
  bool replay_only_ = false;      // check_replay(): no bodies, no commits
  ReplayCheck replay_check_;
  bool lease_confirmed_ = false;  // a commit or a check showed the run is ours (see confirm_lease)
  bool starting_ = false;         // a fresh run, not yet reported started (see lease_confirmed)
  std::optional<TimePoint> finish_deadline_;  // Timeouts::finish after the run's start
  int64_t next_seq_ = 0;
  std::vector<JournalEntry> journal_;   // as loaded, plus every entry this execution committed
  std::shared_ptr<const Event> event_;  // the event that started the run

  // The journal, indexed. Filled by load(); extended as this execution records steps.
  nlohmann::json started_payload_;
  std::unordered_map<std::string, nlohmann::json> outputs_;        // step key -> output
  std::unordered_map<std::string, nlohmann::json> final_errors_;   // step key -> error
  std::unordered_map<std::string, int> failed_attempts_;           // step key -> failures so far
  std::unordered_map<std::string, TimePoint> sleeps_;              // step key -> deadline
  std::unordered_map<std::string, nlohmann::json> waits_;          // step key -> wait_started payload
  std::unordered_map<std::string, nlohmann::json> resolved_;       // step key -> wait_resolved payload
  int body_failures_ = 0;

  // Completed steps not yet committed (see complete_step): every commit takes them first.
  std::vector<JournalEntry> pending_;

  // Step ids seen in this execution: how often, and as which kind.
  std::unordered_map<std::string, int> occurrences_;
  std::unordered_map<std::string, StepKind> kinds_;
  std::unordered_set<std::string> used_keys_;
  // The step keys of the journal as loaded, in the order first recorded, with their kinds; and
  // how many steps this execution has reached (see check_order).
  std::vector<std::string> recorded_order_;
  std::unordered_map<std::string, StepKind> recorded_kinds_;
  size_t reached_ = 0;
  std::unordered_map<std::string, TimePoint> step_started_at_;     // keys being run now
  std::chrono::steady_clock::time_point step_began_;               // the body running now, for metrics
  bool in_parallel_body_ = false;  // this thread runs a body of a parallel group: no steps in there
  std::thread::id owner_thread_;   // the thread that calls the function: the only one that takes steps
};

}  // namespace durable
