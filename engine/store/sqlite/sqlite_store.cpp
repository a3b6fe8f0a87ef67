#include "engine/store/sqlite/sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/base/crash_points.hpp"
#include "engine/base/ids.hpp"
#include "engine/base/json_text.hpp"
#include "engine/base/log.hpp"
#include "engine/store/sqlite/group_commit.hpp"
#include "engine/store/sqlite/schema.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "engine/store/sqlite/wal_checkpointer.hpp"

namespace durable {

namespace {

std::string json_list(const std::vector<std::string>& items) { return nlohmann::json(items).dump(); }

// Binds parameters 1-8 of a journal INSERT in column order, without copying: `run_id` and
// `e` must outlive the statement's execution.
void bind_entry(Statement& s, std::string_view run_id, const JournalEntry& e) {
  s.bind_static(1, run_id).bind(2, e.seq).bind_static(3, to_string(e.kind));
  if (e.step_key.empty()) {
    s.bind_null(4);
  } else {
    s.bind_static(4, e.step_key);
  }
  s.bind(5, e.attempt ? std::optional<int64_t>(*e.attempt) : std::nullopt);
  s.bind_static(6, e.payload);
  s.bind(7, e.started_at ? std::optional<int64_t>(to_millis(*e.started_at)) : std::nullopt);
  s.bind(8, to_millis(e.recorded_at));
}

void insert_entry(SqliteDb& db, std::string_view run_id, const JournalEntry& e) {
  auto& s = db.cached(
      "INSERT INTO journal (run_id, seq, kind, step_key, attempt, payload, started_at, recorded_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  bind_entry(s, run_id, e);
  s.exec();
}

void insert_run(SqliteDb& db, const NewRun& run, TimePoint now) {
  auto& s = db.cached(
      "INSERT INTO runs (id, function_id, event_id, status, available_at, lease_owner, lease_epoch, "
      "lease_expires_at, created_at, started_at, replay_of, parent_run_id, written_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?9)");
  s.bind(1, run.id).bind(2, run.function_id).bind(3, run.event_id);
  s.bind(5, to_millis(now)).bind(9, to_millis(now));
  if (run.lease) {
    s.bind(4, "running").bind(6, run.lease->owner).bind(7, 1);
    s.bind(8, to_millis(run.lease->expires_at)).bind(10, to_millis(now));
  } else {
    s.bind(4, "queued").bind_null(6).bind(7, 0).bind_null(8).bind_null(10);
  }
  auto bind_optional = [&](int i, const std::string& text) {
    if (text.empty()) {
      s.bind_null(i);
    } else {
      s.bind(i, text);
    }
  };
  bind_optional(11, run.replay_of);
  bind_optional(12, run.parent_run_id);
  s.exec();
}

// The recorded triggers whose event name matches `event_name`: exact names through the
// primary key, wildcards ("prefix/*", stored as the prefix) by comparing the few of them.
// (Two statements, not a UNION: that builds a temporary b-tree on every call, and this runs
// for every event ingested.)
std::vector<RecordedTrigger> triggers_matching(SqliteDb& db, std::string_view event_name) {
  std::vector<RecordedTrigger> out;
  {
    StatementScope exact(db.cached("SELECT function_id, filter FROM function_triggers WHERE event = ? AND prefix = 0"));
    exact->bind_static(1, event_name);
    while (exact->step()) out.push_back(RecordedTrigger{exact->get_text(0), exact->get_text(1)});
  }
  StatementScope wildcard(db.cached(
      "SELECT function_id, filter FROM function_triggers WHERE prefix = 1 "
      "AND length(?1) > length(event) AND substr(?1, 1, length(event)) = event"));
  wildcard->bind_static(1, event_name);
  while (wildcard->step()) out.push_back(RecordedTrigger{wildcard->get_text(0), wildcard->get_text(1)});
  return out;
}

// The WHERE conditions of a run filter, each starting with AND; their values are appended
// to `binds` in order.
std::string run_filter_sql(const RunFilter& f, std::vector<std::string>& binds) {
  std::string sql;
  if (f.statuses.size() == 1) {
    // A literal, not a bind: the planner can then use the partial index of that status
    // (runs_failed, runs_cancelled). The word is one of the enum's, never caller text.
    sql += fmt::format(" AND status = '{}'", to_string(f.statuses[0]));
  } else if (!f.statuses.empty()) {
    std::vector<std::string> names;
    for (RunStatus st : f.statuses) names.emplace_back(to_string(st));
    sql += " AND status IN (SELECT value FROM json_each(?))";
    binds.push_back(json_list(names));
  }
  if (!f.function_id.empty()) {
    sql += " AND function_id = ?";
    binds.push_back(f.function_id);
  }
  if (!f.event_id.empty()) {
    sql += " AND event_id = ?";
    binds.push_back(f.event_id);
  }
  // Ids are ULIDs that start with their creation time, so a time range is an id range, which
  // the indexes ending in id serve.
  if (f.created_after) {
    sql += " AND id >= ?";
    binds.push_back(id_floor(*f.created_after));
  }
  if (f.created_before) {
    sql += " AND id < ?";
    binds.push_back(id_floor(*f.created_before));
  }
  return sql;
}

StoredEvent read_event(const Statement& s, int first_col) {
  StoredEvent e;
  int c = first_col;
  e.id = s.get_text(c++);
  e.event.name = s.get_text(c++);
  e.event.data = nlohmann::json::parse(s.get_text(c++));
  e.event.user = nlohmann::json::parse(s.get_text(c++));
  e.event.ts = from_millis(s.get_int(c++));
  e.event.v = s.get_optional_text(c++).value_or("");
  e.event.id = s.get_optional_text(c++).value_or("");
  e.duplicate = s.get_int(c++) != 0;
  e.received_at = from_millis(s.get_int(c++));
  return e;
}

// Binds `binds` to parameters 1, 2, ...; returns the next parameter's index.
int bind_all(Statement& s, const std::vector<std::string>& binds) {
  int i = 1;
  for (const auto& b : binds) s.bind(i++, b);
  return i;
}

int64_t next_seq(SqliteDb& db, std::string_view run_id) {
  StatementScope s(db.cached("SELECT COALESCE(MAX(seq), -1) + 1 FROM journal WHERE run_id = ?"));
  s->bind(1, run_id);
  s->step();
  return s->get_int(0);
}

constexpr const char* kEventColumns = "id, name, data, user_data, ts, v, dedup_key, duplicate, received_at";

constexpr const char* kRunColumns =
    "id, function_id, event_id, status, attempt, output, error, created_at, started_at, ended_at, "
    "available_at, replay_of, parent_run_id";

Run read_run(const Statement& s) {
  Run r;
  r.id = s.get_text(0);
  r.function_id = s.get_text(1);
  r.event_id = s.get_text(2);
  r.status = parse_run_status(s.get_text(3));
  r.attempt = static_cast<int>(s.get_int(4));
  if (!s.is_null(5)) r.output = nlohmann::json::parse(s.get_text(5));
  if (!s.is_null(6)) r.error = nlohmann::json::parse(s.get_text(6));
  r.created_at = from_millis(s.get_int(7));
  if (!s.is_null(8)) r.started_at = from_millis(s.get_int(8));
  if (!s.is_null(9)) r.ended_at = from_millis(s.get_int(9));
  r.available_at = from_millis(s.get_int(10));
  r.replay_of = s.get_optional_text(11).value_or("");
  r.parent_run_id = s.get_optional_text(12).value_or("");
  return r;
}

std::optional<StoredEvent> find_event_in(SqliteDb& db, std::string_view id) {
  static const std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE id = ?";
  StatementScope s(db.cached(sql.c_str()));
  s->bind(1, id);
  if (!s->step()) return std::nullopt;
  return read_event(*s, 0);
}

// StoreTx in SQLite's SQL, on the write connection inside a group commit's transaction. The
// lock points are no-ops: SQLite's one writer serializes the write transactions of every
// connection of every process, so each sees all that the ones before it committed.
class SqliteTx final : public StoreTx {
 public:
  explicit SqliteTx(SqliteDb& db) : db_(db) {}

  void lock_event_name(std::string_view, LockMode) override {}
  void lock_dedup_key(std::string_view) override {}

  std::optional<RunRow> lock_run(std::string_view run_id) override {
    StatementScope s(db_.cached("SELECT status, function_id, event_id, parent_run_id FROM runs WHERE id = ?"));
    s->bind(1, run_id);
    if (!s->step()) return std::nullopt;
    return RunRow{.status = parse_run_status(s->get_text(0)), .function_id = s->get_text(1),
                  .event_id = s->get_text(2), .parent_run_id = s->get_optional_text(3).value_or("")};
  }

  bool dedup_key_seen(std::string_view key, TimePoint since) override {
    StatementScope seen(db_.cached(
        "SELECT 1 FROM events WHERE dedup_key = ? AND received_at > ? AND duplicate = 0 LIMIT 1"));
    seen->bind_static(1, key).bind(2, to_millis(since));
    return seen->step();
  }

  bool insert_event(std::string_view id, const Event& event, bool duplicate, TimePoint received_at) override {
    auto& s = db_.cached(
        "INSERT INTO events (id, name, data, user_data, ts, v, dedup_key, duplicate, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING");
    s.bind_static(1, id).bind_static(2, event.name).bind(3, to_json_text(event.data));
    s.bind(4, to_json_text(event.user)).bind(5, to_millis(event.ts));
    s.bind(6, event.v.empty() ? std::nullopt : std::optional<std::string>(event.v));
    s.bind(7, event.id.empty() ? std::nullopt : std::optional<std::string>(event.id));
    s.bind(8, duplicate ? 1 : 0).bind(9, to_millis(received_at));
    return s.exec() != 0;
  }

  std::optional<StoredEvent> find_event(std::string_view id) override { return find_event_in(db_, id); }

  std::vector<StoredEvent> events_since(std::string_view name, TimePoint since) override {
    // Through events_by_name: few, when a wait began moments ago.
    static const std::string sql = std::string("SELECT ") + kEventColumns +
                                   " FROM events WHERE name = ? AND received_at >= ? AND duplicate = 0 "
                                   "ORDER BY received_at, id";
    std::vector<StoredEvent> out;
    StatementScope s(db_.cached(sql.c_str()));
    s->bind_static(1, name).bind(2, to_millis(since));
    while (s->step()) out.push_back(read_event(*s, 0));
    return out;
  }

  std::vector<RecordedTrigger> triggers_matching(std::string_view name) override {
    return durable::triggers_matching(db_, name);
  }

  void insert_run(const NewRun& run, TimePoint now) override { durable::insert_run(db_, run, now); }

  void append(std::string_view run_id, const JournalEntry& entry) override { insert_entry(db_, run_id, entry); }

  int64_t next_seq(std::string_view run_id) override { return durable::next_seq(db_, run_id); }

  bool append_if_held(std::string_view run_id, int64_t lease_epoch, const JournalEntry& e) override {
    auto& s = db_.cached(
        "INSERT INTO journal (run_id, seq, kind, step_key, attempt, payload, started_at, recorded_at) "
        "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND "
        "lease_epoch = ?9 AND status = 'running')");
    bind_entry(s, run_id, e);
    return s.bind(9, lease_epoch).exec() != 0;
  }

  bool is_held(std::string_view run_id, int64_t lease_epoch) override {
    StatementScope s(db_.cached("SELECT 1 FROM runs WHERE id = ? AND lease_epoch = ? AND status = 'running'"));
    s->bind(1, run_id).bind(2, lease_epoch);
    return s->step();
  }

  bool finish_lease(std::string_view run_id, int64_t lease_epoch, const RunTransition& t, TimePoint now) override {
    return db_.cached(
                   "UPDATE runs SET status = ?3, available_at = ?4, written_at = ?9, attempt = ?5, output = ?6, "
                   "error = ?7, ended_at = CASE WHEN ?8 THEN ?9 ELSE ended_at END, "
                   "lease_owner = NULL, lease_expires_at = NULL "
                   "WHERE id = ?1 AND lease_epoch = ?2 AND status = 'running'")
               .bind(1, run_id).bind(2, lease_epoch)
               .bind(3, to_string(t.status)).bind(4, to_millis(t.available_at)).bind(5, t.attempt)
               .bind(6, t.output).bind(7, t.error).bind(8, is_finished(t.status) ? 1 : 0).bind(9, to_millis(now))
               .exec() != 0;
  }

  void reset_run(std::string_view run_id, const RunReset& r, TimePoint now) override {
    auto& s = db_.cached(
        "UPDATE runs SET status = ?2, available_at = COALESCE(?3, available_at), ended_at = ?4, "
        "attempt = COALESCE(?5, attempt), error = CASE WHEN ?5 IS NULL THEN error END, written_at = ?6, "
        "lease_owner = NULL, lease_expires_at = NULL, lease_epoch = lease_epoch + 1 WHERE id = ?1");
    s.bind(1, run_id).bind(2, to_string(r.status));
    s.bind(3, r.available_at ? std::optional<int64_t>(to_millis(*r.available_at)) : std::nullopt);
    s.bind(4, r.ended_at ? std::optional<int64_t>(to_millis(*r.ended_at)) : std::nullopt);
    s.bind(5, r.attempt ? std::optional<int64_t>(*r.attempt) : std::nullopt);
    s.bind(6, to_millis(now));
    s.exec();
  }

  void insert_wait(std::string_view run_id, const WaitRegistration& w) override {
    db_.cached(
           "INSERT OR REPLACE INTO waits (run_id, step_key, event, match_path, match_value, condition, "
           "trigger_event_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(1, run_id).bind(2, w.step_key).bind(3, w.event).bind(4, w.match_path)
        .bind(5, w.match_value).bind(6, w.condition).bind(7, w.trigger_event_id)
        .bind(8, to_millis(w.expires_at))
        .exec();
  }

  void delete_wait(std::string_view run_id, std::string_view step_key) override {
    db_.cached("DELETE FROM waits WHERE run_id = ? AND step_key = ?").bind(1, run_id).bind(2, step_key).exec();
  }

  void delete_waits(std::string_view run_id) override {
    db_.cached("DELETE FROM waits WHERE run_id = ?").bind(1, run_id).exec();
  }

  std::vector<std::string> wait_match_paths(std::string_view event_name) override {
    // A loose scan of waits_by_event: one probe per distinct path (usually one; none when
    // nothing waits for the name, the common case).
    std::vector<std::string> paths;
    StatementScope s(db_.cached(
        "WITH RECURSIVE p(path) AS (SELECT (SELECT min(match_path) FROM waits WHERE event = ?1) "
        "UNION ALL SELECT (SELECT min(match_path) FROM waits WHERE event = ?1 AND match_path > p.path) "
        "FROM p WHERE p.path IS NOT NULL) SELECT path FROM p WHERE path IS NOT NULL"));
    s->bind_static(1, event_name);
    while (s->step()) paths.push_back(s->get_text(0));
    return paths;
  }

  std::vector<WaitRow> waits_matching(std::string_view event_name, std::string_view match_path,
                                      std::string_view match_value, TimePoint now) override {
    std::vector<WaitRow> out;
    StatementScope s(db_.cached(
        "SELECT run_id, step_key, condition, trigger_event_id FROM waits "
        "WHERE event = ? AND match_path = ? AND match_value = ? AND expires_at > ?"));
    s->bind_static(1, event_name).bind_static(2, match_path).bind_static(3, match_value).bind(4, to_millis(now));
    while (s->step()) out.push_back(WaitRow{s->get_text(0), s->get_text(1), s->get_text(2), s->get_text(3)});
    return out;
  }

  bool advance_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick) override {
    return db_.cached(
                   "INSERT INTO cron_ticks (function_id, schedule, last_tick) VALUES (?1, ?2, ?3) "
                   "ON CONFLICT (function_id, schedule) DO UPDATE SET last_tick = ?3 WHERE last_tick < ?3")
               .bind(1, function_id).bind(2, schedule).bind(3, to_millis(tick))
               .exec() > 0;
  }

 private:
  SqliteDb& db_;
};

// How large the WAL file is made when a database is opened (see preallocate_wal).
constexpr off_t kWalPreallocBytes = 16 << 20;

// Makes the WAL file at least kWalPreallocBytes long, filling the new part with zeros, and
// keeps it when the last connection closes. A commit that extends a file must also flush the
// file's size (its inode) when it syncs: on ext4 that made each commit about half again as
// slow as one that overwrites space the file already has. SQLite writes the WAL from its
// start again after each complete checkpoint, so once the file is this long, commits only
// overwrite. The zeros are not frames: a frame counts only if its salt matches the WAL
// header's and its checksum chains, so recovery stops at the first of them. Runs under the
// write lock, so no other process is appending frames meanwhile.
void preallocate_wal(SqliteDb& db, const std::string& path) {
  int persist = 1;
  sqlite3_file_control(db.handle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  db.exec("BEGIN IMMEDIATE");
  try {
    std::string wal = path + "-wal";
    int fd = ::open(wal.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st {};
      if (fstat(fd, &st) == 0 && st.st_size < kWalPreallocBytes) {
        std::vector<char> zeros(1 << 20, 0);
        bool ok = true;
        for (off_t at = st.st_size; ok && at < kWalPreallocBytes; at += static_cast<off_t>(zeros.size())) {
          size_t n = static_cast<size_t>(std::min<off_t>(static_cast<off_t>(zeros.size()), kWalPreallocBytes - at));
          ok = pwrite(fd, zeros.data(), n, at) == static_cast<ssize_t>(n);
        }
        // The commits that overwrite these zeros flush only their data, not the file's size:
        // if this sync fails, the size may never reach the disk.
        if (ok && fdatasync(fd) != 0) {
          int err = errno;
          ::close(fd);
          throw sqlite_error(SQLITE_IOERR_FSYNC, fmt::format("cannot sync the preallocated WAL '{}': {}", wal, std::strerror(err)));
        }
      }
      ::close(fd);
    }
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
  db.exec("COMMIT");
}

}  // namespace

SqliteStore::SqliteStore(SqliteStoreOptions options)
    : options_(std::move(options)), in_memory_(options_.path == ":memory:") {
  writer_db_ = std::make_unique<SqliteDb>(options_.path, options_.busy_timeout);
  if (!in_memory_) {
    // WAL lets readers work while the writer commits. The mode is stored in the file, so
    // every later connection gets it too.
    writer_db_->exec("PRAGMA journal_mode = WAL");
  }
  writer_db_->exec(options_.durability == Durability::full ? "PRAGMA synchronous = FULL"
                                                           : "PRAGMA synchronous = NORMAL");
  migrate(*writer_db_, schema_sql());
  if (!in_memory_) preallocate_wal(*writer_db_, options_.path);
  writer_ = std::make_unique<GroupCommitWriter>(*writer_db_, in_memory_ ? &shared_mu_ : nullptr);
  if (!in_memory_) {
    checkpointer_ = std::make_unique<WalCheckpointer>(*writer_db_, *writer_, options_.path);
  }
}

SqliteStore::~SqliteStore() {
  checkpointer_.reset();  // it pauses the writer: stop it first
  bool failed = writer_->failed();
  writer_.reset();        // finish pending writes before the connections close
  // The last connection to close checkpoints the WAL into the database. After a fail-stop
  // nothing may touch the file: the restarted process recovers from what is on disk.
  if (failed) sqlite3_db_config(writer_db_->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
}

template <class Fn>
auto SqliteStore::read(Fn&& fn) {
  if (in_memory_) {
    std::lock_guard lock(shared_mu_);
    return fn(*writer_db_);
  }
  std::unique_ptr<SqliteDb> db;
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
  }
  if (!db) db = std::make_unique<SqliteDb>(options_.path, options_.busy_timeout);
  struct GiveBack {
    SqliteStore* store;
    std::unique_ptr<SqliteDb>& db;
    ~GiveBack() {
      std::lock_guard lock(store->readers_mu_);
      store->idle_readers_.push_back(std::move(db));
    }
  } give_back{this, db};
  return fn(*db);
}

std::optional<std::string> SqliteStore::failure() const { return writer_->failure(); }

void SqliteStore::set_failure_listener(std::function<void(const std::string&)> listener) {
  writer_->set_failure_listener(std::move(listener));
}

std::optional<StoredEvent> SqliteStore::find_event(std::string_view event_id) {
  return read([&](SqliteDb& db) { return find_event_in(db, event_id); });
}

void SqliteStore::transact(const std::function<void(StoreTx&)>& work) {
  writer_->write([&](SqliteDb& db) {
    SqliteTx tx(db);
    work(tx);
  });
}

std::vector<ClaimedRun> SqliteStore::claim(const std::vector<std::string>& function_ids,
                                           TimePoint now, const Lease& lease, int limit,
                                           std::chrono::milliseconds ahead) {
  std::vector<ClaimedRun> claimed;
  if (function_ids.empty() || limit <= 0) return claimed;
  // The queue is read in available_at order through the partial index of queued and
  // sleeping runs, so a claim stops after `limit` matches however long the history is.
  // (Left to itself, the planner prefers runs_by_function, which holds finished runs too.)
  std::string functions = json_list(function_ids);
  writer_->write([&](SqliteDb& db) {
    claimed.clear();
    StatementScope s(db.cached(
        "UPDATE runs SET status = 'running', lease_owner = ?1, lease_epoch = lease_epoch + 1, "
        "lease_expires_at = ?2, written_at = ?3, started_at = COALESCE(started_at, ?3) "
        "WHERE id IN (SELECT id FROM runs INDEXED BY runs_due WHERE status IN ('queued', 'sleeping', 'waiting') "
        "AND available_at <= ?6 AND (available_at <= ?3 OR status = 'sleeping') "
        "AND function_id IN (SELECT value FROM json_each(?4)) ORDER BY available_at LIMIT ?5) "
        "RETURNING id, function_id, event_id, lease_epoch, attempt, "
        "CASE WHEN available_at > ?3 THEN available_at ELSE 0 END, created_at, started_at"));
    s->bind(1, lease.owner).bind(2, to_millis(lease.expires_at)).bind(3, to_millis(now));
    s->bind(4, functions).bind(5, limit).bind(6, to_millis(now + ahead));
    while (s->step()) {
      claimed.push_back(ClaimedRun{.run_id = s->get_text(0),
                                   .function_id = s->get_text(1),
                                   .event_id = s->get_text(2),
                                   .lease_epoch = s->get_int(3),
                                   .attempt = static_cast<int>(s->get_int(4)),
                                   .available_at = from_millis(s->get_int(5)),
                                   .created_at = from_millis(s->get_int(6)),
                                   .started_at = from_millis(s->get_int(7))});
    }
  });
  return claimed;
}

int SqliteStore::renew_leases(const std::string& owner, const std::vector<std::string>& run_ids,
                              TimePoint expires_at, TimePoint now) {
  if (run_ids.empty()) return 0;
  std::string ids = json_list(run_ids);
  int n = 0;
  writer_->write([&](SqliteDb& db) {
    n = db.cached(
              "UPDATE runs SET lease_expires_at = ?1, written_at = ?4 WHERE id IN (SELECT value FROM json_each(?2)) "
              "AND status = 'running' AND lease_owner = ?3")
            .bind(1, to_millis(expires_at))
            .bind(2, ids)
            .bind(3, owner)
            .bind(4, to_millis(now))
            .exec();
  });
  return n;
}

std::vector<RunQueue::Recovered> SqliteStore::recover_expired_leases(TimePoint now) {
  std::vector<Recovered> recovered;
  writer_->write([&](SqliteDb& db) {
    recovered.clear();
    StatementScope s(db.cached(
        "UPDATE runs SET status = 'queued', available_at = ?1, written_at = ?1, lease_owner = NULL, "
        "lease_expires_at = NULL, lease_epoch = lease_epoch + 1 "
        "WHERE status = 'running' AND lease_expires_at <= ?1 RETURNING id, function_id"));
    s->bind(1, to_millis(now));
    while (s->step()) recovered.push_back(Recovered{s->get_text(0), s->get_text(1)});
    if (!recovered.empty()) crash_point(CrashPoint::recovery_before_commit);
  });
  return recovered;
}

int SqliteStore::correct_ahead_times(TimePoint now, std::chrono::milliseconds tolerance) {
  // Queued runs through runs_queued (written_at); running runs through runs_leased: a lease
  // never expires before it was written, so one written ahead lies past the same bound, and
  // the scan covers only the leases held now (a few per worker). Both find nothing unless a
  // clock ran ahead, so a read looks first and the writer is disturbed only then.
  static const std::string queued = "FROM runs INDEXED BY runs_queued WHERE status = 'queued' AND written_at > ?1";
  static const std::string leased =
      "FROM runs INDEXED BY runs_leased WHERE status = 'running' AND lease_expires_at > ?1 AND written_at > ?1";
  static const std::string probe = "SELECT EXISTS (SELECT 1 " + queued + ") OR EXISTS (SELECT 1 " + leased + ")";
  // A delay is what lay between the writing and the time written. (A retry whose backoff a
  // finish timeout cut short may lie before it: it is due at once.)
  static const std::string move_queued =
      "UPDATE runs SET available_at = ?2 + max(available_at - written_at, 0), written_at = ?2 "
      "WHERE id IN (SELECT id " + queued + ")";
  static const std::string move_leases =
      "UPDATE runs SET lease_expires_at = ?2 + max(lease_expires_at - written_at, 0), written_at = ?2 "
      "WHERE id IN (SELECT id " + leased + ")";
  const int64_t bound = to_millis(now + tolerance);
  bool any = read([&](SqliteDb& db) {
    StatementScope s(db.cached(probe.c_str()));
    s->bind(1, bound);
    return s->step() && s->get_int(0) != 0;
  });
  if (!any) return 0;
  int n = 0;
  writer_->write([&](SqliteDb& db) {
    n = db.cached(move_queued.c_str()).bind(1, bound).bind(2, to_millis(now)).exec();
    n += db.cached(move_leases.c_str()).bind(1, bound).bind(2, to_millis(now)).exec();
  });
  return n;
}

std::optional<TimePoint> SqliteStore::next_due(const std::vector<std::string>& function_ids) {
  if (function_ids.empty()) return std::nullopt;
  std::string functions = json_list(function_ids);
  return read([&](SqliteDb& db) -> std::optional<TimePoint> {
    StatementScope s(db.cached(
        "SELECT available_at FROM runs INDEXED BY runs_due WHERE status IN ('queued', 'sleeping', 'waiting') "
        "AND function_id IN (SELECT value FROM json_each(?)) ORDER BY available_at LIMIT 1"));
    s->bind(1, functions);
    if (!s->step()) return std::nullopt;
    return from_millis(s->get_int(0));
  });
}

std::vector<JournalEntry> SqliteStore::load_journal(std::string_view run_id) {
  return read([&](SqliteDb& db) {
    std::vector<JournalEntry> entries;
    StatementScope s(db.cached(
        "SELECT seq, kind, step_key, attempt, payload, started_at, recorded_at FROM journal "
        "WHERE run_id = ? ORDER BY seq"));
    s->bind(1, run_id);
    while (s->step()) {
      JournalEntry e;
      e.seq = s->get_int(0);
      e.kind = parse_journal_kind(s->get_text(1));
      e.step_key = s->get_optional_text(2).value_or("");
      if (auto a = s->get_optional_int(3)) e.attempt = static_cast<int>(*a);
      e.payload = s->get_optional_text(4).value_or("null");
      if (auto t = s->get_optional_int(5)) e.started_at = from_millis(*t);
      e.recorded_at = from_millis(s->get_int(6));
      entries.push_back(std::move(e));
    }
    return entries;
  });
}

bool SqliteStore::holds_lease(std::string_view run_id, int64_t lease_epoch) {
  return read([&](SqliteDb& db) {
    StatementScope s(db.cached("SELECT 1 FROM runs WHERE id = ? AND lease_epoch = ? AND status = 'running'"));
    s->bind(1, run_id).bind(2, lease_epoch);
    return s->step();
  });
}

std::optional<Run> SqliteStore::find_run(std::string_view run_id) {
  static const std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?";
  return read([&](SqliteDb& db) -> std::optional<Run> {
    StatementScope s(db.cached(sql.c_str()));
    s->bind(1, run_id);
    if (!s->step()) return std::nullopt;
    return read_run(*s);
  });
}

std::vector<Run> SqliteStore::runs_for_event(std::string_view event_id) {
  static const std::string sql =
      std::string("SELECT ") + kRunColumns + " FROM runs WHERE event_id = ? ORDER BY id";
  return read([&](SqliteDb& db) {
    std::vector<Run> runs;
    StatementScope s(db.cached(sql.c_str()));
    s->bind(1, event_id);
    while (s->step()) runs.push_back(read_run(*s));
    return runs;
  });
}

std::vector<Run> SqliteStore::runs_for_events(const std::vector<std::string>& event_ids) {
  if (event_ids.empty()) return {};
  // One lookup of runs_by_event per id.
  static const std::string sql = std::string("SELECT ") + kRunColumns +
                                 " FROM runs WHERE event_id IN (SELECT value FROM json_each(?)) ORDER BY id";
  return read([&](SqliteDb& db) {
    std::vector<Run> runs;
    StatementScope s(db.cached(sql.c_str()));
    s->bind(1, json_list(event_ids));
    while (s->step()) runs.push_back(read_run(*s));
    return runs;
  });
}

void SqliteStore::register_functions(const std::vector<FunctionRecord>& functions) {
  writer_->write([&](SqliteDb& db) {
    for (const FunctionRecord& f : functions) {
      db.cached(
            "INSERT INTO functions (id, name, config, registered_at, registered_by) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, config = excluded.config, "
            "registered_at = excluded.registered_at, registered_by = excluded.registered_by")
          .bind(1, f.id).bind(2, f.name).bind(3, to_json_text(f.config))
          .bind(4, to_millis(f.registered_at)).bind(5, f.registered_by)
          .exec();
      db.cached("DELETE FROM function_triggers WHERE function_id = ?").bind(1, f.id).exec();
      for (const Trigger& trigger : f.triggers) {
        if (!trigger.cron.empty()) continue;  // recorded in the config (see FunctionRegistry::records)
        const std::string& name = trigger.event;
        bool prefix = !name.empty() && name.back() == '*';
        db.cached("INSERT OR IGNORE INTO function_triggers (event, prefix, function_id, filter) VALUES (?, ?, ?, ?)")
            .bind(1, prefix ? name.substr(0, name.size() - 1) : name)
            .bind(2, prefix ? 1 : 0)
            .bind(3, f.id)
            .bind(4, trigger.filter)
            .exec();
      }
    }
  });
}

std::vector<FunctionRecord> SqliteStore::list_functions() {
  return read([&](SqliteDb& db) {
    std::vector<FunctionRecord> out;
    StatementScope s(db.cached("SELECT id, name, config, registered_at, registered_by FROM functions ORDER BY id"));
    while (s->step()) {
      FunctionRecord f;
      f.id = s->get_text(0);
      f.name = s->get_text(1);
      f.config = nlohmann::json::parse(s->get_text(2));
      f.registered_at = from_millis(s->get_int(3));
      f.registered_by = s->get_text(4);
      for (const auto& cron : f.config.value("cron", nlohmann::json::array())) f.triggers.push_back(Trigger{.cron = cron});
      out.push_back(std::move(f));
    }
    StatementScope t(db.cached(
        "SELECT function_id, event, prefix, filter FROM function_triggers ORDER BY function_id, event, filter"));
    while (t->step()) {
      std::string id = t->get_text(0);
      auto it = std::lower_bound(out.begin(), out.end(), id, [](const FunctionRecord& f, const std::string& k) { return f.id < k; });
      if (it != out.end() && it->id == id) {
        it->triggers.push_back(Trigger{t->get_text(1) + (t->get_int(2) ? "*" : ""), t->get_text(3)});
      }
    }
    return out;
  });
}

bool SqliteStore::unregister_function(std::string_view id) {
  bool found = false;
  writer_->write([&](SqliteDb& db) {
    db.cached("DELETE FROM function_triggers WHERE function_id = ?").bind(1, id).exec();
    found = db.cached("DELETE FROM functions WHERE id = ?").bind(1, id).exec() > 0;
  });
  return found;
}

std::optional<TimePoint> SqliteStore::last_cron_tick(std::string_view function_id, std::string_view schedule) {
  return read([&](SqliteDb& db) -> std::optional<TimePoint> {
    StatementScope s(db.cached("SELECT last_tick FROM cron_ticks WHERE function_id = ? AND schedule = ?"));
    s->bind(1, function_id).bind(2, schedule);
    if (!s->step()) return std::nullopt;
    return from_millis(s->get_int(0));
  });
}

std::vector<Run> SqliteStore::list_runs(const RunFilter& filter, int limit, std::string_view before_id) {
  std::vector<std::string> binds;
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE 1" + run_filter_sql(filter, binds);
  if (!before_id.empty()) {
    sql += " AND id < ?";
    binds.emplace_back(before_id);
  }
  sql += " ORDER BY id DESC LIMIT ?";
  return read([&](SqliteDb& db) {
    std::vector<Run> runs;
    Statement s(db.handle(), sql);
    s.bind(bind_all(s, binds), limit);
    while (s.step()) runs.push_back(read_run(s));
    return runs;
  });
}

int64_t SqliteStore::count_runs(const RunFilter& filter) {
  std::vector<std::string> binds;
  std::string sql = "SELECT count(*) FROM runs WHERE 1" + run_filter_sql(filter, binds);
  return read([&](SqliteDb& db) {
    Statement s(db.handle(), sql);
    bind_all(s, binds);
    s.step();
    return s.get_int(0);
  });
}

std::vector<RunCount> SqliteStore::count_runs_by_time(const RunFilter& filter, TimePoint from,
                                                     std::chrono::milliseconds width, int buckets) {
  if (width.count() <= 0 || buckets <= 0) return {};
  TimePoint to = from + width * buckets;
  RunFilter range = filter;
  range.created_after = filter.created_after ? std::max(*filter.created_after, from) : from;
  range.created_before = filter.created_before ? std::min(*filter.created_before, to) : to;
  std::vector<std::string> binds;
  // Which runs count is decided by the time in their ids, an id range that the primary key
  // (or runs_by_function) serves. The bucket is read from created_at, which the store sets a
  // moment after the id was made: clamped, so that a run never falls outside the range.
  std::string sql = "SELECT function_id, min(max((created_at - ?) / ?, 0), ?), status, count(*) FROM runs WHERE 1" +
                    run_filter_sql(range, binds) + " GROUP BY 1, 2, 3";
  return read([&](SqliteDb& db) {
    std::vector<RunCount> counts;
    Statement s(db.handle(), sql);
    s.bind(1, to_millis(from)).bind(2, static_cast<int64_t>(width.count())).bind(3, buckets - 1);
    for (size_t i = 0; i < binds.size(); ++i) s.bind(static_cast<int>(i) + 4, binds[i]);
    while (s.step()) {
      counts.push_back(RunCount{s.get_text(0), s.get_int(1), parse_run_status(s.get_text(2)), s.get_int(3)});
    }
    return counts;
  });
}

std::vector<std::string> SqliteStore::replays_of(std::string_view run_id) {
  return read([&](SqliteDb& db) {
    std::vector<std::string> ids;
    StatementScope s(db.cached("SELECT id FROM runs WHERE replay_of = ? ORDER BY id"));
    s->bind(1, run_id);
    while (s->step()) ids.push_back(s->get_text(0));
    return ids;
  });
}

std::vector<StoredEvent> SqliteStore::list_events(const EventFilter& filter, int limit, std::string_view before_id) {
  std::vector<std::string> binds;
  std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE 1";
  if (!filter.name.empty()) {
    sql += " AND name = ?";
    binds.push_back(filter.name);
  }
  // Event ids start with the time they were received, like run ids.
  if (filter.received_after) {
    sql += " AND id >= ?";
    binds.push_back(id_floor(*filter.received_after));
  }
  if (filter.received_before) {
    sql += " AND id < ?";
    binds.push_back(id_floor(*filter.received_before));
  }
  if (!before_id.empty()) {
    sql += " AND id < ?";
    binds.emplace_back(before_id);
  }
  sql += " ORDER BY id DESC LIMIT ?";
  return read([&](SqliteDb& db) {
    std::vector<StoredEvent> events;
    Statement s(db.handle(), sql);
    s.bind(bind_all(s, binds), limit);
    while (s.step()) events.push_back(read_event(s, 0));
    return events;
  });
}

int SqliteStore::delete_finished_runs(TimePoint cutoff, int limit) {
  int n = 0;
  writer_->write([&](SqliteDb& db) {
    std::vector<std::string> ids;
    {
      // A run that ended before the cutoff was created before it, so the scan runs along the
      // primary key, oldest first, up to the cutoff's id. (An index on ended_at would cost
      // every run's last commit a page write, for a background pass.)
      StatementScope s(db.cached(
          "SELECT id FROM runs WHERE id < ?1 AND status IN ('completed', 'failed', 'cancelled') "
          "AND ended_at < ?2 ORDER BY id LIMIT ?3"));
      s->bind(1, id_floor(cutoff)).bind(2, to_millis(cutoff)).bind(3, limit);
      while (s->step()) ids.push_back(s->get_text(0));
    }
    for (const std::string& id : ids) {
      db.cached("DELETE FROM journal WHERE run_id = ?").bind(1, id).exec();
      db.cached("DELETE FROM runs WHERE id = ?").bind(1, id).exec();
    }
    n = static_cast<int>(ids.size());
  });
  return n;
}

int SqliteStore::delete_unreferenced_events(TimePoint cutoff, int limit) {
  int n = 0;
  // Event ids begin with their reception time: the oldest events come first in the primary
  // key, so the scan starts at the oldest and stops at the cutoff.
  std::string before = id_floor(cutoff);
  writer_->write([&](SqliteDb& db) {
    n = db.cached(
              "DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE id < ?1 "
              "AND NOT EXISTS (SELECT 1 FROM runs WHERE event_id = e.id) ORDER BY id LIMIT ?2)")
            .bind(1, before)
            .bind(2, limit)
            .exec();
  });
  return n;
}

QueueDepth SqliteStore::queue_depth(TimePoint now) {
  return read([&](SqliteDb& db) {
    QueueDepth d;
    StatementScope s(db.cached(
        "SELECT status, available_at <= ?1, count(*) FROM runs INDEXED BY runs_due "
        "WHERE status IN ('queued', 'sleeping', 'waiting') GROUP BY 1, 2"));
    s->bind(1, to_millis(now));
    while (s->step()) {
      int64_t count = s->get_int(2);
      std::string status = s->get_text(0);
      if (status == "sleeping") {
        d.sleeping += count;
      } else if (status == "waiting") {
        d.waiting += count;
      } else if (s->get_int(1)) {
        d.runnable += count;
      } else {
        d.scheduled += count;
      }
    }
    StatementScope r(db.cached("SELECT count(*) FROM runs INDEXED BY runs_leased WHERE status = 'running'"));
    r->step();
    d.running = r->get_int(0);
    return d;
  });
}

int SqliteStore::synchronous_level() {
  int level = -1;
  writer_->write([&](SqliteDb& db) { level = static_cast<int>(db.pragma_int("synchronous")); });
  return level;
}

StoreStats SqliteStore::stats() const { return StoreStats{writer_->commits(), writer_->writes()}; }

}  // namespace durable
