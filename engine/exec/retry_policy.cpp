#include "engine/exec/retry_policy.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <typeinfo>

#include <durable/errors.hpp>

namespace durable {

namespace {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

// The dynamic type of the exception being handled: for `throw 42` too, where no
// std::exception tells us anything.
std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type ? demangle(type->name()) : "unknown";
}

}  // namespace

ErrorInfo describe_error(std::exception_ptr error) {
  ErrorInfo info;
  try {
    std::rethrow_exception(error);
  } catch (const RetryAfterError& e) {
    info = {current_exception_type(), e.what(), ErrorInfo::Kind::retry_after, e.after()};
  } catch (const NonRetriableError& e) {
    info = {current_exception_type(), e.what(), ErrorInfo::Kind::non_retriable, {}};
  } catch (const std::exception& e) {
    info = {current_exception_type(), e.what(), ErrorInfo::Kind::retriable, {}};
  } catch (...) {
    info = {current_exception_type(), "an exception that is not a std::exception",
            ErrorInfo::Kind::retriable, {}};
  }
  return info;
}

nlohmann::json error_json(const ErrorInfo& info, const std::string& step_key) {
  nlohmann::json j{{"name", info.name}, {"message", info.message}};
  if (!step_key.empty()) j["step"] = step_key;
  return j;
}

TimePoint next_attempt_at(const Backoff& backoff, int failed_attempt, TimePoint now) {
  size_t index = std::min(static_cast<size_t>(std::max(failed_attempt, 0)), backoff.delays.size() - 1);
  std::chrono::milliseconds jitter{0};
  if (backoff.max_jitter.count() > 0) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_int_distribution<int64_t> pick(0, backoff.max_jitter.count());
    jitter = std::chrono::milliseconds(pick(rng));
  }
  return now + backoff.delays[index] + jitter;
}

TimePoint retry_after_at(std::chrono::milliseconds after, TimePoint now) {
  auto clamped = std::clamp<std::chrono::milliseconds>(after, std::chrono::seconds(1), std::chrono::hours(24));
  return now + clamped;
}

}  // namespace durable
