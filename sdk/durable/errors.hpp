// The errors of durable. User code throws NonRetriableError and RetryAfterError from step
// bodies to steer retries, and catches StepError to handle a step that failed for good.
//
//   ctx.step.run("charge", [&] {
//     if (card_declined) throw durable::NonRetriableError("card declined");  // no retry
//     if (rate_limited) throw durable::RetryAfterError("rate limited", std::chrono::seconds(30));
//     return charge();
//   });
//   try { ctx.step.run("notify", send_sms); }
//   catch (const durable::StepError& e) { /* every retry failed; go on without the SMS */ }
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace durable {

// Base of every error durable throws or understands. Its message is what the journal records.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a step body (or the function body) to fail at once, without retries.
class NonRetriableError : public Error {
 public:
  using Error::Error;
};

// Thrown by a step body to retry at now + `after` instead of the function's backoff schedule.
// `after` is clamped to [1 s, 24 h]. The retry still counts against the function's retries.
class RetryAfterError : public Error {
 public:
  RetryAfterError(const std::string& message, std::chrono::milliseconds after)
      : Error(message), after_(after) {}
  std::chrono::milliseconds after() const { return after_; }

 private:
  std::chrono::milliseconds after_;
};

// What a step call throws into the function once the step has failed for good (its retries
// are spent, or it threw NonRetriableError). The function may catch it and go on; if it does
// not, the run fails with this step's id and message. On replay the same StepError is thrown
// again from the journal, without running the step.
class StepError : public Error {
 public:
  StepError(std::string step_id, std::string error_name, const std::string& message)
      : Error(message), step_id_(std::move(step_id)), error_name_(std::move(error_name)) {}

  // The step key that failed, e.g. "charge" or "send:2".
  const std::string& step_id() const { return step_id_; }
  // The type of the error the step threw last, e.g. "std::runtime_error".
  const std::string& error_name() const { return error_name_; }

 private:
  std::string step_id_;
  std::string error_name_;
};

// A misuse of the step API (an empty step id, one id used by two kinds of step). It fails the
// run at once: retrying would fail the same way.
class UsageError : public NonRetriableError {
 public:
  using NonRetriableError::NonRetriableError;
};

}  // namespace durable
