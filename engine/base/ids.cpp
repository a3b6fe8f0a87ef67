#include "engine/base/ids.hpp"

#include <algorithm>

namespace durable {

namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

}  // namespace

// 128 bits as 26 base-32 digits: the first digit holds the top 3 bits.
std::string encode_id(const std::array<uint8_t, 16>& bytes) {
  std::string out(26, '0');
  unsigned __int128 v = 0;
  for (uint8_t b : bytes) v = (v << 8) | b;
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
}

std::optional<std::array<uint8_t, 16>> decode_id(std::string_view text) {
  if (text.size() != 26 || text[0] < '0' || text[0] > '7') return std::nullopt;
  unsigned __int128 v = 0;
  for (char c : text) {
    const char* digit = std::find(kAlphabet, kAlphabet + 32, c);
    if (digit == kAlphabet + 32) return std::nullopt;
    v = (v << 5) | static_cast<unsigned>(digit - kAlphabet);
  }
  std::array<uint8_t, 16> bytes{};
  for (int i = 15; i >= 0; --i) {
    bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
  return bytes;
}

IdGenerator::IdGenerator() {
  std::random_device rd;
  std::seed_seq seed{rd(), rd(), rd(), rd()};
  rng_.seed(seed);
}

std::string IdGenerator::next(TimePoint now) {
  std::array<uint8_t, 16> bytes{};
  {
    std::lock_guard lock(mu_);
    int64_t ms = to_millis(now);
    if (ms <= last_ms_) {
      // Same (or an earlier) millisecond: keep the last timestamp and add one to the random
      // part, so ids from this generator never go backwards.
      ms = last_ms_;
      for (int i = 9; i >= 0 && ++random_[i] == 0; --i) {
      }
    } else {
      last_ms_ = ms;
      for (size_t i = 0; i < random_.size(); i += 8) {
        uint64_t r = rng_();
        for (size_t k = 0; k < 8 && i + k < random_.size(); ++k) random_[i + k] = static_cast<uint8_t>(r >> (8 * k));
      }
      random_[0] &= 0x7f;  // leaves room to increment within a millisecond without overflow
    }
    for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
    for (int i = 0; i < 10; ++i) bytes[6 + i] = random_[i];
  }
  return encode_id(bytes);
}

std::string id_floor(TimePoint t) {
  std::array<uint8_t, 16> bytes{};
  int64_t ms = std::max<int64_t>(0, to_millis(t));
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  return encode_id(bytes);
}

std::string random_hex(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  out.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(rd() & 0xff);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace durable
