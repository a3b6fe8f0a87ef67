#include <durable/run.hpp>

#include <durable/errors.hpp>

namespace durable {

std::string_view to_string(RunStatus status) {
  switch (status) {
    case RunStatus::queued: return "queued";
    case RunStatus::running: return "running";
    case RunStatus::sleeping: return "sleeping";
    case RunStatus::waiting: return "waiting";
    case RunStatus::completed: return "completed";
    case RunStatus::failed: return "failed";
    case RunStatus::cancelled: return "cancelled";
  }
  return "unknown";
}

RunStatus parse_run_status(std::string_view text) {
  for (RunStatus s : kAllRunStatuses) {
    if (to_string(s) == text) return s;
  }
  throw Error("unknown run status '" + std::string(text) + "'");
}

}  // namespace durable
