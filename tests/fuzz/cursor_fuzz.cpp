// libFuzzer target for page cursors (engine/http/cursor.hpp) and the id decoding under them
// (decode_id): any bytes as a cursor are either refused with a RequestError(400) naming the
// parameter, or accepted as exactly the id encode_id writes for the bytes they decode to. And
// any 16 bytes, encoded, decode back to themselves. Run by scripts/fuzz.sh.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/base/ids.hpp"
#include "engine/base/request_error.hpp"
#include "engine/http/cursor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::string id = durable::decode_cursor("cursor", text);
    if (id != text) std::abort();
    if (!id.empty()) {
      auto bytes = durable::decode_id(id);
      if (!bytes || durable::encode_id(*bytes) != id) std::abort();
    }
  } catch (const durable::RequestError& e) {
    if (e.status() != 400 || std::string_view(e.what()).find("\"cursor\"") == std::string_view::npos) std::abort();
    if (durable::decode_id(text)) std::abort();
  }
  if (size >= 16) {
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), data, 16);
    std::string id = durable::encode_id(bytes);
    auto back = durable::decode_id(id);
    if (!back || *back != bytes || durable::decode_cursor("cursor", id) != id) std::abort();
  }
  return 0;
}
