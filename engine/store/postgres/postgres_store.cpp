#include "engine/store/postgres/postgres_store.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/base/ids.hpp"
#include "engine/base/json_text.hpp"
#include "engine/base/log.hpp"
#include "engine/store/open_store.hpp"
#include "engine/store/postgres/pg.hpp"
#include "engine/store/schema_sections.hpp"

namespace durable {

// Defined in the file CMake generates from schema_postgres.sql.
extern const char kPostgresSchemaSql[];

namespace {

std::string json_list(const std::vector<std::string>& items) { return nlohmann::json(items).dump(); }

std::optional<int64_t> millis(const std::optional<TimePoint>& t) {
  return t ? std::optional<int64_t>(to_millis(*t)) : std::nullopt;
}

// Advisory lock namespaces (the first key of pg_advisory_xact_lock(int, int)).
constexpr int kEventNameLocks = 0x64757201;  // "dur\1"
constexpr int kDedupKeyLocks = 0x64757202;
constexpr int kMigrationLock = 0x64757203;

constexpr const char* kEventColumns = "id, name, data, user_data, ts, v, dedup_key, duplicate, received_at";

constexpr const char* kRunColumns =
    "id, function_id, event_id, status, attempt, output, error, created_at, started_at, ended_at, "
    "available_at, replay_of, parent_run_id";

StoredEvent read_event(const PgResult& r, int row) {
  StoredEvent e;
  e.id = r.text(row, 0);
  e.event.name = r.text(row, 1);
  e.event.data = nlohmann::json::parse(r.text(row, 2));
  e.event.user = nlohmann::json::parse(r.text(row, 3));
  e.event.ts = from_millis(r.integer(row, 4));
  e.event.v = r.optional_text(row, 5).value_or("");
  e.event.id = r.optional_text(row, 6).value_or("");
  e.duplicate = r.integer(row, 7) != 0;
  e.received_at = from_millis(r.integer(row, 8));
  return e;
}

Run read_run(const PgResult& r, int row) {
  Run run;
  run.id = r.text(row, 0);
  run.function_id = r.text(row, 1);
  run.event_id = r.text(row, 2);
  run.status = parse_run_status(r.text(row, 3));
  run.attempt = static_cast<int>(r.integer(row, 4));
  if (!r.is_null(row, 5)) run.output = nlohmann::json::parse(r.text(row, 5));
  if (!r.is_null(row, 6)) run.error = nlohmann::json::parse(r.text(row, 6));
  run.created_at = from_millis(r.integer(row, 7));
  if (!r.is_null(row, 8)) run.started_at = from_millis(r.integer(row, 8));
  if (!r.is_null(row, 9)) run.ended_at = from_millis(r.integer(row, 9));
  run.available_at = from_millis(r.integer(row, 10));
  run.replay_of = r.optional_text(row, 11).value_or("");
  run.parent_run_id = r.optional_text(row, 12).value_or("");
  return run;
}

std::vector<Run> read_runs(const PgResult& r) {
  std::vector<Run> runs;
  for (int i = 0; i < r.rows(); ++i) runs.push_back(read_run(r, i));
  return runs;
}

// Adds an entry's columns (run_id, seq, kind, step_key, attempt, payload, started_at,
// recorded_at) to `p`.
PgParams& add_entry(PgParams& p, std::string_view run_id, const JournalEntry& e) {
  p.add(run_id).add(e.seq).add(to_string(e.kind));
  p.add(e.step_key.empty() ? std::nullopt : std::optional<std::string>(e.step_key));
  p.add(e.attempt ? std::optional<int64_t>(*e.attempt) : std::nullopt);
  p.add(e.payload).add(millis(e.started_at)).add(to_millis(e.recorded_at));
  return p;
}

// The WHERE conditions of a run filter, each starting with AND; their values go to `p`, whose
// next parameter is $n.
std::string run_filter_sql(const RunFilter& f, PgParams& p, int& n) {
  std::string sql;
  if (!f.statuses.empty()) {
    std::vector<std::string> names;
    for (RunStatus st : f.statuses) names.emplace_back(to_string(st));
    sql += fmt::format(" AND status IN (SELECT jsonb_array_elements_text(${}::jsonb))", n++);
    p.add(json_list(names));
  }
  if (!f.function_id.empty()) {
    sql += fmt::format(" AND function_id = ${}", n++);
    p.add(f.function_id);
  }
  if (!f.event_id.empty()) {
    sql += fmt::format(" AND event_id = ${}", n++);
    p.add(f.event_id);
  }
  // Ids are ULIDs that start with their creation time: a time range is an id range.
  if (f.created_after) {
    sql += fmt::format(" AND id >= ${}", n++);
    p.add(id_floor(*f.created_after));
  }
  if (f.created_before) {
    sql += fmt::format(" AND id < ${}", n++);
    p.add(id_floor(*f.created_before));
  }
  return sql;
}

std::optional<StoredEvent> find_event_in(PgConn& c, std::string_view id) {
  PgResult r = c.exec(fmt::format("SELECT {} FROM events WHERE id = $1", kEventColumns), PgParams().add(id));
  if (r.rows() == 0) return std::nullopt;
  return read_event(r, 0);
}

// StoreTx in PostgreSQL's SQL, on one connection inside BEGIN ... COMMIT at READ COMMITTED,
// where every statement sees what was committed before it began. The lock points are real.
class PgTx final : public StoreTx {
 public:
  explicit PgTx(PgConn& c) : c_(c) {}

