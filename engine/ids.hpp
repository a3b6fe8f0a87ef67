// Sortable unique ids (ULIDs): 26 Crockford base-32 characters, a 48-bit millisecond timestamp
// followed by 80 random bits. Ids sort by creation time; ids one generator makes within the
// same millisecond still increase.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include <durable/clock.hpp>

namespace durable {

class IdGenerator {
 public:
  IdGenerator();

  // A new id for time `now`. Thread-safe.
  std::string next(TimePoint now);

 private:
  std::mutex mu_;
  std::mt19937_64 rng_;                 // guarded by mu_
  int64_t last_ms_ = -1;                // guarded by mu_
  std::array<uint8_t, 10> random_{};    // guarded by mu_: the last id's random part
};

// A random hex string of `bytes` bytes from std::random_device (keys, worker ids).
std::string random_hex(size_t bytes);

}  // namespace durable
