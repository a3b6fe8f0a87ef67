#include "engine/exec/journal_decoder.hpp"

#include <algorithm>
#include <climits>
#include <initializer_list>

#include <fmt/format.h>

#include "engine/base/json_input.hpp"
#include "engine/base/printable.hpp"

namespace durable {

namespace {

using nlohmann::json;

// One entry being decoded: its payload, and the error that names it.
class EntryReader {
 public:
  explicit EntryReader(const JournalEntry& e) : e_(e) {}

  [[noreturn]] void fail(const std::string& problem) const {
    std::string step = e_.step_key.empty() ? "" : fmt::format(" (step '{}')", printable(e_.step_key, 60));
    throw CorruptJournalError(e_.seq, fmt::format("corrupt journal entry {}{}: {}", e_.seq, step, problem));
  }

  // The payload as JSON. Stored payloads are the engine's own text, so no depth limit: the
  // parser is iterative, and a step's output is as deep as the step made it.
  json any() const {
    json payload = json::parse(e_.payload, nullptr, /*allow_exceptions=*/false);
    if (payload.is_discarded()) fail("the payload is not JSON");
    return payload;
  }

  json object() const {
    json payload = any();
    if (!payload.is_object()) fail("the payload is not a JSON object");
    return payload;
  }

  const std::string& step_key() const {
    if (e_.step_key.empty()) fail("a step entry without a step key");
    return e_.step_key;
  }

  int64_t integer(const json& object, const char* field) const {
    auto it = object.find(field);
    std::optional<int64_t> value = it == object.end() ? std::nullopt : json_int64(*it);
    if (!value) fail(fmt::format("\"{}\" must be an integer", field));
    return *value;
  }

  // `object`'s `fields`, each a string when present.
  void strings(const json& object, const char* name, std::initializer_list<const char*> fields) const {
    if (!object.is_object()) fail(fmt::format("\"{}\" must be a JSON object", name));
    for (const char* field : fields) {
      auto it = object.find(field);
      if (it != object.end() && !it->is_string()) fail(fmt::format("\"{}.{}\" must be a string", name, field));
    }
  }

  // `object`'s `field` as a bool: false when absent.
  bool flag(const json& object, const char* field) const {
    auto it = object.find(field);
    if (it == object.end()) return false;
    if (!it->is_boolean()) fail(fmt::format("\"{}\" must be true or false", field));
    return it->get<bool>();
  }

 private:
  const JournalEntry& e_;
};

void record(JournalMemo& memo, const std::string& key, StepKind kind) {
  if (memo.kinds.try_emplace(key, kind).second) memo.order.push_back(key);
}

}  // namespace

JournalMemo decode_journal(const std::vector<JournalEntry>& journal) {
  JournalMemo memo;
  for (const JournalEntry& e : journal) {
    EntryReader entry(e);
    switch (e.kind) {
      case JournalKind::run_started: {
        json payload = entry.object();
        if (payload.contains("copied")) {
          // The copies follow run_started in the same journal, so there cannot be more of them.
          memo.copied = entry.integer(payload, "copied");
          if (memo.copied < 0 || memo.copied >= static_cast<int64_t>(journal.size())) {
            entry.fail(fmt::format("\"copied\" is {}, but the journal has {} entries", memo.copied, journal.size()));
          }
        }
        if (auto it = payload.find("failure"); it != payload.end()) {
          entry.strings(*it, "failure", {"run_id", "function_id", "step", "name", "message"});
        }
        memo.started = std::move(payload);
        break;
      }
      case JournalKind::step_completed: {
        const std::string& key = entry.step_key();
        memo.outputs[key] = entry.any();
        record(memo, key, StepKind::run);
        break;
      }
      case JournalKind::step_failed: {
        const std::string& key = entry.step_key();
        // The count of failures is attempt + 1: an attempt must leave room for it.
        int attempt = e.attempt.value_or(0);
        if (attempt < 0 || attempt == INT_MAX) entry.fail(fmt::format("attempt {} is out of range", attempt));
        int& failures = memo.failed_attempts[key];
        failures = std::max(failures, attempt + 1);
        json payload = entry.object();
        if (entry.flag(payload, "final")) {
          auto error = payload.find("error");
          if (error == payload.end()) entry.fail("a final failure without \"error\"");
          entry.strings(*error, "error", {"name", "message"});
          memo.final_errors[key] = std::move(*error);
        }
        record(memo, key, StepKind::run);
        break;
      }
      case JournalKind::sleep_scheduled: {
        const std::string& key = entry.step_key();
        memo.sleeps[key] = from_millis(entry.integer(entry.object(), "until"));
        record(memo, key, StepKind::sleep);
        break;
      }
      case JournalKind::body_failed:
        ++memo.body_failures;
        break;
      case JournalKind::wait_started: {
        const std::string& key = entry.step_key();
        json payload = entry.object();
        entry.integer(payload, "since");
        entry.integer(payload, "until");
        bool invoke = payload.contains("invoke");
        if (invoke) {
          const json& target = payload["invoke"];
          entry.strings(target, "invoke", {"function", "run_id"});
          if (!target.contains("function") || !target.contains("run_id")) {
            entry.fail("\"invoke\" needs \"function\" and \"run_id\"");
          }
        }
        memo.waits[key] = std::move(payload);
        record(memo, key, invoke ? StepKind::invoke : StepKind::wait_for_event);
        break;
      }
      case JournalKind::wait_resolved: {
        const std::string& key = entry.step_key();
        // Every writer of wait_resolved (docs/journal.md) writes it after the wait_started of
        // its key, and replays copy both in order.
        auto wait = memo.waits.find(key);
        if (wait == memo.waits.end()) entry.fail("the wait is resolved but never started");
        json payload = entry.object();
        if (!entry.flag(payload, "timeout")) {
          auto event = payload.find("event");
          if (event == payload.end() || !event->is_object()) entry.fail("\"event\" must be a JSON object");
          if (wait->second.contains("invoke")) {
            // The child's durable/function.finished event, which invoke reads.
            auto data = event->find("data");
            if (data == event->end()) entry.fail("\"event.data\" is missing");
            entry.strings(*data, "event.data", {"status"});
            if (auto error = data->find("error"); error != data->end()) {
              entry.strings(*error, "event.data.error", {"name", "message"});
            }
          }
        }
        memo.resolved[key] = std::move(payload);
        break;
      }
      case JournalKind::run_completed:
      case JournalKind::run_failed:
      case JournalKind::run_cancelled:
        memo.finished = true;
        break;
      case JournalKind::run_resumed:
        // An operator resumed the run after fixing what made it fail: memoized steps stay,
        // and the step (or body) that failed gets a fresh set of attempts.
        memo.finished = false;
        memo.final_errors.clear();
        memo.failed_attempts.clear();
        memo.body_failures = 0;
        break;
      default:
        entry.fail(fmt::format("unknown kind {}", static_cast<int>(e.kind)));
    }
  }
  return memo;
}

}  // namespace durable
