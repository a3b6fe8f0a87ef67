#include "engine/http_server.hpp"

// The only engine file that includes httplib (it is large, and its types stay out of every
// other translation unit).
#include <httplib.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/log.hpp"
#include "engine/thread_name.hpp"

namespace durable {

namespace {

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

// Compares in time that depends only on the lengths, so response timing does not reveal how
// much of a guessed key was right.
bool equal_constant_time(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string default_message(int status, size_t max_request_bytes) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such endpoint";
    case 405: return "method not allowed";
    case 413: return fmt::format("the request is larger than the limit of {} bytes", max_request_bytes);
    default: return fmt::format("HTTP {}", status);
  }
}

}  // namespace

HttpServer::HttpServer(const ServeOptions& options, std::vector<std::string> event_keys, EventIngestor& ingestor)
    : options_(options), event_keys_(std::move(event_keys)), ingestor_(ingestor), server_(std::make_unique<httplib::Server>()) {
  auto& s = *server_;
  // Bodies over the request limit are refused by httplib before they are read (413). The
  // handler repeats the check for the per-event limit, which needs the parsed JSON.
  s.set_payload_max_length(options_.max_request_bytes);
  // Answers go out as two writes (headers, then body): without TCP_NODELAY the body waits
  // for the client's delayed ACK, some 40 ms on Linux.
  s.set_tcp_nodelay(true);
  // SO_REUSEADDR only. httplib also sets SO_REUSEPORT, with which a second engine started on
  // the same port would share its connections instead of failing to start.
  s.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  s.Get("/health", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, {{"status", "ok"}}); });

  s.Post(R"(/e/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (!known_key(req.matches[1].str())) {
      send_error(res, 401, "unknown event key");
      return;
    }
    try {
      EventLimits limits{options_.max_event_bytes, options_.max_request_bytes};
      auto ids = ingestor_.ingest(parse_events(req.body, limits));
      send_json(res, 200, {{"ids", ids}, {"status", 200}});
    } catch (const RequestError& e) {
      send_error(res, e.status(), e.what());
    }
  });
  s.Post(R"(/e/?)", [](const httplib::Request&, httplib::Response& res) {
    send_error(res, 401, "missing event key: POST /e/{event_key}");
  });

  s.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log(LogLevel::error, "request failed", {{"path", req.path}, {"error", what}});
    send_error(res, 500, "internal error: " + what);
  });
  s.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
    // Errors that no handler answered (unknown route, body over the limit): JSON too.
    if (res.body.empty()) send_error(res, res.status, default_message(res.status, options_.max_request_bytes));
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::start() {
  int port = options_.port == 0 ? server_->bind_to_any_port(options_.host)
                                : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0) {
    throw Error(fmt::format("cannot listen on {}:{} (is the port in use?)", options_.host, options_.port));
  }
  thread_ = std::thread([this] {
    name_this_thread("durable-http");
    server_->listen_after_bind();
    listen_returned_ = true;
  });
  // httplib's stop() does nothing until the server is running; a stop() right after start()
  // would then leave listen_after_bind() running for ever and stop() waiting for it.
  while (!server_->is_running() && !listen_returned_) std::this_thread::yield();
  return port;
}

void HttpServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

bool HttpServer::known_key(const std::string& key) const {
  bool found = false;
  for (const auto& k : event_keys_) found |= equal_constant_time(k, key);  // no early exit
  return found;
}

}  // namespace durable
