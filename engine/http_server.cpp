#include "engine/http_server.hpp"

// With alert_webhook.cpp (a client), the only engine file that includes httplib (it is large,
// and its types stay out of every other translation unit).
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/log.hpp"
#include "engine/request_error.hpp"
#include "engine/thread_name.hpp"

namespace durable {

namespace {

std::string default_message(int status, size_t max_request_bytes) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such endpoint";
    case 405: return "method not allowed";
    case 413: return fmt::format("the request is larger than the limit of {} bytes", max_request_bytes);
    default: return fmt::format("HTTP {}", status);
  }
}

// "/v1/runs/{id}/cancel" -> "/v1/runs/([^/]+)/cancel": httplib routes by regular expression.
std::string path_regex(const std::string& path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '{') {
      i = path.find('}', i);
      out += "([^/]+)";
    } else if (path[i] == '.') {
      out += "\\.";
    } else {
      out += path[i];
    }
  }
  return out;
}

bool key_in(const std::vector<std::string>& keys, std::string_view key) {
  bool found = false;
  for (const auto& k : keys) found |= equal_constant_time(k, key);  // no early exit
  return found;
}

// A request's path as logged: POST /e/{key} carries the event key in its path, and no key is
// ever written to the log.
std::string loggable_path(const std::string& path) { return path.rfind("/e/", 0) == 0 ? "/e/{key}" : path; }

void send(httplib::Response& res, const HttpResponse& r) {
  res.status = r.status;
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.set_content(r.body, r.content_type.c_str());
}

HttpResponse redirect(const std::string& location) {
  return HttpResponse{.status = 303, .body = "", .content_type = "text/plain", .headers = {{"Location", location}}};
}

// Accept-Encoding without "br". httplib (Debian's 0.11.4, built with Brotli into its shared
// library) compresses an answer with Brotli whenever the client accepts it (browsers and
// httplib's own client do), at Brotli's slowest quality: about 1 s for the 300 KB of a run
// with 1,000 steps, where gzip, its next choice, takes some 30 ms. It has no setting for
// this, so the header is rewritten before routing.
std::string without_brotli(const std::string& accept_encoding) {
  std::string out;
  size_t at = 0;
  while (at <= accept_encoding.size()) {
    size_t comma = std::min(accept_encoding.find(',', at), accept_encoding.size());
    std::string_view token = std::string_view(accept_encoding).substr(at, comma - at);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    std::string_view name = token.substr(0, token.find(';'));
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!token.empty() && name != "br") out += (out.empty() ? "" : ", ") + std::string(token);
    at = comma + 1;
  }
  return out;
}

// Whether a request made with the session cookie comes from the dashboard's own pages. The
// cookie is SameSite=Strict, but a "site" spans every port and subdomain of a host: a page
// served from another port of 127.0.0.1 could make the browser send it. A change (any method
// but GET) is therefore accepted only as the dashboard sends it: JSON, which a page of
// another origin can only send after a CORS preflight this server never answers, and, from
// browsers that say where a request comes from, from the same origin.
bool from_dashboard(const HttpRequest& request, HttpResponse& response) {
  if (request.method == "GET") return true;
  std::string site = request.header("Sec-Fetch-Site");
  bool json = request.header("Content-Type").starts_with("application/json");
  if (json && (site.empty() || site == "same-origin" || site == "none")) return true;
  response = error_response(403, "a change made with the dashboard's session must come from its pages: "
                                 "JSON from the same origin (or use Authorization: Bearer <API key>)");
  return false;
}

// The value of `name` in an application/x-www-form-urlencoded body, decoded; "" when absent.
std::string form_value(const std::string& body, const std::string& name) {
  httplib::Params params;
  httplib::detail::parse_query_text(body, params);
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

}  // namespace

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

