// The failure alert webhook (EngineOptions::alert_webhook): a durable function the engine
// registers itself, "durable/alert-webhook", triggered by durable/function.failed, whose one
// step POSTs the event's data, signed, to the configured URL. What a receiver sees is
// documented in docs/operations.md, "Failure alerts".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <durable/clock.hpp>
#include <durable/engine.hpp>

#include "engine/exec/function_registry.hpp"

namespace durable {

inline constexpr const char* kAlertWebhookFunctionId = "durable/alert-webhook";
inline constexpr const char* kAlertSignatureHeader = "X-Durable-Signature";
// The id of the durable/function.failed event the alert carries: the same on every attempt,
// a new one for each failure (a resumed run that fails again included). Receivers dedupe on it.
inline constexpr const char* kAlertEventIdHeader = "X-Durable-Event-Id";

// A webhook URL taken apart.
struct AlertUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // a name, an IPv4 address or a bracketed IPv6 address ("[::1]")
  int port = 0;        // as given, else 80 (http) or 443 (https)
  std::string path;    // from the first '/' on, query included; "/" when the URL has none
};

// Parses "http(s)://host[:port][/path]". Throws durable::Error saying what is wrong.
AlertUrl parse_alert_url(std::string_view url);

// The lowercase hex HMAC-SHA256, keyed with `secret`, of "<unix_seconds>.<body>": the v1 part
// of the signature header "t=<unix_seconds>,v1=<hex>".
std::string sign_alert(std::string_view secret, int64_t unix_seconds, std::string_view body);

// Registers "durable/alert-webhook" in `functions` when a webhook is configured: `configured`,
// else DURABLE_ALERT_URL (with DURABLE_ALERT_SECRET) from the environment; otherwise does
// nothing. Signatures are timestamped with `clock`. Throws durable::Error for an invalid URL
// or an empty secret.
void register_alert_webhook(FunctionRegistry& functions, const std::optional<AlertWebhook>& configured,
                            std::shared_ptr<Clock> clock);

}  // namespace durable
