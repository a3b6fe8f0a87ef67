// SqliteStore: the Store on an embedded SQLite database (WAL mode). The rules of its write
// transactions are RuleStore's; this is their SQL (SqliteTx, in the .cpp), and the SQL of
// claims, leases and reads. All writes go through one GroupCommitWriter per store; reads use a
// small pool of their own connections, so they never wait for a commit. Several processes on
// one host may share the database file: SQLite's one writer serializes their transactions, so
// the lock points of StoreTx are no-ops here.
//
//   SqliteStore store({.path = "app.db", .durability = Durability::full});
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <durable/engine.hpp>

#include "engine/store/rule_store.hpp"

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

class SqliteStore final : public RuleStore {
 public:
  // Opens the database and migrates it to the embedded schema. Throws durable::Error (the
  // database is newer than this build) or StoreError.
  explicit SqliteStore(SqliteStoreOptions options);
  ~SqliteStore() override;

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

  std::optional<Run> find_run(std::string_view run_id) override;
  std::vector<Run> runs_for_event(std::string_view event_id) override;
  std::vector<Run> runs_for_events(const std::vector<std::string>& event_ids) override;

  void register_functions(const std::vector<FunctionRecord>& functions) override;
  std::vector<FunctionRecord> list_functions() override;
  bool unregister_function(std::string_view id) override;

  std::optional<TimePoint> last_cron_tick(std::string_view function_id, std::string_view schedule) override;

  std::vector<Run> list_runs(const RunFilter& filter, int limit, std::string_view before_id) override;
  int64_t count_runs(const RunFilter& filter) override;
  std::vector<RunCount> count_runs_by_time(const RunFilter& filter, TimePoint from, std::chrono::milliseconds width,
                                           int buckets) override;
  std::vector<std::string> replays_of(std::string_view run_id) override;
  std::vector<StoredEvent> list_events(const EventFilter& filter, int limit, std::string_view before_id) override;
  int delete_finished_runs(TimePoint cutoff, int limit) override;
  int delete_unreferenced_events(TimePoint cutoff, int limit) override;
  QueueDepth queue_depth(TimePoint now) override;

  StoreStats stats() const override;
  std::optional<std::string> failure() const override;
  void set_failure_listener(std::function<void(const std::string&)> listener) override;

  // The write connection's PRAGMA synchronous: 2 (FULL) or 1 (NORMAL). A diagnostic.
  int synchronous_level();

 protected:
  void transact(const std::function<void(StoreTx&)>& work) override;

 private:
  // Runs `fn` with a reader connection (the shared connection, locked, for ":memory:").
  template <class Fn>
  auto read(Fn&& fn);

  SqliteStoreOptions options_;
  bool in_memory_;
  std::unique_ptr<SqliteDb> writer_db_;
  std::mutex shared_mu_;  // ":memory:" only: serializes the one connection

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteDb>> idle_readers_;  // guarded by readers_mu_

  std::unique_ptr<GroupCommitWriter> writer_;
  std::unique_ptr<WalCheckpointer> checkpointer_;  // files only; uses writer_
};

}  // namespace durable
