// The run cache: the journals of runs this process suspended (asleep, or waiting for a
// retry), kept so that when it claims such a run again it need not read the journal and the
// event back (Temporal's sticky workflow cache does the same for workflow histories).
//
// A cached journal is used only if nobody else touched the run meanwhile, which the lease
// epoch tells exactly: only a lease holder appends to a journal (an operator's cancel or
// resume appends too, but advances the epoch in the same transaction), and every claim and
// every recovery advances the epoch by one. So if this process suspended the run at epoch e and
// now claims it at epoch e + 1, its journal is what this process left.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <durable/event.hpp>

#include "engine/store/store.hpp"

namespace durable {

struct CachedRun {
  int64_t lease_epoch = 0;            // the epoch under which the run was suspended
  std::vector<JournalEntry> journal;  // the whole journal at suspension
  std::shared_ptr<const Event> event;
};

class RunCache {
 public:
  // Keeps at most about `max_bytes` of journal payloads; the oldest entries go first.
  explicit RunCache(size_t max_bytes = 64 << 20);

  // Remembers `run` for `run_id`, replacing what was there. Thread-safe.
  void put(const std::string& run_id, CachedRun run);

  // Removes and returns the run if it was suspended at `claimed_epoch - 1`; drops it and
  // returns nullopt if it is stale. Thread-safe.
  std::optional<CachedRun> take(const std::string& run_id, int64_t claimed_epoch);

 private:
  struct Entry {
    CachedRun run;
    size_t bytes = 0;
    std::list<std::string>::iterator in_order;  // its place in order_
  };
  static size_t size_of(const CachedRun& run);
  void erase(std::unordered_map<std::string, Entry>::iterator it);  // needs mu_

  const size_t max_bytes_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> runs_;  // guarded by mu_
  std::list<std::string> order_;                 // guarded by mu_: ids, oldest put first
  size_t bytes_ = 0;                             // guarded by mu_
};

}  // namespace durable
