// The HTTP server: cpp-httplib on its own threads, serving a table of routes. Each route says
// who may call it (anyone, holders of an event key in the path, holders of an API key in
// `Authorization: Bearer` or of a dashboard session, browsers with a session), and the server
// checks that before the handler runs. It also serves POST /login (an API key from a form, for
// a session cookie) and POST /logout. Handlers see
// plain HttpRequest/HttpResponse values, so httplib stays inside http_server.cpp. Every error
// answers a JSON body {"error": "..."} with its status.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <durable/engine.hpp>

#include "engine/sessions.hpp"

namespace httplib {
class Server;
}

namespace durable {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string body;
  std::vector<std::string> path_params;       // the {name} parts of the route's path, in order
  std::map<std::string, std::string> query;   // the first value of each query parameter
  std::function<std::string(const char*)> header;  // a header's value, "" when absent
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // more headers (Location, Set-Cookie)
};

// Handlers may throw RequestError (answered with its status) or any std::exception (500).
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

enum class Access {
  open,       // no credentials
  event_key,  // the route's first path parameter is an event key
  api_key,    // Authorization: Bearer <API key>, or a dashboard session cookie
  page,       // a dashboard page: a session cookie, else a redirect to /login
};

// The cookie that holds a dashboard session's token.
inline constexpr const char* kSessionCookie = "durable_session";

struct Route {
  std::string method;  // GET or POST
  std::string path;    // e.g. "/v1/runs/{id}/cancel"
  Access access;
  HttpHandler handler;
};

struct HttpKeys {
  std::vector<std::string> event_keys;  // none: every event_key route answers 401
  std::vector<std::string> api_keys;    // none: every api_key route answers 401, saying so
};

class HttpServer {
 public:
  HttpServer(const ServeOptions& options, HttpKeys keys, std::vector<Route> routes);
  // Stops (see stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving in the background; returns the port. Throws durable::Error when
  // it cannot bind.
  int start();
  // Stops accepting connections and waits for requests in progress. Idempotent.
  void stop();

 private:
  // Answers 401 (and returns false) unless the request carries the credentials `access` needs.
  bool authorized(Access access, const HttpRequest& request, HttpResponse& response);

  // POST /login and POST /logout.
  void add_login_routes();
  // The session token in the request's Cookie header, or "".
  static std::string session_token(const HttpRequest& request);

  ServeOptions options_;
  HttpKeys keys_;
  Sessions sessions_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> listen_returned_{false};
  std::thread thread_;
};

// Compares in time that depends only on the lengths, so response timing does not reveal how
// much of a guessed key was right.
bool equal_constant_time(std::string_view a, std::string_view b);

// {"error": message} with `status`.
HttpResponse error_response(int status, const std::string& message);

}  // namespace durable
