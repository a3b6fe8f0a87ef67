// SqliteStore: the Store on an embedded SQLite database (WAL mode). All writes go through one
// GroupCommitWriter per store; reads use a small pool of their own connections, so they never
// wait for a commit. Several processes on one host may share the database file.
//
//   SqliteStore store({.path = "app.db", .durability = Durability::full});
#pragma once

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
                   TimePoint expires_at) override;
  std::vector<Recovered> recover_expired_leases(TimePoint now) override;
  std::optional<TimePoint> next_due(const std::vector<std::string>& function_ids) override;

  std::vector<JournalEntry> load_journal(std::string_view run_id) override;
  bool holds_lease(std::string_view run_id, int64_t lease_epoch) override;
  CommitResult commit(const Commit& commit) override;

  std::optional<Run> find_run(std::string_view run_id) override;
  std::vector<Run> runs_for_event(std::string_view event_id) override;

  void register_functions(const std::vector<FunctionRecord>& functions) override;
  std::vector<FunctionRecord> list_functions() override;
  bool unregister_function(std::string_view id) override;

  std::vector<Run> list_runs(const RunFilter& filter, int limit, std::string_view before_id) override;
  int64_t count_runs(const RunFilter& filter) override;
  std::vector<std::string> replays_of(std::string_view run_id) override;
  std::vector<StoredEvent> list_events(const EventFilter& filter, int limit, std::string_view before_id) override;
  std::vector<Change> cancel_runs(const std::vector<std::string>& run_ids, TimePoint now) override;
  Change resume_run(std::string_view run_id, TimePoint now) override;
  void create_runs(const std::vector<NewRun>& runs, TimePoint now) override;
  int delete_finished_runs(TimePoint cutoff, int limit) override;
  int delete_unreferenced_events(TimePoint cutoff, int limit) override;
  QueueDepth queue_depth(TimePoint now) override;

  StoreStats stats() const override;

  // The write connection's PRAGMA synchronous: 2 (FULL) or 1 (NORMAL). A diagnostic.
  int synchronous_level();

 private:
  // Runs `fn` with a reader connection (the shared connection, locked, for ":memory:").
  template <class Fn>
  auto read(Fn&& fn);
  // Inserts one event and its runs inside a write transaction (see ingest()).
  Outcome insert_event(SqliteDb& db, const Item& item, TimePoint now, std::chrono::milliseconds dedup_window);
  // A recorded trigger filter, parsed once per text; nullptr if it cannot be parsed.
  const Expression* parsed_filter(const std::string& text);

  SqliteStoreOptions options_;
  bool in_memory_;
  IdGenerator ids_;  // for the runs that ingest starts for recorded functions
  std::mutex filters_mu_;
  std::unordered_map<std::string, std::optional<Expression>> filters_;  // guarded by filters_mu_
  std::unique_ptr<SqliteDb> writer_db_;
  std::mutex shared_mu_;  // ":memory:" only: serializes the one connection

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteDb>> idle_readers_;  // guarded by readers_mu_

  std::unique_ptr<GroupCommitWriter> writer_;
  std::unique_ptr<WalCheckpointer> checkpointer_;  // files only; uses writer_
};

}  // namespace durable
