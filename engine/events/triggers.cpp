#include "engine/events/triggers.hpp"

#include <fmt/format.h>

#include <durable/errors.hpp>

namespace durable {

bool trigger_name_matches(std::string_view pattern, std::string_view name) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);  // keeps the '/': "image/*" matches "image/x", not "image"
    return name.size() > pattern.size() && name.substr(0, pattern.size()) == pattern;
  }
  return pattern == name;
}

bool passes_filter(const Expression& filter, const Event& event, std::optional<nlohmann::json>& event_json) {
  if (!event_json) event_json = nlohmann::json(event);
  return filter.matches({{"event", &*event_json}});
}

void validate_event_name(std::string_view name) {
  if (name.empty()) throw Error("event name is empty");
  if (name.size() > kMaxNameLength) {
    throw Error(fmt::format("event name is {} characters long; the limit is 512", name.size()));
  }
}

}  // namespace durable
