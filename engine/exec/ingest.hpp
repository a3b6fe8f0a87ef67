// Ingest: turns incoming events into stored events and the runs they start. The wire format
// they arrive in is engine/events/event_format.hpp.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <durable/errors.hpp>
#include <durable/event.hpp>

#include "engine/base/ids.hpp"
#include "engine/base/request_error.hpp"
#include "engine/events/event_format.hpp"
#include "engine/exec/executor.hpp"
#include "engine/exec/function_registry.hpp"
#include "engine/exec/metrics.hpp"
#include "engine/store/store.hpp"

namespace durable {

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