  void lock_event_name(std::string_view name, LockMode mode) override {
    c_.exec(mode == LockMode::shared ? "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))"
                                     : "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            PgParams().add(int64_t{kEventNameLocks}).add(name));
  }

  void lock_dedup_key(std::string_view key) override {
    c_.exec("SELECT pg_advisory_xact_lock($1, hashtext($2))", PgParams().add(int64_t{kDedupKeyLocks}).add(key));
  }

  std::optional<RunRow> lock_run(std::string_view run_id) override {
    PgResult r = c_.exec("SELECT status, function_id, event_id, parent_run_id FROM runs WHERE id = $1 FOR UPDATE",
                         PgParams().add(run_id));
    if (r.rows() == 0) return std::nullopt;
    return RunRow{.status = parse_run_status(r.text(0, 0)), .function_id = r.text(0, 1), .event_id = r.text(0, 2),
                  .parent_run_id = r.optional_text(0, 3).value_or("")};
  }

  bool dedup_key_seen(std::string_view key, TimePoint since) override {
    return c_.exec("SELECT 1 FROM events WHERE dedup_key = $1 AND received_at > $2 AND duplicate = 0 LIMIT 1",
                   PgParams().add(key).add(to_millis(since)))
               .rows() > 0;
  }

  bool insert_event(std::string_view id, const Event& event, bool duplicate, TimePoint received_at) override {
    PgParams p;
    p.add(id).add(event.name).add(to_json_text(event.data)).add(to_json_text(event.user)).add(to_millis(event.ts));
    p.add(event.v.empty() ? std::nullopt : std::optional<std::string>(event.v));
    p.add(event.id.empty() ? std::nullopt : std::optional<std::string>(event.id));
    p.add(int64_t{duplicate ? 1 : 0}).add(to_millis(received_at));
    return c_.exec("INSERT INTO events (id, name, data, user_data, ts, v, dedup_key, duplicate, received_at) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                   p)
               .affected() != 0;
  }

  std::optional<StoredEvent> find_event(std::string_view id) override { return find_event_in(c_, id); }

  std::vector<StoredEvent> events_since(std::string_view name, TimePoint since) override {
    PgResult r = c_.exec(fmt::format("SELECT {} FROM events WHERE name = $1 AND received_at >= $2 AND duplicate = 0 "
                                     "ORDER BY received_at, id",
                                     kEventColumns),
                         PgParams().add(name).add(to_millis(since)));
    std::vector<StoredEvent> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_event(r, i));
    return out;
  }

  std::vector<RecordedTrigger> triggers_matching(std::string_view name) override {
    PgResult r = c_.exec(
        "SELECT function_id, filter FROM function_triggers WHERE (event = $1 AND prefix = 0) OR "
        "(prefix = 1 AND length($1) > length(event) AND left($1, length(event)) = event)",
        PgParams().add(name));
    std::vector<RecordedTrigger> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(RecordedTrigger{r.text(i, 0), r.text(i, 1)});
    return out;
  }

  void insert_run(const NewRun& run, TimePoint now) override {
    PgParams p;
    p.add(run.id).add(run.function_id).add(run.event_id).add(to_millis(now));
    if (run.lease) {
      p.add("running").add(run.lease->owner).add(int64_t{1}).add(to_millis(run.lease->expires_at)).add(to_millis(now));
    } else {
      p.add("queued").add_null().add(int64_t{0}).add_null().add_null();
    }
    p.add(run.replay_of.empty() ? std::nullopt : std::optional<std::string>(run.replay_of));
    p.add(run.parent_run_id.empty() ? std::nullopt : std::optional<std::string>(run.parent_run_id));
    c_.exec("INSERT INTO runs (id, function_id, event_id, available_at, created_at, written_at, status, lease_owner, "
            "lease_epoch, lease_expires_at, started_at, replay_of, parent_run_id) "
            "VALUES ($1, $2, $3, $4, $4, $4, $5, $6, $7, $8, $9, $10, $11)",
            p);
  }

  void append(std::string_view run_id, const JournalEntry& entry) override {
    PgParams p;
    c_.exec("INSERT INTO journal (run_id, seq, kind, step_key, attempt, payload, started_at, recorded_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            add_entry(p, run_id, entry));
  }

  int64_t next_seq(std::string_view run_id) override {
    return c_.exec("SELECT COALESCE(MAX(seq), -1) + 1 FROM journal WHERE run_id = $1", PgParams().add(run_id))
        .integer(0, 0);
  }

  bool append_if_held(std::string_view run_id, int64_t lease_epoch, const JournalEntry& e) override {
    // FOR SHARE: a seizure (lock_run's FOR UPDATE) waits for this transaction, or this
    // statement waits for the seizure and then finds the epoch moved on.
    PgParams p;
    add_entry(p, run_id, e).add(lease_epoch);
    return c_.exec("WITH held AS (SELECT 1 FROM runs WHERE id = $1 AND lease_epoch = $9 AND status = 'running' "
                   "FOR SHARE) "
                   "INSERT INTO journal (run_id, seq, kind, step_key, attempt, payload, started_at, recorded_at) "
                   "SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM held",
                   p)
               .affected() != 0;
  }

  bool is_held(std::string_view run_id, int64_t lease_epoch) override {
    return c_.exec("SELECT 1 FROM runs WHERE id = $1 AND lease_epoch = $2 AND status = 'running' FOR SHARE",
                   PgParams().add(run_id).add(lease_epoch))
               .rows() > 0;
  }

  bool finish_lease(std::string_view run_id, int64_t lease_epoch, const RunTransition& t, TimePoint now) override {
    PgParams p;
    p.add(run_id).add(lease_epoch).add(to_string(t.status)).add(to_millis(t.available_at)).add(int64_t{t.attempt});
    p.add(t.output).add(t.error).add(int64_t{is_finished(t.status) ? 1 : 0}).add(to_millis(now));
    return c_.exec("UPDATE runs SET status = $3, available_at = $4, written_at = $9, attempt = $5, output = $6, "
                   "error = $7, ended_at = CASE WHEN $8::int = 1 THEN $9 ELSE ended_at END, "
                   "lease_owner = NULL, lease_expires_at = NULL "
                   "WHERE id = $1 AND lease_epoch = $2 AND status = 'running'",
                   p)
               .affected() != 0;
  }

  void reset_run(std::string_view run_id, const RunReset& r, TimePoint now) override {
    PgParams p;
    p.add(run_id).add(to_string(r.status)).add(millis(r.available_at)).add(millis(r.ended_at));
    p.add(r.attempt ? std::optional<int64_t>(*r.attempt) : std::nullopt).add(to_millis(now));
    c_.exec("UPDATE runs SET status = $2, available_at = COALESCE($3::bigint, available_at), ended_at = $4::bigint, "
            "attempt = COALESCE($5::int, attempt), error = CASE WHEN $5::int IS NULL THEN error END, "
            "written_at = $6, lease_owner = NULL, lease_expires_at = NULL, lease_epoch = lease_epoch + 1 "
            "WHERE id = $1",
            p);
  }

  void insert_wait(std::string_view run_id, const WaitRegistration& w) override {
    PgParams p;
    p.add(run_id).add(w.step_key).add(w.event).add(w.match_path).add(w.match_value).add(w.condition);
    p.add(w.trigger_event_id).add(to_millis(w.expires_at));
    c_.exec("INSERT INTO waits (run_id, step_key, event, match_path, match_value, condition, trigger_event_id, "
            "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id, step_key) DO UPDATE SET "
            "event = excluded.event, match_path = excluded.match_path, match_value = excluded.match_value, "
            "condition = excluded.condition, trigger_event_id = excluded.trigger_event_id, "
            "expires_at = excluded.expires_at",
            p);
  }

  void delete_wait(std::string_view run_id, std::string_view step_key) override {
    c_.exec("DELETE FROM waits WHERE run_id = $1 AND step_key = $2", PgParams().add(run_id).add(step_key));
  }

  void delete_waits(std::string_view run_id) override {
    c_.exec("DELETE FROM waits WHERE run_id = $1", PgParams().add(run_id));
  }

  std::vector<std::string> wait_match_paths(std::string_view event_name) override {
    PgResult r = c_.exec("SELECT DISTINCT match_path FROM waits WHERE event = $1", PgParams().add(event_name));
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
    return out;
  }

  std::vector<WaitRow> waits_matching(std::string_view event_name, std::string_view match_path,
                                      std::string_view match_value, TimePoint now) override {
    PgResult r = c_.exec(
        "SELECT run_id, step_key, condition, trigger_event_id FROM waits "
        "WHERE event = $1 AND match_path = $2 AND match_value = $3 AND expires_at > $4",
        PgParams().add(event_name).add(match_path).add(match_value).add(to_millis(now)));
    std::vector<WaitRow> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(WaitRow{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3)});
    return out;
  }

  bool advance_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick) override {
    return c_.exec("INSERT INTO cron_ticks (function_id, schedule, last_tick) VALUES ($1, $2, $3) "
                   "ON CONFLICT (function_id, schedule) DO UPDATE SET last_tick = excluded.last_tick "
                   "WHERE cron_ticks.last_tick < excluded.last_tick",
                   PgParams().add(function_id).add(schedule).add(to_millis(tick)))
               .affected() > 0;
  }

