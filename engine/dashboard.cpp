#include "engine/dashboard.hpp"

namespace durable {

// The embedded files (cmake/embed_text.cmake, from engine/dashboard/).
extern const char kDashboardIndexHtml[];
extern const char kDashboardLoginHtml[];
extern const char kDashboardAppJs[];
extern const char kDashboardStyleCss[];

namespace {

HttpHandler file(const char* content, const char* type) {
  return [content, type](const HttpRequest&) {
    // The app's files change only with the binary; a page reload fetches them again.
    return HttpResponse{.status = 200, .body = content, .content_type = type, .headers = {{"Cache-Control", "no-cache"}}};
  };
}

}  // namespace

std::vector<Route> dashboard_routes() {
  return {
      Route{"GET", "/", Access::page, file(kDashboardIndexHtml, "text/html; charset=utf-8")},
      Route{"GET", "/assets/app.js", Access::page, file(kDashboardAppJs, "text/javascript; charset=utf-8")},
      Route{"GET", "/login", Access::open, file(kDashboardLoginHtml, "text/html; charset=utf-8")},
      Route{"GET", "/assets/style.css", Access::open, file(kDashboardStyleCss, "text/css; charset=utf-8")},
  };
}

}  // namespace durable
