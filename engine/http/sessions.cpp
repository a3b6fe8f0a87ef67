#include "engine/http/sessions.hpp"

#include <algorithm>

#include "engine/base/ids.hpp"

namespace durable {

std::string Sessions::create() {
  std::string token = random_hex(32);  // std::random_device: the kernel's random source
  auto now = Clock::now();
  std::lock_guard lock(mu_);
  if (expires_.size() >= kMaxSessions) {
    std::erase_if(expires_, [&](const auto& s) { return s.second <= now; });
    if (expires_.size() >= kMaxSessions) {
      auto oldest = std::min_element(expires_.begin(), expires_.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
      expires_.erase(oldest);
    }
  }
  expires_[token] = now + kLifetime;
  return token;
}

bool Sessions::valid(std::string_view token) {
  if (token.empty()) return false;
  std::lock_guard lock(mu_);
  // A lookup by hash, not a comparison: its timing says nothing about how close a guess was.
  auto it = expires_.find(std::string(token));
  if (it == expires_.end()) return false;
  if (it->second <= Clock::now()) {
    expires_.erase(it);
    return false;
  }
  return true;
}

void Sessions::end(std::string_view token) {
  std::lock_guard lock(mu_);
  expires_.erase(std::string(token));
}

}  // namespace durable
