// The store: everything the engine keeps, behind interfaces split by caller. Ingest stores
// events with the runs they start; the run queue hands due runs to workers under leases; the
// journal store reads a run's history and commits what an execution appends to it; the run
// reader answers queries; the function store knows every process's functions; run admin is
// what operators do (list, cancel, resume, replay, delete old runs). SqliteStore implements
// them all; a PostgreSQL store will too, and tests/store_test.cpp is written once against
// these interfaces.
//
// Every write is atomic, and durable (per the durability setting) when the call returns.
// All methods are thread-safe. Failures throw StoreError (store_error.hpp: its kind says
// whether to retry); expected outcomes (a duplicate event, a lost lease) are return values.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/event.hpp>
#include <durable/function.hpp>
#include <durable/run.hpp>

#include "engine/store/store_error.hpp"

namespace durable {

// The kinds of journal entry, stored as these words. docs/journal.md gives each payload.
enum class JournalKind {
  run_started,      // first entry of every run
  step_completed,   // a step's result: payload is its output
  step_failed,      // an attempt of a step failed; payload says whether it will be retried
  sleep_scheduled,  // payload {"until": ms}
  body_failed,      // the function threw outside any step; payload like step_failed
  run_completed,    // payload: the function's output
  run_failed,       // payload: the error
  run_cancelled,    // an operator cancelled the run; payload {}
  run_resumed,      // an operator resumed the failed or cancelled run; payload {}. Steps that
                    // failed before it get fresh attempts; memoized steps stay.
  wait_started,     // step.wait_for_event or step.invoke began waiting; payload: what for, until when
  wait_resolved,    // the wait ended: payload {"event_id", "event"} or {"timeout": true}
};
std::string_view to_string(JournalKind kind);
JournalKind parse_journal_kind(std::string_view text);  // throws StoreError for unknown text

struct JournalEntry {
  int64_t seq = 0;                       // position in the run's journal, from 0
  JournalKind kind = JournalKind::run_started;
  std::string step_key;                  // step entries only
  std::optional<int> attempt;            // step_failed, body_failed: the failed attempt, from 0
  std::string payload = "null";          // JSON text
  std::optional<TimePoint> started_at;   // step entries: when the body started
  TimePoint recorded_at{};
};

// A lease: `owner` may execute the run until `expires_at`, and commit while `epoch` is current.
struct Lease {
  std::string owner;
  TimePoint expires_at{};
};

// A run to create. It starts queued and available at once, or, when `lease` is set, already
// claimed by that owner (a process that will execute it immediately).
struct NewRun {
  std::string id;
  std::string function_id;
  std::string event_id;
  std::string started_payload = "{}";  // payload of its run_started entry (JSON)
  std::optional<Lease> lease;
  std::string replay_of;               // a replay: the run it replays
  std::string parent_run_id;           // started by step.invoke: the invoking run
  // Entries after run_started (a replay's memoized steps), numbered from 1 by the store.
  std::vector<JournalEntry> entries;
};

struct StoredEvent {
  std::string id;
  Event event;            // ts filled in
  bool duplicate = false;
  TimePoint received_at{};
};

class IngestStore {
 public:
  virtual ~IngestStore() = default;

  struct Item {
    std::string event_id;   // the id to store it under
    Event event;            // validated, ts filled in
    std::vector<NewRun> runs;
  };
  enum class Outcome {
    accepted,
    duplicate,       // stored, flagged, without runs
    already_stored,  // an event with this event_id exists (a retried send): nothing changed
  };

  // Stores every item's event and, unless the event is a duplicate (another event with the
  // same dedup key, event.id, was accepted after `now - dedup_window`), its runs, with their
  // run_started entries: all in one transaction. Besides `runs`, every function recorded in
  // the function store whose trigger matches the event gets a queued run (functions of other
  // processes). Duplicates are stored too, flagged, without runs. Returns one outcome per
  // item, in order.
  virtual std::vector<Outcome> ingest(const std::vector<Item>& items, TimePoint now,
                                      std::chrono::milliseconds dedup_window) = 0;

