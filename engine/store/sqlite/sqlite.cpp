#include "engine/store/sqlite/sqlite.hpp"

#include <chrono>

#include <sqlite3.h>

namespace durable {

StoreError sqlite_error(int code, const std::string& message) {
  // Fatal is the default, not a deny-list: a code missing here stops the store, which costs a
  // restart; a fatal code missing from a deny-list would let the store acknowledge writes
  // that a failed fsync may already have lost (the kernel can drop the dirty pages it could
  // not write and report success to the next fsync).
  StoreError::Kind kind = StoreError::Kind::fatal;
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_INTERRUPT:
    case SQLITE_PROTOCOL:    // lost the race to start a WAL transaction too often: none began
    case SQLITE_FULL:        // write(2) refused the data (ENOSPC): the transaction rolled back
      kind = StoreError::Kind::transient;
      break;
    case 0:                  // durable's own errors (e.g. an unknown journal kind)
    case SQLITE_ERROR:       // an SQL error: nothing was written
    case SQLITE_ABORT:       // a statement or transaction rolled back on request
    case SQLITE_SCHEMA:
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      kind = StoreError::Kind::conflict;
      break;
    default:
      break;
  }
  return StoreError(kind, message, code);
}

bool is_sqlite_busy(const StoreError& e) {
  int primary = e.code() & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

void check(sqlite3* db, int rc) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw sqlite_error(db ? sqlite3_extended_errcode(db) : rc, "sqlite: " + message);
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  check(db_, sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr));
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, int64_t value) {
  check(db_, sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  check(db_, sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                               SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bind_static(int index, std::string_view text) {
  check(db_, sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC));
  return *this;
}

Statement& Statement::bind_null(int index) {
  check(db_, sqlite3_bind_null(stmt_, index));
  return *this;
}

Statement& Statement::bind(int index, const std::optional<int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind(int index, const std::optional<std::string>& value) {
  return value ? bind(index, std::string_view(*value)) : bind_null(index);
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // sqlite3_step's code is the precise one; the connection's message explains it.
  int code = sqlite3_extended_errcode(db_);
  std::string message = sqlite3_errmsg(db_);
  sqlite3_reset(stmt_);
  throw sqlite_error(code, "sqlite: " + message);
}

int Statement::exec() {
  while (step()) {
  }
  int n = sqlite3_changes(db_);
  reset();
  return n;
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

int64_t Statement::get_int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Statement::get_text(int col) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(p, static_cast<size_t>(n)) : std::string();
}

std::optional<int64_t> Statement::get_optional_int(int col) const {
  if (is_null(col)) return std::nullopt;
  return get_int(col);
}

std::optional<std::string> Statement::get_optional_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return get_text(col);
}

SqliteDb::SqliteDb(const std::string& path, std::chrono::milliseconds busy_timeout) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw sqlite_error(rc, "cannot open database '" + path + "': " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
  check(db_, sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count())));
}

SqliteDb::~SqliteDb() {
  cache_.clear();  // statements must be finalized before the connection closes
  sqlite3_close_v2(db_);
}

void SqliteDb::exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw sqlite_error(sqlite3_extended_errcode(db_), "sqlite: " + message);
  }
}

Statement& SqliteDb::cached(const char* sql) {
  auto& slot = cache_[sql];
  if (!slot) slot = std::make_unique<Statement>(db_, sql);
  return *slot;
}

int64_t SqliteDb::pragma_int(std::string_view name) {
  Statement s(db_, "PRAGMA " + std::string(name));
  int64_t value = s.step() ? s.get_int(0) : 0;
  return value;
}

int64_t SqliteDb::changes() const { return sqlite3_changes(db_); }

}  // namespace durable
