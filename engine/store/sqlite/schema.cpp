#include "engine/store/sqlite/schema.hpp"

#include <string>

#include <fmt/format.h>

#include "engine/store/schema_sections.hpp"
#include "engine/store/sqlite/sqlite.hpp"

namespace durable {

// Defined in the file CMake generates from schema.sql.
extern const char kSchemaSql[];

std::string_view schema_sql() { return kSchemaSql; }

void migrate(SqliteDb& db, std::string_view schema) {
  auto all = schema_sections(schema);
  int latest = all.empty() ? 0 : all.rbegin()->first;
  // BEGIN IMMEDIATE before reading the version, so two processes opening a new database at
  // once cannot both decide to apply the same section.
  db.exec("BEGIN IMMEDIATE");
  try {
    auto current = static_cast<int>(db.pragma_int("user_version"));
    check_schema_not_newer(current, latest);
    for (auto& [version, sql] : all) {
      if (version <= current) continue;
      db.exec(sql);
      db.exec(fmt::format("PRAGMA user_version = {}", version));
    }
    db.exec("COMMIT");
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
}

}  // namespace durable
