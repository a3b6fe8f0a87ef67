// The dashboard's serving and login: embedded files at /, a session cookie for an API key,
// and nothing for a browser without one.
#include <httplib.h>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;

namespace {

constexpr const char* kApiKey = "dashboard-api-key";

// The session cookie a login answer sets: "durable_session=<token>".
std::string session_cookie(const httplib::Result& answer) {
  std::string set_cookie = answer->get_header_value("Set-Cookie");
  return set_cookie.substr(0, set_cookie.find(';'));
}

}  // namespace

TEST_SUITE("dashboard") {
  TEST_CASE("the dashboard is served at / only to a browser logged in with an API key, with an HttpOnly SameSite=Strict cookie") {
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<ManualClock>()));
    engine.function({.id = "hello"}, on_event("demo/hello"), [](Context& ctx) { return ctx.step.run("greet", [] { return 1; }); });
    int port = engine.listen({.port = 0, .event_keys = {"ek"}, .api_keys = {kApiKey}});
    httplib::Client http("127.0.0.1", port);

    // Without a session: the pages and the app redirect to the login page; the API refuses.
    for (const char* path : {"/", "/assets/app.js"}) {
      CAPTURE(path);
      auto answer = http.Get(path);
      REQUIRE(answer);
      CHECK(answer->status == 303);
      CHECK(answer->get_header_value("Location") == "/login");
      CHECK(answer->body.find("durable") == std::string::npos);
    }
    auto login_page = http.Get("/login");
    REQUIRE(login_page);
    CHECK(login_page->status == 200);
    CHECK(login_page->get_header_value("Content-Type") == "text/html; charset=utf-8");
    CHECK(login_page->body.find("name=\"api_key\"") != std::string::npos);
    CHECK(http.Get("/assets/style.css")->status == 200);  // the login page's look
    CHECK(http.Get("/v1/runs")->status == 401);

    // A wrong key: back to the login page, saying why, with no cookie.
    auto refused = http.Post("/login", "api_key=wrong", "application/x-www-form-urlencoded");
    REQUIRE(refused);
    CHECK(refused->status == 303);
    CHECK(refused->get_header_value("Location") == "/login?error=unknown-key");
    CHECK_FALSE(refused->has_header("Set-Cookie"));

    // The right key: a session cookie only the browser's requests to this site carry.
    auto login = http.Post("/login", std::string("api_key=") + kApiKey, "application/x-www-form-urlencoded");
    REQUIRE(login);
    CHECK(login->status == 303);
    CHECK(login->get_header_value("Location") == "/");
    std::string set_cookie = login->get_header_value("Set-Cookie");
    CHECK(set_cookie.find("durable_session=") == 0);
    CHECK(set_cookie.find("; HttpOnly") != std::string::npos);
    CHECK(set_cookie.find("; SameSite=Strict") != std::string::npos);
    CHECK(set_cookie.find("; Path=/") != std::string::npos);
    httplib::Headers browser{{"Cookie", "theme=dark; " + session_cookie(login)}};

    auto page = http.Get("/", browser);
    REQUIRE(page);
    CHECK(page->status == 200);
    CHECK(page->body.find("<script src=\"/assets/app.js\">") != std::string::npos);
    auto app = http.Get("/assets/app.js", browser);
    REQUIRE(app);
    CHECK(app->status == 200);
    CHECK(app->get_header_value("Content-Type") == "text/javascript; charset=utf-8");
    CHECK(app->body.find("async function runsView") != std::string::npos);
    // The data behind the pages: the REST API takes the session too.
    engine.send({.name = "demo/hello"});
    auto runs = http.Get("/v1/runs", browser);
    REQUIRE(runs);
    CHECK(runs->status == 200);
    CHECK(nlohmann::json::parse(runs->body)["runs"].size() == 1);

    // A change made with the cookie must be JSON from the dashboard's own origin: a page on
    // another port of the same host (same site, so the cookie goes along) cannot make one.
    std::string event = R"({"name":"demo/hello"})";
    auto with = [&](httplib::Headers extra) {
      extra.insert(browser.begin(), browser.end());
      return extra;
    };
    for (auto [headers, content_type] : std::vector<std::pair<httplib::Headers, std::string>>{
             {with({}), "text/plain"},                                          // a cross-origin form or no-cors fetch
             {with({}), "application/x-www-form-urlencoded"},
             {with({{"Sec-Fetch-Site", "same-site"}}), "application/json"},     // another port
             {with({{"Sec-Fetch-Site", "cross-site"}}), "application/json"}}) {
      CAPTURE(content_type);
      auto refused = http.Post("/v1/events", headers, event, content_type.c_str());
      REQUIRE(refused);
      CHECK(refused->status == 403);
      CHECK(refused->body.find("must come from its pages") != std::string::npos);
    }
    CHECK(http.Post("/v1/events", with({{"Sec-Fetch-Site", "same-origin"}}), event, "application/json")->status == 200);
    CHECK(http.Post("/v1/events", browser, event, "application/json")->status == 200);  // a client that does not say
    CHECK(http.Get("/v1/runs", with({{"Sec-Fetch-Site", "cross-site"}}))->status == 200);  // reads: SameSite suffices
    // The API key itself is not a browser's: no such rule.
    CHECK(http.Post("/v1/events", httplib::Headers{{"Authorization", std::string("Bearer ") + kApiKey}}, event, "text/plain")
              ->status == 200);

    // A forged or ended session is no session.
    CHECK(http.Get("/", httplib::Headers{{"Cookie", "durable_session=" + std::string(64, 'a')}})->status == 303);
    auto logout = http.Post("/logout", browser, "", "application/x-www-form-urlencoded");
    REQUIRE(logout);
    CHECK(logout->status == 303);
    CHECK(logout->get_header_value("Set-Cookie").find("Max-Age=0") != std::string::npos);
    CHECK(http.Get("/", browser)->status == 303);
    CHECK(http.Get("/v1/runs", browser)->status == 401);
    engine.stop();
  }

  TEST_CASE("without an API key configured, nobody can log in, and the login page says why") {
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<ManualClock>()));
    int port = engine.listen({.port = 0, .event_keys = {"ek"}});
    httplib::Client http("127.0.0.1", port);
    auto answer = http.Post("/login", "api_key=anything", "application/x-www-form-urlencoded");
    REQUIRE(answer);
    CHECK(answer->get_header_value("Location") == "/login?error=no-api-key");
    // The page's script (no inline script: the CSP forbids it) words the error.
    CHECK(http.Get("/login")->body.find("/assets/login.js") != std::string::npos);
    CHECK(http.Get("/assets/login.js")->body.find("no API key configured") != std::string::npos);
    engine.stop();
  }
}
