// JSON text for storage. Strings that are not valid UTF-8 (a step may return raw bytes in a
// std::string) are stored with U+FFFD in place of the bad bytes instead of failing the write.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace durable {

inline std::string to_json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace durable
