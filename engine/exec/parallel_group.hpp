// The bodies of one step.run_all / run_each / run_first call, run at once: some by the
// executor's workers, the rest by the execution that started them, which also collects the
// results as they come. Shared (by shared_ptr) with the tasks handed to the workers, so a
// body still running when the execution has moved on (run_first) ends harmlessly.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace durable {

class ParallelGroup {
 public:
  struct Outcome {
    size_t index = 0;
    std::optional<nlohmann::json> output;  // set if the body returned
    std::exception_ptr error;              // set if it threw
    std::chrono::steady_clock::duration took{};
  };

  explicit ParallelGroup(std::vector<std::function<nlohmann::json()>> bodies)
      : bodies_(std::move(bodies)), taken_(bodies_.size()) {
    for (auto& t : taken_) t.store(false);
  }

  // Runs body `index` unless another thread already took it. Thread-safe.
  void run(size_t index) {
    if (taken_[index].exchange(true)) return;
    Outcome outcome{.index = index};
    auto began = std::chrono::steady_clock::now();
    try {
      outcome.output = bodies_[index]();
    } catch (...) {
      outcome.error = std::current_exception();
    }
    outcome.took = std::chrono::steady_clock::now() - began;
    {
      std::lock_guard lock(mu_);
      finished_.push_back(std::move(outcome));
    }
    cv_.notify_all();
  }

  // The next body not yet taken by anyone, if any (for the collecting thread to run itself).
  std::optional<size_t> untaken() const {
    for (size_t i = 0; i < taken_.size(); ++i) {
      if (!taken_[i].load()) return i;
    }
    return std::nullopt;
  }

  // Waits for the next body to finish and returns how it did.
  Outcome next() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !finished_.empty(); });
    Outcome o = std::move(finished_.front());
    finished_.pop_front();
    return o;
  }

  // Whether a finished body's outcome waits to be collected.
  bool has_finished() {
    std::lock_guard lock(mu_);
    return !finished_.empty();
  }

 private:
  std::vector<std::function<nlohmann::json()>> bodies_;
  std::vector<std::atomic<bool>> taken_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Outcome> finished_;  // guarded by mu_
};

}  // namespace durable
