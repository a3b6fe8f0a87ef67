#include "engine/exec/run_cache.hpp"

namespace durable {

RunCache::RunCache(size_t max_bytes) : max_bytes_(max_bytes) {}

size_t RunCache::size_of(const CachedRun& run) {
  size_t bytes = sizeof(CachedRun);
  for (const auto& e : run.journal) bytes += sizeof(JournalEntry) + e.payload.size() + e.step_key.size();
  return bytes;
}

void RunCache::put(const std::string& run_id, CachedRun run) {
  std::lock_guard lock(mu_);
  if (auto it = runs_.find(run_id); it != runs_.end()) erase(it);
  size_t bytes = size_of(run);
  order_.push_back(run_id);
  runs_.emplace(run_id, Entry{std::move(run), bytes, std::prev(order_.end())});
  bytes_ += bytes;
  while (bytes_ > max_bytes_ && !order_.empty()) erase(runs_.find(order_.front()));
}

std::optional<CachedRun> RunCache::take(const std::string& run_id, int64_t claimed_epoch) {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return std::nullopt;
  CachedRun run = std::move(it->second.run);
  erase(it);
  if (run.lease_epoch + 1 != claimed_epoch) return std::nullopt;  // someone else held it meanwhile
  return run;
}

void RunCache::erase(std::unordered_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  order_.erase(it->second.in_order);
  runs_.erase(it);
}

}  // namespace durable
