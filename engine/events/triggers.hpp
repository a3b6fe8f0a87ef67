// What a trigger takes: event names (exact, or every name under a "prefix/*") and filters.
// Shared by the functions registered in this process (FunctionRegistry) and the store's
// matching of functions recorded by other processes.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include <durable/event.hpp>

#include "engine/events/expression.hpp"

namespace durable {

// The longest event name, function id or trigger name.
constexpr size_t kMaxNameLength = 512;

// Throws durable::Error unless `name` is a valid event name: 1 to 512 characters.
void validate_event_name(std::string_view name);

// Whether `name` matches a trigger's event: exactly, or under its "prefix/*".
bool trigger_name_matches(std::string_view trigger_event, std::string_view name);

// Whether `event` passes a parsed trigger filter (it sees the event as `event`: name, data,
// user, id, ts, v). `event_json` is filled on first use, so callers build it at most once.
bool passes_filter(const Expression& filter, const Event& event, std::optional<nlohmann::json>& event_json);

}  // namespace durable