  virtual std::optional<StoredEvent> find_event(std::string_view event_id) = 0;
};

// A run handed to a worker by claim() (or created already claimed at ingest).
struct ClaimedRun {
  std::string run_id;
  std::string function_id;
  std::string event_id;
  int64_t lease_epoch = 0;     // present it with every commit
  int attempt = 0;
  // A sleep claimed ahead of its end: its deadline, before which it must not execute. The
  // epoch (TimePoint{}) for a run that was due when claimed: not the available_at it had, which
  // a clock that ran ahead may have set in the future (docs/operations.md, "Clock steps").
  TimePoint available_at{};
  TimePoint created_at{};      // when the run was created (its event was received)
  std::optional<TimePoint> started_at;  // when the run was first claimed (this claim, if it is the first)
  // Set for runs created already claimed at ingest: their event, and the knowledge that the
  // journal holds only run_started with an empty payload, so the execution need not read them.
  std::shared_ptr<const Event> fresh_event;
};

class RunQueue {
 public:
  virtual ~RunQueue() = default;

  // Claims up to `limit` queued, sleeping or waiting runs of the given functions whose
  // available_at is at or before `now` (sleeping runs: at or before `now + ahead`, so they can
  // be loaded before their sleep ends), earliest first, and leases them to `lease`. Each claim advances
  // the run's lease epoch, which fences out any earlier holder.
  virtual std::vector<ClaimedRun> claim(const std::vector<std::string>& function_ids, TimePoint now,
                                        const Lease& lease, int limit,
                                        std::chrono::milliseconds ahead = std::chrono::milliseconds(0)) = 0;

  // Extends to `expires_at` the leases `owner` holds on `run_ids`, renewed at `now`. Returns how
  // many. (Only runs the owner is still working on: a run it abandoned must expire and be
  // recovered.)
  virtual int renew_leases(const std::string& owner, const std::vector<std::string>& run_ids,
                           TimePoint expires_at, TimePoint now) = 0;

  struct Recovered {
    std::string run_id;
    std::string function_id;
  };
  // Puts every running run whose lease expired at or before `now` back in the queue, available
  // at once, and advances its epoch so the old holder can no longer commit. Returns them.
  virtual std::vector<Recovered> recover_expired_leases(TimePoint now) = 0;

  // The earliest available_at of the queued, sleeping or waiting runs of these functions.
  virtual std::optional<TimePoint> next_due(const std::vector<std::string>& function_ids) = 0;

  // Undoes what a clock that ran ahead wrote (docs/operations.md, "Clock steps"). Every write
  // of a run's available_at or lease records the writer's `now`; a queued run's due time (at
  // once, or a retry's backoff) and a lease's expiry are delays from that moment. For each
  // queued or running run written more than `tolerance` after `now`, that time is moved back
  // to lie as far after `now` as it lay after its writing, and the run counts as written at
  // `now`: a queued run is due as soon as it was meant to be, and a lease gets its whole TTL
  // again (so a live holder, whose own clock may still be ahead, is never fenced by this).
  // Sleeping and waiting runs keep their available_at: a sleep's end and a wait's timeout are
  // the user's wall-clock deadlines. Finds nothing, with one index probe, unless a clock ran
  // ahead. Returns how many runs it corrected.
  virtual int correct_ahead_times(TimePoint now, std::chrono::milliseconds tolerance) = 0;
};

// How a commit changes the run's row. Every status but running ends the lease.
struct RunTransition {
  RunStatus status = RunStatus::queued;
  TimePoint available_at{};            // queued, sleeping, waiting: when it may be claimed again
  int attempt = 0;                     // the run's new attempt count
  std::optional<std::string> output;   // completed: JSON text
  std::optional<std::string> error;    // failed: JSON text
};

// What an execution appends to its run's journal, in one transaction.
struct Commit {
  std::string run_id;
  int64_t lease_epoch = 0;                // the epoch from claim(); fencing
  std::vector<JournalEntry> entries;
  std::optional<RunTransition> transition;  // none: the run stays running under the lease
  std::vector<NewRun> new_runs;           // runs to create in the same transaction
  // Events to store in the same transaction (step.send_event, lifecycle events), each
  // starting runs of the recorded functions it triggers and resolving waits, like ingest,
  // with this dedup window for their senders' ids.
  std::vector<IngestStore::Item> new_events;
  std::chrono::milliseconds dedup_window{0};
  TimePoint now{};
};

// A run's wait for an event (step.wait_for_event; step.invoke waits for the child's
// durable/function.finished), registered by JournalStore::commit_wait.
struct WaitRegistration {
  std::string step_key;
  std::string event;             // the awaited event's name
  std::string match_path;        // "data.invoiceId": the awaited event's field at this path must
  std::string match_value;       //   equal this JSON text; both empty: no such condition
  std::string condition;         // an expression over `event` (the run's) and `async` (the
                                 // awaited one), docs/expressions.md; empty: none
  std::string trigger_event_id;  // the run's event
  TimePoint since{};             // events received at or after this count
  TimePoint expires_at{};        // the timeout: no event resolves the wait after it
};

class JournalStore {
 public:
  virtual ~JournalStore() = default;