 private:
  PgConn& c_;
};

}  // namespace

class PostgresStore::PooledConn {
 public:
  PooledConn(PostgresStore& store, std::unique_ptr<PgConn> conn) : store_(store), conn_(std::move(conn)) {}
  PooledConn(PooledConn&& other) noexcept = default;
  ~PooledConn() {
    if (!conn_ || !conn_->ok()) return;  // a broken connection is dropped; the next call opens another
    std::lock_guard lock(store_.pool_mu_);
    if (static_cast<int>(store_.idle_.size()) < store_.options_.pool_size) store_.idle_.push_back(std::move(conn_));
  }
  PgConn& operator*() { return *conn_; }
  PgConn* operator->() { return conn_.get(); }

 private:
  PostgresStore& store_;
  std::unique_ptr<PgConn> conn_;
};

PostgresStore::PooledConn PostgresStore::connection() {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      std::unique_ptr<PgConn> c = std::move(idle_.back());
      idle_.pop_back();
      return PooledConn(*this, std::move(c));
    }
  }
  return PooledConn(*this, std::make_unique<PgConn>(options_.url, masked_url_));
}

template <class Fn>
auto PostgresStore::read(Fn&& fn) {
  PooledConn c = connection();
  return fn(*c);
}

PostgresStore::PostgresStore(PostgresStoreOptions options)
    : options_(std::move(options)), masked_url_(masked_url(options_.url)) {
  migrate();
}

