// libFuzzer target for the event wire format (engine/events/event_format.hpp): any bytes as the body
// of POST /e/{key}. parse_events may only refuse with a RequestError, 400 or 413, with a
// message; the events it accepts are valid, and accepted again, unchanged, when sent as the
// SDK's client sends them. Run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/events/event_format.hpp"

namespace {

// Small enough for the fuzzer's inputs to reach the 413 paths too.
const durable::EventLimits kLimits{.max_event_bytes = 1024, .max_request_bytes = 3000};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::vector<durable::Event> events;
  try {
    events = durable::parse_events(body, kLimits);
  } catch (const durable::RequestError& e) {
    if ((e.status() != 400 && e.status() != 413) || std::string_view(e.what()).empty()) std::abort();
    return 0;
  }
  if (events.empty()) std::abort();
  // Sent again as the client sends them (an array, non-UTF-8 replaced): the same events. The
  // text may grow (1E2 prints as 100.0), so with the default limits.
  nlohmann::json sent = events;
  auto text = sent.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  try {
    for (const auto& e : events) durable::validate_event(e);
    std::vector<durable::Event> again = durable::parse_events(text, durable::EventLimits{});
    if (nlohmann::json(again) != sent) std::abort();
  } catch (const durable::RequestError&) {
    std::abort();
  }
  return 0;
}
