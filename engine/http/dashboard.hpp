// The dashboard (docs/dashboard.md): a single-page app over the REST API, served at / from
// the same port. Its files (engine/http/dashboard/) are embedded in the binary at build time, so
// nothing is needed at run time. The pages need a session (POST /login, see HttpServer); the
// login page and the stylesheet do not.
#pragma once

#include <vector>

#include "engine/http/http_router.hpp"

namespace durable {

// GET /, /login, /assets/app.js, /assets/login.js, /assets/style.css.
std::vector<Route> dashboard_routes();

}  // namespace durable
