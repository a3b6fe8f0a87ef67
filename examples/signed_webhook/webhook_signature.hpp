// Stripe's webhook signatures. Each delivery carries a header
//
//   Stripe-Signature: t=1700000000,v1=5257a869e7ec...,v1=<another>
//
// with the time it was signed (Unix seconds) and one or more HMAC-SHA256s, in hex, of
// "<t>.<raw body>" keyed with the endpoint's signing secret (the whole "whsec_..." string).
// While a secret is being rolled, Stripe signs with the old and the new one: two v1 values.
//
//   auto check = webhook::verify(header, req.body, secret, std::chrono::system_clock::now());
//   if (!check.ok()) return refuse(401, check.reason);
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace webhook {

// How far the signing time may be from now, either way, before a delivery is refused: a
// captured request cannot be replayed later than this. Stripe's libraries use 5 minutes too.
constexpr std::chrono::seconds kTolerance{300};

// The header that carries the signature (header names are case-insensitive).
constexpr const char* kSignatureHeader = "Stripe-Signature";

enum class SignatureStatus {
  valid,
  missing_header,               // the request has no Stripe-Signature header
  malformed_header,             // empty, no t=, t not a number of seconds, t twice, no v1=
  no_matching_signature,        // no v1 is the HMAC of this body with this secret
  timestamp_outside_tolerance,  // genuine, but signed too long ago (or too far ahead)
};

struct Verification {
  SignatureStatus status = SignatureStatus::valid;
  std::string reason;  // why it was refused, one sentence for the 401 body; empty when valid

  bool ok() const { return status == SignatureStatus::valid; }
};

// Checks `header` (the Stripe-Signature value; nullopt when the request has none) against the
// exact bytes of `body`, signed with `secret`, at time `now` (injected so tests need not wait).
// Valid when some v1 is the HMAC of "<t>.<body>" and t is within `tolerance` of now. The
// signature is checked first, so timestamp_outside_tolerance is only ever said of a request
// that Stripe really signed. Elements other than t and v1 (v0, test-mode extras) are ignored.
// Thread-safe. Any input gives an answer; throws std::runtime_error only if OpenSSL cannot
// compute an HMAC.
Verification verify(std::optional<std::string_view> header, std::string_view body, std::string_view secret,
                    std::chrono::system_clock::time_point now, std::chrono::seconds tolerance = kTolerance);

// The v1 signature of `body` sent at `unix_seconds`: the lowercase hex HMAC-SHA256 of
// "<unix_seconds>.<body>" keyed with `secret`, as `openssl dgst -sha256 -hmac <secret>` prints it.
std::string compute_signature(std::string_view secret, int64_t unix_seconds, std::string_view body);

// A whole Stripe-Signature value, "t=<unix_seconds>,v1=<signature>", as Stripe would send it.
// For tests and for trying the endpoint out.
std::string sign(std::string_view secret, int64_t unix_seconds, std::string_view body);

}  // namespace webhook
