// The examples' configuration from environment variables.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace examples {

// The variable's value, or `fallback` when it is unset or empty.
inline std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

// The whole number from 1 to `max` in the variable, or `fallback` when it is unset or empty.
// Throws std::runtime_error for anything else.
inline int env_int(const char* name, int fallback, int max) {
  std::string value = env_or(name, "");
  if (value.empty()) return fallback;
  try {
    size_t used = 0;
    int n = std::stoi(value, &used);
    if (used == value.size() && n > 0 && n <= max) return n;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(fmt::format("{} must be a number from 1 to {}, not '{}'", name, max, value));
}

// A TCP port from the variable, or `fallback`.
inline int env_port(const char* name, int fallback) { return env_int(name, fallback, 65535); }

}  // namespace examples
