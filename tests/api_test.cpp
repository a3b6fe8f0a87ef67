// The REST API (/v1/*) over real HTTP on 127.0.0.1: functions, events and runs with their
// filters and cursors, a run's step timeline, credentials on every route, errors that change
// nothing, and retention (POST /v1/gc, and the Retention pass itself on a manual clock).
#include <httplib.h>

#include <set>
#include <stdexcept>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/engine_access.hpp"
#include "engine/exec/retention.hpp"
#include "engine/http/api.hpp"
#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kApiKey = "api-key-1";
constexpr const char* kEventKey = "event-key-1";

// The functions of every server here.
//   steps   on test/steps and test/both: step a returns data.n, step b a + 1; output {"sum": b}
//   also    on test/both: returns "also"
//   sleeper on test/sleep: step a, a 1 h sleep "nap", step b
//   flaky   on test/flaky: step "boom" always throws; 1 retry after 1 s; a failure handler
//   wild    on other/*: returns null
void define_functions(Engine& engine) {
  engine.function({.id = "steps", .name = "Steps demo"}, {on_event("test/steps"), on_event("test/both")}, [](Context& ctx) {
    int a = ctx.step.run("a", [&] { return ctx.event.data.value("n", 0); });
    int b = ctx.step.run("b", [&] { return a + 1; });
    return json{{"sum", b}};
  });
  engine.function({.id = "also"}, on_event("test/both"), [](Context&) { return "also"; });
  engine.function({.id = "sleeper"}, on_event("test/sleep"), [](Context& ctx) {
    ctx.step.run("a", [] { return 1; });
    ctx.step.sleep("nap", 1h);
    return ctx.step.run("b", [] { return 2; });
  });
  engine.function({.id = "flaky", .retries = 1, .backoff = fast_backoff(), .on_failure = [](Context&, const Failure&) {}},
                  on_event("test/flaky"), [](Context& ctx) {
                    ctx.step.run("boom", []() -> int { throw std::runtime_error("boom"); });
                  });
  engine.function({.id = "wild"}, on_event("other/*"), [](Context&) {});
}

json parse_answer(const httplib::Result& res, int status) {
  REQUIRE(res);
  CHECK_MESSAGE(res->status == status, res->body);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  return json::parse(res->body);
}

// Everything the store holds, read through its interface, as text: equal snapshots mean
// nothing changed.
std::string snapshot(Store& store) {
  std::string out;
  auto time = [](std::optional<TimePoint> t) { return t ? std::to_string(to_millis(*t)) : std::string("-"); };
  for (const StoredEvent& e : store.list_events(EventFilter{}, 1000000, "")) {
    out += fmt::format("event {} {} dup={} at={}\n", e.id, json(e.event).dump(), e.duplicate, time(e.received_at));
  }
  for (const Run& r : store.list_runs(RunFilter{}, 1000000, "")) {
    out += fmt::format("run {} {} {} {} attempt={} output={} error={} available={} started={} ended={} replay_of={}\n",
                       r.id, r.function_id, r.event_id, to_string(r.status), r.attempt,
                       r.output.dump(), r.error.dump(), time(r.available_at),
                       time(r.started_at), time(r.ended_at), r.replay_of);
    for (const JournalEntry& e : store.load_journal(r.id)) {
      out += fmt::format("  {} {} {} {} {}\n", e.seq, to_string(e.kind), e.step_key, e.attempt.value_or(-1), e.payload);
    }
  }
  for (const FunctionRecord& f : store.list_functions()) {
    out += fmt::format("function {} {} {}\n", f.id, f.config.dump(), f.registered_by);
    for (const Trigger& t : f.triggers) out += fmt::format("  trigger {} {} {}\n", t.event, t.filter, t.cron);
  }
  return out;
}

// An engine with define_functions() on a manual clock, serving on a free port; `http` sends
// the API key.
struct Server {
  explicit Server(ServeOptions options = {})
      : clock(std::make_shared<ManualClock>()), engine(engine_options(dir.file("t.db"), clock)) {
    define_functions(engine);
    options.port = 0;
    options.event_keys = {kEventKey};
    options.api_keys = {kApiKey, "api-key-2"};
    port = engine.listen(options);
    http = std::make_unique<httplib::Client>("127.0.0.1", port);
    http->set_bearer_token_auth(kApiKey);
  }

  json get(const std::string& path, int status = 200) { return parse_answer(http->Get(path.c_str()), status); }
  json post(const std::string& path, const std::string& body, int status = 200) {
    return parse_answer(http->Post(path.c_str(), body, "application/json"), status);
  }

  std::string send(const std::string& name, json data = json::object()) {
    return engine.send(Event{.name = name, .data = std::move(data)});
  }
  // The id of the one run event `event_id` started.
  std::string run_of(const std::string& event_id) { return only_run(engine, event_id).id; }
  std::string snapshot() { return ::snapshot(EngineAccess::store(engine)); }
  int64_t ms(std::chrono::milliseconds after_start = 0ms) const { return to_millis(start + after_start); }

  TempDir dir;
  std::shared_ptr<ManualClock> clock;
  TimePoint start = clock->now();
  Engine engine;
  int port = 0;
  std::unique_ptr<httplib::Client> http;
};

std::vector<std::string> ids_of(const json& list) {
  std::vector<std::string> ids;
  for (const auto& item : list) ids.push_back(item["id"]);
  return ids;
}

// Every "{name}" of a route's path replaced by `value`.
std::string fill_params(const std::string& path, const std::string& value) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '{') {
      i = path.find('}', i);
      out += value;
    } else {
      out += path[i];
    }
  }
  return out;
}

