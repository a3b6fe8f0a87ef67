#include <durable/clock.hpp>

#include <vector>

namespace durable {

TimePoint SystemClock::now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

ManualClock::ManualClock(TimePoint start) : now_(start) {}

TimePoint ManualClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

int ManualClock::subscribe(std::function<void()> listener) {
  std::lock_guard lock(mu_);
  int id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void ManualClock::unsubscribe(int id) {
  {
    std::lock_guard lock(mu_);
    listeners_.erase(id);
  }
  // Wait out a notify() that may still be calling the listener we removed, so the caller can
  // destroy what the listener points at as soon as we return.
  std::lock_guard calls(calls_mu_);
}

void ManualClock::advance(std::chrono::milliseconds d) {
  {
    std::lock_guard lock(mu_);
    if (d.count() > 0) now_ += d;
  }
  notify();
}

void ManualClock::set(TimePoint t) {
  {
    std::lock_guard lock(mu_);
    if (t > now_) now_ = t;
  }
  notify();
}

void ManualClock::notify() {
  // Listeners are copied out so that one may take its own locks (the scheduler's) without
  // holding ours, and so that unsubscribe() from another thread cannot deadlock with us.
  std::lock_guard calls(calls_mu_);
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, fn] : listeners_) listeners.push_back(fn);
  }
  for (auto& fn : listeners) fn();
}

}  // namespace durable
