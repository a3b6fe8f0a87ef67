#include "webhook_signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace webhook {

namespace {

using Digest = std::array<unsigned char, 32>;  // one HMAC-SHA256

Digest hmac_sha256(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  // The signed payload is the timestamp, a dot and the body exactly as received: parsing and
  // re-serialising the JSON first would change bytes (spacing, key order, escapes).
  std::string payload = fmt::format("{}.{}", unix_seconds, body);
  Digest digest;
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), digest.data(), &length) ||
      length != digest.size()) {
    throw std::runtime_error("OpenSSL could not compute an HMAC-SHA256");
  }
  return digest;
}

// The 32 bytes that 64 hex digits (either case) spell, or nullopt for anything else.
std::optional<Digest> decode_hex(std::string_view hex) {
  if (hex.size() != 2 * Digest().size()) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Digest out;
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct ParsedHeader {
  int64_t timestamp = 0;
  std::vector<std::string_view> signatures;  // the v1 values, pointing into the header
  std::string error;                         // non-empty: the header is malformed, and why
};

ParsedHeader parse_header(std::string_view header) {
  ParsedHeader parsed;
  if (trim(header).empty()) return {.error = "it is empty"};
  bool has_timestamp = false;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view element = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    if (element.empty()) continue;
    size_t eq = element.find('=');
    if (eq == std::string_view::npos) return {.error = "an element is not key=value"};
    std::string_view key = element.substr(0, eq), value = element.substr(eq + 1);
    if (key == "t") {
      // Two timestamps would leave it open which one the signature covers.
      if (has_timestamp) return {.error = "it has more than one timestamp (t=)"};
      // At most 18 digits, so the number fits an int64_t with room for the arithmetic below.
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
        return {.error = "the timestamp (t=) is not a number of seconds"};
      }
      parsed.timestamp = std::stoll(std::string(value));
      has_timestamp = true;
    } else if (key == "v1") {
      parsed.signatures.push_back(value);
    }
  }
  if (!has_timestamp) return {.error = "it has no timestamp (t=)"};
  if (parsed.signatures.empty()) return {.error = "it has no v1 signature"};
  return parsed;
}

}  // namespace

Verification verify(std::optional<std::string_view> header, std::string_view body, std::string_view secret,
                    std::chrono::system_clock::time_point now, std::chrono::seconds tolerance) {
  if (!header) {
    return {SignatureStatus::missing_header, fmt::format("the request has no {} header", kSignatureHeader)};
  }
  ParsedHeader parsed = parse_header(*header);
  if (!parsed.error.empty()) {
    return {SignatureStatus::malformed_header, fmt::format("malformed {} header: {}", kSignatureHeader, parsed.error)};
  }

  Digest expected = hmac_sha256(secret, parsed.timestamp, body);
  bool matched = false;
  for (std::string_view candidate : parsed.signatures) {
    // A v1 that is not 64 hex digits matches nothing. The comparison takes the same time
    // wherever the first differing byte is, so timing tells a forger nothing about the HMAC.
    auto bytes = decode_hex(candidate);
    if (bytes && CRYPTO_memcmp(bytes->data(), expected.data(), expected.size()) == 0) matched = true;
  }
  if (!matched) {
    return {SignatureStatus::no_matching_signature,
            "no v1 signature matches this body and the endpoint's secret (is STRIPE_WEBHOOK_SECRET the secret "
            "of this endpoint?)"};
  }

  int64_t now_seconds = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  int64_t age = now_seconds - parsed.timestamp;
  if (age > tolerance.count()) {
    return {SignatureStatus::timestamp_outside_tolerance,
            fmt::format("the timestamp is outside the tolerance: signed {} s ago, the limit is {} s", age,
                        tolerance.count())};
  }
  if (-age > tolerance.count()) {
    return {SignatureStatus::timestamp_outside_tolerance,
            fmt::format("the timestamp is outside the tolerance: signed {} s in the future, the limit is {} s", -age,
                        tolerance.count())};
  }
  return {};
}

std::string compute_signature(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  std::string hex;
  for (unsigned char byte : hmac_sha256(secret, unix_seconds, body)) hex += fmt::format("{:02x}", byte);
  return hex;
}

std::string sign(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  return fmt::format("t={},v1={}", unix_seconds, compute_signature(secret, unix_seconds, body));
}

}  // namespace webhook