const json* find_by_id(const json& list, const std::string& id) {
  for (const auto& item : list) {
    if (item["id"] == id) return &item;
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("api") {
  TEST_CASE("GET /v1/functions lists every registered function with its triggers and options") {
    Server s;
    json functions = s.get("/v1/functions")["functions"];
    std::set<std::string> ids;
    for (const auto& f : functions) ids.insert(f["id"].get<std::string>());
    CHECK(ids == std::set<std::string>{"also", "flaky", "flaky-failure", "sleeper", "steps", "wild"});

    const json& steps = *find_by_id(functions, "steps");
    CHECK(steps["name"] == "Steps demo");
    std::set<std::string> triggers;
    for (const auto& t : steps["triggers"]) triggers.insert(t["event"].get<std::string>());
    CHECK(triggers == std::set<std::string>{"test/both", "test/steps"});
    CHECK(steps["retries"] == 4);
    CHECK(steps["backoff_ms"][0] == 15000);
    CHECK(steps["max_jitter_ms"] == 30000);
    CHECK(steps["on_failure"] == false);
    CHECK(steps["failure_handler_of"].is_null());
    CHECK(steps["registered_at"] == s.ms());
    CHECK(!steps["registered_by"].get<std::string>().empty());

    const json& flaky = *find_by_id(functions, "flaky");
    CHECK(flaky["name"] == "flaky");
    CHECK(flaky["retries"] == 1);
    CHECK(flaky["backoff_ms"] == json{1000});
    CHECK(flaky["max_jitter_ms"] == 0);
    CHECK(flaky["on_failure"] == true);
    const json& handler = *find_by_id(functions, "flaky-failure");
    CHECK(handler["failure_handler_of"] == "flaky");
    CHECK(handler["triggers"] == json::array());
    CHECK(find_by_id(functions, "wild")->at("triggers") == json{{{"event", "other/*"}}});
  }

  TEST_CASE("GET /v1/events filters by name and reception time, newest first, with a cursor; an event and its runs") {
    Server s;
    // audit/* starts no run, so no lifecycle events join in.
    std::string e0 = s.send("audit/x", {{"i", 0}});
    s.clock->advance(1s);
    std::string e1 = s.send("audit/y", {{"i", 1}});
    s.clock->advance(1s);
    std::string e2 = s.send("audit/x", {{"i", 2}});
    s.clock->advance(1s);
    std::string e3 = s.engine.send(Event{.id = "order-7", .name = "audit/x", .data = {{"i", 3}},
                                         .user = {{"email", "a@b.c"}}, .ts = from_millis(1700000000000), .v = "2024-01"});

    // POST /v1/events sends with the API key, as POST /e/{key} does with an event key.
    s.clock->advance(1s);
    json sent = s.post("/v1/events", R"([{"name":"audit/z","data":{"i":4}}])");
    REQUIRE(sent["ids"].size() == 1);
    std::string e4 = sent["ids"][0];
    CHECK(s.get("/v1/events/" + e4)["data"] == json{{"i", 4}});

    // runs=true: each event with the runs it started (audit/* starts none; test/steps one).
    std::string started = s.send("test/steps");
    REQUIRE(s.engine.drain());
    json with_runs = s.get("/v1/events?runs=true&limit=3")["events"];
    REQUIRE(with_runs.size() == 3);
    for (const auto& e : with_runs) {
      CAPTURE(e["name"]);
      if (e["name"] == "test/steps") {
        REQUIRE(e["runs"].size() == 1);
        CHECK(e["runs"][0]["id"] == s.run_of(started));
        CHECK(e["runs"][0]["status"] == "completed");
      } else {
        CHECK(e["runs"] == json::array());
      }
    }
    CHECK_FALSE(s.get("/v1/events?limit=1")["events"][0].contains("runs"));

    json all = s.get("/v1/events?received_before=" + std::to_string(s.ms(4s)));
    CHECK(ids_of(all["events"]) == std::vector<std::string>{e3, e2, e1, e0});
    CHECK(all["next_cursor"].is_null());
    CHECK(ids_of(s.get("/v1/events?name=audit/x")["events"]) == std::vector<std::string>{e3, e2, e0});
    // received_after is inclusive, received_before exclusive.
    CHECK(ids_of(s.get("/v1/events?received_after=" + std::to_string(s.ms(1s)) + "&received_before=" +
                       std::to_string(s.ms(3s)))["events"]) == std::vector<std::string>{e2, e1});

    json first = s.get("/v1/events?name=audit/x&limit=2");
    CHECK(ids_of(first["events"]) == std::vector<std::string>{e3, e2});
    REQUIRE(first["next_cursor"] == e2);
    json second = s.get("/v1/events?name=audit/x&limit=2&cursor=" + e2);
    CHECK(ids_of(second["events"]) == std::vector<std::string>{e0});
    CHECK(second["next_cursor"].is_null());

    json one = s.get("/v1/events/" + e3);
    CHECK(one == json{{"id", e3}, {"name", "audit/x"}, {"data", {{"i", 3}}}, {"user", {{"email", "a@b.c"}}},
                      {"ts", 1700000000000}, {"v", "2024-01"}, {"sender_id", "order-7"}, {"duplicate", false},
                      {"received_at", s.ms(3s)}});
    CHECK(s.get("/v1/events/" + e0)["ts"] == s.ms());  // ts defaults to the reception time
    CHECK(s.get("/v1/events/" + e0 + "/runs")["runs"] == json::array());

    std::string both = s.send("test/both");
    REQUIRE(s.engine.drain());
    json runs = s.get("/v1/events/" + both + "/runs")["runs"];
    REQUIRE(runs.size() == 2);
    std::set<std::string> functions{runs[0]["function_id"].get<std::string>(), runs[1]["function_id"].get<std::string>()};
    CHECK(functions == std::set<std::string>{"also", "steps"});
    for (const auto& r : runs) {
      CHECK(r["event_id"] == both);
      CHECK(r["status"] == "completed");
    }
  }

  TEST_CASE("GET /v1/runs filters by status, function, event and start time, newest first") {
    Server s;
    std::vector<std::string> steps_runs;
    for (int n = 0; n < 3; ++n) steps_runs.push_back(s.run_of(s.send("test/steps", {{"n", n}})));
    REQUIRE(s.engine.drain());
    s.clock->advance(1min);
    std::vector<std::string> sleeping;
    for (int i = 0; i < 2; ++i) sleeping.push_back(s.run_of(s.send("test/sleep")));
    REQUIRE(s.engine.drain());
    s.clock->advance(1min);
    std::string flaky_event = s.send("test/flaky");
    std::string flaky = s.run_of(flaky_event);
    REQUIRE(s.engine.drain());  // its step failed once: queued for the retry

    std::vector<std::string> newest_first = {flaky, sleeping[1], sleeping[0], steps_runs[2], steps_runs[1], steps_runs[0]};
    json all = s.get("/v1/runs");
    CHECK(ids_of(all["runs"]) == newest_first);
    CHECK(all["next_cursor"].is_null());
    CHECK(ids_of(s.get("/v1/runs?status=sleeping")["runs"]) == std::vector<std::string>{sleeping[1], sleeping[0]});
    CHECK(ids_of(s.get("/v1/runs?status=queued,sleeping")["runs"]) ==
          std::vector<std::string>{flaky, sleeping[1], sleeping[0]});
    CHECK(ids_of(s.get("/v1/runs?status=completed&function=steps")["runs"]) ==
          std::vector<std::string>{steps_runs[2], steps_runs[1], steps_runs[0]});
    CHECK(ids_of(s.get("/v1/runs?function=sleeper")["runs"]) == std::vector<std::string>{sleeping[1], sleeping[0]});
    CHECK(ids_of(s.get("/v1/runs?event=" + flaky_event)["runs"]) == std::vector<std::string>{flaky});
    CHECK(ids_of(s.get("/v1/runs?started_after=" + std::to_string(s.ms(1min)))["runs"]) ==
          std::vector<std::string>{flaky, sleeping[1], sleeping[0]});
    CHECK(ids_of(s.get("/v1/runs?started_before=" + std::to_string(s.ms(1min)))["runs"]) ==
          std::vector<std::string>{steps_runs[2], steps_runs[1], steps_runs[0]});
    CHECK(ids_of(s.get("/v1/runs?started_after=" + std::to_string(s.ms(1min)) + "&started_before=" +
                       std::to_string(s.ms(2min)))["runs"]) == std::vector<std::string>{sleeping[1], sleeping[0]});
    CHECK(s.get("/v1/runs?function=nobody")["runs"] == json::array());

    json page = s.get("/v1/runs?limit=4");
    CHECK(ids_of(page["runs"]) == std::vector<std::string>(newest_first.begin(), newest_first.begin() + 4));
    REQUIRE(page["next_cursor"] == newest_first[3]);
    page = s.get("/v1/runs?limit=4&cursor=" + newest_first[3]);
    CHECK(ids_of(page["runs"]) == std::vector<std::string>(newest_first.begin() + 4, newest_first.end()));
    CHECK(page["next_cursor"].is_null());
  }

  TEST_CASE("paging through runs while new runs are created skips none and repeats none") {
    Server s;
    std::set<std::string> originals;
    for (int n = 0; n < 7; ++n) originals.insert(s.run_of(s.send("test/steps", {{"n", n}})));
    REQUIRE(s.engine.drain());

    std::set<std::string> seen;
    std::string cursor;
    int pages = 0, created = 0;
    do {
      json page = s.get("/v1/runs?function=steps&limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
      ++pages;
      for (const auto& id : ids_of(page["runs"])) CHECK_MESSAGE(seen.insert(id).second, "repeated " << id);
      cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
      // New runs arrive between pages (newer, so they sort before the cursor).
      s.clock->advance(1ms);
      for (int i = 0; i < 2; ++i, ++created) s.send("test/steps", {{"n", 100 + created}});
      REQUIRE(s.engine.drain());
    } while (!cursor.empty());
    CHECK(pages == 3);
    CHECK(seen == originals);
    CHECK(s.get("/v1/runs?function=steps&limit=1000")["runs"].size() == originals.size() + created);
  }

  TEST_CASE("GET /v1/runs/{id} of a completed run: status, event, output, times, and its steps in order") {
    Server s;
    std::string event_id = s.send("test/steps", {{"n", 4}});
    REQUIRE(s.engine.drain());
    std::string id = s.run_of(event_id);
    json run = s.get("/v1/runs/" + id);
    CHECK(run["id"] == id);
    CHECK(run["function_id"] == "steps");
    CHECK(run["status"] == "completed");
    CHECK(run["attempt"] == 0);
    CHECK(run["output"] == json{{"sum", 5}});
    CHECK(run["error"].is_null());
    CHECK(run["created_at"] == s.ms());
    CHECK(run["started_at"] == s.ms());
    CHECK(run["ended_at"] == s.ms());
    CHECK(run["replay_of"].is_null());
    CHECK(run["replays"] == json::array());
    CHECK(run["body_errors"] == json::array());
    CHECK(run["event_id"] == event_id);
    CHECK(run["event"]["id"] == event_id);
    CHECK(run["event"]["name"] == "test/steps");
    CHECK(run["event"]["data"] == json{{"n", 4}});
    REQUIRE(run["steps"].size() == 2);
    CHECK(run["steps"][0] == json{{"key", "a"}, {"kind", "run"}, {"status", "completed"}, {"attempts", 1},
                                  {"started_at", s.ms()}, {"ended_at", s.ms()}, {"output", 4}, {"error", nullptr},
                                  {"retry_at", nullptr}, {"until", nullptr}, {"attempt_errors", json::array()},
                                  {"spans", json{{{"attempt", 0}, {"started_at", s.ms()}, {"ended_at", s.ms()},
                                                  {"outcome", "completed"}}}}});
    CHECK(run["steps"][1]["key"] == "b");
    CHECK(run["steps"][1]["output"] == 5);
  }

  TEST_CASE("GET /v1/runs/{id} of a sleeping run shows the pending sleep, then the sleep done") {
    Server s;
    std::string id = s.run_of(s.send("test/sleep"));
    REQUIRE(s.engine.drain());
    json run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "sleeping");
    CHECK(run["ended_at"].is_null());
    CHECK(run["available_at"] == s.ms(1h));
    REQUIRE(run["steps"].size() == 2);
    CHECK(run["steps"][0]["status"] == "completed");
    json nap = run["steps"][1];
    CHECK(nap["key"] == "nap");
    CHECK(nap["kind"] == "sleep");
    CHECK(nap["status"] == "sleeping");
    CHECK(nap["started_at"] == s.ms());
    CHECK(nap["until"] == s.ms(1h));
    CHECK(nap["ended_at"].is_null());

    advance(s.engine, *s.clock, 1h);
    run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "completed");
    CHECK(run["ended_at"] == s.ms(1h));
    REQUIRE(run["steps"].size() == 3);
    CHECK(run["steps"][1]["status"] == "completed");
    CHECK(run["steps"][1]["ended_at"] == s.ms(1h));
    CHECK(run["steps"][2]["key"] == "b");
    CHECK(run["steps"][2]["started_at"] == s.ms(1h));
  }

  TEST_CASE("GET /v1/runs/{id} of a failing run: the retrying step, each attempt's error, then the failure") {
    Server s;
    std::string id = s.run_of(s.send("test/flaky"));
    REQUIRE(s.engine.drain());
    json run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "queued");
    CHECK(run["attempt"] == 1);
    CHECK(run["available_at"] == s.ms(1s));
    REQUIRE(run["steps"].size() == 1);
    json boom = run["steps"][0];
    CHECK(boom["status"] == "retrying");
    CHECK(boom["attempts"] == 1);
    CHECK(boom["retry_at"] == s.ms(1s));
    CHECK(boom["error"]["message"] == "boom");
    REQUIRE(boom["attempt_errors"].size() == 1);
    CHECK(boom["attempt_errors"][0]["attempt"] == 0);
    CHECK(boom["attempt_errors"][0]["at"] == s.ms());

    advance(s.engine, *s.clock, 1s);
    run = s.get("/v1/runs/" + id);
    CHECK(run["status"] == "failed");
    CHECK(run["error"]["message"] == "boom");
    CHECK(run["error"]["step"] == "boom");
    CHECK(run["error"]["name"].is_string());
    CHECK(run["output"].is_null());
    CHECK(run["ended_at"] == s.ms(1s));
    boom = run["steps"][0];
    CHECK(boom["status"] == "failed");
    CHECK(boom["attempts"] == 2);
    CHECK(boom["retry_at"].is_null());
    CHECK(boom["ended_at"] == s.ms(1s));
    CHECK(boom["attempt_errors"].size() == 2);
    // Each attempt as a span of time, for the dashboard's timeline.
    CHECK(boom["spans"] == json{{{"attempt", 0}, {"started_at", s.ms()}, {"ended_at", s.ms()}, {"outcome", "failed"}},
                                {{"attempt", 1}, {"started_at", s.ms(1s)}, {"ended_at", s.ms(1s)}, {"outcome", "failed"}}});
  }

  TEST_CASE("GET /v1/functions?stats=true counts runs by status over the last hour and day, with a chart in 15 min buckets") {
    Server s;
    // One run 30 h ago (outside the day), two 5 h ago (one fails), three in the last hour.
    s.send("test/steps");
    advance(s.engine, *s.clock, 25h);
    s.send("test/steps");
    s.send("test/flaky");
    advance(s.engine, *s.clock, 4h + 30min);
    for (int i = 0; i < 3; ++i) s.send("test/steps");
    advance(s.engine, *s.clock, 30min);
    REQUIRE(s.engine.drain());

    json functions = s.get("/v1/functions?stats=true")["functions"];
    const json* steps = find_by_id(functions, "steps");
    REQUIRE(steps);
    json stats = (*steps)["stats"];
    CHECK(stats["last_hour"]["completed"] == 3);
    CHECK(stats["last_day"]["completed"] == 4);
    CHECK(stats["last_day"]["failed"] == 0);
    json chart = stats["chart"];
    CHECK(chart["bucket_ms"] == 15 * 60 * 1000);
    CHECK(chart["from"] == s.ms(6h) + 1);  // 96 buckets; the last ends just after now (30 h)
    REQUIRE(chart["series"]["completed"].size() == 96);
    CHECK(chart["series"]["completed"][75] == 1);  // 5 h ago: (25 h - (6 h + 1 ms)) / 15 min = 75
    CHECK(chart["series"]["completed"][93] == 3);  // 30 min ago
    int64_t sum = 0;
    for (const auto& n : chart["series"]["completed"]) sum += n.get<int64_t>();
    CHECK(sum == 4);
    CHECK(chart["series"]["queued"] == json(std::vector<int>(96, 0)));

    json flaky = (*find_by_id(functions, "flaky"))["stats"];
    CHECK(flaky["last_day"]["failed"] == 1);
    CHECK(flaky["last_hour"]["failed"] == 0);
    json wild = (*find_by_id(functions, "wild"))["stats"];  // no runs: zeros
    CHECK(wild["last_day"]["completed"] == 0);
    CHECK(wild["chart"]["series"]["completed"].size() == 96);
    // Without stats=true, none.
    CHECK_FALSE((*find_by_id(s.get("/v1/functions")["functions"], "steps")).contains("stats"));
  }

  TEST_CASE("a client that accepts Brotli gets gzip: httplib's Brotli takes ~1 s for a large answer") {
    Server s;
    s.send("test/steps", {{"pad", std::string(20000, 'x')}});
    for (auto [accepted, expected] : std::vector<std::pair<std::string, std::string>>{
             {"gzip, deflate, br", "gzip"}, {"br;q=1.0, gzip;q=0.8", "gzip"}, {"BR, gzip", "gzip"}, {"br", ""}, {"", ""}}) {
      CAPTURE(accepted);
      httplib::Headers headers{{"Authorization", std::string("Bearer ") + kApiKey}};
      if (!accepted.empty()) headers.emplace("Accept-Encoding", accepted);
      httplib::Client http("127.0.0.1", s.port);
      auto res = http.Get("/v1/events?name=test/steps", headers);
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(res->get_header_value("Content-Encoding") == expected);
      CHECK(json::parse(res->body)["events"][0]["data"]["pad"].get<std::string>().size() == 20000);  // decompressed
    }
  }

  TEST_CASE("every route but /health and /metrics refuses a request without valid credentials") {
    Server s;
    std::string run_id = s.run_of(s.send("test/steps"));
    REQUIRE(s.engine.drain());
    std::string before = s.snapshot();
    // The snapshot shows what is stored: the run, its journal, its event, the functions.
    CHECK(before.find("run " + run_id) != std::string::npos);
    CHECK(before.find("step_completed") != std::string::npos);
    CHECK(before.find("test/steps") != std::string::npos);
    CHECK(before.find("function ") != std::string::npos);
    httplib::Client anonymous("127.0.0.1", s.port);
    auto call = [&](httplib::Client& client, const Route& route, const std::string& path, const httplib::Headers& headers) {
      return route.method == "GET" ? client.Get(path.c_str(), headers) : client.Post(path.c_str(), headers, "{}", "application/json");
    };
    std::vector<Route> routes = api_routes(nullptr, false);
    CHECK(routes.size() >= 14);
    for (const Route& route : routes) {
      CAPTURE(route.method);
      CAPTURE(route.path);
      bool open = route.path == "/health" || route.path == "/metrics";
      auto res = call(anonymous, route, fill_params(route.path, "dummy"), {});
      REQUIRE(res);
      if (open) {
        CHECK(res->status == 200);
        continue;
      }
      CHECK(res->status == 401);
      CHECK(json::parse(res->body).contains("error"));
      if (route.access == Access::api_key) {
        for (const std::string& wrong : {std::string("Bearer wrong"), std::string("Bearer ") + kApiKey + "x", std::string("Basic ") + kApiKey,
                                  std::string(kApiKey), std::string("Bearer  ") + kApiKey}) {
          CAPTURE(wrong);
          CHECK(call(anonymous, route, fill_params(route.path, "dummy"), {{"Authorization", wrong}})->status == 401);
        }
      }
      // With credentials, the route is served (whatever the dummy parameters make it answer).
      std::string param = route.access == Access::event_key ? kEventKey : "dummy";
      auto served = call(*s.http, route, fill_params(route.path, param), {});
      REQUIRE(served);
      CHECK_MESSAGE(json::parse(served->body).value("error", "") != "no such endpoint", served->body);
    }
    CHECK(s.snapshot() == before);
    // The second key works too.
    CHECK(anonymous.Get("/v1/runs/" + run_id, {{"Authorization", "Bearer api-key-2"}})->status == 200);
  }

  TEST_CASE("a function unregistered no longer gets runs from events ingested by other processes") {
    Server s;
    // Another process on the database, with no functions of its own (like `durable serve`).
    Engine other(engine_options(s.dir.file("t.db"), s.clock));
    CHECK(other.runs_for_event(other.send(Event{.name = "test/sleep"})).size() == 1);
    auto answer = s.post("/v1/functions/sleeper/unregister", "");
    CHECK(answer["unregistered"] == "sleeper");
    // Held in a variable: a range-for over a temporary's element would use it after its end.
    const nlohmann::json functions = s.get("/v1/functions")["functions"];
    for (const auto& f : functions) CHECK(f["id"] != "sleeper");
    CHECK(other.runs_for_event(other.send(Event{.name = "test/sleep"})).empty());
    CHECK(other.runs_for_event(other.send(Event{.name = "test/steps"})).size() == 1);  // the others stay
    s.post("/v1/functions/sleeper/unregister", "", 404);
  }

  TEST_CASE("without any API key configured, /v1 refuses every request and says how to configure one") {
    unsetenv("DURABLE_API_KEY");
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<ManualClock>()));
    define_functions(engine);
    int port = engine.listen({.port = 0, .event_keys = {kEventKey}});
    httplib::Client http("127.0.0.1", port);
    for (const char* key : {"", "anything"}) {
      if (*key) http.set_bearer_token_auth(key);
      auto answer = parse_answer(http.Get("/v1/runs"), 401);
      CHECK(answer["error"].get<std::string>().find("DURABLE_API_KEY") != std::string::npos);
    }
    CHECK(http.Get("/health")->status == 200);
  }

  TEST_CASE("/metrics needs the API key when ServeOptions::metrics_require_api_key is set") {
    for (const Route& r : api_routes(nullptr, true)) {
      if (r.path == "/metrics") CHECK(r.access == Access::api_key);
    }
    Server s(ServeOptions{.metrics_require_api_key = true});
    httplib::Client anonymous("127.0.0.1", s.port);
    CHECK(anonymous.Get("/metrics")->status == 401);
    CHECK(anonymous.Get("/health")->status == 200);
    auto res = s.http->Get("/metrics");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body.find("durable_runs_started_total") != std::string::npos);
  }

  TEST_CASE("bad requests answer {\"error\"} with their status (400, 401, 404, 409, 413) and change nothing") {
    Server s(ServeOptions{.max_request_bytes = 4000});
    std::string completed = s.run_of(s.send("test/steps"));
    std::string sleeping = s.run_of(s.send("test/sleep"));
    REQUIRE(s.engine.drain());
    struct Bad {
      std::string method, path, body;
      int status;
      std::string needle;
    };
    std::string replay = "/v1/runs/" + completed + "/replay";
    std::vector<Bad> cases = {
        {"GET", "/v1/runs?limit=0", "", 400, "\"limit\" must be between 1 and 1000"},
        {"GET", "/v1/runs?limit=1001", "", 400, "\"limit\" must be between 1 and 1000"},
        {"GET", "/v1/runs?limit=ten", "", 400, "\"limit\" must be an integer"},
        {"GET", "/v1/runs?status=done", "", 400, "unknown status 'done'"},
        {"GET", "/v1/runs?status=%FF", "", 400, "unknown status"},  // not UTF-8: still a JSON answer
        {"GET", "/v1/runs/%FF%FE", "", 404, "no run with id"},
        {"GET", "/v1/runs?started_after=yesterday", "", 400, "\"started_after\""},
        {"GET", "/v1/runs?started_before=99999999999999999", "", 400, "\"started_before\""},
        {"GET", "/v1/runs?started_after=-1", "", 400, "\"started_after\""},
        {"GET", "/v1/events?limit=-1", "", 400, "\"limit\""},
        {"GET", "/v1/events?received_before=noon", "", 400, "\"received_before\""},
        {"POST", replay, "{not json", 400, "not valid JSON"},
        {"POST", replay, "[1]", 400, "must be a JSON object"},
        {"POST", replay, R"({"from_step":5})", 400, "\"from_step\" must be a step key"},
        {"POST", replay, R"({"from_step":"nope"})", 400, "has no step 'nope'"},
        {"POST", replay, R"({"output":1})", 400, "\"output\" needs \"from_step\""},
        {"POST", "/v1/runs/" + sleeping + "/replay", R"({"from_step":"nap","output":1})", 400, "is a sleep"},
        {"POST", "/v1/cancellations", "{}", 400, "at least one of"},
        {"POST", "/v1/cancellations", R"({"status":[]})", 400, "at least one of"},
        {"POST", "/v1/cancellations", R"({"status":"bogus"})", 400, "unknown status 'bogus'"},
        {"POST", "/v1/cancellations", R"({"function":3})", 400, "\"function\" must be a string"},
        {"POST", "/v1/cancellations", R"({"event":[]})", 400, "\"event\" must be a string"},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","dry_run":"yes"})", 400, "\"dry_run\" must be true or false"},
        {"POST", "/v1/replays", R"({"dry_run":true})", 400, "at least one of"},
        {"POST", "/v1/events", R"({"data":{}})", 400, "name"},
        {"POST", "/v1/events", R"({"name":"durable/function.finished"})", 400, "durable/"},
        {"GET", "/v1/functions?stats=yes", "", 400, "\"stats\" must be true or false"},
        {"GET", "/v1/events?runs=1", "", 400, "\"runs\" must be true or false"},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","limit":0})", 400, "\"limit\""},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","cursor":7})", 400, "\"cursor\""},
        {"POST", "/v1/cancellations", R"({"started_after":"today"})", 400, "ms since the Unix epoch"},
        {"POST", "/v1/replays", "{}", 400, "at least one of"},
        {"POST", "/v1/replays", R"({"status":["failed",3]})", 400, "\"status\""},
        {"POST", "/v1/gc", "{}", 400, "\"older_than_ms\" is required"},
        {"POST", "/v1/gc", R"({"older_than_ms":-1})", 400, "\"older_than_ms\""},
        {"POST", "/v1/gc", R"({"older_than_ms":"7d"})", 400, "\"older_than_ms\""},
        {"GET", "/v1/runs/nope", "", 404, "no run with id 'nope'"},
        {"GET", "/v1/events/nope", "", 404, "no event with id 'nope'"},
        {"GET", "/v1/events/nope/runs", "", 404, "no event with id 'nope'"},
        {"POST", "/v1/runs/nope/cancel", "", 404, "no run with id 'nope'"},
        {"POST", "/v1/runs/nope/resume", "", 404, "no run with id 'nope'"},
        {"POST", "/v1/runs/nope/replay", "", 404, "no run with id 'nope'"},
        {"GET", "/v1/nothing", "", 404, "no such endpoint"},
        {"POST", "/v1/runs/" + completed + "/cancel", "", 409, "is already completed"},
        {"POST", "/v1/runs/" + completed + "/resume", "", 409, "only a failed or cancelled run can be resumed"},
        {"POST", "/v1/runs/" + sleeping + "/resume", "", 409, "is sleeping"},
        {"POST", "/v1/replays", json{{"function", "steps"}, {"pad", std::string(5000, 'x')}}.dump(), 413, "limit of 4000 bytes"},
    };
    for (const Bad& bad : cases) {
      CAPTURE(bad.method);
      CAPTURE(bad.path);
      CAPTURE(bad.body);
      std::string before = s.snapshot();
      json answer = bad.method == "GET" ? s.get(bad.path, bad.status) : s.post(bad.path, bad.body, bad.status);
      REQUIRE(answer.contains("error"));
      CHECK_MESSAGE(answer["error"].get<std::string>().find(bad.needle) != std::string::npos, answer["error"]);
      CHECK(s.snapshot() == before);
    }
    // 401: a missing or unknown key.
    std::string before = s.snapshot();
    httplib::Client anonymous("127.0.0.1", s.port);
    json missing = parse_answer(anonymous.Post("/v1/runs/" + sleeping + "/cancel", "", "application/json"), 401);
    CHECK(missing["error"].get<std::string>().find("missing API key") != std::string::npos);
    json unknown = parse_answer(anonymous.Post("/v1/cancellations", {{"Authorization", "Bearer nope"}},
                                               R"({"function":"sleeper"})", "application/json"),
                                401);
    CHECK(unknown["error"] == "unknown API key");
    CHECK(s.snapshot() == before);
    CHECK(s.get("/v1/runs/" + sleeping)["status"] == "sleeping");
  }

  TEST_CASE("hostile JSON and cursors on every route that takes them answer 400 naming the field, change nothing, "
            "and the server keeps answering") {
    Server s;
    std::string completed = s.run_of(s.send("test/steps"));
    s.run_of(s.send("test/sleep"));
    REQUIRE(s.engine.drain());
    std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    std::string replay = "/v1/runs/" + completed + "/replay";
    struct Bad {
      std::string method, path, body, needle;
    };
    std::vector<Bad> cases = {
        // Nesting: refused while parsing, before anything could copy or print it.
        {"POST", replay, R"({"from_step":"a","output":)" + deep + "}", "the body is nested more than 100 levels deep"},
        {"POST", "/v1/runs/nope/replay", R"({"from_step":"a","output":)" + deep + "}", "nested more than 100 levels"},
        {"POST", replay, deep, "nested more than 100 levels"},
        {"POST", "/v1/cancellations", R"({"function":)" + deep + "}", "nested more than 100 levels"},
        {"POST", "/v1/cancellations", R"({"status":"failed","cursor":)" + deep + "}", "nested more than 100 levels"},
        {"POST", "/v1/replays", R"({"status":)" + deep + "}", "nested more than 100 levels"},
        {"POST", "/v1/gc", R"({"older_than_ms":)" + deep + "}", "nested more than 100 levels"},
        {"POST", "/v1/events", R"({"name":"audit/x","data":{"a":)" + deep + "}}", "nested more than 100 levels"},
        // Numbers out of a double's range: named.
        {"POST", replay, "1e999999", "the body: the number 1e999999 is out of range"},
        {"POST", replay, R"({"from_step":"a","output":{"total":1e400}})",
         R"("output.total" in the body: the number 1e400 is out of range)"},
        {"POST", "/v1/gc", R"({"older_than_ms":1e400})", R"("older_than_ms" in the body: the number 1e400 is out of range)"},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","limit":-1e400})", R"("limit" in the body: the number)"},
        {"POST", "/v1/events", R"([{"name":"audit/x","ts":1e400}])", R"("[0].ts" in the body: the number 1e400 is out of range)"},
        // Numbers JSON holds that the field cannot: refused, never cast.
        {"POST", "/v1/gc", R"({"older_than_ms":1e300})", "\"older_than_ms\" is required"},
        {"POST", "/v1/gc", R"({"older_than_ms":18446744073709551615})", "\"older_than_ms\" is required"},
        {"POST", "/v1/gc", R"({"older_than_ms":9223372036854775807})", "\"older_than_ms\" is required"},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","limit":1e300})", "\"limit\" must be an integer"},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","limit":18446744073709551615})", "\"limit\" must be an integer"},
        {"POST", "/v1/replays", R"({"started_after":1e300})", "\"started_after\" must be ms since the Unix epoch"},
        {"POST", "/v1/replays", R"({"started_before":18446744073709551615})", "\"started_before\" must be ms"},
        {"POST", "/v1/events", R"({"name":"audit/x","ts":1e300})", "\"ts\" must be milliseconds"},
        // Cursors: an id from an earlier page, nothing else reaches the store.
        {"GET", "/v1/runs?cursor=nope", "", "\"cursor\" must be the next_cursor of an earlier page"},
        {"GET", "/v1/runs?cursor=%27%20OR%201%3D1%20--", "", "\"cursor\" must be"},
        {"GET", "/v1/events?cursor=01jqdae4rqf8mbcr55t5ak4kxs", "", "\"cursor\" must be"},
        {"POST", "/v1/cancellations", R"({"function":"sleeper","cursor":"8ZZZZZZZZZZZZZZZZZZZZZZZZZ"})", "\"cursor\" must be"},
    };
    for (const Bad& bad : cases) {
      CAPTURE(bad.method);
      CAPTURE(bad.path);
      CAPTURE(bad.body.substr(0, 80));
      std::string before = s.snapshot();
      json answer = bad.method == "GET" ? s.get(bad.path, 400) : s.post(bad.path, bad.body, 400);
      REQUIRE(answer.contains("error"));
      CHECK_MESSAGE(answer["error"].get<std::string>().find(bad.needle) != std::string::npos, answer["error"]);
      CHECK(s.snapshot() == before);
      CHECK(s.get("/health")["status"] == "ok");
    }
    // Within range, the same fields work.
    CHECK(s.post("/v1/cancellations", R"({"function":"sleeper","dry_run":true,"started_after":281474976710655})")["total"] == 0);
    std::string cursor = s.get("/v1/runs?limit=1")["next_cursor"];
    CHECK(s.get("/v1/runs?limit=1&cursor=" + cursor)["runs"].size() == 1);
  }

  TEST_CASE("POST /v1/gc deletes runs finished before the cutoff and the old events no run refers to") {
    Server s;
    std::vector<std::string> old_runs, old_events;
    for (int n = 0; n < 2; ++n) {
      old_events.push_back(s.send("test/steps", {{"n", n}}));
      old_runs.push_back(s.run_of(old_events.back()));
    }
    std::string lonely = s.send("audit/x");  // no run refers to it
    std::string sleeping_event = s.send("test/sleep");
    std::string sleeping = s.run_of(sleeping_event);
    REQUIRE(s.engine.drain());  // the steps runs completed (each with a lifecycle event); sleeper sleeps
    // 8 days later the sleeper wakes and completes: it ended now, so it stays, and so does its
    // (old) event.
    advance(s.engine, *s.clock, 8 * 24h);
    std::string recent_event = s.send("test/steps");
    std::string recent = s.run_of(recent_event);
    REQUIRE(s.engine.drain());

    json gc = s.post("/v1/gc", json{{"older_than_ms", std::chrono::milliseconds(7 * 24h).count()}}.dump());
    CHECK(gc["runs_deleted"] == 2);
    // The two events of the old runs, their two durable/function.finished events, and the lonely one.
    CHECK(gc["events_deleted"] == 5);
    for (const auto& id : old_runs) s.get("/v1/runs/" + id, 404);
    for (const auto& id : old_events) s.get("/v1/events/" + id, 404);
    s.get("/v1/events/" + lonely, 404);
    CHECK(s.get("/v1/runs/" + recent)["status"] == "completed");
    CHECK(s.get("/v1/runs/" + sleeping)["status"] == "completed");
    s.get("/v1/events/" + sleeping_event);  // its run is kept, so is the event
    s.get("/v1/events/" + recent_event);
    for (const auto& id : old_runs) CHECK(EngineAccess::store(s.engine).load_journal(id).empty());

    // older_than_ms 0: every finished run goes, and the sleeper's event with it, but events
    // younger than 24 h stay (they deduplicate later sends).
    s.clock->advance(1ms);
    gc = s.post("/v1/gc", R"({"older_than_ms":0})");
    CHECK(gc["runs_deleted"] == 2);
    CHECK(gc["events_deleted"] == 1);
    s.get("/v1/events/" + sleeping_event, 404);
    s.get("/v1/events/" + recent_event);
    CHECK(s.get("/v1/runs")["runs"] == json::array());
  }
}