  // The run's journal in order; empty when the run does not exist.
  virtual std::vector<JournalEntry> load_journal(std::string_view run_id) = 0;

  // Whether the run is still running under `lease_epoch` (not cancelled, not taken over).
  virtual bool holds_lease(std::string_view run_id, int64_t lease_epoch) = 0;

  enum class CommitResult { committed, lease_lost };

  // Appends the entries and applies the transition if the run is still running under
  // `lease_epoch`; otherwise changes nothing and returns lease_lost (another worker took the
  // run over, or it was cancelled). Throws StoreError for an entry whose seq is taken. A
  // wait_resolved entry ends its wait's registration; a transition to a finished status ends
  // every wait of the run.
  virtual CommitResult commit(const Commit& commit) = 0;

  struct WaitOutcome {
    CommitResult result = CommitResult::committed;
    // Set when an event matching the wait had already arrived: it is recorded (a
    // wait_resolved entry after the commit's entries) and the run goes on running.
    std::optional<StoredEvent> arrived;
  };
  // Commits `commit`, whose transition puts the run to wait until `wait.expires_at`, and
  // registers the wait, in one transaction; if an event matching the wait was received since
  // `wait.since`, resolves it with the earliest one instead (the transition is not applied).
  // Together with ingest resolving registered waits in the transaction that stores the
  // event, no matching event is missed, however the two interleave. Once registered, the wait
  // is resolved by the first matching event any process stores before it expires: a
  // wait_resolved entry, and the run queued at once under a new lease epoch.
  virtual WaitOutcome commit_wait(const Commit& commit, const WaitRegistration& wait) = 0;
};

class RunReader {
 public:
  virtual ~RunReader() = default;
  virtual std::optional<Run> find_run(std::string_view run_id) = 0;
  virtual std::vector<Run> runs_for_event(std::string_view event_id) = 0;
  // The runs of any of these events (a page of a listing), ordered by id.
  virtual std::vector<Run> runs_for_events(const std::vector<std::string>& event_ids) = 0;
};

// A function as recorded in the store by the process that registered it.
struct FunctionRecord {
  std::string id;
  std::string name;
  std::vector<Trigger> triggers;      // event names ("prefix/*" too), with their filters
  nlohmann::json config;              // options as the API shows them (retries, backoff, ...)
  TimePoint registered_at{};
  std::string registered_by;          // the worker process
};

class FunctionStore {
 public:
  virtual ~FunctionStore() = default;
  // Records these functions, replacing earlier records (and triggers) of the same ids.
  virtual void register_functions(const std::vector<FunctionRecord>& functions) = 0;
  // Every recorded function, by id.
  virtual std::vector<FunctionRecord> list_functions() = 0;
  // Forgets a function and its triggers (it was removed from the code): events no longer
  // start runs for it, until a process registers it again. False if it was not recorded.
  virtual bool unregister_function(std::string_view id) = 0;
};

// The ticks of cron triggers (on_cron), shared by every process that registers the function.
class CronStore {
 public:
  virtual ~CronStore() = default;
  // The last tick recorded for this function's schedule; nullopt: the schedule is new.
  virtual std::optional<TimePoint> last_cron_tick(std::string_view function_id, std::string_view schedule) = 0;
  // If `tick` is later than the schedule's last recorded tick (or none is recorded), records it
  // and, in the same transaction, ingests `item` (the tick's event and run), if given; returns
  // true. Otherwise changes nothing and returns false: of several processes firing one tick,
  // exactly one gets true.
  virtual bool record_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick,
                                const std::optional<IngestStore::Item>& item, TimePoint now) = 0;
};

// Which runs a listing or a bulk action covers. Empty fields match everything.
struct RunFilter {
  std::vector<RunStatus> statuses;             // any of these
  std::string function_id;
  std::string event_id;
  std::optional<TimePoint> created_after;      // created at or after
  std::optional<TimePoint> created_before;     // created before
};

struct EventFilter {
  std::string name;
  std::optional<TimePoint> received_after;     // at or after
  std::optional<TimePoint> received_before;    // before
};

// How many runs of one function and status were created in one time bucket
// (RunAdmin::count_runs_by_time).
struct RunCount {
  std::string function_id;
  int64_t bucket = 0;  // from 0, the first bucket of the range
  RunStatus status = RunStatus::queued;
  int64_t count = 0;
};

