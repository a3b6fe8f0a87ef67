// What a failure means for a run: how an exception is described in the journal, whether it
// may be retried, and when the next attempt is due.
#pragma once

#include <chrono>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/function.hpp>

namespace durable {

struct ErrorInfo {
  enum class Kind {
    retriable,      // any other exception: retried on the backoff schedule
    non_retriable,  // NonRetriableError (UsageError included): fails at once
    retry_after,    // RetryAfterError: retried at now + retry_after
  };
  std::string name;     // the exception's type, demangled ("std::runtime_error")
  std::string message;  // what(), or a placeholder for exceptions that are not std::exception
  Kind kind = Kind::retriable;
  std::chrono::milliseconds retry_after{0};
};

// Describes the exception in `error`. Never throws.
ErrorInfo describe_error(std::exception_ptr error);

// {"name", "message"} plus {"step": key} when `step_key` is not empty.
nlohmann::json error_json(const ErrorInfo& info, const std::string& step_key = {});

// When to try again after attempt `failed_attempt` (0-based) failed at `now`:
// backoff.delays[min(failed_attempt, size-1)] plus a random jitter in [0, max_jitter].
TimePoint next_attempt_at(const Backoff& backoff, int failed_attempt, TimePoint now);

// now + `after`, with `after` clamped to [1 s, 24 h] (RetryAfterError).
TimePoint retry_after_at(std::chrono::milliseconds after, TimePoint now);

}  // namespace durable
