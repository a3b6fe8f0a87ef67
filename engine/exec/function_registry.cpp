#include "engine/exec/function_registry.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <durable/errors.hpp>

namespace durable {

namespace {

bool is_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '/';
}

void validate_function_id(std::string_view id) {
  if (id.empty()) throw Error("function id is empty: set FunctionOptions::id");
  if (id.size() > kMaxNameLength) throw Error(fmt::format("function id '{}...' is longer than 512 characters", id.substr(0, 32)));
  for (char c : id) {
    if (!is_id_char(c)) {
      throw Error(fmt::format("function id '{}' has the character '{}': use letters, digits, '-', '_', '.' and '/'", id, c));
    }
  }
}

void validate_trigger(std::string_view function_id, const Trigger& t) {
  if (!t.cron.empty()) {
    if (!t.event.empty() || !t.filter.empty()) {
      throw Error(fmt::format("function '{}': a trigger has both a cron schedule and an event", function_id));
    }
    return;
  }
  if (t.event.empty()) throw Error(fmt::format("function '{}': a trigger has an empty event name", function_id));
  if (t.event.size() > kMaxNameLength) {
    throw Error(fmt::format("function '{}': trigger event name is longer than 512 characters", function_id));
  }
  auto star = t.event.find('*');
  if (star != std::string::npos) {
    bool trailing_wildcard = star == t.event.size() - 1 && star >= 2 && t.event[star - 1] == '/';
    if (!trailing_wildcard) {
      throw Error(fmt::format(
          "function '{}': trigger '{}' is invalid: '*' is allowed only as a final \"prefix/*\"",
          function_id, t.event));
    }
  }
}

}  // namespace

void FunctionRegistry::add(FunctionOptions options, std::vector<Trigger> triggers, Handler handler) {
  validate_function_id(options.id);
  if (functions_.count(options.id)) throw Error(fmt::format("function '{}' is registered twice", options.id));
  if (!handler) throw Error(fmt::format("function '{}' has no handler", options.id));
  if (triggers.empty()) throw Error(fmt::format("function '{}' has no trigger", options.id));
  std::vector<std::optional<Expression>> filters;
  std::vector<CronSchedule> schedules;
  for (const Trigger& t : triggers) {
    validate_trigger(options.id, t);
    filters.emplace_back();
    if (!t.cron.empty()) {
      try {
        schedules.push_back(CronSchedule::parse(t.cron));
      } catch (const CronError& e) {
        throw Error(fmt::format("function '{}': the cron schedule '{}' is invalid: {}", options.id, t.cron, e.what()));
      }
      continue;
    }
    if (t.filter.empty()) continue;
    try {
      filters.back() = Expression::parse(t.filter);  // parsed once, here
    } catch (const ExpressionError& e) {
      throw Error(fmt::format("function '{}': the filter of trigger '{}' is invalid: {}", options.id, t.event, e.what()));
    }
  }
  if (options.retries < 0) throw Error(fmt::format("function '{}': retries is negative", options.id));
  if (options.backoff.delays.empty()) {
    throw Error(fmt::format("function '{}': the backoff table is empty", options.id));
  }
  if (options.timeouts.start.count() < 0 || options.timeouts.finish.count() < 0) {
    throw Error(fmt::format("function '{}': timeouts must not be negative (0: none)", options.id));
  }
  if (options.name.empty()) options.name = options.id;

  std::string failure_id = options.id + std::string(kFailureSuffix);
  if (options.on_failure && functions_.count(failure_id)) {
    throw Error(fmt::format("function '{}': its failure handler's id '{}' is already taken", options.id, failure_id));
  }

  FailureHandler on_failure = options.on_failure;
  std::string id = options.id;
  auto fn = std::make_unique<RegisteredFunction>();
  fn->options = std::move(options);
  fn->triggers = std::move(triggers);
  fn->filters = std::move(filters);
  fn->schedules = std::move(schedules);
  fn->handler = std::move(handler);
  functions_.emplace(id, std::move(fn));
  ids_.push_back(id);

  if (on_failure) {
    // The failure handler is a function of its own with no triggers: the engine starts its
    // runs itself, in the transaction that fails the original run. It keeps the original's
    // retry policy but has no failure handler of its own.
    auto failure = std::make_unique<RegisteredFunction>();
    failure->options = functions_.at(id)->options;
    failure->options.id = failure_id;
    failure->options.name = failure->options.name + " (on failure)";
    failure->options.on_failure = nullptr;
    failure->options.timeouts = {};  // the handler runs whenever the original failed
    failure->failure_handler = std::move(on_failure);
    functions_.emplace(failure_id, std::move(failure));
    ids_.push_back(failure_id);
  }
}

std::vector<FunctionRecord> FunctionRegistry::records(const std::string& owner, TimePoint now) const {
  std::vector<FunctionRecord> out;
  for (const std::string& id : ids_) {
    const RegisteredFunction& fn = *functions_.at(id);
    FunctionRecord r{.id = id, .name = fn.options.name, .registered_at = now, .registered_by = owner};
    r.triggers = fn.triggers;
    nlohmann::json backoff = nlohmann::json::array();
    for (auto d : fn.options.backoff.delays) backoff.push_back(d.count());
    r.config = {{"retries", fn.options.retries},
                {"backoff_ms", backoff},
                {"max_jitter_ms", fn.options.backoff.max_jitter.count()},
                {"on_failure", static_cast<bool>(fn.options.on_failure)},
                {"timeouts_ms", {{"start", fn.options.timeouts.start.count()}, {"finish", fn.options.timeouts.finish.count()}}},
                {"failure_handler_of", nullptr}};
    // Cron triggers are kept with the options: no event is matched against them.
    nlohmann::json crons = nlohmann::json::array();
    for (const Trigger& t : fn.triggers) {
      if (!t.cron.empty()) crons.push_back(t.cron);
    }
    r.config["cron"] = crons;
    if (fn.failure_handler) r.config["failure_handler_of"] = id.substr(0, id.size() - kFailureSuffix.size());
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::pair<std::string, CronSchedule>> FunctionRegistry::schedules() const {
  std::vector<std::pair<std::string, CronSchedule>> out;
  for (const std::string& id : ids_) {
    for (const CronSchedule& s : functions_.at(id)->schedules) out.emplace_back(id, s);
  }
  return out;
}

const RegisteredFunction* FunctionRegistry::find(std::string_view id) const {
  auto it = functions_.find(id);
  return it == functions_.end() ? nullptr : it->second.get();
}

std::vector<const RegisteredFunction*> FunctionRegistry::match(const Event& event) const {
  std::vector<const RegisteredFunction*> out;
  std::optional<nlohmann::json> event_json;  // built only if a filter needs it
  for (const std::string& id : ids_) {
    const RegisteredFunction* fn = functions_.find(id)->second.get();
    for (size_t i = 0; i < fn->triggers.size(); ++i) {
      if (!trigger_name_matches(fn->triggers[i].event, event.name)) continue;
      if (fn->filters[i] && !passes_filter(*fn->filters[i], event, event_json)) continue;
      out.push_back(fn);
      break;
    }
  }
  return out;
}

}  // namespace durable