// How many runs wait in the queue, by state.
struct QueueDepth {
  int64_t runnable = 0;   // queued and due now
  int64_t scheduled = 0;  // queued for later (a retry's backoff)
  int64_t sleeping = 0;
  int64_t waiting = 0;    // for an event (or a child run)
  int64_t running = 0;
};

// Paging: ask a listing for `limit + 1` rows, then call this. It drops the extra row and
// returns the next page's cursor (the last kept id), or "" when there is no next page, so a
// client never fetches an empty last page.
template <class Row>
std::string trim_page(std::vector<Row>& rows, int limit) {
  if (static_cast<int>(rows.size()) <= limit) return {};
  rows.resize(static_cast<size_t>(limit));
  return rows.back().id;
}

class RunAdmin {
 public:
  virtual ~RunAdmin() = default;

  // Runs matching `filter`, newest first, at most `limit`, and only those whose id sorts
  // before `before_id` when it is not empty (keyset paging: the last id of a page gives the
  // next one, and runs created meanwhile never shift it).
  virtual std::vector<Run> list_runs(const RunFilter& filter, int limit, std::string_view before_id) = 0;
  virtual int64_t count_runs(const RunFilter& filter) = 0;
  // Counts the runs matching `filter` created in [from, from + buckets * width), by function,
  // status and bucket: bucket i holds those created in [from + i * width, from + (i + 1) *
  // width). Only counts above zero are returned, in no particular order. (The filter's own
  // time bounds narrow the range further.)
  virtual std::vector<RunCount> count_runs_by_time(const RunFilter& filter, TimePoint from,
                                                   std::chrono::milliseconds width, int buckets) = 0;
  // The ids of the replays of `run_id`, oldest first.
  virtual std::vector<std::string> replays_of(std::string_view run_id) = 0;
  // Events matching `filter`, newest first, paged like list_runs.
  virtual std::vector<StoredEvent> list_events(const EventFilter& filter, int limit, std::string_view before_id) = 0;

  enum class Change { done, not_found, refused };
  // Cancels each run that is not finished, in one transaction: status cancelled, a
  // run_cancelled entry, and a new lease epoch, so an execution holding it can commit
  // nothing more (its running step finishes; the next one never starts). `refused`: the run
  // had already finished. One result per id, in order.
  virtual std::vector<Change> cancel_runs(const std::vector<std::string>& run_ids, TimePoint now) = 0;
  // Puts a failed or cancelled run back in the queue, due now, with a run_resumed entry and
  // a new lease epoch. `refused`: the run is neither failed nor cancelled.
  virtual Change resume_run(std::string_view run_id, TimePoint now) = 0;
  // Creates queued runs (replays), with their entries, in one transaction.
  virtual void create_runs(const std::vector<NewRun>& runs, TimePoint now) = 0;

  // Retention. Each call is one short transaction. Deletes up to `limit` runs that finished
  // before `cutoff`, with their journals; returns how many.
  virtual int delete_finished_runs(TimePoint cutoff, int limit) = 0;
  // Deletes up to `limit` events received before `cutoff` that no run refers to.
  virtual int delete_unreferenced_events(TimePoint cutoff, int limit) = 0;

  virtual QueueDepth queue_depth(TimePoint now) = 0;
};

// Counters for benchmarks and metrics.
struct StoreStats {
  uint64_t commits = 0;  // write transactions committed
  uint64_t writes = 0;   // caller operations in them (events ingested, journal commits, claims)
};

class Store : public IngestStore,
              public RunQueue,
              public JournalStore,
              public RunReader,
              public FunctionStore,
              public CronStore,
              public RunAdmin {
 public:
  virtual StoreStats stats() const = 0;
  // Called after every commit (of this store object) that resolved waits, with the function
  // ids of the runs it queued, so that the process can claim its own at once. Set before use.
  virtual void set_wait_listener(std::function<void(const std::vector<std::string>& function_ids)> listener) = 0;

  // Fail-stop. After an error that may have lost acknowledged data (a failed fsync, any I/O
  // error on a write), the store refuses every write (StoreError) until the process
  // restarts; failure() then says why ("the store stopped writing after an I/O error ...").
  // nullopt while it works. Thread-safe and cheap.
  virtual std::optional<std::string> failure() const = 0;
  // Called once, on the thread that found the failure, when the store fails. It must not
  // write to the store. Set before use.
  virtual void set_failure_listener(std::function<void(const std::string& failure)> listener) = 0;
};

}  // namespace durable
