#include "engine/store/rule_store.hpp"

#include <algorithm>
#include <cassert>

#include <nlohmann/json.hpp>

#include "engine/base/crash_points.hpp"
#include "engine/base/json_text.hpp"
#include "engine/base/log.hpp"
#include "engine/events/lifecycle_events.hpp"
#include "engine/events/triggers.hpp"

namespace durable {

namespace {

// The payload of a wait_resolved entry for an event (docs/journal.md).
std::string wait_resolved_payload(const std::string& event_id, const nlohmann::json& event) {
  return to_json_text({{"event_id", event_id}, {"event", event}});
}

}  // namespace

// A registered wait, as ingest and a wait's registration consider it.
struct RuleStore::WaitCandidate {
  std::string run_id, step_key, match_path, match_value, condition, trigger_event_id;
  std::optional<nlohmann::json> trigger_json;  // loaded when the condition needs it

  const nlohmann::json& trigger_event(StoreTx& tx) {
    if (!trigger_json) {
      std::optional<StoredEvent> e = tx.find_event(trigger_event_id);
      trigger_json = e ? nlohmann::json(e->event) : nlohmann::json::object();
    }
    return *trigger_json;
  }
};

void RuleStore::set_wait_listener(std::function<void(const std::vector<std::string>&)> listener) {
  wait_listener_ = std::move(listener);
}

void RuleStore::notify_woken(const Woken& function_ids) {
  if (!function_ids.empty() && wait_listener_) wait_listener_(function_ids);
}

std::vector<IngestStore::Outcome> RuleStore::ingest(const std::vector<Item>& items, TimePoint now,
                                                    std::chrono::milliseconds dedup_window) {
  std::vector<Outcome> outcomes;
  Woken woken;
  transact([&](StoreTx& tx) {
    outcomes.clear();
    woken.clear();
    for (const Item& item : items) outcomes.push_back(insert_event(tx, item, now, dedup_window, woken));
    crash_point(CrashPoint::ingest_after_insert);
  });
  notify_woken(woken);
  return outcomes;
}

IngestStore::Outcome RuleStore::insert_event(StoreTx& tx, const Item& item, TimePoint now,
                                             std::chrono::milliseconds dedup_window, Woken& woken) {
  // Before the event is stored: a wait registering for this name meanwhile either waits for
  // this transaction and then finds the event, or is found by resolve_waits below.
  tx.lock_event_name(item.event.name, StoreTx::LockMode::shared);
  bool duplicate = false;
  if (!item.event.id.empty()) {
    tx.lock_dedup_key(item.event.id);
    duplicate = tx.dedup_key_seen(item.event.id, now - dedup_window);
  }
  // An event id given by the sender (a retried send with the same id seed) that is already
  // stored: the first send's event and runs stand.
  if (!tx.insert_event(item.event_id, item.event, duplicate, now)) return Outcome::already_stored;
  if (duplicate) return Outcome::duplicate;
  for (const NewRun& run : item.runs) insert_run(tx, run, now);
  // Functions recorded by other processes (or not matched by the caller) get queued runs.
  std::vector<std::string> started;  // a function with several matching triggers starts once
  for (const NewRun& r : item.runs) started.push_back(r.function_id);
  std::optional<nlohmann::json> event_json;  // built only if a filter needs it
  for (const RecordedTrigger& t : tx.triggers_matching(item.event.name)) {
    if (std::find(started.begin(), started.end(), t.function_id) != started.end()) continue;
    if (!t.filter.empty()) {
      const Expression* filter = parsed_filter(t.filter);
      if (!filter || !passes_filter(*filter, item.event, event_json)) continue;
    }
    insert_run(tx, NewRun{.id = ids_.next(now), .function_id = t.function_id, .event_id = item.event_id}, now);
    started.push_back(t.function_id);
  }
  resolve_waits(tx, item, now, woken);
  return Outcome::accepted;
}

void RuleStore::insert_run(StoreTx& tx, const NewRun& run, TimePoint now) {
  tx.insert_run(run, now);
  tx.append(run.id, JournalEntry{.seq = 0, .kind = JournalKind::run_started, .payload = run.started_payload,
                                 .recorded_at = now});
  for (size_t i = 0; i < run.entries.size(); ++i) {
    JournalEntry e = run.entries[i];
    e.seq = static_cast<int64_t>(i) + 1;
    if (e.recorded_at == TimePoint{}) e.recorded_at = now;
    tx.append(run.id, e);
  }
}

bool RuleStore::wait_accepts(StoreTx& tx, WaitCandidate& wait, const nlohmann::json& event_json) {
  if (!wait.match_path.empty()) {
    const Expression* field = parsed_filter("async." + wait.match_path);
    if (!field) return false;
    nlohmann::json value = field->evaluate({{"async", &event_json}});
    // A missing field matches nothing, not another event's missing field.
    if (value.is_null() || match_text(value) != wait.match_value) return false;
  }
  if (wait.condition.empty()) return true;
  const Expression* condition = parsed_filter(wait.condition);
  return condition && condition->matches({{"event", &wait.trigger_event(tx)}, {"async", &event_json}});
}

void RuleStore::resolve_waits(StoreTx& tx, const Item& item, TimePoint now, Woken& woken) {
  // The match paths of the waits for this name (usually one; none when nothing waits for the
  // name, the common case), then the waits whose match value is this event's field there.
  std::vector<std::string> paths = tx.wait_match_paths(item.event.name);
  if (paths.empty()) return;
  nlohmann::json event_json = item.event;
  std::vector<WaitCandidate> candidates;
  for (const std::string& path : paths) {
    std::string value;
    if (!path.empty()) {
      const Expression* field = parsed_filter("async." + path);
      if (!field) continue;
      nlohmann::json v = field->evaluate({{"async", &event_json}});
      if (v.is_null()) continue;
      value = match_text(v);
    }
    for (WaitRow& w : tx.waits_matching(item.event.name, path, value, now)) {
      candidates.push_back(WaitCandidate{.run_id = std::move(w.run_id), .step_key = std::move(w.step_key),
                                         .match_path = path, .match_value = value,
                                         .condition = std::move(w.condition),
                                         .trigger_event_id = std::move(w.trigger_event_id)});
    }
  }
  if (candidates.empty()) return;
  std::string payload = wait_resolved_payload(item.event_id, event_json);
  for (WaitCandidate& w : candidates) {
    if (!wait_accepts(tx, w, event_json)) continue;
    std::optional<RunRow> run = tx.lock_run(w.run_id);
    if (!run) continue;
    append_seized(tx, w.run_id, JournalEntry{.kind = JournalKind::wait_resolved, .step_key = w.step_key,
                                             .payload = payload, .recorded_at = now});
    tx.delete_wait(w.run_id, w.step_key);
    // Normally the run is waiting. It may be held by a worker that claimed it for the wait's
    // timeout a moment ago: the new epoch fences that worker out, so its timeout is never
    // recorded, and the next claim replays the run with this event.
    if (run->status == RunStatus::waiting || run->status == RunStatus::running) {
      tx.reset_run(w.run_id, RunReset{.status = RunStatus::queued, .available_at = now}, now);
    }
    woken.push_back(run->function_id);
  }
}

void RuleStore::append_seized(StoreTx& tx, std::string_view run_id, JournalEntry entry) {
  // Only for writers other than the lease holder (operators, a resolved wait), under
  // lock_run, whose reset (or a finished run, which nobody holds) keeps the holder out.
  entry.seq = tx.next_seq(run_id);
  tx.append(run_id, entry);
}

const Expression* RuleStore::parsed_filter(const std::string& text) {
  std::lock_guard lock(filters_mu_);
  auto it = filters_.find(text);
  if (it == filters_.end()) {
    std::optional<Expression> parsed;
    try {
      parsed = Expression::parse(text);
    } catch (const ExpressionError& e) {
      // Recorded by a process whose registration accepted it (a newer durable, say): this
      // one cannot evaluate it, so the trigger starts nothing here rather than everything.
      log(LogLevel::warn, "a recorded trigger filter cannot be parsed; it matches no event here",
          {{"filter", text}, {"error", e.what()}});
    }
    it = filters_.emplace(text, std::move(parsed)).first;
  }
  return it->second ? &*it->second : nullptr;
}

bool RuleStore::apply_commit(StoreTx& tx, const Commit& c, bool with_transition, Woken& woken) {
  // Fencing: the run must still be running under our lease epoch. The check is folded into
  // the first write, so the common commit (one step's result) is a single statement, and a
  // refused check changes nothing. Only the lease holder appends (others take the run by
  // advancing the epoch in their transaction, see append_seized), and the epoch changes with
  // every claim, so the holder's numbering is the journal's; the journal's key (run_id, seq)
  // refuses an entry written twice.
  size_t first_plain_entry = 0;
  if (with_transition && c.transition) {
    if (!apply_transition(tx, c, woken)) return false;
  } else if (!c.entries.empty()) {
    if (!tx.append_if_held(c.run_id, c.lease_epoch, c.entries[0])) return false;
    first_plain_entry = 1;
  } else if (!tx.is_held(c.run_id, c.lease_epoch)) {
    return false;
  }
  for (size_t i = 0; i < c.entries.size(); ++i) {
    const JournalEntry& e = c.entries[i];
    if (i >= first_plain_entry) tx.append(c.run_id, e);
    if (e.kind == JournalKind::wait_resolved) tx.delete_wait(c.run_id, e.step_key);
  }
  // A run that ends with a wait still registered (one it never needed the result of, in a
  // parallel group) leaves nothing behind.
  if (with_transition && c.transition && is_finished(c.transition->status)) tx.delete_waits(c.run_id);
  for (const NewRun& run : c.new_runs) insert_run(tx, run, c.now);
  for (const Item& item : c.new_events) insert_event(tx, item, c.now, c.dedup_window, woken);
  return true;
}

bool RuleStore::apply_transition(StoreTx& tx, const Commit& c, Woken& woken) {
  const RunTransition& t = *c.transition;
  assert(t.status != RunStatus::running && "a transition always ends the lease");
  if (!tx.finish_lease(c.run_id, c.lease_epoch, t, c.now)) return false;
  // A run that cancels itself (its start timeout) tells an invoking parent, as cancel_runs does.
  if (t.status == RunStatus::cancelled) {
    if (std::optional<RunRow> run = tx.lock_run(c.run_id)) tell_parent_cancelled(tx, c.run_id, *run, c.now, woken);
  }
  return true;
}

JournalStore::CommitResult RuleStore::commit(const Commit& c) {
  CommitResult result = CommitResult::committed;
  Woken woken;
  transact([&](StoreTx& tx) {
    woken.clear();
    crash_point(CrashPoint::before_journal_write);
    result = apply_commit(tx, c, true, woken) ? CommitResult::committed : CommitResult::lease_lost;
    crash_point(CrashPoint::after_journal_write);
  });
  notify_woken(woken);
  return result;
}

JournalStore::WaitOutcome RuleStore::commit_wait(const Commit& c, const WaitRegistration& wait) {
  assert(c.transition && c.transition->status == RunStatus::waiting);
  WaitOutcome outcome;
  Woken woken;
  transact([&](StoreTx& tx) {
    outcome = WaitOutcome{};
    woken.clear();
    // The entries first, the transition only once we know no event is already there.
    crash_point(CrashPoint::before_journal_write);
    if (!apply_commit(tx, c, false, woken)) {
      outcome.result = CommitResult::lease_lost;
      return;
    }
    crash_point(CrashPoint::after_journal_write);
    // Every ingest of this name that began before now has committed once this returns, and
    // any that begins after it sees the registration below (see StoreTx's lock points).
    tx.lock_event_name(wait.event, StoreTx::LockMode::exclusive);
    if (std::optional<StoredEvent> arrived = arrived_event(tx, c.run_id, wait)) {
      tx.append(c.run_id, JournalEntry{.seq = tx.next_seq(c.run_id), .kind = JournalKind::wait_resolved,
                                       .step_key = wait.step_key,
                                       .payload = wait_resolved_payload(arrived->id, nlohmann::json(arrived->event)),
                                       .recorded_at = c.now});
      outcome.arrived = std::move(arrived);
      return;
    }
    tx.insert_wait(c.run_id, wait);
    apply_transition(tx, c, woken);  // fenced above
  });
  notify_woken(woken);
  return outcome;
}

std::optional<StoredEvent> RuleStore::arrived_event(StoreTx& tx, const std::string& run_id,
                                                    const WaitRegistration& wait) {
  // The events of that name received since the wait began (few: it began moments ago).
  WaitCandidate candidate{.run_id = run_id, .step_key = wait.step_key, .match_path = wait.match_path,
                          .match_value = wait.match_value, .condition = wait.condition,
                          .trigger_event_id = wait.trigger_event_id};
  for (StoredEvent& e : tx.events_since(wait.event, wait.since)) {
    if (wait_accepts(tx, candidate, nlohmann::json(e.event))) return std::move(e);
  }
  return std::nullopt;
}

bool RuleStore::record_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick,
                                 const std::optional<Item>& item, TimePoint now) {
  bool recorded = false;
  Woken woken;
  transact([&](StoreTx& tx) {
    woken.clear();
    recorded = tx.advance_cron_tick(function_id, schedule, tick);
    if (recorded && item) insert_event(tx, *item, now, std::chrono::milliseconds(0), woken);
  });
  notify_woken(woken);
  return recorded;
}