PostgresStore::~PostgresStore() = default;

void PostgresStore::migrate() {
  PooledConn c = connection();
  c->exec("BEGIN");
  try {
    // One process migrates at a time; the others find the work done.
    c->exec("SELECT pg_advisory_xact_lock($1)", PgParams().add(int64_t{kMigrationLock}));
    c->exec("CREATE TABLE IF NOT EXISTS durable_schema (version INTEGER NOT NULL)");
    PgResult v = c->exec("SELECT max(version) FROM durable_schema");
    int current = v.is_null(0, 0) ? 0 : static_cast<int>(v.integer(0, 0));
    auto sections = schema_sections(kPostgresSchemaSql);
    check_schema_not_newer(current, sections.empty() ? 0 : sections.rbegin()->first);
    for (const auto& [version, sql] : sections) {
      if (version <= current) continue;
      c->exec_script(sql);
      c->exec("INSERT INTO durable_schema (version) VALUES ($1)", PgParams().add(int64_t{version}));
    }
    c->exec("COMMIT");
  } catch (...) {
    try {
      c->exec("ROLLBACK");
    } catch (...) {
    }
    throw;
  }
}

void PostgresStore::in_transaction(const std::function<void(PgConn&)>& work) {
  if (auto f = failure()) throw StoreError(StoreError::Kind::fatal, *f);
  // At READ COMMITTED, with the rules' lock points. A serialization failure or a deadlock (two
  // transactions taking lock points in opposite orders) rolls back, and the work is tried
  // again from the start; so is a connection lost before COMMIT was sent.
  for (int attempt = 0;; ++attempt) {
    try {
      PooledConn c = connection();
      c->exec("BEGIN");
      try {
        work(*c);
        c->exec("COMMIT");
      } catch (...) {
        try {
          if (c->ok()) c->exec("ROLLBACK");
        } catch (...) {
        }
        throw;
      }
      commits_.fetch_add(1, std::memory_order_relaxed);
      writes_.fetch_add(1, std::memory_order_relaxed);
      return;
    } catch (const StoreError& e) {
      if (e.is_transient() && attempt < 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2 << attempt));
        continue;
      }
      if (e.is_fatal()) fail(e);
      throw;
    }
  }
}

