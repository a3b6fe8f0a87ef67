// Sortable unique ids (ULIDs): 26 Crockford base-32 characters, a 48-bit millisecond timestamp
// followed by 80 random bits. Ids sort by creation time; ids one generator makes within the
// same millisecond still increase.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

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

// The latest millisecond an id can hold: 48 bits, until the year 10889.
constexpr int64_t kMaxIdMillis = (int64_t{1} << 48) - 1;

// The id spelled by a ULID's 16 bytes: the 48-bit millisecond timestamp (big-endian), then the
// 80-bit random part.
std::string encode_id(const std::array<uint8_t, 16>& bytes);

// The 16 bytes `text` spells, the inverse of encode_id: nullopt unless `text` is 26 characters
// of its alphabet (0-9 and upper-case A-Z without I, L, O, U), the first 0-7 (128 bits in 130).
// Exactly the ids encode_id writes are accepted, so an id that decodes sorts as its bytes do.
std::optional<std::array<uint8_t, 16>> decode_id(std::string_view text);

// The smallest id of millisecond `t`: every id made at `t` or later sorts at or after it, every
// id made earlier sorts before it. Turns a time range into an id range.
std::string id_floor(TimePoint t);

// A random hex string of `bytes` bytes from std::random_device (keys, worker ids).
std::string random_hex(size_t bytes);

}  // namespace durable
