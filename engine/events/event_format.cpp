#include "engine/events/event_format.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/base/ids.hpp"
#include "engine/base/json_input.hpp"
#include "engine/events/triggers.hpp"

namespace durable {

namespace {

// Checks one element of the request and builds the Event. `at` names it in messages.
Event parse_event(const nlohmann::json& j, const std::string& at, const EventLimits& limits) {
  if (!j.is_object()) throw RequestError(400, fmt::format("{}: an event must be a JSON object", at));
  size_t size = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
  if (size > limits.max_event_bytes) {
    throw RequestError(413, fmt::format("{}: the event is {} bytes; the limit is {} bytes", at, size, limits.max_event_bytes));
  }
  Event e;
  auto name = j.find("name");
  if (name == j.end() || name->is_null()) throw RequestError(400, fmt::format("{}: \"name\" is required", at));
  if (!name->is_string()) throw RequestError(400, fmt::format("{}: \"name\" must be a string", at));
  e.name = name->get<std::string>();

  auto object_field = [&](const char* field, nlohmann::json& out) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_object()) throw RequestError(400, fmt::format("{}: \"{}\" must be a JSON object", at, field));
    out = *it;
  };
  object_field("data", e.data);
  object_field("user", e.user);

  if (auto it = j.find("id"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) throw RequestError(400, fmt::format("{}: \"id\" must be a string", at));
    e.id = it->get<std::string>();
  }
  if (auto it = j.find("ts"); it != j.end() && !it->is_null()) {
    // The range of the times ids hold: later ones mean nothing, and arithmetic on them could
    // overflow. 1e300 or 1.5 is not an integer at all.
    std::optional<int64_t> ts = json_int64(*it);
    if (!ts || *ts < 0 || *ts > kMaxIdMillis) {
      throw RequestError(400, fmt::format("{}: \"ts\" must be milliseconds since the Unix epoch (an integer from 0 to {})",
                                          at, kMaxIdMillis));
    }
    e.ts = from_millis(*ts);
  }
  if (auto it = j.find("v"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) throw RequestError(400, fmt::format("{}: \"v\" must be a string", at));
    e.v = it->get<std::string>();
  }
  try {
    validate_event(e);
  } catch (const RequestError& err) {
    throw RequestError(err.status(), fmt::format("{}: {}", at, err.what()));
  }
  return e;
}

}  // namespace

void validate_event(const Event& event) {
  try {
    validate_event_name(event.name);
  } catch (const Error& e) {
    throw RequestError(400, e.what());
  }
  // The engine's own events (lifecycle, invoke, cron) start runs and resolve waits: a sender
  // who could forge them could, say, finish an invoking run with an output of its choosing.
  if (event.name.starts_with(kReservedEventPrefix)) {
    throw RequestError(400, fmt::format("event name '{}': names starting with \"{}\" are reserved for the engine's "
                                        "own events",
                                        event.name, kReservedEventPrefix));
  }
  if (!event.data.is_object()) throw RequestError(400, "\"data\" must be a JSON object");
  if (!event.user.is_object()) throw RequestError(400, "\"user\" must be a JSON object");
}

std::vector<Event> parse_events(std::string_view body, const EventLimits& limits) {
  if (body.size() > limits.max_request_bytes) {
    throw RequestError(413, fmt::format("the request is {} bytes; the limit is {} bytes", body.size(), limits.max_request_bytes));
  }
  nlohmann::json parsed = parse_json_input(body, "the body");
  std::vector<Event> events;
  if (parsed.is_array()) {
    if (parsed.empty()) throw RequestError(400, "the request holds no events: send an event object or a non-empty array");
    events.reserve(parsed.size());
    for (size_t i = 0; i < parsed.size(); ++i) {
      events.push_back(parse_event(parsed[i], fmt::format("event {}", i), limits));
    }
  } else if (parsed.is_object()) {
    events.push_back(parse_event(parsed, "event", limits));
  } else {
    throw RequestError(400, "the body must be an event object or an array of events");
  }
  return events;
}

}  // namespace durable
