#include "engine/http/http_router.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/base/log.hpp"
#include "engine/base/request_error.hpp"
#include "engine/store/store_error.hpp"

namespace durable {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; a '%' not followed by two hex digits is kept as it is.
std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

// Calls fn(name, value) for each name=value pair of a query string or form body, decoded.
template <class Fn>
void for_each_param(std::string_view text, Fn&& fn) {
  size_t at = 0;
  while (at < text.size()) {
    size_t amp = std::min(text.find('&', at), text.size());
    std::string_view pair = text.substr(at, amp - at);
    if (!pair.empty()) {
      size_t eq = std::min(pair.find('='), pair.size());
      fn(percent_decode(pair.substr(0, eq), true), percent_decode(eq < pair.size() ? pair.substr(eq + 1) : "", true));
    }
    at = amp + 1;
  }
}

// "/v1/runs/abc" -> {"v1", "runs", "abc"}; the segments stay encoded.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t at = 1;  // after the leading '/'
  while (at <= path.size()) {
    size_t slash = std::min(path.find('/', at), path.size());
    segments.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return segments;
}

// Whether `path` (encoded segments) matches the route's pattern; fills `params` (decoded).
bool matches(const std::vector<std::string_view>& pattern, const std::vector<std::string_view>& path,
             std::vector<std::string>& params) {
  if (pattern.size() != path.size()) return false;
  std::vector<std::string> found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i].starts_with('{')) {
      if (path[i].empty()) return false;
      found.push_back(percent_decode(path[i], false));
    } else if (pattern[i] != path[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

bool key_in(const std::vector<std::string>& keys, std::string_view key) {
  bool found = false;
  for (const auto& k : keys) found |= equal_constant_time(k, key);  // no early exit
  return found;
}

std::string default_message(int status, size_t max_request_bytes) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such endpoint";
    case 405: return "method not allowed";
    case 408: return "the request did not arrive in time";
    case 413: return fmt::format("the request is larger than the limit of {} bytes", max_request_bytes);
    case 415: return "unsupported Content-Encoding: send the body as it is, or gzip or deflate it";
    case 431: return "the request's head (its line and headers) is too large";
    case 503: return "the server is busy; try again";
    default: return fmt::format("HTTP {}", status);
  }
}

// A request's path as logged: POST /e/{key} carries the event key in its path, and no key is
// ever written to the log.
std::string loggable_path(const std::string& path) { return path.rfind("/e/", 0) == 0 ? "/e/{key}" : path; }

HttpResponse redirect(const std::string& location) {
  return HttpResponse{.status = 303, .body = "", .content_type = "text/plain", .headers = {{"Location", location}}};
}

// Whether a request made with the session cookie comes from the dashboard's own pages. The
// cookie is SameSite=Strict, but a "site" spans every port and subdomain of a host: a page
// served from another port of 127.0.0.1 could make the browser send it. A change (any method
// but GET) is therefore accepted only as the dashboard sends it: JSON, which a page of
// another origin can only send after a CORS preflight this server never answers, and, from
// browsers that say where a request comes from, from the same origin.
bool from_dashboard(const HttpRequest& request, HttpResponse& response) {
  if (request.method == "GET" || request.method == "HEAD") return true;
  std::string site = request.header("Sec-Fetch-Site");
  bool json = request.header("Content-Type").starts_with("application/json");
  if (json && (site.empty() || site == "same-origin" || site == "none")) return true;
  response = error_response(403, "a change made with the dashboard's session must come from its pages: "
                                 "JSON from the same origin (or use Authorization: Bearer <API key>)");
  return false;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [n, value] : headers) {
    if (iequals(n, name)) return value;
  }
  return {};
}

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

bool parse_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query) {
  if (target.empty() || target.front() != '/') return false;
  size_t mark = std::min(target.find('?'), target.size());
  path = std::string(target.substr(0, mark));
  if (mark < target.size()) {
    for_each_param(target.substr(mark + 1), [&](std::string name, std::string value) {
      query.emplace(std::move(name), std::move(value));  // keeps the first
    });
  }
  return true;
}

std::string form_value(std::string_view body, std::string_view name) {
  std::optional<std::string> found;
  for_each_param(body, [&](const std::string& n, std::string value) {
    if (!found && n == name) found = std::move(value);
  });
  return found.value_or("");
}

HttpRouter::HttpRouter(HttpKeys keys, std::vector<Route> routes, size_t max_request_bytes)
    : keys_(std::move(keys)), max_request_bytes_(max_request_bytes), routes_(std::move(routes)) {
  add_login_routes();
}

