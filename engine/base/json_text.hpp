// JSON text for storage. Strings that are not valid UTF-8 (a step may return raw bytes in a
// std::string) are stored with U+FFFD in place of the bad bytes instead of failing the write.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace durable {

inline std::string to_json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A value as a wait's match compares it: its JSON text, with a float that holds a whole
// number written as that integer, so that 150.0 matches 150 (as == in expressions does).
inline std::string match_text(const nlohmann::json& value) {
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d)) && d > -9.2e18 && d < 9.2e18) {
      return std::to_string(static_cast<int64_t>(d));
    }
  }
  return to_json_text(value);
}

}  // namespace durable
