// A request the caller must fix, carrying the HTTP status that says so (400, 401, 404, 409,
// 413). The HTTP layer answers it as {"error": message}; Engine::send() rethrows it as a
// plain durable::Error.
#pragma once

#include <string>

#include <durable/errors.hpp>

namespace durable {

class RequestError : public Error {
 public:
  RequestError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace durable
