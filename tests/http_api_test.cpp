// The event API over real HTTP on 127.0.0.1: Inngest's request and answer shapes, keys,
// validation that stores nothing from a bad request, size limits, and deduplication.
#include <httplib.h>

#include <doctest/doctest.h>

#include "engine/engine_access.hpp"
#include "engine/events/event_id_seed.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// An engine on a manual clock with one function on "test/*", listening on a free port.
struct Server {
  explicit Server(ServeOptions options = {}) : clock(std::make_shared<ManualClock>()),
                                               engine(engine_options(dir.file("t.db"), clock)) {
    engine.function({.id = "echo"}, on_event("test/*"), [](Context& ctx) { return ctx.event.data; });
    options.port = 0;
    options.event_keys = {"key-1", "key-2"};
    port = engine.listen(options);
    http = std::make_unique<httplib::Client>("127.0.0.1", port);
  }

  httplib::Result post(const std::string& path, const std::string& body) {
    return http->Post(path.c_str(), body, "application/json");
  }

  // Rows in `table`; for events, only those sent to the API (runs ending add lifecycle events
  // of their own at any moment).
  int64_t count(const std::string& table) {
    Store& store = EngineAccess::store(engine);
    if (table == "runs") return store.count_runs(RunFilter{});
    REQUIRE(table == "events");
    int64_t n = 0;
    for (const StoredEvent& e : store.list_events(EventFilter{}, 100000, "")) n += e.event.name.rfind("durable/", 0) != 0;
    return n;
  }

  TempDir dir;
  std::shared_ptr<ManualClock> clock;
  Engine engine;
  int port = 0;
  std::unique_ptr<httplib::Client> http;
};

nlohmann::json body_of(const httplib::Result& res) {
  REQUIRE(res);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  return nlohmann::json::parse(res->body);
}

// Checks a refused request: its status, a JSON {"error"} naming `needle`, and nothing stored.
void check_refused(Server& s, const std::string& path, const std::string& body, int status, const std::string& needle) {
  int64_t events = s.count("events"), runs = s.count("runs");
  auto res = s.post(path, body);
  REQUIRE(res);
  CHECK(res->status == status);
  auto answer = body_of(res);
  REQUIRE(answer.contains("error"));
  CHECK_MESSAGE(std::string(answer["error"]).find(needle) != std::string::npos, answer["error"]);
  CHECK(s.count("events") == events);
  CHECK(s.count("runs") == runs);
}

}  // namespace

