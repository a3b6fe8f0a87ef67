// A thin RAII layer over libpq: a connection (PgConn) that runs one statement at a time with
// text parameters (PQexecParams: unnamed statements, so a transaction-pooling proxy such as
// pgbouncer can sit in between) and its result (PgResult). Every failure becomes a StoreError
// whose kind comes from the SQLSTATE (pg_error).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/store/store_error.hpp"

struct pg_conn;
struct pg_result;

namespace durable {

// The StoreError for a failed statement with this SQLSTATE ("40001"; "" when the connection
// failed before the server answered), classified:
//   transient  serialization failure and deadlock (class 40), connection errors (08, and no
//              SQLSTATE), too many connections and out of disk (53), a cancelled or
//              terminated statement (57014, 57P01-57P03): nothing committed; try again.
//   conflict   integrity constraints (23), data and syntax errors (22, 42).
//   fatal      everything else (58 system errors, XX internal errors and data corruption).
StoreError pg_error(std::string_view sqlstate, const std::string& message);

// Parameters of one statement, as text ($1, $2, ...); nullopt is NULL.
class PgParams {
 public:
  PgParams& add(std::string_view text);
  PgParams& add(const std::string& text) { return add(std::string_view(text)); }
  PgParams& add(const char* text) { return add(std::string_view(text)); }
  PgParams& add(int64_t value);
  PgParams& add(const std::optional<std::string>& text);
  PgParams& add(const std::optional<int64_t>& value);
  PgParams& add_null();
  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

class PgResult {
 public:
  explicit PgResult(pg_result* result) : result_(result) {}
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&&) = delete;
  ~PgResult();

  int rows() const;
  // Rows a command changed (UPDATE, INSERT, DELETE).
  int affected() const;
  bool is_null(int row, int col) const;
  std::string text(int row, int col) const;
  int64_t integer(int row, int col) const;
  std::optional<std::string> optional_text(int row, int col) const;
  std::optional<int64_t> optional_integer(int row, int col) const;

 private:
  pg_result* result_;
};

class PgConn {
 public:
  // Connects. Throws StoreError (transient: the server may come up) naming `masked_url`.
  PgConn(const std::string& url, const std::string& masked_url);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs one statement. Throws StoreError.
  PgResult exec(std::string_view sql, const PgParams& params = {});
  // Runs several statements without parameters (a schema section). Throws StoreError.
  void exec_script(std::string_view sql);
  // Whether the connection is usable (false after the server went away).
  bool ok() const;

 private:
  pg_conn* conn_;
};

}  // namespace durable
