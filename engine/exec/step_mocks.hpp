// Step mocks of the test kit (durable/testing.hpp): results that given steps return instead of
// running their bodies. Empty in a real engine, where a lookup costs one atomic load.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace durable {

class StepMocks {
 public:
  // From now on, step `step_key` ("send", or "send:1" for its second call) of function
  // `function_id` returns `output` without running its body. Thread-safe.
  void set(std::string function_id, std::string step_key, nlohmann::json output) {
    std::lock_guard lock(mu_);
    outputs_[{std::move(function_id), std::move(step_key)}] = std::move(output);
    any_ = true;
  }

  // The mocked output of that step, if any. Thread-safe.
  std::optional<nlohmann::json> find(const std::string& function_id, const std::string& step_key) const {
    if (!any_.load(std::memory_order_relaxed)) return std::nullopt;
    std::lock_guard lock(mu_);
    auto it = outputs_.find({function_id, step_key});
    if (it == outputs_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, nlohmann::json> outputs_;  // guarded by mu_
  std::atomic<bool> any_{false};
};

}  // namespace durable
