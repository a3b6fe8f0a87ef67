#include "engine/store/open_store.hpp"

#include <cstdlib>

#include <fmt/format.h>

#include <durable/errors.hpp>

#include "engine/store/postgres/postgres_store.hpp"
#include "engine/store/sqlite/sqlite_store.hpp"

namespace durable {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace

std::string masked_url(std::string_view url) {
  // scheme://user:password@host...: the password is what lies between the first ':' after
  // "://" and the last '@' before the path.
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  size_t authority = scheme + 3;
  size_t path = url.find('/', authority);
  std::string_view auth = url.substr(authority, path == std::string_view::npos ? std::string_view::npos : path - authority);
  size_t at = auth.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  size_t colon = auth.find(':');
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return fmt::format("{}***{}", url.substr(0, authority + colon + 1), url.substr(authority + at));
}

StoreUrl parse_store_url(std::string_view url) {
  if (url.empty()) throw Error("the database URL is empty: give a file path, sqlite:PATH or postgres://...");
  if (starts_with(url, "postgres://") || starts_with(url, "postgresql://")) {
    return StoreUrl{StoreUrl::Backend::postgres, std::string(url)};
  }
  if (starts_with(url, "sqlite:")) {
    std::string_view path = url.substr(7);
    if (starts_with(path, "//")) {
      throw Error(fmt::format("database URL '{}': write sqlite:PATH (sqlite:app.db, sqlite:/var/lib/app.db)",
                              masked_url(url)));
    }
    if (path.empty()) throw Error(fmt::format("database URL '{}' names no file", masked_url(url)));
    return StoreUrl{StoreUrl::Backend::sqlite, std::string(path)};
  }
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    throw Error(fmt::format("database URL '{}': unknown scheme '{}' (use a file path, sqlite:PATH or postgres://...)",
                            masked_url(url), url.substr(0, scheme)));
  }
  return StoreUrl{StoreUrl::Backend::sqlite, std::string(url)};  // a plain path, or :memory:
}

std::unique_ptr<Store> open_store(std::string_view url, const StoreOpenOptions& options) {
  StoreUrl parsed = parse_store_url(url);
  // Every failure names the URL: which setting gave the database is not always clear.
  try {
    if (parsed.backend == StoreUrl::Backend::postgres) {
      return std::make_unique<PostgresStore>(PostgresStoreOptions{.url = parsed.target});
    }
    return std::make_unique<SqliteStore>(SqliteStoreOptions{.path = parsed.target, .durability = options.durability});
  } catch (const StoreError& e) {
    throw StoreError(e.kind(), fmt::format("database '{}': {}", masked_url(url), e.what()), e.code());
  } catch (const Error& e) {
    throw Error(fmt::format("database '{}': {}", masked_url(url), e.what()));
  }
}

std::string resolve_database_url(std::string_view configured) {
  if (!configured.empty()) return std::string(configured);
  const char* env = std::getenv("DURABLE_DATABASE");
  if (env && *env) return env;
  return "durable.db";
}

}  // namespace durable