void PostgresStore::fail(const StoreError& e) {
  std::function<void(const std::string&)> listener;
  std::string text;
  {
    std::lock_guard lock(failure_mu_);
    if (failure_) return;  // the first cause stands
    failure_ = fmt::format("the store stopped writing after an error and the process must be restarted ({})", e.what());
    listener = failure_listener_;
    text = *failure_;
  }
  if (listener) listener(text);
}

void PostgresStore::transact(const std::function<void(StoreTx&)>& work) {
  in_transaction([&](PgConn& c) {
    PgTx tx(c);
    work(tx);
  });
}

std::optional<std::string> PostgresStore::failure() const {
  std::lock_guard lock(failure_mu_);
  return failure_;
}

void PostgresStore::set_failure_listener(std::function<void(const std::string&)> listener) {
  std::lock_guard lock(failure_mu_);
  failure_listener_ = std::move(listener);
}

StoreStats PostgresStore::stats() const { return StoreStats{commits_.load(), writes_.load()}; }

std::optional<StoredEvent> PostgresStore::find_event(std::string_view event_id) {
  return read([&](PgConn& c) { return find_event_in(c, event_id); });
}

std::vector<ClaimedRun> PostgresStore::claim(const std::vector<std::string>& function_ids, TimePoint now,
                                             const durable::Lease& lease, int limit, std::chrono::milliseconds ahead) {
  std::vector<ClaimedRun> claimed;
  if (function_ids.empty() || limit <= 0) return claimed;
  // The due runs, locked as they are read and skipped when another claimer holds them: two
  // claimers never take one run, and neither waits for the other. MATERIALIZED: the CTE runs
  // once, so LIMIT bounds what is locked.
  PgParams p;
  p.add(lease.owner).add(to_millis(lease.expires_at)).add(to_millis(now)).add(json_list(function_ids));
  p.add(int64_t{limit}).add(to_millis(now + ahead));
  PgResult r = read([&](PgConn& c) {
    return c.exec(
        "WITH due AS MATERIALIZED (SELECT id FROM runs WHERE status IN ('queued', 'sleeping', 'waiting') "
        "AND available_at <= $6 AND (available_at <= $3 OR status = 'sleeping') "
        "AND function_id IN (SELECT jsonb_array_elements_text($4::jsonb)) "
        "ORDER BY available_at LIMIT $5 FOR UPDATE SKIP LOCKED) "
        "UPDATE runs r SET status = 'running', lease_owner = $1, lease_epoch = r.lease_epoch + 1, "
        "lease_expires_at = $2, written_at = $3, started_at = COALESCE(r.started_at, $3) FROM due WHERE r.id = due.id "
        "RETURNING r.id, r.function_id, r.event_id, r.lease_epoch, r.attempt, "
        "CASE WHEN r.available_at > $3 THEN r.available_at ELSE 0 END, r.created_at, r.started_at, r.available_at",
        p);
  });
  for (int i = 0; i < r.rows(); ++i) {
    claimed.push_back(ClaimedRun{.run_id = r.text(i, 0),
                                 .function_id = r.text(i, 1),
                                 .event_id = r.text(i, 2),
                                 .lease_epoch = r.integer(i, 3),
                                 .attempt = static_cast<int>(r.integer(i, 4)),
                                 .available_at = from_millis(r.integer(i, 5)),
                                 .created_at = from_millis(r.integer(i, 6)),
                                 .started_at = from_millis(r.integer(i, 7))});
  }
  commits_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(1, std::memory_order_relaxed);
  return claimed;
}

int PostgresStore::renew_leases(const std::string& owner, const std::vector<std::string>& run_ids,
                                TimePoint expires_at, TimePoint now) {
  if (run_ids.empty()) return 0;
  return read([&](PgConn& c) {
    return c
        .exec("UPDATE runs SET lease_expires_at = $1, written_at = $4 WHERE id IN "
              "(SELECT jsonb_array_elements_text($2::jsonb)) AND status = 'running' AND lease_owner = $3",
              PgParams().add(to_millis(expires_at)).add(json_list(run_ids)).add(owner).add(to_millis(now)))
        .affected();
  });
}

