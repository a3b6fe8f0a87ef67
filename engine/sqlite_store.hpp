// SqliteStore: the Store on an embedded SQLite database (WAL mode). All writes go through one
// GroupCommitWriter per store; reads use a small pool of their own connections, so they never
// wait for a commit. Several processes on one host may share the database file.
//
//   SqliteStore store({.path = "app.db", .durability = Durability::full});
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include <durable/engine.hpp>

#include "engine/expression.hpp"
#include "engine/ids.hpp"
#include "engine/store.hpp"

namespace durable {

class SqliteDb;
class GroupCommitWriter;
class WalCheckpointer;

struct SqliteStoreOptions {
  // File path, or ":memory:" (one private connection shared by reads and writes).
  std::string path;
  Durability durability = Durability::full;
  // How long a write waits for another process's write lock. Default: 5 s.
  std::chrono::milliseconds busy_timeout = std::chrono::seconds(5);
};

class SqliteStore final : public Store {
 public:
  // Opens the database and migrates it to the embedded schema. Throws durable::Error (the
  // database is newer than this build) or StoreError.
  explicit SqliteStore(SqliteStoreOptions options);
  ~SqliteStore() override;

  std::vector<Outcome> ingest(const std::vector<Item>& items, TimePoint now,
                              std::chrono::milliseconds dedup_window) override;
  std::optional<StoredEvent> find_event(std::string_view event_id) override;

  std::vector<ClaimedRun> claim(const std::vector<std::string>& function_ids, TimePoint now,
                                const Lease& lease, int limit,
                                std::chrono::milliseconds ahead = std::chrono::milliseconds(0)) override;
  int renew_leases(const std::string& owner, const std::vector<std::string>& run_ids,
                   TimePoint expires_at, TimePoint now) override;
  std::vector<Recovered> recover_expired_leases(TimePoint now) override;
  std::optional<TimePoint> next_due(const std::vector<std::string>& function_ids) override;
  int correct_ahead_times(TimePoint now, std::chrono::milliseconds tolerance) override;

  std::vector<JournalEntry> load_journal(std::string_view run_id) override;
  bool holds_lease(std::string_view run_id, int64_t lease_epoch) override;
  CommitResult commit(const Commit& commit) override;
  WaitOutcome commit_wait(const Commit& commit, const WaitRegistration& wait) override;

  std::optional<Run> find_run(std::string_view run_id) override;
  std::vector<Run> runs_for_event(std::string_view event_id) override;
  std::vector<Run> runs_for_events(const std::vector<std::string>& event_ids) override;

  void register_functions(const std::vector<FunctionRecord>& functions) override;
  std::vector<FunctionRecord> list_functions() override;
  bool unregister_function(std::string_view id) override;

  std::optional<TimePoint> last_cron_tick(std::string_view function_id, std::string_view schedule) override;
  bool record_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick,
                        const std::optional<Item>& item, TimePoint now) override;

  std::vector<Run> list_runs(const RunFilter& filter, int limit, std::string_view before_id) override;
  int64_t count_runs(const RunFilter& filter) override;
  std::vector<RunCount> count_runs_by_time(const RunFilter& filter, TimePoint from, std::chrono::milliseconds width,
                                           int buckets) override;
  std::vector<std::string> replays_of(std::string_view run_id) override;
  std::vector<StoredEvent> list_events(const EventFilter& filter, int limit, std::string_view before_id) override;
  std::vector<Change> cancel_runs(const std::vector<std::string>& run_ids, TimePoint now) override;
  Change resume_run(std::string_view run_id, TimePoint now) override;
  void create_runs(const std::vector<NewRun>& runs, TimePoint now) override;
  int delete_finished_runs(TimePoint cutoff, int limit) override;
  int delete_unreferenced_events(TimePoint cutoff, int limit) override;
  QueueDepth queue_depth(TimePoint now) override;

  StoreStats stats() const override;
  void set_wait_listener(std::function<void(const std::vector<std::string>&)> listener) override;
  std::optional<std::string> failure() const override;
  void set_failure_listener(std::function<void(const std::string&)> listener) override;

  // The write connection's PRAGMA synchronous: 2 (FULL) or 1 (NORMAL). A diagnostic.
  int synchronous_level();

 private:
  // Runs `fn` with a reader connection (the shared connection, locked, for ":memory:").
  template <class Fn>
  auto read(Fn&& fn);
  // A registered wait, as ingest considers it.
  struct WaitCandidate {
    std::string run_id, step_key, match_path, match_value, condition, trigger_event_id, function_id;
    std::optional<nlohmann::json> trigger_json;  // loaded when the condition needs it
    const nlohmann::json& trigger_event(SqliteDb& db);
  };

  // Inserts one event, the runs it starts and the waits it resolves inside a write
  // transaction (see ingest()); appends the functions of the runs it woke to `woken`.
  Outcome insert_event(SqliteDb& db, const Item& item, TimePoint now, std::chrono::milliseconds dedup_window,
                       std::vector<std::string>& woken);
  // Resolves the registered waits that the stored `item` matches (see commit_wait).
  void resolve_waits(SqliteDb& db, const Item& item, TimePoint now, std::vector<std::string>& woken);
  // Whether `event_json` (an event's wire form) satisfies the wait's match and condition.
  bool wait_accepts(SqliteDb& db, WaitCandidate& wait, const nlohmann::json& event_json);
  // The earliest event received since the wait began that satisfies it.
  std::optional<StoredEvent> arrived_event(SqliteDb& db, const std::string& run_id, const WaitRegistration& wait);
  // Applies a commit inside a write transaction, its transition only if `with_transition`.
  // False: the lease was lost, and nothing changed.
  bool apply_commit(SqliteDb& db, const Commit& c, bool with_transition, std::vector<std::string>& woken);
  bool apply_transition(SqliteDb& db, const std::string& run_id, int64_t lease_epoch, const RunTransition& t,
                        TimePoint now, std::vector<std::string>& woken);
  void notify_woken(const std::vector<std::string>& function_ids);
  // A cancelled run started by step.invoke: its parent's wait gets a durable/function.finished.
  void tell_parent_cancelled(SqliteDb& db, const std::string& run_id, TimePoint now, std::vector<std::string>& woken);
  // An expression recorded in the store (a trigger filter, a wait's condition or match
  // field), parsed once per text; nullptr if it cannot be parsed.
  const Expression* parsed_filter(const std::string& text);

  SqliteStoreOptions options_;
  bool in_memory_;
  IdGenerator ids_;  // for the runs that ingest starts for recorded functions
  std::mutex filters_mu_;
  std::unordered_map<std::string, std::optional<Expression>> filters_;  // guarded by filters_mu_
  std::function<void(const std::vector<std::string>&)> wait_listener_;
  std::unique_ptr<SqliteDb> writer_db_;
  std::mutex shared_mu_;  // ":memory:" only: serializes the one connection

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteDb>> idle_readers_;  // guarded by readers_mu_

  std::unique_ptr<GroupCommitWriter> writer_;
  std::unique_ptr<WalCheckpointer> checkpointer_;  // files only; uses writer_
};

}  // namespace durable
