#include "engine/events/event_id_seed.hpp"

#include <array>
#include <charconv>
#include <cstdint>

#include "engine/base/ids.hpp"

namespace durable {

namespace {

// ULID timestamps are 48 bits.
constexpr uint64_t kMaxMillis = (uint64_t{1} << 48) - 1;

int base64_digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with its '=' padding, as the SDKs write it (Node's Buffer, Go's
// base64.StdEncoding). Bits left over after the last whole byte are ignored, as Go does.
std::optional<std::vector<uint8_t>> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  std::vector<uint8_t> out;
  uint32_t bits = 0;
  int pending = 0;  // bits read but not yet output
  for (char c : text.substr(0, text.size() - padding)) {
    int digit = base64_digit(c);
    if (digit < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(digit);
    pending += 6;
    if (pending >= 8) {
      pending -= 8;
      out.push_back(static_cast<uint8_t>(bits >> pending));
    }
  }
  return out;
}

}  // namespace

std::optional<std::vector<std::string>> event_ids_from_seed(std::string_view header, size_t count) {
  size_t comma = header.find(',');
  if (comma == std::string_view::npos || header.find(',', comma + 1) != std::string_view::npos) return std::nullopt;

  // from_chars on an unsigned type takes decimal digits only: no sign, no spaces.
  std::string_view millis_text = header.substr(0, comma);
  uint64_t millis = 0;
  auto [end, error] = std::from_chars(millis_text.data(), millis_text.data() + millis_text.size(), millis);
  if (error != std::errc() || end != millis_text.data() + millis_text.size()) return std::nullopt;
  if (millis == 0 || millis > kMaxMillis) return std::nullopt;

  auto entropy = decode_base64(header.substr(comma + 1));
  if (!entropy || entropy->size() != 10) return std::nullopt;

  std::array<uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(millis >> (8 * (5 - i)));
  for (int i = 0; i < 10; ++i) bytes[6 + i] = (*entropy)[i];
  uint32_t tail = 0;  // the entropy's last 32 bits, big-endian
  for (int i = 12; i < 16; ++i) tail = (tail << 8) | bytes[i];

  // One header, many events: Inngest's server tells the events of a request apart by adding
  // each one's position, counted from 1, to the entropy's last 32 bits. Doing the same gives
  // the ids that server would give, and a sender that mixes both servers sees no difference.
  std::vector<std::string> ids;
  ids.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    uint32_t mixed = tail + static_cast<uint32_t>(i + 1);  // wraps, as the server's does
    for (int k = 0; k < 4; ++k) bytes[12 + k] = static_cast<uint8_t>(mixed >> (8 * (3 - k)));
    ids.push_back(encode_id(bytes));
  }
  return ids;
}

}  // namespace durable
