#include "engine/exec/ingest.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/events/event_id_seed.hpp"

namespace durable {

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