std::vector<RunQueue::Recovered> PostgresStore::recover_expired_leases(TimePoint now) {
  PgResult r = read([&](PgConn& c) {
    return c.exec(
        "UPDATE runs SET status = 'queued', available_at = $1, written_at = $1, lease_owner = NULL, "
        "lease_expires_at = NULL, lease_epoch = lease_epoch + 1 "
        "WHERE status = 'running' AND lease_expires_at <= $1 RETURNING id, function_id",
        PgParams().add(to_millis(now)));
  });
  std::vector<Recovered> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(Recovered{r.text(i, 0), r.text(i, 1)});
  return out;
}

int PostgresStore::correct_ahead_times(TimePoint now, std::chrono::milliseconds tolerance) {
  const int64_t bound = to_millis(now + tolerance);
  return read([&](PgConn& c) {
    PgParams p;
    p.add(bound).add(to_millis(now));
    int n = c.exec("UPDATE runs SET available_at = $2 + greatest(available_at - written_at, 0), written_at = $2 "
                   "WHERE status = 'queued' AND written_at > $1",
                   p)
                .affected();
    n += c.exec("UPDATE runs SET lease_expires_at = $2 + greatest(lease_expires_at - written_at, 0), written_at = $2 "
                "WHERE status = 'running' AND lease_expires_at > $1 AND written_at > $1",
                p)
             .affected();
    return n;
  });
}

std::optional<TimePoint> PostgresStore::next_due(const std::vector<std::string>& function_ids) {
  if (function_ids.empty()) return std::nullopt;
  return read([&](PgConn& c) -> std::optional<TimePoint> {
    PgResult r = c.exec(
        "SELECT available_at FROM runs WHERE status IN ('queued', 'sleeping', 'waiting') "
        "AND function_id IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY available_at LIMIT 1",
        PgParams().add(json_list(function_ids)));
    if (r.rows() == 0) return std::nullopt;
    return from_millis(r.integer(0, 0));
  });
}

std::vector<JournalEntry> PostgresStore::load_journal(std::string_view run_id) {
  PgResult r = read([&](PgConn& c) {
    return c.exec(
        "SELECT seq, kind, step_key, attempt, payload, started_at, recorded_at FROM journal WHERE run_id = $1 "
        "ORDER BY seq",
        PgParams().add(run_id));
  });
  std::vector<JournalEntry> entries;
  for (int i = 0; i < r.rows(); ++i) {
    JournalEntry e;
    e.seq = r.integer(i, 0);
    e.kind = parse_journal_kind(r.text(i, 1));
    e.step_key = r.optional_text(i, 2).value_or("");
    if (auto a = r.optional_integer(i, 3)) e.attempt = static_cast<int>(*a);
    e.payload = r.optional_text(i, 4).value_or("null");
    if (auto t = r.optional_integer(i, 5)) e.started_at = from_millis(*t);
    e.recorded_at = from_millis(r.integer(i, 6));
    entries.push_back(std::move(e));
  }
  return entries;
}

bool PostgresStore::holds_lease(std::string_view run_id, int64_t lease_epoch) {
  return read([&](PgConn& c) {
    return c.exec("SELECT 1 FROM runs WHERE id = $1 AND lease_epoch = $2 AND status = 'running'",
                  PgParams().add(run_id).add(lease_epoch))
               .rows() > 0;
  });
}

std::optional<Run> PostgresStore::find_run(std::string_view run_id) {
  return read([&](PgConn& c) -> std::optional<Run> {
    PgResult r = c.exec(fmt::format("SELECT {} FROM runs WHERE id = $1", kRunColumns), PgParams().add(run_id));
    if (r.rows() == 0) return std::nullopt;
    return read_run(r, 0);
  });
}

std::vector<Run> PostgresStore::runs_for_event(std::string_view event_id) {
  return read([&](PgConn& c) {
    return read_runs(
        c.exec(fmt::format("SELECT {} FROM runs WHERE event_id = $1 ORDER BY id", kRunColumns), PgParams().add(event_id)));
  });
}

std::vector<Run> PostgresStore::runs_for_events(const std::vector<std::string>& event_ids) {
  if (event_ids.empty()) return {};
  return read([&](PgConn& c) {
    return read_runs(c.exec(
        fmt::format("SELECT {} FROM runs WHERE event_id IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY id",
                    kRunColumns),
        PgParams().add(json_list(event_ids))));
  });
}

