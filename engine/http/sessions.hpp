// Dashboard sessions: a browser that logged in with an API key holds a random token in an
// HttpOnly, SameSite=Strict cookie; the token stands for the key until it expires or the user
// logs out. Kept in memory: a restart logs every browser out.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace durable {

class Sessions {
 public:
  // How long a session lasts after login.
  static constexpr std::chrono::hours kLifetime{12};
  // Beyond this many sessions, the oldest are dropped (a login loop cannot grow memory).
  static constexpr size_t kMaxSessions = 10000;

  // A new session's token (64 hex digits from the system's random source). Thread-safe.
  std::string create();
  // Whether `token` names a session that has not expired. Thread-safe.
  bool valid(std::string_view token);
  // Ends the session, if any. Thread-safe.
  void end(std::string_view token);

 private:
  using Clock = std::chrono::steady_clock;
  std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point> expires_;  // guarded by mu_
};

}  // namespace durable
