#include "engine/http/api_json.hpp"

#include <map>

namespace durable {

namespace {

nlohmann::json millis_or_null(const std::optional<TimePoint>& t) {
  return t ? nlohmann::json(to_millis(*t)) : nlohmann::json(nullptr);
}

nlohmann::json parse_payload(const JournalEntry& e) {
  return nlohmann::json::parse(e.payload, nullptr, /*allow_exceptions=*/false);
}

// One attempt of a run step, for a timeline: when its body started and when its result was
// recorded. (Entries written before started_at was recorded have none.) Numbered from 0 over
// the whole run, resumes included (the journal's attempt numbers start again at a resume).
nlohmann::json span_json(const JournalEntry& e, size_t attempt, const char* outcome) {
  return {{"attempt", attempt},
          {"started_at", millis_or_null(e.started_at)},
          {"ended_at", to_millis(e.recorded_at)},
          {"outcome", outcome}};
}

}  // namespace

nlohmann::json run_json(const Run& run) {
  return {{"id", run.id},
          {"function_id", run.function_id},
          {"event_id", run.event_id},
          {"status", to_string(run.status)},
          {"attempt", run.attempt},
          {"created_at", to_millis(run.created_at)},
          {"started_at", millis_or_null(run.started_at)},
          {"ended_at", millis_or_null(run.ended_at)},
          {"available_at", to_millis(run.available_at)},
          {"output", run.output},
          {"error", run.error},
          {"replay_of", run.replay_of.empty() ? nlohmann::json(nullptr) : nlohmann::json(run.replay_of)},
          {"parent_run_id", run.parent_run_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(run.parent_run_id)}};
}

nlohmann::json event_json(const StoredEvent& e) {
  return {{"id", e.id},
          {"name", e.event.name},
          {"data", e.event.data},
          {"user", e.event.user},
          {"ts", to_millis(e.event.ts)},
          {"v", e.event.v.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.event.v)},
          {"sender_id", e.event.id.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.event.id)},
          {"duplicate", e.duplicate},
          {"received_at", to_millis(e.received_at)}};
}

nlohmann::json function_json(const FunctionRecord& f) {
  nlohmann::json j = f.config.is_object() ? f.config : nlohmann::json::object();
  j.erase("cron");  // listed with the triggers
  j["id"] = f.id;
  j["name"] = f.name;
  nlohmann::json triggers = nlohmann::json::array();
  for (const auto& t : f.triggers) {
    nlohmann::json trigger = t.cron.empty() ? nlohmann::json{{"event", t.event}} : nlohmann::json{{"cron", t.cron}};
    if (!t.filter.empty()) trigger["filter"] = t.filter;
    triggers.push_back(std::move(trigger));
  }
  j["triggers"] = triggers;
  j["registered_at"] = to_millis(f.registered_at);
  j["registered_by"] = f.registered_by;
  return j;
}