void PostgresStore::register_functions(const std::vector<FunctionRecord>& functions) {
  in_transaction([&](PgConn& c) {
    for (const FunctionRecord& f : functions) {
      c.exec("INSERT INTO functions (id, name, config, registered_at, registered_by) VALUES ($1, $2, $3, $4, $5) "
             "ON CONFLICT (id) DO UPDATE SET name = excluded.name, config = excluded.config, "
             "registered_at = excluded.registered_at, registered_by = excluded.registered_by",
             PgParams().add(f.id).add(f.name).add(to_json_text(f.config)).add(to_millis(f.registered_at)).add(
                 f.registered_by));
      c.exec("DELETE FROM function_triggers WHERE function_id = $1", PgParams().add(f.id));
      for (const Trigger& trigger : f.triggers) {
        if (!trigger.cron.empty()) continue;  // recorded in the config (see FunctionRegistry::records)
        const std::string& name = trigger.event;
        bool prefix = !name.empty() && name.back() == '*';
        c.exec("INSERT INTO function_triggers (event, prefix, function_id, filter) VALUES ($1, $2, $3, $4) "
               "ON CONFLICT DO NOTHING",
               PgParams().add(prefix ? name.substr(0, name.size() - 1) : name).add(int64_t{prefix ? 1 : 0}).add(
                   f.id).add(trigger.filter));
      }
    }
  });
}

std::vector<FunctionRecord> PostgresStore::list_functions() {
  return read([&](PgConn& c) {
    std::vector<FunctionRecord> out;
    PgResult r = c.exec("SELECT id, name, config, registered_at, registered_by FROM functions ORDER BY id");
    for (int i = 0; i < r.rows(); ++i) {
      FunctionRecord f;
      f.id = r.text(i, 0);
      f.name = r.text(i, 1);
      f.config = nlohmann::json::parse(r.text(i, 2));
      f.registered_at = from_millis(r.integer(i, 3));
      f.registered_by = r.text(i, 4);
      for (const auto& cron : f.config.value("cron", nlohmann::json::array())) f.triggers.push_back(Trigger{.cron = cron});
      out.push_back(std::move(f));
    }
    PgResult t = c.exec(
        "SELECT function_id, event, prefix, filter FROM function_triggers ORDER BY function_id, event COLLATE \"C\", "
        "filter COLLATE \"C\"");
    for (int i = 0; i < t.rows(); ++i) {
      std::string id = t.text(i, 0);
      auto it = std::lower_bound(out.begin(), out.end(), id,
                                 [](const FunctionRecord& f, const std::string& k) { return f.id < k; });
      if (it != out.end() && it->id == id) {
        it->triggers.push_back(Trigger{t.text(i, 1) + (t.integer(i, 2) ? "*" : ""), t.text(i, 3)});
      }
    }
    return out;
  });
}

bool PostgresStore::unregister_function(std::string_view id) {
  return read([&](PgConn& c) {
    c.exec("DELETE FROM function_triggers WHERE function_id = $1", PgParams().add(id));
    return c.exec("DELETE FROM functions WHERE id = $1", PgParams().add(id)).affected() > 0;
  });
}

std::optional<TimePoint> PostgresStore::last_cron_tick(std::string_view function_id, std::string_view schedule) {
  return read([&](PgConn& c) -> std::optional<TimePoint> {
    PgResult r = c.exec("SELECT last_tick FROM cron_ticks WHERE function_id = $1 AND schedule = $2",
                        PgParams().add(function_id).add(schedule));
    if (r.rows() == 0) return std::nullopt;
    return from_millis(r.integer(0, 0));
  });
}

std::vector<Run> PostgresStore::list_runs(const RunFilter& filter, int limit, std::string_view before_id) {
  PgParams p;
  int n = 1;
  std::string sql = fmt::format("SELECT {} FROM runs WHERE true", kRunColumns) + run_filter_sql(filter, p, n);
  if (!before_id.empty()) {
    sql += fmt::format(" AND id < ${}", n++);
    p.add(before_id);
  }
  sql += fmt::format(" ORDER BY id DESC LIMIT ${}", n++);
  p.add(int64_t{limit});
  return read([&](PgConn& c) { return read_runs(c.exec(sql, p)); });
}

int64_t PostgresStore::count_runs(const RunFilter& filter) {
  PgParams p;
  int n = 1;
  std::string sql = "SELECT count(*) FROM runs WHERE true" + run_filter_sql(filter, p, n);
  return read([&](PgConn& c) { return c.exec(sql, p).integer(0, 0); });
}

