// The database schema and its migrations. The text of schema.sql is embedded at build time;
// it is a list of "-- version N" sections, each migrating version N-1 to N.
#pragma once

#include <string_view>

#include "engine/store/schema_sections.hpp"

namespace durable {

class SqliteDb;

// The embedded text of schema.sql.
std::string_view schema_sql();

// Brings `db` to the latest version in `schema`, applying each missing section in one
// transaction and recording it in PRAGMA user_version. A database at that version is left
// alone. Throws durable::Error if the database's version is newer than `schema` knows (it was
// written by a newer durable), StoreError if a section fails (the database is unchanged).
void migrate(SqliteDb& db, std::string_view schema);

}  // namespace durable