HttpRouter::Admission HttpRouter::admit(HttpRequest& request) {
  std::vector<std::string_view> path = split_path(request.path);
  std::string method = request.method == "HEAD" ? "GET" : request.method;
  std::string allowed;
  for (const Route& route : routes_) {
    std::vector<std::string> params;
    if (!matches(split_path(route.path), path, params)) continue;
    if (route.method != method) {
      allowed += (allowed.empty() ? "" : ", ") + route.method;
      continue;
    }
    request.path_params = std::move(params);
    Admission admission;
    HttpResponse refused;
    if (authorized(route.access, request, refused)) {
      admission.route = &route;
    } else {
      admission.refusal = std::move(refused);
    }
    return admission;
  }
  if (!allowed.empty()) {
    HttpResponse r = refusal(405);
    r.headers.emplace_back("Allow", allowed);
    return Admission{.refusal = std::move(r)};
  }
  return Admission{.refusal = refusal(404)};
}

HttpResponse HttpRouter::handle(const Route& route, const HttpRequest& request) {
  try {
    return route.handler(request);
  } catch (const RequestError& e) {
    return error_response(e.status(), e.what());
  } catch (const StoreError& e) {
    if (e.is_transient() || e.is_fatal()) {
      // The database cannot take the request now: busy past every retry, disk full, or
      // failed and stopped (docs/operations.md, "Storage faults"). Nothing of the request
      // was stored; it may be sent again (to this process once the disk has room, or to its
      // successor after a restart).
      log(LogLevel::warn, "request refused: the database cannot take it",
          {{"path", loggable_path(request.path)}, {"error", e.what()}});
      HttpResponse r = error_response(503, fmt::format("the database cannot take the request now: {}", e.what()));
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    log(LogLevel::error, "request failed", {{"path", loggable_path(request.path)}, {"error", e.what()}});
    return error_response(500, fmt::format("internal error: {}", e.what()));
  } catch (const std::exception& e) {
    log(LogLevel::error, "request failed", {{"path", loggable_path(request.path)}, {"error", e.what()}});
    return error_response(500, fmt::format("internal error: {}", e.what()));
  }
}

HttpResponse HttpRouter::refusal(int status, const std::string& message) const {
  return error_response(status, message.empty() ? default_message(status, max_request_bytes_) : message);
}

void HttpRouter::add_security_headers(HttpResponse& response) {
  auto add = [&](const char* name, const char* value) {
    bool present = std::any_of(response.headers.begin(), response.headers.end(),
                               [&](const auto& h) { return iequals(h.first, name); });
    if (!present) response.headers.emplace_back(name, value);
  };
  // No page of another origin may show the dashboard in a frame (clickjacking: an operator
  // logged in could be made to click Cancel under a decoy). Both the old header and CSP's.
  add("X-Frame-Options", "DENY");
  // Answers are what their Content-Type says: a JSON body quoting user data is never read
  // as HTML or script by a browser that would otherwise guess.
  add("X-Content-Type-Options", "nosniff");
  // The dashboard loads its script and stylesheet from this server and talks only to it; no
  // inline script or style runs, so text from events or step outputs that reaches a page
  // can never execute even if it escaped the page's own escaping.
  add("Content-Security-Policy",
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
      "form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
  // Other origins may not embed answers as resources (<script src=/v1/...> with the cookie).
  add("Cross-Origin-Resource-Policy", "same-origin");
  add("Referrer-Policy", "no-referrer");
  // Runs, events and outputs are other people's data: no cache keeps a copy.
  add("Cache-Control", "no-store");
}

std::string HttpRouter::session_token(const HttpRequest& request) {
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

void HttpRouter::add_login_routes() {
  // The dashboard's login form posts the key here; a session cookie stands for it from then
  // on. HttpOnly: page scripts cannot read it. SameSite=Strict: no other site's page can make
  // the browser send it (no cross-site request forgery).
  routes_.push_back(Route{"POST", "/login", Access::open, [this](const HttpRequest& req) {
                            std::string key = form_value(req.body, "api_key");
                            if (keys_.api_keys.empty()) return redirect("/login?error=no-api-key");
                            if (key.empty() || !key_in(keys_.api_keys, key)) {
                              log(LogLevel::warn, "dashboard login refused", {{"remote", req.remote_addr}});
                              return redirect("/login?error=unknown-key");
                            }
                            HttpResponse response = redirect("/");
                            response.headers.emplace_back(
                                "Set-Cookie",
                                fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", kSessionCookie,
                                            sessions_.create(), std::chrono::seconds(Sessions::kLifetime).count()));
                            return response;
                          }});
  routes_.push_back(Route{"POST", "/logout", Access::open, [this](const HttpRequest& req) {
                            sessions_.end(session_token(req));
                            HttpResponse response = redirect("/login");
                            response.headers.emplace_back(
                                "Set-Cookie",
                                fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", kSessionCookie));
                            return response;
                          }});
}

bool HttpRouter::authorized(Access access, const HttpRequest& request, HttpResponse& response) {
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
      bool bearer = auth.size() > kBearer.size() && iequals(std::string_view(auth).substr(0, kBearer.size()), kBearer);
      if (!bearer || !key_in(keys_.api_keys, std::string_view(auth).substr(kBearer.size()))) {
        response = error_response(401, "unknown API key");
        return false;
      }
      return true;
    }
  }
  return false;
}

}  // namespace durable
