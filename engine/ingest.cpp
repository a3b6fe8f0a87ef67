#include "engine/ingest.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/event_id_seed.hpp"

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
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw RequestError(400, fmt::format("{}: \"ts\" must be milliseconds since the Unix epoch (an integer)", at));
    }
    e.ts = from_millis(it->get<int64_t>());
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
  // The parser itself is not recursive, but copying, printing and freeing a value are: a
  // body of a million '[' would overflow the stack there. Values nested too deep are
  // discarded while parsing, and the request refused.
  bool too_deep = false;
  auto limit_depth = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        depth > kMaxJsonDepth) {
      too_deep = true;
      return false;
    }
    return true;
  };
  nlohmann::json parsed = nlohmann::json::parse(body, limit_depth, /*allow_exceptions=*/false);
  if (too_deep) {
    throw RequestError(400, fmt::format("the JSON is nested more than {} levels deep", kMaxJsonDepth));
  }
  if (parsed.is_discarded()) {
    // Parse again with exceptions on, only to say where the JSON goes wrong.
    try {
      [[maybe_unused]] auto unreachable = nlohmann::json::parse(body);
    } catch (const nlohmann::json::parse_error& e) {
      throw RequestError(400, fmt::format("malformed JSON at byte {}: {}", e.byte, e.what()));
    }
    throw RequestError(400, "malformed JSON");
  }
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

EventIngestor::EventIngestor(Options options, Store& store, const FunctionRegistry& functions, IdGenerator& ids,
                             Clock& clock, Executor& executor, Metrics& metrics, std::function<void()> notify)
    : options_(std::move(options)),
      store_(store),
      functions_(functions),
      ids_(ids),
      clock_(clock),
      executor_(executor),
      metrics_(metrics),
      notify_(std::move(notify)) {}

std::vector<std::string> EventIngestor::ingest(std::vector<Event> events, std::string_view id_seed) {
  TimePoint now = clock_.now();
  std::optional<std::vector<std::string>> seeded;
  if (!id_seed.empty()) seeded = event_ids_from_seed(id_seed, events.size());
  // Ids begin with their time, and listings and retention take that for the time the event
  // was received: a seed from a clock far from ours is not used.
  if (seeded && !seeded->empty() &&
      ((*seeded)[0] < id_floor(now - kSeedClockTolerance) || (*seeded)[0] >= id_floor(now + kSeedClockTolerance))) {
    seeded.reset();
  }
  std::vector<IngestStore::Item> items;
  items.reserve(events.size());
  int run_count = 0;
  for (Event& e : events) {
    if (e.ts == TimePoint{}) e.ts = now;
    IngestStore::Item item{seeded ? (*seeded)[items.size()] : ids_.next(now), std::move(e), {}};
    for (const RegisteredFunction* fn : functions_.match(item.event)) {
      item.runs.push_back(NewRun{.id = ids_.next(now), .function_id = fn->options.id, .event_id = item.event_id});
      ++run_count;
    }
    items.push_back(std::move(item));
  }

  // Runs that idle workers can take right away are created already leased to this process:
  // they start without waiting for the scheduler and without a second commit to claim them.
  int reserved = executor_.reserve(run_count);
  int to_lease = reserved;
  for (auto& item : items) {
    for (auto& run : item.runs) {
      if (to_lease == 0) break;
      run.lease = Lease{options_.owner, now + options_.lease_ttl};
      --to_lease;
    }
  }

  std::vector<IngestStore::Outcome> outcomes;
  try {
    outcomes = store_.ingest(items, now, kDedupWindow);
  } catch (...) {
    executor_.unreserve(reserved);
    throw;
  }

  std::vector<std::string> ids;
  std::vector<ClaimedRun> leased;
  bool queued = false;
  for (size_t i = 0; i < items.size(); ++i) {
    ids.push_back(items[i].event_id);
    if (outcomes[i] != IngestStore::Outcome::accepted) continue;
    std::shared_ptr<const Event> event;
    for (auto& run : items[i].runs) {
      if (run.lease) {
        if (!event) event = std::make_shared<const Event>(items[i].event);
        leased.push_back(ClaimedRun{.run_id = run.id,
                                    .function_id = run.function_id,
                                    .event_id = run.event_id,
                                    .lease_epoch = 1,
                                    .attempt = 0,
                                    .available_at = now,
                                    .created_at = now,
                                    .started_at = now,
                                    .fresh_event = event});
      } else {
        queued = true;
      }
    }
  }
  int unused = reserved - static_cast<int>(leased.size());  // reserved for runs of duplicates
  executor_.submit_reserved(std::move(leased));
  if (unused > 0) executor_.unreserve(unused);
  if (queued) notify_();
  metrics_.events_ingested(static_cast<size_t>(std::count_if(outcomes.begin(), outcomes.end(), [](IngestStore::Outcome o) {
    return o != IngestStore::Outcome::already_stored;
  })));
  return ids;
}

}  // namespace durable