namespace {

// Builds runs in given states directly in a store, each run of its own function (so a claim
// takes exactly it) and, unless `event_id` is given, with its own event.
struct StoreBuilder {
  Store& store;
  ManualClock& clock;
  IdGenerator ids;

  std::string event(const std::string& name = "test/e") {
    std::string id = ids.next(clock.now());
    store.ingest({IngestStore::Item{id, Event{.name = name, .ts = clock.now()}, {}}}, clock.now(), 24h);
    return id;
  }

  std::string run(RunStatus status, std::string event_id = "") {
    TimePoint now = clock.now();
    if (event_id.empty()) event_id = event();
    std::string id = ids.next(now);
    std::string function = "f-" + id;
    store.create_runs({NewRun{.id = id, .function_id = function, .event_id = event_id}}, now);
    if (status == RunStatus::queued) return id;
    if (status == RunStatus::cancelled) {
      REQUIRE(store.cancel_runs({id}, now).at(0) == RunAdmin::Change::done);
      return id;
    }
    auto claimed = store.claim({function}, now, Lease{"worker", now + 365 * 24h}, 1);
    REQUIRE(claimed.size() == 1);
    if (status == RunStatus::running) return id;
    Commit c{.run_id = id, .lease_epoch = claimed[0].lease_epoch, .now = now};
    c.entries.push_back(JournalEntry{.seq = 1, .kind = JournalKind::step_completed, .step_key = "a", .payload = "1",
                                     .started_at = now, .recorded_at = now});
    RunTransition t{.status = status, .available_at = now};
    if (status == RunStatus::sleeping) {
      t.available_at = now + 365 * 24h;
      c.entries.push_back(JournalEntry{.seq = 2, .kind = JournalKind::sleep_scheduled, .step_key = "nap",
                                       .payload = "{\"until\":" + std::to_string(to_millis(t.available_at)) + "}",
                                       .recorded_at = now});
    } else if (status == RunStatus::completed) {
      t.output = "1";
      c.entries.push_back(JournalEntry{.seq = 2, .kind = JournalKind::run_completed, .payload = "1", .recorded_at = now});
    } else {
      t.error = R"({"name":"E","message":"m"})";
      c.entries.push_back(JournalEntry{.seq = 2, .kind = JournalKind::run_failed, .payload = *t.error, .recorded_at = now});
    }
    c.transition = t;
    REQUIRE(store.commit(c) == JournalStore::CommitResult::committed);
    return id;
  }
};

}  // namespace