TEST_SUITE("http_api") {
  TEST_CASE("POST /e/{key} with one event answers its id and has committed the event and its run") {
    Server s;
    auto res = s.post("/e/key-1", R"({"name":"test/one","data":{"userId":"u_1"}})");
    REQUIRE(res);
    CHECK(res->status == 200);
    auto answer = body_of(res);
    CHECK(answer["status"] == 200);
    REQUIRE(answer["ids"].size() == 1);
    std::string id = answer["ids"][0];
    CHECK(id.size() == 26);
    // Committed before the answer: the run exists without waiting for anything.
    auto runs = s.engine.runs_for_event(id);
    REQUIRE(runs.size() == 1);
    REQUIRE(s.engine.drain());
    Run run = only_run(s.engine, id);
    CHECK(run.status == RunStatus::completed);
    CHECK(run.output == nlohmann::json{{"userId", "u_1"}});
  }

  TEST_CASE("an array of events answers their ids in input order") {
    Server s;
    auto answer = body_of(s.post("/e/key-2", R"([{"name":"test/a","data":{"i":0}},{"name":"other/b"},{"name":"test/c","data":{"i":2}}])"));
    REQUIRE(answer["ids"].size() == 3);
    REQUIRE(s.engine.drain());
    CHECK(only_run(s.engine, answer["ids"][0]).output == nlohmann::json{{"i", 0}});
    CHECK(s.engine.runs_for_event(answer["ids"][1].get<std::string>()).empty());  // no function for other/b
    CHECK(only_run(s.engine, answer["ids"][2]).output == nlohmann::json{{"i", 2}});
    CHECK(answer["ids"][0] < answer["ids"][1]);
    CHECK(answer["ids"][1] < answer["ids"][2]);
  }

  TEST_CASE("optional fields: data and user default to {}, ts to now; id, ts, v and user are kept") {
    Server s;
    TimePoint now = s.clock->now();
    auto answer = body_of(s.post("/e/key-1", R"([{"name":"test/defaults"},
        {"name":"test/full","data":{"a":1},"user":{"email":"a@b.c"},"id":"dedup-1","ts":1700000000000,"v":"2024-01"}])"));
    REQUIRE(s.engine.drain());
    Store& store = EngineAccess::store(s.engine);
    std::optional<StoredEvent> plain = store.find_event(answer["ids"][0].get<std::string>());
    REQUIRE(plain);
    CHECK(plain->event.data == nlohmann::json::object());
    CHECK(plain->event.user == nlohmann::json::object());
    CHECK(plain->event.ts == now);
    CHECK(plain->event.v.empty());
    CHECK(plain->event.id.empty());
    std::optional<StoredEvent> full = store.find_event(answer["ids"][1].get<std::string>());
    REQUIRE(full);
    CHECK(full->event.user == nlohmann::json{{"email", "a@b.c"}});
    CHECK(full->event.ts == from_millis(1700000000000));
    CHECK(full->event.v == "2024-01");
    CHECK(full->event.id == "dedup-1");
  }

  TEST_CASE("a missing or unknown event key answers 401 and stores nothing") {
    Server s;
    check_refused(s, "/e/", R"({"name":"test/x"})", 401, "missing event key");
    check_refused(s, "/e/wrong-key", R"({"name":"test/x"})", 401, "unknown event key");
    check_refused(s, "/e/key-1x", R"({"name":"test/x"})", 401, "unknown event key");
  }

  TEST_CASE("malformed or invalid events answer 400 with a message and store nothing of the request") {
    Server s;
    check_refused(s, "/e/key-1", R"({"name":"test/x",)", 400, "the body is not valid JSON at line 1, column 18");
    check_refused(s, "/e/key-1", "", 400, "the body is not valid JSON");
    check_refused(s, "/e/key-1", R"("just a string")", 400, "an event object or an array");
    check_refused(s, "/e/key-1", R"([])", 400, "no events");
    check_refused(s, "/e/key-1", R"({"data":{}})", 400, "\"name\" is required");
    check_refused(s, "/e/key-1", R"({"name":42})", 400, "\"name\" must be a string");
    check_refused(s, "/e/key-1", R"({"name":""})", 400, "event name is empty");
    check_refused(s, "/e/key-1", nlohmann::json{{"name", std::string(513, 'n')}}.dump(), 400, "the limit is 512");
    check_refused(s, "/e/key-1", R"({"name":"test/x","data":[1,2]})", 400, "\"data\" must be a JSON object");
    check_refused(s, "/e/key-1", R"({"name":"test/x","data":"text"})", 400, "\"data\" must be a JSON object");
    check_refused(s, "/e/key-1", R"({"name":"test/x","user":5})", 400, "\"user\" must be a JSON object");
    check_refused(s, "/e/key-1", R"({"name":"test/x","id":7})", 400, "\"id\" must be a string");
    check_refused(s, "/e/key-1", R"({"name":"test/x","ts":"yesterday"})", 400, "\"ts\" must be milliseconds");
    // One bad event in an array refuses the whole request, naming it.
    check_refused(s, "/e/key-1", R"([{"name":"test/ok"},{"name":"test/bad","data":3}])", 400, "event 1:");
    CHECK(s.count("events") == 0);
  }

  TEST_CASE("JSON nested too deep answers 400 (and does not crash the server)") {
    Server s;
    std::string deep = R"({"name":"test/deep","data":{"a":)" + std::string(1'000'000, '[') + std::string(1'000'000, ']') + "}}";
    check_refused(s, "/e/key-1", deep, 400, "nested more than 100 levels");
    std::string ok = R"({"name":"test/deep","data":{"a":)" + std::string(50, '[') + std::string(50, ']') + "}}";
    CHECK(s.post("/e/key-1", ok)->status == 200);
  }

  TEST_CASE("hostile JSON in events (deep nesting, numbers out of range) answers 400 naming the field, and the server keeps answering") {
    Server s;
    std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    check_refused(s, "/e/key-1", R"([{"name":"test/ok"},{"name":"test/deep","data":{"a":)" + deep + "}}]", 400,
                  "nested more than 100 levels deep");
    check_refused(s, "/e/key-1", deep, 400, "nested more than 100 levels deep");
    check_refused(s, "/e/key-1", "1e999999", 400, "the body: the number 1e999999 is out of range");
    check_refused(s, "/e/key-1", R"({"name":"test/x","ts":1e400})", 400, R"("ts" in the body: the number 1e400 is out of range)");
    check_refused(s, "/e/key-1", R"({"name":"test/x","data":{"amount":1e400}})", 400,
                  R"("data.amount" in the body: the number 1e400 is out of range)");
    check_refused(s, "/e/key-1", R"([{"name":"test/ok"},{"name":"test/x","data":{"list":[1,-2e999]}}])", 400,
                  R"("[1].data.list[1]" in the body: the number -2e999 is out of range)");
    // Numbers JSON holds but a time does not: refused, not cast.
    for (const char* ts : {"1e300", "1.5", "-1", "18446744073709551615", "9223372036854775807", "281474976710656"}) {
      CAPTURE(ts);
      check_refused(s, "/e/key-1", std::string(R"({"name":"test/x","ts":)") + ts + "}", 400, "\"ts\" must be milliseconds");
    }
    // Huge numbers a double holds are data like any other.
    auto ok = s.post("/e/key-1", R"({"name":"test/big","ts":281474976710655,"data":{"amount":1e300,"n":18446744073709551615}})");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    auto health = s.http->Get("/health");
    REQUIRE(health);
    CHECK(health->status == 200);
  }

  TEST_CASE("events and requests over the size limits answer 413 and store nothing") {
    Server s(ServeOptions{.max_event_bytes = 1000, .max_request_bytes = 4000});
    std::string big(1200, 'x');
    check_refused(s, "/e/key-1", nlohmann::json{{"name", "test/big"}, {"data", {{"blob", big}}}}.dump(), 413, "limit is 1000");
    nlohmann::json many = nlohmann::json::array();
    for (int i = 0; i < 10; ++i) many.push_back({{"name", "test/many"}, {"data", {{"blob", std::string(500, 'y')}}}});
    check_refused(s, "/e/key-1", many.dump(), 413, "4000 bytes");
    // Within both limits: accepted.
    CHECK(s.post("/e/key-1", nlohmann::json{{"name", "test/ok"}, {"data", {{"blob", std::string(500, 'z')}}}}.dump())->status == 200);
  }

  TEST_CASE("the default limits are 512 KiB per event and 3 MiB per request") {
    ServeOptions defaults;
    CHECK(defaults.max_event_bytes == 512 * 1024);
    CHECK(defaults.max_request_bytes == 3 * 1024 * 1024);
  }

  TEST_CASE("a repeated event id within 24 h is acknowledged and stored but starts no run") {
    Server s;
    auto first = body_of(s.post("/e/key-1", R"({"name":"test/pay","id":"charge-42"})"));
    auto again = body_of(s.post("/e/key-1", R"({"name":"test/pay","id":"charge-42"})"));
    CHECK(again["status"] == 200);
    CHECK(again["ids"][0] != first["ids"][0]);
    CHECK(s.count("events") == 2);
    CHECK(s.engine.runs_for_event(first["ids"][0].get<std::string>()).size() == 1);
    CHECK(s.engine.runs_for_event(again["ids"][0].get<std::string>()).empty());
    s.clock->advance(23h);
    auto later = body_of(s.post("/e/key-1", R"({"name":"test/pay","id":"charge-42"})"));
    CHECK(s.engine.runs_for_event(later["ids"][0].get<std::string>()).empty());
    s.clock->advance(1h + 1ms);  // 24 h after the first
    auto after = body_of(s.post("/e/key-1", R"({"name":"test/pay","id":"charge-42"})"));
    CHECK(s.engine.runs_for_event(after["ids"][0].get<std::string>()).size() == 1);
  }

  TEST_CASE("an Inngest id seed gives the same ids again, unless its time is more than an hour from the engine's") {
    Server s;
    auto post_seeded = [&](int64_t millis) {
      std::string seed = std::to_string(millis) + ",AAECAwQFBgcICQ==";
      auto res = s.http->Post("/e/key-1", {{"x-inngest-event-id-seed", seed}}, R"({"name":"test/seeded"})",
                              "application/json");
      REQUIRE(res);
      REQUIRE(res->status == 200);
      return std::make_pair(nlohmann::json::parse(res->body)["ids"][0].get<std::string>(),
                            event_ids_from_seed(seed, 1)->at(0));
    };
    int64_t now = to_millis(s.clock->now());
    auto [first, seeded] = post_seeded(now - 59 * 60 * 1000);
    CHECK(first == seeded);
    auto [again, _] = post_seeded(now - 59 * 60 * 1000);
    CHECK(again == first);  // a retried send: nothing new
    CHECK(s.count("events") == 1);
    CHECK(s.engine.runs_for_event(first).size() == 1);
    for (int64_t far : {now - 61 * 60 * 1000, now + 61 * 60 * 1000}) {
      auto [id, from_seed] = post_seeded(far);
      CHECK(id != from_seed);  // fresh ids: listings and retention read an id's time as its reception
    }
    CHECK(s.count("events") == 3);
  }

  TEST_CASE("GET /health answers without a key; unknown routes answer 404 in JSON") {
    Server s;
    auto health = s.http->Get("/health");
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(body_of(health)["status"] == "ok");
    auto missing = s.http->Get("/nope");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(body_of(missing).contains("error"));
  }
}
