// PostgresStore: the Store on a PostgreSQL database that many processes on many hosts share.
// The rules of its write transactions are RuleStore's; this is their SQL (PgTx, in the .cpp),
// with the lock points as row locks and transaction-scoped advisory locks, and the SQL of
// claims (FOR UPDATE SKIP LOCKED), leases and reads. Each write transaction runs on a pooled
// connection at READ COMMITTED and is tried again after a serialization failure or a
// deadlock. No prepared statements and no session state: a transaction-pooling proxy
// (pgbouncer) may sit in between.
//
//   PostgresStore store({.url = "postgres://app@db.internal/app"});
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/store/rule_store.hpp"

namespace durable {

class PgConn;

struct PostgresStoreOptions {
  std::string url;  // a libpq connection URI: postgres://user:password@host:port/db?...
  // Connections kept open for reuse; more are opened while more callers are busy at once.
  int pool_size = 8;
};

class PostgresStore final : public RuleStore {
 public:
  // Connects and migrates the database to the embedded schema (schema_postgres.sql). Throws
  // durable::Error (the database is newer than this build) or StoreError.
  explicit PostgresStore(PostgresStoreOptions options);
  ~PostgresStore() override;

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

 protected:
  void transact(const std::function<void(StoreTx&)>& work) override;

 private:
  // A pooled connection for the length of one call, returned to the pool unless it broke.
  class PooledConn;
  PooledConn connection();
  // Runs `fn(conn)` on a pooled connection, outside any explicit transaction.
  template <class Fn>
  auto read(Fn&& fn);
  void migrate();
  // Runs `work` in BEGIN ... COMMIT on a pooled connection, again after a transient failure;
  // a fatal one stops the store (fail).
  void in_transaction(const std::function<void(PgConn&)>& work);
  void fail(const StoreError& e);

  PostgresStoreOptions options_;
  std::string masked_url_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<PgConn>> idle_;  // guarded by pool_mu_
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  // Fail-stop (Store::failure): set by the first fatal error of a write.
  mutable std::mutex failure_mu_;
  std::optional<std::string> failure_;  // guarded by failure_mu_
  std::function<void(const std::string&)> failure_listener_;
};

}  // namespace durable
