// The engine's HTTP routes (docs/http-api.md): the event API (/e/{key}), the REST API (/v1/*)
// over the store, /health and /metrics. api_routes() is the one list the engine serves, so
// tests can enumerate it (and check that each route refuses a caller without credentials).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/exec/ingest.hpp"
#include "engine/exec/retention.hpp"
#include "engine/exec/run_control.hpp"
#include "engine/http/http_router.hpp"
#include "engine/store/store.hpp"

#include <durable/engine.hpp>

namespace durable {

struct ApiServices {
  Store& store;
  Clock& clock;
  EventIngestor& ingestor;
  RunControl& control;
  EventLimits limits;
  std::function<std::string()> metrics;              // the Prometheus text of /metrics
  std::function<GcResult(TimePoint cutoff)> collect;  // deletes what finished before cutoff
  // Engine::verify; nullopt when the function is not registered in this process.
  std::function<std::optional<VerifyReport>(const std::string& function_id, int limit)> verify;
};

// The routes, their access rules and handlers. `services` may be null to list them only.
std::vector<Route> api_routes(ApiServices* services, bool metrics_require_api_key);

}  // namespace durable
