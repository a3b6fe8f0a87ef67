#include "engine/store/store.hpp"

#include <iterator>

namespace durable {

namespace {

constexpr const char* kJournalKinds[] = {"run_started", "step_completed", "step_failed",
                                         "sleep_scheduled", "body_failed", "run_completed",
                                         "run_failed",  "run_cancelled",  "run_resumed",
                                         "wait_started", "wait_resolved"};

}  // namespace

std::string_view to_string(JournalKind kind) { return kJournalKinds[static_cast<int>(kind)]; }

JournalKind parse_journal_kind(std::string_view text) {
  for (size_t i = 0; i < std::size(kJournalKinds); ++i) {
    if (text == kJournalKinds[i]) return static_cast<JournalKind>(i);
  }
  throw StoreError(StoreError::Kind::conflict, "unknown journal entry kind '" + std::string(text) + "'");
}

}  // namespace durable
