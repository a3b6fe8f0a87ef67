// A thin RAII layer over the SQLite C API: a connection (SqliteDb) with a cache of prepared
// statements, and Statement for binding and reading. Every result code goes through one
// check(), which turns failures into a StoreError (sqlite_error) carrying SQLite's code.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "engine/store/store_error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace durable {

// The StoreError for SQLite's (extended) result `code`, classified:
//   transient  SQLITE_BUSY or SQLITE_LOCKED (another connection held the lock past the busy
//              timeout), SQLITE_FULL (the disk or the size limit is full; write(2) refused
//              the data and the transaction rolled back), SQLITE_PROTOCOL, SQLITE_INTERRUPT.
//   conflict   constraint, SQL and type errors, an aborted statement, 0 (durable's own).
//   fatal      everything else: an I/O error (a failed fsync above all), corruption, a file
//              that went away, out of memory, any code not listed.
StoreError sqlite_error(int code, const std::string& message);

// Whether `e` is SQLITE_BUSY or SQLITE_LOCKED: another connection held the lock.
bool is_sqlite_busy(const StoreError& e);

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds are 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT) unless noted.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
  // Binds text without copying it: `text` must stay alive and unchanged until the statement
  // is reset (exec() resets it). For the hot path, where the caller owns the data.
  Statement& bind_static(int index, std::string_view text);
  Statement& bind_null(int index);
  Statement& bind(int index, const std::optional<int64_t>& value);
  Statement& bind(int index, const std::optional<std::string>& value);

  // Advances to the next row: true when there is one, false when done. Throws StoreError.
  bool step();
  // Runs a statement that returns no rows, then resets it. Returns sqlite3_changes().
  int exec();
  // Resets for another execution and clears bindings.
  void reset();

  bool is_null(int col) const;
  int64_t get_int(int col) const;
  std::string get_text(int col) const;
  std::optional<int64_t> get_optional_int(int col) const;
  std::optional<std::string> get_optional_text(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a Statement when it goes out of scope, so a cached statement is never left holding
// a read transaction open after an early return or an exception.
class StatementScope {
 public:
  explicit StatementScope(Statement& s) : s_(s) {}
  ~StatementScope() { s_.reset(); }
  Statement* operator->() { return &s_; }
  Statement& operator*() { return s_; }

 private:
  Statement& s_;
};

class SqliteDb {
 public:
  // Opens (creating) `path`; ":memory:" opens a private in-memory database. Sets the busy
  // timeout. Throws StoreError.
  explicit SqliteDb(const std::string& path, std::chrono::milliseconds busy_timeout);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements that return nothing. Throws StoreError.
  void exec(std::string_view sql);

  // A statement prepared once per connection and reused; `sql` must outlive the connection
  // (a string literal). The returned statement is reset and unbound.
  Statement& cached(const char* sql);

  // The value of an integer pragma such as user_version.
  int64_t pragma_int(std::string_view name);

  int64_t changes() const;
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, std::unique_ptr<Statement>> cache_;
};

// Throws StoreError when `rc` is not SQLITE_OK/ROW/DONE, with SQLite's message for `db`.
void check(sqlite3* db, int rc);

}  // namespace durable
