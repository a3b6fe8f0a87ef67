// The HTTP router: what the engine answers to a request, independent of how bytes reach it
// (HttpServer does that). A table of routes, each saying who may call it (anyone, holders of
// an event key in the path, holders of an API key in `Authorization: Bearer` or of a
// dashboard session, browsers with a session), checked before the handler runs; POST /login
// (an API key from a form, for a session cookie) and POST /logout; and the mapping of errors
// to answers: every error is a JSON body {"error": "..."} with its status. Every answer
// carries the security headers (no framing, no MIME sniffing, a Content-Security-Policy).
//
// A request is handled in two steps, so that a body is never read for a request that will be
// refused: admit() sees the head (method, path, query, headers) and either refuses it or
// picks the route; handle() runs the route with the body.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/http/sessions.hpp"

namespace durable {

struct HttpRequest {
  std::string method;
  std::string path;                           // as sent (percent-encoded), without the query
  std::string body;                           // after any Content-Encoding was undone
  std::vector<std::string> path_params;       // the {name} parts of the route's path, in order, decoded
  std::map<std::string, std::string> query;   // the first value of each query parameter, decoded
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  std::string remote_addr;

  // A header's value ("" when absent); names compare case-insensitively. The first one wins.
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // more headers (Location, Set-Cookie)
};

// Handlers may throw RequestError (answered with its status), StoreError (503: the database
// cannot take the request now) or any other std::exception (500).
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
  std::string method;  // GET or POST (a GET route answers HEAD too)
  std::string path;    // e.g. "/v1/runs/{id}/cancel"; a {name} matches one non-empty segment
  Access access;
  HttpHandler handler;
  // The handler never blocks (no database, no lock held for long): the server runs it on
  // its network thread, so it answers even when every handler thread is busy (/health).
  bool quick = false;
};

struct HttpKeys {
  std::vector<std::string> event_keys;  // none: every event_key route answers 401
  std::vector<std::string> api_keys;    // none: every api_key route answers 401, saying so
};

class HttpRouter {
 public:
  // `max_request_bytes` only words the 413 message. Adds POST /login and POST /logout.
  HttpRouter(HttpKeys keys, std::vector<Route> routes, size_t max_request_bytes);

  struct Admission {
    const Route* route = nullptr;          // set: read the body, then handle()
    std::optional<HttpResponse> refusal;   // set: answer this, read nothing more
  };
  // Looks at a request head (body empty): finds the route (404, 405 otherwise), fills in
  // `request.path_params`, and checks the caller's credentials (401, a redirect to /login,
  // 403 for a change made with a session cookie from elsewhere). Thread-safe.
  Admission admit(HttpRequest& request);

  // Runs `route`'s handler (admit() chose it) and turns what it throws into an error answer.
  // Thread-safe.
  HttpResponse handle(const Route& route, const HttpRequest& request);

  // The answer to a request the server refused itself (413, 400, 408, ...), in the same form.
  HttpResponse refusal(int status, const std::string& message = "") const;

  // Adds the security headers every answer carries (see the .cpp for each one's reason).
  static void add_security_headers(HttpResponse& response);

 private:
  // Answers 401 (and returns false) unless the request carries the credentials `access` needs.
  bool authorized(Access access, const HttpRequest& request, HttpResponse& response);
  void add_login_routes();
  // The session token in the request's Cookie header, or "".
  static std::string session_token(const HttpRequest& request);

  HttpKeys keys_;
  size_t max_request_bytes_;
  Sessions sessions_;
  std::vector<Route> routes_;
};

// Compares in time that depends only on the lengths, so response timing does not reveal how
// much of a guessed key was right.
bool equal_constant_time(std::string_view a, std::string_view b);

// {"error": message} with `status`.
HttpResponse error_response(int status, const std::string& message);

// Splits a request target ("/v1/runs?status=failed&limit=10") into its path, left as sent,
// and its query parameters, percent-decoded ('+' is a space). The first value of a repeated
// parameter wins. Returns false for a target that is not an origin-form path ("/...").
bool parse_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query);

// The decoded value of `name` in an application/x-www-form-urlencoded body; "" when absent.
std::string form_value(std::string_view body, std::string_view name);

}  // namespace durable
