#include "engine/store/schema_sections.hpp"

#include <charconv>

#include <fmt/format.h>

#include <durable/errors.hpp>

namespace durable {

namespace {

constexpr std::string_view kMarker = "-- version ";

// The next marker at the start of a line, at or after `from`.
size_t find_marker(std::string_view schema, size_t from) {
  for (size_t pos = schema.find(kMarker, from); pos != std::string_view::npos;
       pos = schema.find(kMarker, pos + 1)) {
    if (pos == 0 || schema[pos - 1] == '\n') return pos;
  }
  return std::string_view::npos;
}

}  // namespace

std::map<int, std::string_view> schema_sections(std::string_view schema) {
  // Text before the first marker (the file's preamble) belongs to no version.
  std::map<int, std::string_view> out;
  size_t pos = find_marker(schema, 0);
  while (pos != std::string_view::npos) {
    size_t number_at = pos + kMarker.size();
    int version = 0;
    auto [end, ec] = std::from_chars(schema.data() + number_at, schema.data() + schema.size(), version);
    if (ec != std::errc() || version <= 0) {
      throw Error(fmt::format("schema: bad version marker at offset {}", pos));
    }
    if (out.count(version) || (!out.empty() && version < out.rbegin()->first)) {
      throw Error(fmt::format("schema: version {} is out of order", version));
    }
    size_t next = find_marker(schema, number_at);
    size_t body_at = static_cast<size_t>(end - schema.data());
    out[version] = schema.substr(body_at, (next == std::string_view::npos ? schema.size() : next) - body_at);
    pos = next;
  }
  return out;
}

int schema_version(std::string_view schema) {
  auto all = schema_sections(schema);
  return all.empty() ? 0 : all.rbegin()->first;
}

void check_schema_not_newer(int current, int latest) {
  if (current > latest) {
    throw Error(fmt::format(
        "the database is at schema version {}, but this build of durable knows only up to "
        "version {}: it was written by a newer durable. Upgrade durable, or use another database.",
        current, latest));
  }
}

}  // namespace durable