TEST_SUITE("api") {
  TEST_CASE("retention deletes old finished runs with their journals, then unreferenced events, in batches") {
    TempDir dir;
    ManualClock clock;
    auto store_owner = open_store(dir.file("t.db"), {});
    Store& store = *store_owner;
    StoreBuilder b{store, clock};

    // 40 days ago.
    std::vector<std::string> old_finished = {b.run(RunStatus::completed), b.run(RunStatus::failed),
                                             b.run(RunStatus::cancelled)};
    std::vector<std::string> old_unfinished = {b.run(RunStatus::queued), b.run(RunStatus::running),
                                               b.run(RunStatus::sleeping)};
    std::string shared = b.event();  // one finished and one sleeping run
    old_finished.push_back(b.run(RunStatus::completed, shared));
    old_unfinished.push_back(b.run(RunStatus::sleeping, shared));
    std::string lonely_old = b.event();
    std::vector<std::string> old_finished_events;
    for (size_t i = 0; i < 3; ++i) old_finished_events.push_back(store.find_run(old_finished[i])->event_id);

    clock.advance(40 * 24h);
    std::string recent = b.run(RunStatus::completed);
    std::string young_event = b.event();

    Retention retention({.max_age = 30 * 24h, .batch = 2}, store, clock);
    GcResult r = retention.collect(clock.now() - 30 * 24h);
    CHECK(r.runs_deleted == 4);
    CHECK(r.events_deleted == 4);  // the three finished runs' own events and the lonely one
    for (const auto& id : old_finished) {
      CHECK(!store.find_run(id));
      CHECK(store.load_journal(id).empty());
    }
    for (const auto& id : old_unfinished) {
      REQUIRE(store.find_run(id));
      CHECK(!store.load_journal(id).empty());
      CHECK(store.find_event(store.find_run(id)->event_id));
    }
    for (const auto& id : old_finished_events) CHECK(!store.find_event(id));
    CHECK(!store.find_event(lonely_old));
    CHECK(store.find_event(shared));
    CHECK(store.find_run(recent));
    CHECK(store.find_event(young_event));

    // A cutoff of now takes every finished run, but no event younger than 24 h.
    clock.advance(1h);
    r = retention.collect(clock.now());
    CHECK(r.runs_deleted == 1);
    CHECK(r.events_deleted == 0);
    CHECK(!store.find_run(recent));
    CHECK(store.find_event(young_event));
    clock.advance(24h);
    r = retention.collect(clock.now());
    CHECK(r.runs_deleted == 0);
    CHECK(r.events_deleted == 2);  // the young event and the recent run's
    CHECK(!store.find_event(young_event));
    for (const auto& id : old_unfinished) CHECK(store.find_run(id));
  }
}
