#include "engine/run_cache.hpp"

namespace durable {

RunCache::RunCache(size_t max_bytes) : max_bytes_(max_bytes) {}

size_t RunCache::size_of(const CachedRun& run) {
  size_t bytes = sizeof(CachedRun);
  for (const auto& e : run.journal) bytes += sizeof(JournalEntry) + e.payload.size() + e.step_key.size();
  return bytes;
}

void RunCache::put(const std::string& run_id, CachedRun run) {
  std::lock_guard lock(mu_);
  size_t bytes = size_of(run);
  if (auto it = runs_.find(run_id); it != runs_.end()) {
    bytes_ -= size_of(it->second);
    it->second = std::move(run);
  } else {
    runs_.emplace(run_id, std::move(run));
    order_.push_back(run_id);
  }
  bytes_ += bytes;
  evict();
}

std::optional<CachedRun> RunCache::take(const std::string& run_id, int64_t claimed_epoch) {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return std::nullopt;
  CachedRun run = std::move(it->second);
  runs_.erase(it);
  bytes_ -= size_of(run);
  // Its id stays in order_ until evict() reaches it and finds it gone.
  if (run.lease_epoch + 1 != claimed_epoch) return std::nullopt;  // someone else held it meanwhile
  return run;
}

void RunCache::evict() {
  while (bytes_ > max_bytes_ && !order_.empty()) {
    auto it = runs_.find(order_.front());
    order_.pop_front();
    if (it != runs_.end()) {
      bytes_ -= size_of(it->second);
      runs_.erase(it);
    }
  }
  if (order_.size() > 2 * runs_.size() + 1024) {
    // Forget the ids of runs taken since, so the queue stays proportional to the cache.
    std::deque<std::string> live;
    for (auto& id : order_) {
      if (runs_.count(id)) live.push_back(std::move(id));
    }
    order_ = std::move(live);
  }
}

}  // namespace durable
