// Ingest: turns incoming events into stored events and the runs they start. Parsing and
// validation of the wire format (Inngest's event API) live here too, so the HTTP API and
// Engine::send() accept and refuse exactly the same events.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <durable/errors.hpp>
#include <durable/event.hpp>

#include "engine/executor.hpp"
#include "engine/function_registry.hpp"
#include "engine/ids.hpp"
#include "engine/metrics.hpp"
#include "engine/request_error.hpp"
#include "engine/store.hpp"

namespace durable {

// How deeply the JSON of a request may nest (objects and arrays).
constexpr int kMaxJsonDepth = 100;

struct EventLimits {
  size_t max_event_bytes = 512 * 1024;         // one event's JSON text
  size_t max_request_bytes = 3 * 1024 * 1024;  // the whole body
};

// Parses a POST /e/{key} body: one event object or an array of them. Throws RequestError
// (400 for malformed JSON or an invalid event, naming its index and field; 413 over a
// limit). All-or-nothing: nothing is returned unless every event is valid.
std::vector<Event> parse_events(std::string_view body, const EventLimits& limits);

// The names of the engine's own events (durable/function.finished, durable/cron, ...): no
// sender may use them.
constexpr std::string_view kReservedEventPrefix = "durable/";

// Throws RequestError(400) unless `event` is valid (a name of 1-512 characters, not under
// kReservedEventPrefix, object data and user).
void validate_event(const Event& event);

// How long a sender's event id deduplicates later events with the same id.
constexpr std::chrono::hours kDedupWindow{24};

// How far the time in an x-inngest-event-id-seed may be from this engine's clock for the ids
// derived from it to be used (see EventIngestor::ingest).
constexpr std::chrono::hours kSeedClockTolerance{1};

class EventIngestor {
 public:
  struct Options {
    std::string owner;                      // lease owner for runs executed right away
    std::chrono::milliseconds lease_ttl{30000};
  };

  // `notify` tells the scheduler that queued runs were created.
  EventIngestor(Options options, Store& store, const FunctionRegistry& functions, IdGenerator& ids,
                Clock& clock, Executor& executor, Metrics& metrics, std::function<void()> notify);

  // Stores valid `events` with the runs they start (one durable transaction) and returns
  // their ids in order. Runs that a free worker can take are created already claimed by this
  // process and start without another commit. `id_seed`: an Inngest SDK's
  // x-inngest-event-id-seed header; the ids derive from it, and a request whose ids are
  // already stored (the SDK retried it) changes nothing and gets the same answer. Throws
  // StoreError. Thread-safe.
  std::vector<std::string> ingest(std::vector<Event> events, std::string_view id_seed = {});

 private:
  Options options_;
  Store& store_;
  const FunctionRegistry& functions_;
  IdGenerator& ids_;
  Clock& clock_;
  Executor& executor_;
  Metrics& metrics_;
  std::function<void()> notify_;
};

}  // namespace durable
