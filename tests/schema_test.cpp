// The schema: embedded from schema.sql, versioned with PRAGMA user_version, migrated forward,
// and never opened by a build older than the database.
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "engine/store/sqlite/schema.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

int64_t user_version(const std::string& path) {
  SqliteDb db(path, 1s);
  return db.pragma_int("user_version");
}

constexpr std::string_view kV1 =
    "-- preamble, mentioning \"-- version 9\" inside a line, which is not a marker\n"
    "-- version 1\nCREATE TABLE users (id TEXT PRIMARY KEY);\n";
constexpr std::string_view kV1V2 =
    "-- version 1\nCREATE TABLE users (id TEXT PRIMARY KEY);\n"
    "-- version 2\nALTER TABLE users ADD COLUMN email TEXT;\n";

}  // namespace

TEST_SUITE("schema") {
  TEST_CASE("the embedded schema is schema.sql, byte for byte") {
    std::ifstream file(DURABLE_SOURCE_DIR "/schema.sql", std::ios::binary);
    REQUIRE(file);
    std::stringstream text;
    text << file.rdbuf();
    CHECK(schema_sql() == text.str());
    CHECK(schema_version(schema_sql()) >= 1);
  }

  TEST_CASE("a new database gets every version and records it in user_version") {
    TempDir dir;
    { Engine engine({.database = dir.file("new.db"), .log_level = "off"}); }
    CHECK(user_version(dir.file("new.db")) == schema_version(schema_sql()));
    // Opening it again changes nothing.
    { Engine engine({.database = dir.file("new.db"), .log_level = "off"}); }
    CHECK(user_version(dir.file("new.db")) == schema_version(schema_sql()));
  }

  TEST_CASE("an older database is migrated and keeps its data") {
    TempDir dir;
    SqliteDb db(dir.file("old.db"), 1s);
    migrate(db, kV1);
    CHECK(db.pragma_int("user_version") == 1);
    db.exec("INSERT INTO users (id) VALUES ('u1')");
    migrate(db, kV1V2);
    CHECK(db.pragma_int("user_version") == 2);
    Statement row(db.handle(), "SELECT id, email FROM users");
    REQUIRE(row.step());
    CHECK(row.get_text(0) == "u1");
    CHECK(row.is_null(1));
  }

  TEST_CASE("a migration that fails leaves the database as it was") {
    TempDir dir;
    SqliteDb db(dir.file("bad.db"), 1s);
    migrate(db, kV1);
    CHECK_THROWS_AS(migrate(db, "-- version 1\nCREATE TABLE users (id TEXT);\n-- version 2\nCREATE TABLE x (a);\nNOT SQL;\n"),
                    StoreError);
    CHECK(db.pragma_int("user_version") == 1);
    Statement tables(db.handle(), "SELECT count(*) FROM sqlite_master WHERE name = 'x'");
    REQUIRE(tables.step());
    CHECK(tables.get_int(0) == 0);
  }

  TEST_CASE("a database written by a newer durable is refused with a clear message") {
    TempDir dir;
    {
      SqliteDb db(dir.file("newer.db"), 1s);
      db.exec("PRAGMA user_version = 999");
    }
    try {
      Engine engine({.database = dir.file("newer.db"), .log_level = "off"});
      FAIL("the engine opened a newer database");
    } catch (const Error& e) {
      std::string message = e.what();
      CHECK(message.find("schema version 999") != std::string::npos);
      CHECK(message.find("newer durable") != std::string::npos);
    }
    CHECK(user_version(dir.file("newer.db")) == 999);  // untouched
  }

  TEST_CASE("version markers must increase") {
    TempDir dir;
    SqliteDb db(dir.file("x.db"), 1s);
    CHECK_THROWS_AS(migrate(db, "-- version 2\nSELECT 1;\n-- version 1\nSELECT 1;\n"), Error);
  }
}
