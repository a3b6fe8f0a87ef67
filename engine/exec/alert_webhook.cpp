// The alert webhook is an ordinary durable function, so delivery gets what every run gets:
// the alert run is created in the same commit that fails the run (its trigger is recorded in
// the database), it survives crashes, it is retried on the backoff table, and it holds one
// worker only while a POST is in flight. Its runs are started by a lifecycle event, and such
// runs emit no lifecycle events themselves, so an alert that cannot be delivered raises no
// alert of its own.
//
// The one engine file that includes httplib: it is an HTTP client (the server is Boost.Beast).
#include "engine/exec/alert_webhook.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <fmt/format.h>

#include <durable/errors.hpp>
#include <durable/event.hpp>

#include "engine/base/json_text.hpp"

namespace durable {

namespace {

// A receiver that does not answer within these is treated like one that is down: the step
// fails and is retried later, and the worker is free again.
constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kIoTimeout = std::chrono::seconds(5);

// Eleven attempts over about four and a half hours on the default table (15 s, 30 s, ... 2 h):
// long enough to ride out a receiver's deploy or outage.
constexpr int kRetries = 10;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Where the alert is going, for error messages. Never the path: many webhook URLs carry their
// credential there (Slack's do), and these messages are stored in the journal and served by
// the API.
std::string origin(const AlertUrl& url) { return fmt::format("{}://{}:{}", url.scheme, url.host, url.port); }

// POSTs `body` once; returns the HTTP status of a 2xx answer, throws otherwise so the step is
// retried. Every non-2xx answer is retried, 4xx included: alerts are rare and worth the few
// extra requests, and a receiver answering 401 or 404 is more often mid-deploy or mid-rotation
// than wrong for good. Redirects are not followed (the signature is for the configured URL).
int post(const AlertUrl& url, const std::string& secret, const Clock& clock, const std::string& event_id,
         const std::string& body) {
  int64_t t = to_millis(clock.now()) / 1000;
  httplib::Client client(origin(url));
  client.set_connection_timeout(kConnectTimeout);
  client.set_read_timeout(kIoTimeout);
  client.set_write_timeout(kIoTimeout);
  httplib::Headers headers{{kAlertSignatureHeader, fmt::format("t={},v1={}", t, sign_alert(secret, t, body))},
                           {kAlertEventIdHeader, event_id}};
  auto res = client.Post(url.path, headers, body, "application/json");
  if (!res) throw Error(fmt::format("alert webhook at {}: {}", origin(url), httplib::to_string(res.error())));
  if (res->status >= 200 && res->status < 300) return res->status;
  std::string message = fmt::format("alert webhook at {} answered HTTP {}", origin(url), res->status);
  if (res->status >= 300 && res->status < 400) message += " (redirects are not followed: configure the final URL)";
  // A receiver that says when to come back is taken at its word (in seconds; the HTTP-date
  // form falls back to the backoff table).
  std::string retry_after = res->get_header_value("Retry-After");
  if ((res->status == 429 || res->status == 503) && !retry_after.empty() && retry_after.size() <= 6 &&
      std::all_of(retry_after.begin(), retry_after.end(), [](unsigned char c) { return std::isdigit(c); })) {
    throw RetryAfterError(message, std::chrono::seconds(std::stoi(retry_after)));
  }
  throw Error(message);
}

}  // namespace

AlertUrl parse_alert_url(std::string_view text) {
  // The URL is not repeated: webhook URLs often carry a credential (in the path, or as
  // user:password), and this message may end up in logs.
  auto invalid = [&](std::string_view why) { return Error(fmt::format("the alert webhook URL is invalid: {}", why)); };
  for (unsigned char c : text) {
    if (c <= ' ' || c == 0x7f) throw invalid("it contains a space or a control character");
  }
  AlertUrl url;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) throw invalid("expected http://host[:port][/path] or https://...");
  for (char c : text.substr(0, sep)) url.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (url.scheme != "http" && url.scheme != "https") throw invalid("the scheme must be http or https");
  std::string_view rest = text.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  path = path.substr(0, path.find('#'));  // a fragment is never sent
  url.path = path.empty() || path[0] != '/' ? "/" + std::string(path) : std::string(path);

  if (authority.empty()) throw invalid("the host is missing");
  if (authority.find('@') != std::string_view::npos) throw invalid("credentials in the URL are not supported");
  size_t host_end = authority[0] == '[' ? authority.find(']') : authority.find(':');
  if (authority[0] == '[') {
    if (host_end == std::string_view::npos) throw invalid("an IPv6 address must end with ']'");
    ++host_end;
  }
  url.host = std::string(authority.substr(0, host_end));
  if (url.host.empty()) throw invalid("the host is missing");
  url.port = url.scheme == "https" ? 443 : 80;
  if (host_end < authority.size()) {
    std::string_view port = authority.substr(host_end);
    if (port[0] != ':') throw invalid("expected ':' and a port after the host");
    port.remove_prefix(1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
      throw invalid("the port must be a number from 1 to 65535");
    }
    url.port = std::stoi(std::string(port));
    if (url.port < 1 || url.port > 65535) throw invalid("the port must be a number from 1 to 65535");
  }
  return url;
}

std::string sign_alert(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  std::string message = fmt::format("{}.{}", unix_seconds, body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length)) {
    throw Error("HMAC-SHA256 failed");
  }
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", mac[i]);
  return hex;
}

void register_alert_webhook(FunctionRegistry& functions, const std::optional<AlertWebhook>& configured,
                            std::shared_ptr<Clock> clock) {
  AlertWebhook webhook;
  if (configured) {
    webhook = *configured;
  } else if (std::string url = env("DURABLE_ALERT_URL"); !url.empty()) {
    webhook = AlertWebhook{url, env("DURABLE_ALERT_SECRET")};
    if (webhook.secret.empty()) throw Error("DURABLE_ALERT_URL is set but DURABLE_ALERT_SECRET is not: alerts are signed with it");
  } else {
    return;
  }
  AlertUrl url = parse_alert_url(webhook.url);
  if (webhook.secret.empty()) throw Error("the alert webhook's secret is empty: set AlertWebhook::secret");
  // Neither the URL nor the secret goes into the function's options: those are stored in the
  // database and listed by the API. They live in the handler only.
  functions.add(
      {.id = kAlertWebhookFunctionId, .name = "Failure alert webhook", .retries = kRetries},
      {on_event(kFunctionFailedEvent)},
      [url = std::move(url), secret = std::move(webhook.secret), clock = std::move(clock)](Context& ctx) -> nlohmann::json {
        std::string body = to_json_text(ctx.event.data);
        int status = ctx.step.run("post", [&] { return post(url, secret, *clock, ctx.event_id, body); });
        return {{"status", status}};
      });
}

}  // namespace durable
