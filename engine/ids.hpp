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

// The id spelled by a ULID's 16 bytes: the 48-bit millisecond timestamp (big-endian), then the
// 80-bit random part.
std::string encode_id(const std::array<uint8_t, 16>& bytes);

// The smallest id of millisecond `t`: every id made at `t` or later sorts at or after it, every
// id made earlier sorts before it. Turns a time range into an id range.
std::string id_floor(TimePoint t);

// A random hex string of `bytes` bytes from std::random_device (keys, worker ids).
std::string random_hex(size_t bytes);

}  // namespace durable
