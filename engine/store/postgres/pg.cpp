#include "engine/store/postgres/pg.hpp"

#include <libpq-fe.h>

#include <charconv>

#include <fmt/format.h>

namespace durable {

StoreError pg_error(std::string_view sqlstate, const std::string& message) {
  using Kind = StoreError::Kind;
  // As for SQLite, fatal is the default: an unknown failure stops the store rather than let
  // it acknowledge writes it cannot vouch for.
  Kind kind = Kind::fatal;
  std::string_view cls = sqlstate.substr(0, 2);
  if (sqlstate.empty() || cls == "08" || cls == "40" || cls == "53" || sqlstate == "57014" ||
      sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    kind = Kind::transient;
  } else if (cls == "23" || cls == "22" || cls == "42") {
    kind = Kind::conflict;
  }
  return StoreError(kind, message);
}

PgParams& PgParams::add(std::string_view text) {
  values_.emplace_back(std::string(text));
  return *this;
}

PgParams& PgParams::add(int64_t value) {
  values_.emplace_back(std::to_string(value));
  return *this;
}

PgParams& PgParams::add(const std::optional<std::string>& text) {
  values_.push_back(text);
  return *this;
}

PgParams& PgParams::add(const std::optional<int64_t>& value) {
  values_.push_back(value ? std::optional<std::string>(std::to_string(*value)) : std::nullopt);
  return *this;
}

PgParams& PgParams::add_null() {
  values_.emplace_back(std::nullopt);
  return *this;
}

PgResult::~PgResult() { PQclear(result_); }

int PgResult::rows() const { return PQntuples(result_); }

int PgResult::affected() const {
  const char* n = PQcmdTuples(result_);
  int value = 0;
  if (n && *n) std::from_chars(n, n + std::char_traits<char>::length(n), value);
  return value;
}

bool PgResult::is_null(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }

std::string PgResult::text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col), static_cast<size_t>(PQgetlength(result_, row, col)));
}

int64_t PgResult::integer(int row, int col) const {
  const char* v = PQgetvalue(result_, row, col);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(v, v + PQgetlength(result_, row, col), value);
  if (ec != std::errc()) throw StoreError(StoreError::Kind::conflict, fmt::format("postgres: '{}' is not an integer", v));
  return value;
}

std::optional<std::string> PgResult::optional_text(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return text(row, col);
}

std::optional<int64_t> PgResult::optional_integer(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return integer(row, col);
}

PgConn::PgConn(const std::string& url, const std::string& masked_url) : conn_(PQconnectdb(url.c_str())) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    throw StoreError(StoreError::Kind::transient, fmt::format("cannot connect to '{}': {}", masked_url, message));
  }
  // Notices (e.g. "relation already exists, skipping") are not errors; keep them off stderr.
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
}

PgConn::~PgConn() { PQfinish(conn_); }

bool PgConn::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

namespace {

// Throws the StoreError for a failed result `r` (nullptr: the connection failed).
[[noreturn]] void throw_failure(pg_conn* conn, PGresult* r) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  std::string sqlstate = state ? state : "";
  PQclear(r);
  throw pg_error(sqlstate, "postgres: " + message + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")"));
}

bool succeeded(PGresult* r) {
  ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

}  // namespace

PgResult PgConn::exec(std::string_view sql, const PgParams& params) {
  std::vector<const char*> values;
  values.reserve(params.values().size());
  for (const auto& v : params.values()) values.push_back(v ? v->c_str() : nullptr);
  std::string text(sql);
  PGresult* r = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                             nullptr, 0);
  if (!succeeded(r)) throw_failure(conn_, r);
  return PgResult(r);
}

void PgConn::exec_script(std::string_view sql) {
  PGresult* r = PQexec(conn_, std::string(sql).c_str());
  if (!succeeded(r)) throw_failure(conn_, r);
  PQclear(r);
}

}  // namespace durable