nlohmann::json steps_json(const std::vector<JournalEntry>& journal, TimePoint now) {
  // Whether the run had ended, from the journal itself, so the answer is consistent even if
  // the run's row was read at another moment.
  bool run_finished = false;
  for (const JournalEntry& e : journal) {
    if (e.kind == JournalKind::run_completed || e.kind == JournalKind::run_failed ||
        e.kind == JournalKind::run_cancelled) {
      run_finished = true;
    } else if (e.kind == JournalKind::run_resumed) {
      run_finished = false;
    }
  }
  std::vector<std::string> order;
  std::map<std::string, nlohmann::json> steps;
  bool cancelled = false;  // a run_cancelled entry not followed by run_resumed
  int64_t cancelled_at = 0;
  auto step = [&](const JournalEntry& e, const char* kind) -> nlohmann::json& {
    auto [it, inserted] = steps.try_emplace(e.step_key);
    if (inserted) {
      order.push_back(e.step_key);
      it->second = {{"key", e.step_key}, {"kind", kind},         {"status", nullptr},
                    {"attempts", 0},     {"started_at", nullptr}, {"ended_at", nullptr},
                    {"output", nullptr}, {"error", nullptr},      {"retry_at", nullptr},
                    {"until", nullptr},  {"attempt_errors", nlohmann::json::array()},
                    {"spans", nlohmann::json::array()}};
    }
    nlohmann::json& s = it->second;
    if (s["started_at"].is_null() && e.started_at) s["started_at"] = to_millis(*e.started_at);
    return s;
  };
  for (const JournalEntry& e : journal) {
    switch (e.kind) {
      case JournalKind::step_completed: {
        nlohmann::json& s = step(e, "run");
        s["status"] = "completed";
        s["output"] = parse_payload(e);
        s["error"] = nullptr;
        s["retry_at"] = nullptr;
        s["attempts"] = s["attempts"].get<int>() + 1;
        s["ended_at"] = to_millis(e.recorded_at);
        s["spans"].push_back(span_json(e, s["spans"].size(), "completed"));
        break;
      }
      case JournalKind::step_failed: {
        nlohmann::json& s = step(e, "run");
        nlohmann::json payload = parse_payload(e);
        nlohmann::json error = payload.is_object() ? payload.value("error", nlohmann::json()) : nlohmann::json();
        s["attempts"] = s["attempts"].get<int>() + 1;
        s["attempt_errors"].push_back({{"attempt", e.attempt.value_or(0)}, {"error", error}, {"at", to_millis(e.recorded_at)}});
        s["error"] = error;
        s["spans"].push_back(span_json(e, s["spans"].size(), "failed"));
        if (payload.is_object() && payload.value("final", false)) {
          s["status"] = "failed";
          s["retry_at"] = nullptr;
          s["ended_at"] = to_millis(e.recorded_at);
        } else {
          s["status"] = "retrying";
          s["retry_at"] = payload.is_object() ? payload.value("retry_at", nlohmann::json()) : nlohmann::json();
        }
        break;
      }
      case JournalKind::sleep_scheduled: {
        nlohmann::json& s = step(e, "sleep");
        nlohmann::json payload = parse_payload(e);
        int64_t until = payload.is_object() ? payload.value("until", int64_t{0}) : 0;
        s["until"] = until;
        s["started_at"] = to_millis(e.recorded_at);
        bool pending = !run_finished && until > to_millis(now);
        s["status"] = pending ? "sleeping" : "completed";
        s["ended_at"] = pending ? nlohmann::json(nullptr) : nlohmann::json(until);
        break;
      }
      case JournalKind::wait_started: {
        nlohmann::json payload = parse_payload(e);
        if (!payload.is_object()) break;
        bool invoke = payload.contains("invoke");
        nlohmann::json& s = step(e, invoke ? "invoke" : "wait_for_event");
        s["started_at"] = to_millis(e.recorded_at);
        s["until"] = payload.value("until", nlohmann::json());
        s["status"] = run_finished ? "cancelled" : "waiting";
        if (invoke) {
          s["invoked_run_id"] = payload["invoke"].value("run_id", nlohmann::json());
          s["invoked_function"] = payload["invoke"].value("function", nlohmann::json());
        } else {
          s["waiting_for"] = {{"event", payload.value("event", "")},
                              {"match", payload.value("match", "")},
                              {"if", payload.value("if", "")}};
        }
        break;
      }
      case JournalKind::wait_resolved: {
        nlohmann::json payload = parse_payload(e);
        nlohmann::json& s = step(e, "wait_for_event");
        s["ended_at"] = to_millis(e.recorded_at);
        s["attempts"] = 1;
        if (!payload.is_object() || payload.value("timeout", false)) {
          s["status"] = s["kind"] == "invoke" ? "failed" : "completed";
          s["timed_out"] = true;
          if (s["kind"] == "invoke") {
            s["error"] = {{"name", "InvokeTimeout"},
                          {"message", "the invoked run of '" + s.value("invoked_function", std::string()) +
                                          "' did not finish in time"}};
          }
          break;
        }
        s["timed_out"] = false;
        const nlohmann::json& event = payload.value("event", nlohmann::json::object());
        if (s["kind"] == "invoke") {
          // The child's durable/function.finished event: its status and output or error.
          const nlohmann::json& data = event.value("data", nlohmann::json::object());
          bool completed = data.value("status", "") == "completed";
          s["status"] = completed ? "completed" : "failed";
          s[completed ? "output" : "error"] = data.value(completed ? "output" : "error", nlohmann::json());
        } else {
          s["status"] = "completed";
          s["output"] = {{"event_id", payload.value("event_id", nlohmann::json())}, {"event", event}};
        }
        break;
      }
      case JournalKind::run_cancelled:
        cancelled = true;
        cancelled_at = to_millis(e.recorded_at);
        break;
      case JournalKind::run_resumed:
        cancelled = false;
        // What failed for good is tried again now, with fresh attempts.
        for (auto& [key, s] : steps) {
          if (s["status"] != "failed") continue;
          s["status"] = "retrying";
          s["retry_at"] = to_millis(e.recorded_at);
          s["ended_at"] = nullptr;
        }
        break;
      default:
        break;
    }
  }
  // A step the cancelled run was waiting on (a sleep not over, a retry not yet made) never
  // ended by itself: it was cancelled with the run.
  if (run_finished && cancelled) {
    for (auto& [key, s] : steps) {
      bool waiting = s["status"] == "retrying" || (s["kind"] == "sleep" && s["until"].get<int64_t>() > cancelled_at);
      if (!waiting) continue;
      s["status"] = "cancelled";
      s["ended_at"] = cancelled_at;
      s["retry_at"] = nullptr;
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& key : order) out.push_back(std::move(steps[key]));
  return out;
}

nlohmann::json body_errors_json(const std::vector<JournalEntry>& journal) {
  nlohmann::json out = nlohmann::json::array();
  for (const JournalEntry& e : journal) {
    if (e.kind != JournalKind::body_failed) continue;
    nlohmann::json payload = parse_payload(e);
    out.push_back({{"attempt", e.attempt.value_or(0)},
                   {"error", payload.is_object() ? payload.value("error", nlohmann::json()) : nlohmann::json()},
                   {"at", to_millis(e.recorded_at)}});
  }
  return out;
}

}  // namespace durable
