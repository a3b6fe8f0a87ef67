// Quoting user text in error messages.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace durable {

// `text` as an error message may quote it: at most `max` bytes, each unprintable byte as \xNN,
// "..." when cut, so a message stays readable whatever bytes the text holds.
inline std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (unsigned char c : text.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > max) out += "...";
  return out;
}

}  // namespace durable
