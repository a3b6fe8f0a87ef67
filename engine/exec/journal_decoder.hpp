// Decoding a run's journal (docs/journal.md) into what its replay reads: each step's output,
// final error and failed attempts, sleeps' deadlines, waits and their outcomes, and the steps
// in the order the journal first records them.
//
//   JournalMemo memo = decode_journal(store.load_journal(run_id));  // or CorruptJournalError
//
// Entries come from the store, but a damaged file, a hand edit or another version of the
// engine can put anything in a payload. Every field a replay reads is checked here, so that a
// bad entry is one documented error, raised before the function runs, rather than whatever
// nlohmann throws from the middle of an execution.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/errors.hpp>
#include <durable/runtime.hpp>

#include "engine/store/store.hpp"

namespace durable {

// A journal entry that is not what docs/journal.md specifies for its kind: a payload that is
// not JSON, a field missing or of the wrong type, a number out of range, a wait resolved that
// never started. The run cannot be replayed as it is; retrying changes nothing.
class CorruptJournalError : public Error {
 public:
  CorruptJournalError(int64_t seq, const std::string& message) : Error(message), seq_(seq) {}
  int64_t seq() const { return seq_; }  // the entry's JournalEntry::seq

 private:
  int64_t seq_;
};

// The journal, indexed by step key. Guarantees, beyond "decoded from the entries": the shapes
// the comments give hold, so readers may use at() and value() on them without a type check.
struct JournalMemo {
  // run_started's payload: an object; "failure", if present, an object whose "run_id",
  // "function_id", "step", "name" and "message" are strings when present.
  nlohmann::json started = nlohmann::json::object();
  int64_t copied = 0;  // run_started's "copied": entries copied from a replayed run, 0 to size - 1
  std::unordered_map<std::string, nlohmann::json> outputs;       // step_completed: any JSON
  // step_failed with "final": the error, an object whose "name" and "message" are strings when present.
  std::unordered_map<std::string, nlohmann::json> final_errors;
  std::unordered_map<std::string, int> failed_attempts;          // failures so far (attempt + 1 of the last)
  std::unordered_map<std::string, TimePoint> sleeps;             // sleep_scheduled's "until"
  // wait_started: an object with integer "since" and "until" (int64); for an invoke, "invoke"
  // is an object with string "function" and "run_id".
  std::unordered_map<std::string, nlohmann::json> waits;
  // wait_resolved, of a key with a wait_started before it: an object, either with "timeout":
  // true or with an object "event"; for an invoke, that event has an object "data" whose
  // "status" is a string and "error" an object with string "name" and "message", when present.
  std::unordered_map<std::string, nlohmann::json> resolved;
  int body_failures = 0;  // body_failed entries since the last run_resumed
  bool finished = false;  // run_completed, run_failed or run_cancelled, not followed by run_resumed
  std::vector<std::string> order;                    // step keys in the order first recorded
  std::unordered_map<std::string, StepKind> kinds;   // their kinds, as far as the journal tells
                                                     // (step.run and step.send_event both record run)
};

// Decodes `journal` (in seq order). A run_resumed entry clears the final errors, failed
// attempts and body failures before it. Throws CorruptJournalError naming the entry's seq and
// what is wrong; payloads the replay does not read (outcomes, retry times) are not checked.
JournalMemo decode_journal(const std::vector<JournalEntry>& journal);

}  // namespace durable