void RuleStore::tell_parent_cancelled(StoreTx& tx, const std::string& run_id, const RunRow& run, TimePoint now,
                                      Woken& woken) {
  if (run.parent_run_id.empty()) return;
  // The invoking run waits for this run's durable/function.finished, which a run emits when
  // it completes or fails by itself: a cancelled one emits it here, so the parent's invoke
  // throws now rather than at its timeout.
  nlohmann::json data = function_finished_data(
      FinishedRun{.run_id = run_id, .function_id = run.function_id, .event_id = run.event_id,
                  .event_name = kFunctionInvokedEvent},
      "cancelled", "error", {{"name", "Cancelled"}, {"message", "the invoked run was cancelled"}});
  Item item{ids_.next(now), Event{.name = kFunctionFinishedEvent, .data = std::move(data), .ts = now}, {}};
  insert_event(tx, item, now, std::chrono::milliseconds(0), woken);
}

std::vector<RunAdmin::Change> RuleStore::cancel_runs(const std::vector<std::string>& run_ids, TimePoint now) {
  std::vector<Change> results;
  Woken woken;
  transact([&](StoreTx& tx) {
    results.clear();
    woken.clear();
    for (const std::string& id : run_ids) {
      std::optional<RunRow> run = tx.lock_run(id);
      if (!run) {
        results.push_back(Change::not_found);
        continue;
      }
      if (is_finished(run->status)) {
        results.push_back(Change::refused);
        continue;
      }
      tx.reset_run(id, RunReset{.status = RunStatus::cancelled, .ended_at = now}, now);
      append_seized(tx, id, JournalEntry{.kind = JournalKind::run_cancelled, .payload = "{}", .recorded_at = now});
      tx.delete_waits(id);
      tell_parent_cancelled(tx, id, *run, now, woken);
      results.push_back(Change::done);
    }
  });
  notify_woken(woken);
  return results;
}

RunAdmin::Change RuleStore::resume_run(std::string_view run_id, TimePoint now) {
  Change result = Change::done;
  transact([&](StoreTx& tx) {
    std::optional<RunRow> run = tx.lock_run(run_id);
    if (!run) {
      result = Change::not_found;
      return;
    }
    if (run->status != RunStatus::failed && run->status != RunStatus::cancelled) {
      result = Change::refused;
      return;
    }
    result = Change::done;
    tx.reset_run(run_id, RunReset{.status = RunStatus::queued, .available_at = now, .attempt = 0}, now);
    append_seized(tx, run_id, JournalEntry{.kind = JournalKind::run_resumed, .payload = "{}", .recorded_at = now});
  });
  return result;
}

void RuleStore::create_runs(const std::vector<NewRun>& runs, TimePoint now) {
  transact([&](StoreTx& tx) {
    for (const NewRun& run : runs) insert_run(tx, run, now);
  });
}

}  // namespace durable