std::vector<RunCount> PostgresStore::count_runs_by_time(const RunFilter& filter, TimePoint from,
                                                       std::chrono::milliseconds width, int buckets) {
  if (width.count() <= 0 || buckets <= 0) return {};
  TimePoint to = from + width * buckets;
  RunFilter range = filter;
  range.created_after = filter.created_after ? std::max(*filter.created_after, from) : from;
  range.created_before = filter.created_before ? std::min(*filter.created_before, to) : to;
  PgParams p;
  p.add(to_millis(from)).add(static_cast<int64_t>(width.count())).add(int64_t{buckets - 1});
  int n = 4;
  // The bucket from created_at, clamped (as in SqliteStore): the id's time decides which runs count.
  std::string sql =
      "SELECT function_id, least(greatest(div(created_at - $1, $2), 0), $3), status, count(*) FROM runs WHERE true" +
      run_filter_sql(range, p, n) + " GROUP BY 1, 2, 3";
  return read([&](PgConn& c) {
    PgResult r = c.exec(sql, p);
    std::vector<RunCount> counts;
    for (int i = 0; i < r.rows(); ++i) {
      counts.push_back(RunCount{r.text(i, 0), r.integer(i, 1), parse_run_status(r.text(i, 2)), r.integer(i, 3)});
    }
    return counts;
  });
}

std::vector<std::string> PostgresStore::replays_of(std::string_view run_id) {
  return read([&](PgConn& c) {
    PgResult r = c.exec("SELECT id FROM runs WHERE replay_of = $1 ORDER BY id", PgParams().add(run_id));
    std::vector<std::string> ids;
    for (int i = 0; i < r.rows(); ++i) ids.push_back(r.text(i, 0));
    return ids;
  });
}

std::vector<StoredEvent> PostgresStore::list_events(const EventFilter& filter, int limit, std::string_view before_id) {
  PgParams p;
  int n = 1;
  std::string sql = fmt::format("SELECT {} FROM events WHERE true", kEventColumns);
  if (!filter.name.empty()) {
    sql += fmt::format(" AND name = ${}", n++);
    p.add(filter.name);
  }
  if (filter.received_after) {
    sql += fmt::format(" AND id >= ${}", n++);
    p.add(id_floor(*filter.received_after));
  }
  if (filter.received_before) {
    sql += fmt::format(" AND id < ${}", n++);
    p.add(id_floor(*filter.received_before));
  }
  if (!before_id.empty()) {
    sql += fmt::format(" AND id < ${}", n++);
    p.add(before_id);
  }
  sql += fmt::format(" ORDER BY id DESC LIMIT ${}", n++);
  p.add(int64_t{limit});
  return read([&](PgConn& c) {
    PgResult r = c.exec(sql, p);
    std::vector<StoredEvent> events;
    for (int i = 0; i < r.rows(); ++i) events.push_back(read_event(r, i));
    return events;
  });
}

int PostgresStore::delete_finished_runs(TimePoint cutoff, int limit) {
  return read([&](PgConn& c) {
    // One statement: the runs and their journals go together.
    return c
        .exec("WITH gone AS (DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE id < $1 AND status IN "
              "('completed', 'failed', 'cancelled') AND ended_at < $2 ORDER BY id LIMIT $3) RETURNING id), "
              "j AS (DELETE FROM journal WHERE run_id IN (SELECT id FROM gone)) SELECT count(*) FROM gone",
              PgParams().add(id_floor(cutoff)).add(to_millis(cutoff)).add(int64_t{limit}))
        .integer(0, 0);
  });
}

int PostgresStore::delete_unreferenced_events(TimePoint cutoff, int limit) {
  return read([&](PgConn& c) {
    return c
        .exec("DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE id < $1 "
              "AND NOT EXISTS (SELECT 1 FROM runs WHERE event_id = e.id) ORDER BY id LIMIT $2)",
              PgParams().add(id_floor(cutoff)).add(int64_t{limit}))
        .affected();
  });
}

QueueDepth PostgresStore::queue_depth(TimePoint now) {
  return read([&](PgConn& c) {
    QueueDepth d;
    PgResult r = c.exec(
        "SELECT status, (available_at <= $1)::int, count(*) FROM runs WHERE status IN ('queued', 'sleeping', 'waiting') "
        "GROUP BY 1, 2",
        PgParams().add(to_millis(now)));
    for (int i = 0; i < r.rows(); ++i) {
      int64_t count = r.integer(i, 2);
      std::string status = r.text(i, 0);
      if (status == "sleeping") {
        d.sleeping += count;
      } else if (status == "waiting") {
        d.waiting += count;
      } else if (r.integer(i, 1)) {
        d.runnable += count;
      } else {
        d.scheduled += count;
      }
    }
    d.running = c.exec("SELECT count(*) FROM runs WHERE status = 'running'").integer(0, 0);
    return d;
  });
}

}  // namespace durable
