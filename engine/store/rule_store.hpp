// RuleStore: what the store's write transactions mean, once for every backend. Ingest (sender
// ids and duplicates, trigger match and filters, run creation, wait resolution), journal
// commits (fencing, entries, transitions, sent events, waits), cancel, resume, replays and
// cron ticks are written here against StoreTx, the rows of one transaction. A backend
// (SqliteStore, ...) derives from it and supplies transact(), its SQL for StoreTx, and the
// store's other methods: claims, leases and reads, which are SQL and locking only.
//
//   class SqliteStore final : public RuleStore { ... void transact(...) override; ... };
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/base/ids.hpp"
#include "engine/events/expression.hpp"
#include "engine/store/store.hpp"
#include "engine/store/store_tx.hpp"

namespace durable {

class RuleStore : public Store {
 public:
  std::vector<Outcome> ingest(const std::vector<Item>& items, TimePoint now,
                              std::chrono::milliseconds dedup_window) final;
  CommitResult commit(const Commit& commit) final;
  WaitOutcome commit_wait(const Commit& commit, const WaitRegistration& wait) final;
  bool record_cron_tick(std::string_view function_id, std::string_view schedule, TimePoint tick,
                        const std::optional<Item>& item, TimePoint now) final;
  std::vector<Change> cancel_runs(const std::vector<std::string>& run_ids, TimePoint now) final;
  Change resume_run(std::string_view run_id, TimePoint now) final;
  void create_runs(const std::vector<NewRun>& runs, TimePoint now) final;
  void set_wait_listener(std::function<void(const std::vector<std::string>&)> listener) final;

 protected:
  // Runs `work` in one write transaction and commits it, durably per the store's settings,
  // before returning. The backend may run `work` more than once (a retry after a transient
  // failure, or alone after another caller's work failed in a shared group commit): work
  // starts by resetting whatever it computes. Throws StoreError.
  virtual void transact(const std::function<void(StoreTx&)>& work) = 0;

 private:
  // Functions whose runs a transaction queued by resolving their waits (told to the wait
  // listener after the commit, so the process claims its own at once).
  using Woken = std::vector<std::string>;
  struct WaitCandidate;

  Outcome insert_event(StoreTx& tx, const Item& item, TimePoint now, std::chrono::milliseconds dedup_window,
                       Woken& woken);
  void insert_run(StoreTx& tx, const NewRun& run, TimePoint now);
  void resolve_waits(StoreTx& tx, const Item& item, TimePoint now, Woken& woken);
  bool wait_accepts(StoreTx& tx, WaitCandidate& wait, const nlohmann::json& event_json);
  std::optional<StoredEvent> arrived_event(StoreTx& tx, const std::string& run_id, const WaitRegistration& wait);
  bool apply_commit(StoreTx& tx, const Commit& c, bool with_transition, Woken& woken);
  bool apply_transition(StoreTx& tx, const Commit& c, Woken& woken);
  void append_seized(StoreTx& tx, std::string_view run_id, JournalEntry entry);
  void tell_parent_cancelled(StoreTx& tx, const std::string& run_id, const RunRow& run, TimePoint now, Woken& woken);
  void notify_woken(const Woken& function_ids);
  // An expression recorded in the store (a trigger filter, a wait's condition or match
  // field), parsed once per text; nullptr if it cannot be parsed.
  const Expression* parsed_filter(const std::string& text);

  IdGenerator ids_;  // for the runs that ingest starts for recorded functions
  std::function<void(const std::vector<std::string>&)> wait_listener_;
  std::mutex filters_mu_;
  std::unordered_map<std::string, std::optional<Expression>> filters_;  // guarded by filters_mu_
};

}  // namespace durable
