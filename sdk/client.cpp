#include <durable/client.hpp>

// The client is the one place outside engine/http/http_server.cpp that includes httplib: it is an
// HTTP client, and users link it without the engine.
#include <httplib.h>

#include <algorithm>

#include <durable/errors.hpp>

namespace durable {

namespace {

// The engine's answer, or a discarded value when it is not JSON or nests deeper than any answer
// of the event API ({"ids": [...]}, {"error": "..."}). The engine parses what it receives with
// engine/base/json_input.hpp, which the SDK cannot include; this is the small part of it a client
// needs: nlohmann's parser is iterative, values deeper than the limit are never built, and
// nothing here copies or prints the answer recursively, so no answer can overflow the stack.
nlohmann::json parse_answer(const std::string& body) {
  constexpr int kMaxAnswerDepth = 16;
  bool too_deep = false;
  auto limit_depth = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    bool opens = event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxAnswerDepth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json answer = nlohmann::json::parse(body, limit_depth, /*allow_exceptions=*/false);
  return too_deep ? nlohmann::json(nlohmann::json::value_t::discarded) : answer;
}

}  // namespace

struct Client::Impl {
  Impl(const std::string& base_url, std::string key) : http(base_url), event_key(std::move(key)) {}
  httplib::Client http;
  std::string event_key;
};

Client::Client(std::string base_url, std::string event_key, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(base_url, std::move(event_key))) {
  if (!impl_->http.is_valid()) throw Error("invalid engine URL '" + base_url + "'");
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  impl_->http.set_connection_timeout(secs.count(), usecs.count());
  impl_->http.set_read_timeout(secs.count(), usecs.count());
  impl_->http.set_write_timeout(secs.count(), usecs.count());
  impl_->http.set_keep_alive(true);
  // A request goes out as two writes (headers, then body); with Nagle's algorithm the body
  // waits for the server's delayed ACK, some 40 ms on Linux.
  impl_->http.set_tcp_nodelay(true);
}

Client::~Client() = default;

std::string Client::send(const Event& event) { return send(std::vector<Event>{event}).at(0); }

std::vector<std::string> Client::send(const std::vector<Event>& events) {
  nlohmann::json body = events;
  // Strings that are not UTF-8 go out with U+FFFD in place of the bad bytes, as the engine
  // would store them, rather than failing the send.
  auto text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto res = impl_->http.Post("/e/" + impl_->event_key, text, "application/json");
  if (!res) throw Error("cannot reach the engine: " + httplib::to_string(res.error()));
  nlohmann::json answer = parse_answer(res->body);
  if (res->status != 200) {
    std::string message = answer.is_object() && answer.contains("error") && answer["error"].is_string()
                              ? answer["error"].get<std::string>()
                              : res->body;
    throw Error("the engine refused the events (HTTP " + std::to_string(res->status) + "): " + message);
  }
  const nlohmann::json* ids = answer.is_object() && answer.contains("ids") ? &answer["ids"] : nullptr;
  if (!ids || !ids->is_array() || !std::all_of(ids->begin(), ids->end(), [](const auto& id) { return id.is_string(); })) {
    throw Error("unexpected answer from the engine: " + res->body.substr(0, 200));
  }
  return ids->get<std::vector<std::string>>();
}

}  // namespace durable
