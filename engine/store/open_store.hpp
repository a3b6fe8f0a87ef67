// open_store: the store a database URL names. The one place that turns the string users give
// (EngineOptions::database, `durable serve --database`, DURABLE_DATABASE) into a store:
//
//   sqlite:PATH, or a plain PATH     SQLite, the file created if missing ("app.db")
//   :memory: (or sqlite::memory:)    SQLite in memory, private to the store
//   postgres://... postgresql://...  PostgreSQL (not in this build yet: refused, named)
//
//   std::unique_ptr<Store> store = open_store("sqlite:app.db", {.durability = Durability::full});
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <durable/engine.hpp>

#include "engine/store/store.hpp"

namespace durable {

struct StoreOpenOptions {
  Durability durability = Durability::full;
};

// Which backend a URL names, and what that backend is given (a file path for SQLite).
struct StoreUrl {
  enum class Backend { sqlite, postgres };
  Backend backend = Backend::sqlite;
  std::string target;
};

// Parses `url`. Throws durable::Error naming the URL (password masked) when it is empty or
// names no backend this build knows.
StoreUrl parse_store_url(std::string_view url);

// Opens (creating and migrating) the store `url` names. Throws durable::Error naming the URL
// (password masked) when it cannot: a bad URL, a database written by a newer durable, a file
// that cannot be opened.
std::unique_ptr<Store> open_store(std::string_view url, const StoreOpenOptions& options);

// `url` with any password replaced by "***" ("postgres://app:***@db/app"), for messages and logs.
std::string masked_url(std::string_view url);

// The database an engine opens when EngineOptions::database is `configured`: that, or if it
// is empty the DURABLE_DATABASE environment variable, or "durable.db".
std::string resolve_database_url(std::string_view configured);

}  // namespace durable
