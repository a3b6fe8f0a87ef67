// The event wire format (Inngest's event API): parsing a request's events and validating each.
// The HTTP API and Engine::send() accept and refuse exactly the same events, so both come here.
//
//   std::vector<Event> events = parse_events(req.body, limits);  // or a RequestError to answer
#pragma once

#include <chrono>
#include <string_view>
#include <vector>

#include <durable/event.hpp>

#include "engine/base/request_error.hpp"

namespace durable {

// How long a sender's event id deduplicates later events with the same id.
constexpr std::chrono::hours kDedupWindow{24};

struct EventLimits {
  size_t max_event_bytes = 512 * 1024;         // one event's JSON text
  size_t max_request_bytes = 3 * 1024 * 1024;  // the whole body
};

// Parses a POST /e/{key} body: one event object or an array of them. Throws RequestError
// (400 for malformed JSON, JSON nested deeper than kMaxJsonDepth or holding a number out of
// range, or an invalid event, naming its index and field; 413 over a limit). All-or-nothing:
// nothing is returned unless every event is valid.
std::vector<Event> parse_events(std::string_view body, const EventLimits& limits);

// The names of the engine's own events (durable/function.finished, durable/cron, ...): no
// sender may use them.
constexpr std::string_view kReservedEventPrefix = "durable/";

// Throws RequestError(400) unless `event` is valid (a name of 1-512 characters, not under
// kReservedEventPrefix, object data and user).
void validate_event(const Event& event);

}  // namespace durable
