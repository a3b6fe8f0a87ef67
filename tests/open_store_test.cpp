// open_store: the database URL users give, parsed, masked and opened (engine/store/open_store.hpp).
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include <durable/engine.hpp>
#include <durable/errors.hpp>

#include "engine/store/open_store.hpp"
#include "tests/postgres_server.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// Sets DURABLE_DATABASE (or unsets it, for nullopt) for one scope.
class DatabaseEnv {
 public:
  explicit DatabaseEnv(const std::optional<std::string>& value) {
    if (const char* old = std::getenv("DURABLE_DATABASE")) old_ = old;
    if (value) {
      setenv("DURABLE_DATABASE", value->c_str(), 1);
    } else {
      unsetenv("DURABLE_DATABASE");
    }
  }
  ~DatabaseEnv() {
    if (old_) {
      setenv("DURABLE_DATABASE", old_->c_str(), 1);
    } else {
      unsetenv("DURABLE_DATABASE");
    }
  }

 private:
  std::optional<std::string> old_;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("open_store") {
  TEST_CASE("every form of the URL names its backend and target") {
    CHECK(parse_store_url("app.db").target == "app.db");
    CHECK(parse_store_url("/var/lib/app/durable.db").target == "/var/lib/app/durable.db");
    CHECK(parse_store_url("sqlite:app.db").target == "app.db");
    CHECK(parse_store_url("sqlite:/var/lib/app.db").target == "/var/lib/app.db");
    CHECK(parse_store_url(":memory:").target == ":memory:");
    CHECK(parse_store_url("sqlite::memory:").target == ":memory:");
    for (const char* url : {"app.db", "sqlite:app.db", ":memory:"}) {
      CHECK(parse_store_url(url).backend == StoreUrl::Backend::sqlite);
    }
    for (const char* url : {"postgres://app@db.internal/app", "postgresql://app:pw@db:5432/app?sslmode=require"}) {
      CHECK(parse_store_url(url).backend == StoreUrl::Backend::postgres);
      CHECK(parse_store_url(url).target == url);
    }
  }

  TEST_CASE("a URL that names no backend is refused, naming it with its password masked") {
    CHECK(error_of([] { parse_store_url(""); }).find("empty") != std::string::npos);
    CHECK(error_of([] { parse_store_url("sqlite:"); }).find("names no file") != std::string::npos);
    CHECK(error_of([] { parse_store_url("sqlite://app.db"); }).find("write sqlite:PATH") != std::string::npos);
    std::string unknown = error_of([] { parse_store_url("mysql://root:hunter2@db/app"); });
    CHECK(unknown.find("unknown scheme 'mysql'") != std::string::npos);
    CHECK(unknown.find("mysql://root:***@db/app") != std::string::npos);
    CHECK(unknown.find("hunter2") == std::string::npos);
  }

  TEST_CASE("passwords are masked, and only passwords") {
    CHECK(masked_url("postgres://app:secret@db/app") == "postgres://app:***@db/app");
    CHECK(masked_url("postgresql://app:s3:cr@t@db:5432/app") == "postgresql://app:***@db:5432/app");
    CHECK(masked_url("postgres://app@db/app") == "postgres://app@db/app");
    CHECK(masked_url("postgres://db/app?user=x") == "postgres://db/app?user=x");
    CHECK(masked_url("app.db") == "app.db");
    CHECK(masked_url("sqlite:/tmp/a:b@c.db") == "sqlite:/tmp/a:b@c.db");
  }

  TEST_CASE("a PostgreSQL server that cannot be reached is refused naming the URL with its password masked") {
    std::string message = error_of([] { open_store("postgres://app:hunter2@127.0.0.1:1/app", {}); });
    CHECK(message.find("postgres://app:***@127.0.0.1:1/app") != std::string::npos);
    CHECK(message.find("cannot connect") != std::string::npos);
    CHECK(message.find("hunter2") == std::string::npos);
  }

  TEST_CASE("a postgres:// URL opens the PostgreSQL store, and an engine runs on it") {
    std::string url = postgres_test_database();
    CHECK(open_store(url, {})->list_functions().empty());
    Engine engine({.database = url, .workers = 2, .log_level = "off"});
    engine.function({.id = "hello"}, on_event("test/hello"), [](Context& ctx) {
      return ctx.step.run("greet", [] { return std::string("hi"); });
    });
    engine.start();
    std::string id = engine.send(Event{.name = "test/hello"});
    REQUIRE(wait_until([&] { return only_run(engine, id).status == RunStatus::completed; }, 10s));
    CHECK(only_run(engine, id).output == "hi");
  }

  TEST_CASE("a SQLite file that cannot be opened is refused naming the URL") {
    TempDir dir;
    std::string url = "sqlite:" + dir.file("missing-dir/app.db");
    std::string message = error_of([&] { open_store(url, {}); });
    CHECK(message.find("database '" + url + "'") != std::string::npos);
  }

  TEST_CASE("an engine opens sqlite:PATH and a plain path alike") {
    TempDir dir;
    for (const std::string& url : {"sqlite:" + dir.file("a.db"), dir.file("b.db")}) {
      CAPTURE(url);
      {
        Engine engine({.database = url, .workers = 1, .log_level = "off"});
        engine.function({.id = "hello"}, on_event("test/hello"), [](Context& ctx) {
          return ctx.step.run("greet", [] { return std::string("hi"); });
        });
        engine.start();
        std::string id = engine.send(Event{.name = "test/hello"});
        REQUIRE(wait_until([&] { return only_run(engine, id).status == RunStatus::completed; }, 10s));
      }
    }
    CHECK(std::filesystem::exists(dir.file("a.db")));
    CHECK(std::filesystem::exists(dir.file("b.db")));
  }

  TEST_CASE("an empty EngineOptions::database reads DURABLE_DATABASE, else durable.db; a set one wins") {
    {
      DatabaseEnv env(std::nullopt);
      CHECK(resolve_database_url("") == "durable.db");
      CHECK(resolve_database_url("x.db") == "x.db");
    }
    {
      DatabaseEnv env("sqlite:/srv/app.db");
      CHECK(resolve_database_url("") == "sqlite:/srv/app.db");
      CHECK(resolve_database_url("x.db") == "x.db");
    }
    TempDir dir;
    DatabaseEnv env("sqlite:" + dir.file("from-env.db"));
    { Engine engine({.log_level = "off"}); }
    CHECK(std::filesystem::exists(dir.file("from-env.db")));
  }
}
