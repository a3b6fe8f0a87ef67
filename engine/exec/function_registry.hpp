// The functions registered in this process, and which of them an event starts.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <durable/function.hpp>

#include "engine/events/cron.hpp"
#include "engine/events/expression.hpp"
#include "engine/events/triggers.hpp"
#include "engine/store/store.hpp"

namespace durable {

struct RegisteredFunction {
  FunctionOptions options;
  std::vector<Trigger> triggers;
  std::vector<std::optional<Expression>> filters;  // parsed Trigger::filter, one per trigger
  std::vector<CronSchedule> schedules;             // parsed Trigger::cron, of the cron triggers
  Handler handler;                 // the body (unset for failure handlers)
  FailureHandler failure_handler;  // set only for "<id>-failure" functions
};

class FunctionRegistry {
 public:
  // Suffix of the function that runs a function's on_failure handler.
  static constexpr std::string_view kFailureSuffix = "-failure";

  // Validates and adds a function (and, when it has on_failure, its "<id>-failure" function).
  // Throws durable::Error saying what is wrong: a bad or duplicate id, no triggers, a bad
  // trigger, negative retries, an empty backoff table. Not thread-safe: register before start.
  void add(FunctionOptions options, std::vector<Trigger> triggers, Handler handler);

  // nullptr when `id` is not registered here.
  const RegisteredFunction* find(std::string_view id) const;

  // The functions with a trigger matching `event` (its name, and its filter if any), each
  // once, in registration order.
  std::vector<const RegisteredFunction*> match(const Event& event) const;

  // The cron schedules of every function, with the function's id.
  std::vector<std::pair<std::string, CronSchedule>> schedules() const;

  // Every registered id, failure handlers included.
  const std::vector<std::string>& ids() const { return ids_; }

  // The functions as the store records them (see FunctionStore), registered by `owner`.
  std::vector<FunctionRecord> records(const std::string& owner, TimePoint now) const;

 private:
  std::map<std::string, std::unique_ptr<RegisteredFunction>, std::less<>> functions_;
  std::vector<std::string> ids_;  // registration order
};

}  // namespace durable
