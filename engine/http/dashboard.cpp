#include "engine/http/dashboard.hpp"

namespace durable {

// The embedded files (cmake/embed_text.cmake, from engine/http/dashboard/).
extern const char kDashboardIndexHtml[];
extern const char kDashboardLoginHtml[];
extern const char kDashboardAppJs[];
extern const char kDashboardLoginJs[];
extern const char kDashboardStyleCss[];

namespace {

// A file of the dashboard at `path`. Answered on the server's network thread (a quick
// route): a page loads even while every handler thread is busy.
Route file(const char* path, Access access, const char* content, const char* type) {
  return Route{"GET", path, access,
               [content, type](const HttpRequest&) {
                 // The app's files change only with the binary; a page reload fetches them again.
                 return HttpResponse{.status = 200, .body = content, .content_type = type,
                                     .headers = {{"Cache-Control", "no-cache"}}};
               },
               /*quick=*/true};
}

}  // namespace

std::vector<Route> dashboard_routes() {
  return {
      file("/", Access::page, kDashboardIndexHtml, "text/html; charset=utf-8"),
      file("/assets/app.js", Access::page, kDashboardAppJs, "text/javascript; charset=utf-8"),
      file("/login", Access::open, kDashboardLoginHtml, "text/html; charset=utf-8"),
      file("/assets/login.js", Access::open, kDashboardLoginJs, "text/javascript; charset=utf-8"),
      file("/assets/style.css", Access::open, kDashboardStyleCss, "text/css; charset=utf-8"),
  };
}

}  // namespace durable
