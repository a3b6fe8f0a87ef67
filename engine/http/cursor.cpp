#include "engine/http/cursor.hpp"

#include <fmt/format.h>

#include "engine/base/ids.hpp"
#include "engine/base/printable.hpp"
#include "engine/base/request_error.hpp"

namespace durable {

std::string decode_cursor(std::string_view parameter, std::string_view text) {
  if (text.empty()) return {};
  if (!decode_id(text)) {
    throw RequestError(400, fmt::format("\"{}\" must be the next_cursor of an earlier page (a 26-character id), not '{}'",
                                        parameter, printable(text, 40)));
  }
  return std::string(text);
}

}  // namespace durable
