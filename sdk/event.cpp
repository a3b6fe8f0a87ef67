#include <durable/event.hpp>

namespace durable {

void to_json(nlohmann::json& j, const Event& e) {
  j = nlohmann::json{{"name", e.name}, {"data", e.data}, {"user", e.user}};
  if (!e.id.empty()) j["id"] = e.id;
  if (e.ts != TimePoint{}) j["ts"] = to_millis(e.ts);
  if (!e.v.empty()) j["v"] = e.v;
}

void from_json(const nlohmann::json& j, Event& e) {
  e = Event{};
  if (auto it = j.find("name"); it != j.end() && it->is_string()) e.name = it->get<std::string>();
  if (auto it = j.find("data"); it != j.end() && it->is_object()) e.data = *it;
  if (auto it = j.find("user"); it != j.end() && it->is_object()) e.user = *it;
  if (auto it = j.find("id"); it != j.end() && it->is_string()) e.id = it->get<std::string>();
  if (auto it = j.find("ts"); it != j.end() && it->is_number_integer()) e.ts = from_millis(it->get<int64_t>());
  if (auto it = j.find("v"); it != j.end() && it->is_string()) e.v = it->get<std::string>();
}

}  // namespace durable