HttpResponse error_response(int status, const std::string& message) {
  // The message may quote the request (an id, a parameter), which may not be valid UTF-8.
  return HttpResponse{status, nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

HttpServer::HttpServer(const ServeOptions& options, HttpKeys keys, std::vector<Route> routes)
    : options_(options), keys_(std::move(keys)), server_(std::make_unique<httplib::Server>()) {
  auto& s = *server_;
  // Bodies over the request limit are refused by httplib before they are read (413). The
  // event handler repeats the check for the per-event limit, which needs the parsed JSON.
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
  // httplib hands the request over as const, but it is its own non-const object (a local of
  // its connection loop), so changing it here is well-defined.
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    auto [from, to] = const_cast<httplib::Request&>(req).headers.equal_range("Accept-Encoding");
    for (auto it = from; it != to; ++it) {
      if (it->second.find("br") != std::string::npos) it->second = without_brotli(it->second);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  for (Route& route : routes) {
    auto handler = [this, access = route.access, fn = std::move(route.handler), method = route.method](
                       const httplib::Request& req, httplib::Response& res) {
      HttpRequest request;
      request.method = method;
      request.path = req.path;
      request.body = req.body;
      for (size_t i = 1; i < req.matches.size(); ++i) request.path_params.push_back(req.matches[i].str());
      for (const auto& [name, value] : req.params) request.query.emplace(name, value);  // keeps the first
      request.header = [&req](const char* name) { return req.get_header_value(name); };
      HttpResponse response;
      if (authorized(access, request, response)) {
        try {
          response = fn(request);
        } catch (const RequestError& e) {
          response = error_response(e.status(), e.what());
        }
      }
      send(res, response);
    };
    std::string pattern = path_regex(route.path);
    if (route.method == "GET") {
      s.Get(pattern, std::move(handler));
    } else {
      s.Post(pattern, std::move(handler));
    }
  }

  add_login_routes();

  s.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log(LogLevel::error, "request failed", {{"path", loggable_path(req.path)}, {"error", what}});
    send(res, error_response(500, "internal error: " + what));
  });
  s.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
    // Errors that no handler answered (unknown route, body over the limit): JSON too.
    if (res.body.empty()) send(res, error_response(res.status, default_message(res.status, options_.max_request_bytes)));
  });
}

HttpServer::~HttpServer() { stop(); }

std::string HttpServer::session_token(const HttpRequest& request) {
  // Cookie: a=1; durable_session=<token>; b=2
  std::string cookies = request.header("Cookie");
  std::string prefix = std::string(kSessionCookie) + "=";
  size_t at = 0;
  while (at < cookies.size()) {
    size_t end = cookies.find(';', at);
    if (end == std::string::npos) end = cookies.size();
    std::string_view part = std::string_view(cookies).substr(at, end - at);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.starts_with(prefix)) return std::string(part.substr(prefix.size()));
    at = end + 1;
  }
  return {};
}

void HttpServer::add_login_routes() {
  // The dashboard's login form posts the key here; a session cookie stands for it from then
  // on. HttpOnly: page scripts cannot read it. SameSite=Strict: no other site's page can make
  // the browser send it (no cross-site request forgery).
  server_->Post("/login", [this](const httplib::Request& req, httplib::Response& res) {
    std::string key = form_value(req.body, "api_key");
    if (keys_.api_keys.empty()) {
      send(res, redirect("/login?error=no-api-key"));
      return;
    }
    if (key.empty() || !key_in(keys_.api_keys, key)) {
      log(LogLevel::warn, "dashboard login refused", {{"remote", req.remote_addr}});
      send(res, redirect("/login?error=unknown-key"));
      return;
    }
    HttpResponse response = redirect("/");
    response.headers.emplace_back(
        "Set-Cookie", fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", kSessionCookie,
                                  sessions_.create(), std::chrono::seconds(Sessions::kLifetime).count()));
    send(res, response);
  });
  server_->Post("/logout", [this](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request;
    request.header = [&req](const char* name) { return req.get_header_value(name); };
    sessions_.end(session_token(request));
    HttpResponse response = redirect("/login");
    response.headers.emplace_back("Set-Cookie", fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", kSessionCookie));
    send(res, response);
  });
}

bool HttpServer::authorized(Access access, const HttpRequest& request, HttpResponse& response) {
  switch (access) {
    case Access::open:
      return true;
    case Access::page:
      if (sessions_.valid(session_token(request))) return true;
      response = redirect("/login");
      return false;
    case Access::event_key:
      if (!request.path_params.empty() && key_in(keys_.event_keys, request.path_params[0])) return true;
      response = error_response(401, "unknown event key");
      return false;
    case Access::api_key: {
      if (keys_.api_keys.empty()) {
        response = error_response(401, "this server has no API key configured: start it with DURABLE_API_KEY "
                                       "(or ServeOptions::api_keys) set");
        return false;
      }
      std::string auth = request.header("Authorization");
      constexpr std::string_view kBearer = "bearer ";
      if (auth.empty() && sessions_.valid(session_token(request))) return from_dashboard(request, response);
      if (auth.empty()) {
        response = error_response(401, "missing API key: send the header \"Authorization: Bearer <key>\"");
        return false;
      }
      // The scheme is case-insensitive (RFC 9110); the key is not.
      bool bearer = auth.size() > kBearer.size() &&
                    std::equal(kBearer.begin(), kBearer.end(), auth.begin(),
                               [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
      if (!bearer || !key_in(keys_.api_keys, std::string_view(auth).substr(kBearer.size()))) {
        response = error_response(401, "unknown API key");
        return false;
      }
      return true;
    }
  }
  return false;
}

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

}  // namespace durable
