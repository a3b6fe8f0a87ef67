// The format of the schema files (schema.sql, schema_postgres.sql), shared by every backend's
// migrations: a preamble, then "-- version N" sections, each turning a database of version N-1
// into version N.
#pragma once

#include <map>
#include <string_view>

namespace durable {

// The sections of `schema` by version, in order. Throws durable::Error for a malformed or
// out-of-order marker.
std::map<int, std::string_view> schema_sections(std::string_view schema);

// The highest version in `schema` (0 if it has no sections).
int schema_version(std::string_view schema);

// Throws durable::Error, saying the database was written by a newer durable, when `current`
// (the database's version) is above `latest` (this build's).
void check_schema_not_newer(int current, int latest);

}  // namespace durable
