// StoreTx: the rows one write transaction reads and writes, as the store's rules (RuleStore,
// rule_store.hpp) use them. Each backend implements it in its own SQL; it holds no rule of
// its own beyond the two guarded writes named below (fencing and the cron tick), which must
// be one statement to be cheap and race-free.
//
// Lock points. Nothing here may be correct only because SQLite has a single writer: where two
// transactions must not interleave, the rules take a lock point first, which a backend with
// concurrent writers (PostgreSQL, READ COMMITTED) implements as a lock held until the
// transaction ends, and SQLite as nothing (its one writer already serializes every write
// transaction of every process).
//
//   lock_event_name   ingest of an event (shared) against a wait registering for its name
//                     (exclusive): either the ingest sees the wait and resolves it, or the
//                     registration sees the stored event. Without it, each could commit
//                     unseen by the other and the wait would miss its event.
//   lock_dedup_key    two events with one sender id ingested at once: the second sees the
//                     first and is stored as its duplicate.
//   lock_run          an operator's or a resolved wait's change to a run against its lease
//                     holder's commits and against each other: the journal's next seq and
//                     the run's status are read and written by one writer at a time.
//   append_if_held / finish_lease / is_held
//                     the lease holder's fenced writes: they lock the run (shared) as they
//                     check its epoch, so a concurrent seizure (lock_run + reset_run) either
//                     happens before (and the holder is refused) or waits for the holder.
//
// Every method throws StoreError. Called only inside RuleStore::transact's work.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <durable/clock.hpp>
#include <durable/event.hpp>
#include <durable/run.hpp>

#include "engine/store/store.hpp"

namespace durable {

// A function recorded in the store whose trigger names an event (RuleStore's ingest starts
// runs of the functions of other processes through these).
struct RecordedTrigger {
  std::string function_id;
  std::string filter;  // an expression over `event`; empty: none
};

// A registered wait (WaitRegistration) as ingest finds it.
struct WaitRow {
  std::string run_id;
  std::string step_key;
  std::string condition;
  std::string trigger_event_id;
};

// The parts of a run's row its rules read under lock_run.
struct RunRow {
  RunStatus status = RunStatus::queued;
  std::string function_id;
  std::string event_id;
  std::string parent_run_id;  // set for a run started by step.invoke
};

// A change to a run by someone other than its lease holder (an operator, a resolved wait),
// made under lock_run: any lease ends and the epoch advances, so the holder commits nothing
// more.
struct RunReset {
  RunStatus status = RunStatus::queued;
  std::optional<TimePoint> available_at;  // set: when it may be claimed (queued)
  std::optional<TimePoint> ended_at;      // set for a finished status; cleared otherwise
  std::optional<int> attempt;             // set: the new attempt count, and the error is cleared
};

class StoreTx {
 public:
  virtual ~StoreTx() = default;

  // Lock points (see above). No-ops on SQLite.
  enum class LockMode { shared, exclusive };
  virtual void lock_event_name(std::string_view name, LockMode mode) = 0;
  virtual void lock_dedup_key(std::string_view key) = 0;
  // Locks the run's row until the transaction ends and reads it; nullopt if it does not exist.
  virtual std::optional<RunRow> lock_run(std::string_view run_id) = 0;

  // Events.
  // Whether an accepted (not duplicate) event with this sender id was received after `since`.
  virtual bool dedup_key_seen(std::string_view key, TimePoint since) = 0;
  // Stores the event under `id`; false (and nothing changes) if an event with that id exists.
  virtual bool insert_event(std::string_view id, const Event& event, bool duplicate, TimePoint received_at) = 0;
  virtual std::optional<StoredEvent> find_event(std::string_view id) = 0;
  // The accepted events of this name received at or after `since`, oldest first.
  virtual std::vector<StoredEvent> events_since(std::string_view name, TimePoint since) = 0;
  // The recorded triggers whose event name matches `name`: exactly, or under a "prefix/*".
  virtual std::vector<RecordedTrigger> triggers_matching(std::string_view name) = 0;

  // Runs and journals.
  // Creates the run's row: queued and due at `now`, or running under its lease.
  virtual void insert_run(const NewRun& run, TimePoint now) = 0;
  // Appends an entry. Throws StoreError (conflict) if the run's entry at that seq exists.
  virtual void append(std::string_view run_id, const JournalEntry& entry) = 0;
  // The next free seq of the run's journal (under lock_run: nobody else appends meanwhile).
  virtual int64_t next_seq(std::string_view run_id) = 0;
  // Fencing, for the lease holder: appends the entry only if the run is running under
  // `lease_epoch`; false, and nothing changes, if not.
  virtual bool append_if_held(std::string_view run_id, int64_t lease_epoch, const JournalEntry& entry) = 0;
  // Whether the run is running under `lease_epoch` (the fencing check of a commit with no entry).
  virtual bool is_held(std::string_view run_id, int64_t lease_epoch) = 0;
  // Applies the holder's transition if the run is running under `lease_epoch`, ending the
  // lease; false, and nothing changes, if not.
  virtual bool finish_lease(std::string_view run_id, int64_t lease_epoch, const RunTransition& t, TimePoint now) = 0;
  // Changes the run as `reset` says (see RunReset), recording `now` as its writing.
  virtual void reset_run(std::string_view run_id, const RunReset& reset, TimePoint now) = 0;

  // Waits.
  virtual void insert_wait(std::string_view run_id, const WaitRegistration& wait) = 0;
  virtual void delete_wait(std::string_view run_id, std::string_view step_key) = 0;
  virtual void delete_waits(std::string_view run_id) = 0;
  // The distinct match paths of the waits for this event name ("" for waits without one).
  virtual std::vector<std::string> wait_match_paths(std::string_view event_name) = 0;
  // The waits for this name whose match (path, value) is this one and that expire after `now`.
  virtual std::vector<WaitRow> waits_matching(std::string_view event_name, std::string_view match_path,
                                              std::string_view match_value, TimePoint now) = 0;

  // Cron. Records `tick` as the schedule's last tick if it is later than the recorded one (or
  // none is recorded); false, and nothing changes, otherwise. One statement: of several
  // transactions recording one tick, exactly one gets true.
  virtual bool advance_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick) = 0;
};

}  // namespace durable
