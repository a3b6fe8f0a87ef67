#include "cli/api_client.hpp"

#include <httplib.h>

#include <optional>
#include <regex>

#include <fmt/format.h>

#include "cli/args.hpp"
#include "engine/base/json_input.hpp"

namespace cli {

namespace {

// httplib's names for its errors are single words ("Connection"); these say what happened.
std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection: return "connection refused or host unreachable";
    case httplib::Error::ConnectionTimeout: return "the connection timed out";
    case httplib::Error::Read: return "no answer (the read failed or timed out)";
    case httplib::Error::Write: return "the request could not be sent";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification: return "the TLS connection failed";
    default: return "HTTP client error: " + httplib::to_string(error);
  }
}

// httplib takes anything as a URL (a malformed one becomes a host name that never
// resolves): accept only scheme://host[:port][/], so that a typo is a usage error.
bool is_engine_url(const std::string& url) {
  static const std::regex form(R"(https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?/?)");
  return std::regex_match(url, form);
}

// How deeply an answer may nest. Answers hold what the engine stored (event data, itself at
// most kMaxJsonDepth deep, and step outputs, which the engine does not limit) a few levels
// down; the limit keeps a hostile or broken server from handing the CLI a value that printing
// or copying could not take without overflowing the stack (engine/base/json_input.hpp).
constexpr int kMaxAnswerDepth = 1000;

// Turns an answer into its JSON, or into an ApiError carrying the engine's `error` message.
nlohmann::json answer_json(const httplib::Result& res, const std::string& url, bool has_key) {
  if (!res) {
    throw ApiError(0, fmt::format("cannot reach the engine at {}: {} (is it running? set --url or DURABLE_URL)",
                                  url, describe(res.error())));
  }
  std::optional<nlohmann::json> body;
  try {
    body = durable::parse_json_input(res->body, "the answer", kMaxAnswerDepth);
  } catch (const durable::RequestError&) {
    // Not JSON (or nothing the engine would send): shown below as it came.
  }
  bool ok = res->status >= 200 && res->status < 300;
  if (ok && body) return std::move(*body);
  // Anything but the API's {"error": "..."} is shown as it came, cut short: it is probably a
  // proxy or another server on that port.
  std::string message = body && body->is_object() && body->contains("error") && (*body)["error"].is_string()
                            ? (*body)["error"].get<std::string>()
                            : fmt::format("unexpected answer from {}: {:.200}", url, res->body);
  if (res->status == 401 && !has_key) message += " (set --key or DURABLE_API_KEY)";
  throw ApiError(ok ? 0 : res->status, fmt::format("{} (HTTP {})", message, res->status));
}

}  // namespace

ApiClient::ApiClient(const std::string& url, const std::string& api_key) : url_(url), has_key_(!api_key.empty()) {
  if (!is_engine_url(url)) throw UsageError(fmt::format("--url: '{}' is not a URL like http://127.0.0.1:8288", url));
  if (url_.ends_with("/")) url_.pop_back();
  http_ = std::make_unique<httplib::Client>(url_);
  if (has_key_) http_->set_bearer_token_auth(api_key);
  http_->set_connection_timeout(5);
  // Bulk operations work through up to 1000 runs per request.
  http_->set_read_timeout(120);
  http_->set_write_timeout(30);
}

ApiClient::~ApiClient() = default;

nlohmann::json ApiClient::get(const std::string& path, const Query& query) {
  httplib::Params params;
  for (const auto& [name, value] : query) {
    if (!value.empty()) params.emplace(name, value);
  }
  return answer_json(http_->Get(path, params, httplib::Headers{}), url_, has_key_);
}

nlohmann::json ApiClient::post(const std::string& path, const nlohmann::json& body) {
  auto text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return answer_json(http_->Post(path, text, "application/json"), url_, has_key_);
}

std::string path_segment(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace cli
