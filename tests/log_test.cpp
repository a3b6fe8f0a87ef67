// Structured logs: one logfmt line per event (run started, step failed with its attempt and
// error, run failed, lease recovered, operators' actions), a level that filters them, and no
// key ever written, whatever the requests.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include <httplib.h>

#include <doctest/doctest.h>

#include "engine/base/log.hpp"
#include "engine/store/open_store.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

using Fields = std::map<std::string, std::string>;

// A tiny logfmt reader: `key=value` pairs separated by single spaces, a key of [a-z_], a
// value either bare (up to the next space) or double-quoted with \" \\ and \n escapes.
// Throws, failing the test, on anything else.
Fields parse_logfmt(std::string_view line) {
  auto fail = [&](const char* what) { throw std::invalid_argument(std::string(what) + " in log line: " + std::string(line)); };
  Fields out;
  size_t i = 0;
  while (i < line.size()) {
    size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) fail("no '='");
    std::string key(line.substr(i, eq - i));
    if (key.empty() || key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos) fail("a bad key");
    std::string value;
    i = eq + 1;
    if (i < line.size() && line[i] == '"') {
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] != '\\') {
          value += line[i];
        } else if (++i < line.size()) {
          value += line[i] == 'n' ? '\n' : line[i];
        }
      }
      if (i >= line.size()) fail("an unterminated quote");
      ++i;
    } else {
      size_t end = std::min(line.find(' ', i), line.size());
      value = line.substr(i, end - i);
      if (value.empty()) fail("an empty bare value");
      i = end;
    }
    if (!out.emplace(key, value).second) fail("a key given twice");
    if (i < line.size() && line[i++] != ' ') fail("no space after a value");
  }
  return out;
}

LogLevel current_level() {
  for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (log_enabled(l)) return l;
  }
  return LogLevel::off;
}

// Collects the log lines written while it lives (declare it before the engine, so that it
// outlives the engine's threads); then restores stderr and the level it found.
class LogCapture {
 public:
  LogCapture() : level_(current_level()) {
    set_log_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() {
    set_log_sink(nullptr);
    set_log_level(level_);
  }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

  // Every line, parsed; each must have ts, level and msg.
  std::vector<Fields> parsed() const {
    std::vector<Fields> out;
    for (const std::string& line : lines()) {
      Fields f = parse_logfmt(line);
      if (!f.count("ts") || !f.count("level") || !f.count("msg")) FAIL_CHECK("a line without ts, level or msg: ", line);
      out.push_back(std::move(f));
    }
    return out;
  }

  // The lines with message `msg` about run `run_id`.
  std::vector<Fields> about(const std::string& msg, const std::string& run_id) const {
    std::vector<Fields> out;
    for (Fields& f : parsed()) {
      if (f["msg"] == msg && f["run"] == run_id) out.push_back(std::move(f));
    }
    return out;
  }

  // The only line with message `msg` about run `run_id`; fails the test unless there is one.
  Fields one(const std::string& msg, const std::string& run_id) const {
    auto found = about(msg, run_id);
    REQUIRE_MESSAGE(found.size() == 1, found.size(), " lines '", msg, "' for run ", run_id);
    return found[0];
  }

 private:
  const LogLevel level_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

EngineOptions logging_options(const TempDir& dir, std::shared_ptr<Clock> clock, std::string level) {
  EngineOptions options = engine_options(dir.file("t.db"), std::move(clock));
  options.log_level = std::move(level);
  return options;
}

// An error message that logfmt must quote and escape: spaces, quotes, '=', a backslash and
// a newline.
const std::string kNastyError = "card \"4242\" declined: code=51\nsee C:\\new\\billing";

// Registers "ok" (one step) and "flaky" (one step that always throws kNastyError, retried once).
void add_functions(Engine& engine) {
  engine.function({.id = "ok"}, on_event("test/ok"), [](Context& ctx) { return ctx.step.run("a", [] { return 1; }); });
  engine.function({.id = "flaky", .retries = 1, .backoff = fast_backoff()}, on_event("test/flaky"), [](Context& ctx) {
    return ctx.step.run("charge", []() -> int { throw std::runtime_error(kNastyError); });
  });
}

// A run of `function_id` claimed by a process that then died, its lease ending at `expires`.
std::string abandoned_run(const std::string& path, const std::string& function_id, TimePoint now, TimePoint expires) {
  auto store_owner = open_store(path, {});
  Store& store = *store_owner;
  store.ingest({IngestStore::Item{"E-dead", Event{.name = "test/none", .ts = now},
                                  {NewRun{.id = "R-dead", .function_id = function_id, .event_id = "E-dead"}}}},
               now, 24h);
  REQUIRE(store.claim({function_id}, now, Lease{"dead-process", expires}, 1).size() == 1);
  return "R-dead";
}

httplib::Headers bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

}  // namespace

TEST_SUITE("logs") {
  TEST_CASE("a run's events are logged one logfmt line each, with run, function, step, attempt and error") {
    LogCapture capture;
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(logging_options(dir, clock, "info"));
    add_functions(engine);
    engine.start();

    std::string ok = only_run(engine, engine.send({.name = "test/ok"})).id;
    std::string flaky = only_run(engine, engine.send({.name = "test/flaky"})).id;
    REQUIRE(engine.drain());
    advance(engine, *clock, 1s);  // the retry
    std::string dead = abandoned_run(dir.file("t.db"), "ok", clock->now(), clock->now() + 30s);
    advance(engine, *clock, 31s);  // the dead process's lease has run out
    REQUIRE(engine.get_run(dead)->status == RunStatus::completed);

    Fields started = capture.one("run started", ok);
    CHECK(started["level"] == "info");
    CHECK(started["function"] == "ok");
    Fields completed = capture.one("run completed", ok);
    CHECK(completed["level"] == "info");
    CHECK(completed["function"] == "ok");

    CHECK(capture.one("run started", flaky)["function"] == "flaky");  // once, though it ran twice
    Fields retrying = capture.one("step failed; retrying", flaky);
    CHECK(retrying["level"] == "warn");
    CHECK(retrying["step"] == "charge");
    CHECK(retrying["attempt"] == "0");
    CHECK(retrying["error"] == kNastyError);  // read back intact through quoting and escapes
    CHECK(retrying["retry_in_ms"] == "1000");
    Fields final_failure = capture.one("step failed for good", flaky);
    CHECK(final_failure["level"] == "warn");
    CHECK(final_failure["step"] == "charge");
    CHECK(final_failure["attempt"] == "1");
    CHECK(final_failure["error"] == kNastyError);
    Fields failed = capture.one("run failed", flaky);
    CHECK(failed["level"] == "error");
    CHECK(failed["function"] == "flaky");
    CHECK(failed["step"] == "charge");
    CHECK(failed["error"] == kNastyError);
    CHECK(capture.about("run completed", flaky).empty());

    Fields recovered = capture.one("lease recovered: the run's worker stopped renewing it; the run will be replayed", dead);
    CHECK(recovered["level"] == "warn");
    CHECK(recovered["function"] == "ok");
    CHECK(capture.one("run completed", dead)["function"] == "ok");

    for (const std::string& line : capture.lines()) {
      if (line.find('\n') != std::string::npos) FAIL_CHECK("a line break inside a line: ", line);
    }
  }

  TEST_CASE("the log level filters lines: warn hides info, off hides everything, an unknown level is refused") {
    auto run_both = [](const std::string& level) {
      LogCapture capture;
      TempDir dir;
      auto clock = std::make_shared<ManualClock>();
      Engine engine(logging_options(dir, clock, level));
      add_functions(engine);
      engine.start();
      engine.send(std::vector<Event>{{.name = "test/ok"}, {.name = "test/flaky"}});
      REQUIRE(engine.drain());
      advance(engine, *clock, 1s);
      return capture.parsed();
    };

    std::vector<Fields> warn = run_both("warn");
    std::set<std::string> messages;
    for (Fields& f : warn) {
      CHECK_MESSAGE(f["level"] != "info", f["msg"]);
      CHECK_MESSAGE(f["level"] != "debug", f["msg"]);
      messages.insert(f["msg"]);
    }
    CHECK(messages == std::set<std::string>{"step failed; retrying", "step failed for good", "run failed"});

    CHECK(run_both("off").empty());

    LogCapture capture;
    TempDir dir;
    EngineOptions options = logging_options(dir, std::make_shared<ManualClock>(), "verbose");
    CHECK_THROWS_AS(Engine{options}, Error);
    CHECK(capture.lines().empty());
  }

  TEST_CASE("no log line holds a key: not for good or wrong keys, failed requests or admin calls") {
    const std::string event_key = "evkey-5ecret-1b2c3d";
    const std::string api_key = "apikey-5ecret-4e5f6a";
    const std::string wrong_event_key = "wrong-evkey-5ecret-777";
    const std::string wrong_api_key = "wrong-apikey-5ecret-888";
    LogCapture capture;
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(logging_options(dir, clock, "debug"));
    add_functions(engine);
    engine.function({.id = "sleeper"}, on_event("test/sleep"), [](Context& ctx) { ctx.step.sleep("nap", 1h); });
    int port = engine.listen({.port = 0, .event_keys = {event_key}, .api_keys = {api_key}});
    httplib::Client http("127.0.0.1", port);
    auto post = [&](const std::string& path, const httplib::Headers& headers, const std::string& body) {
      auto res = http.Post(path, headers, body, "application/json");
      REQUIRE(res);
      return res->status;
    };

    CHECK(post("/e/" + event_key, {}, R"([{"name":"test/ok"},{"name":"test/flaky"},{"name":"test/sleep"},{"name":"test/sleep"}])") == 200);
    REQUIRE(engine.drain());
    advance(engine, *clock, 1s);
    CHECK(post("/e/" + wrong_event_key, {}, R"({"name":"test/ok"})") == 401);
    CHECK(http.Get("/v1/runs", bearer(wrong_api_key))->status == 401);
    CHECK(http.Get("/v1/runs", {{"Authorization", "Basic " + api_key}})->status == 401);
    CHECK(http.Get("/v1/runs")->status == 401);
    CHECK(http.Get("/metrics")->status == 200);

    // Admin calls, one run and in bulk: each action is logged once per run.
    auto runs = nlohmann::json::parse(http.Get("/v1/runs?function=flaky", bearer(api_key))->body)["runs"];
    REQUIRE(runs.size() == 1);
    std::string flaky = runs[0]["id"];
    CHECK(post("/v1/runs/" + flaky + "/resume", bearer(api_key), "") == 200);
    CHECK(capture.one("run resumed", flaky)["function"] == "flaky");
    REQUIRE(engine.drain());
    CHECK(post("/v1/runs/" + flaky + "/replay", bearer(api_key), "{}") == 201);
    CHECK(post("/v1/replays", bearer(api_key), R"({"function":"ok"})") == 200);
    CHECK(post("/v1/cancellations", bearer(api_key), R"({"function":"sleeper"})") == 200);
    CHECK(post("/v1/gc", bearer(api_key), R"({"older_than_ms":0})") == 200);
    REQUIRE(engine.drain());
    std::map<std::string, int> actions;
    for (Fields& f : capture.parsed()) {
      if (f["msg"] == "run cancelled" || f["msg"] == "run replayed") {
        ++actions[f["msg"] + " " + f["function"]];
        CHECK(!f["run"].empty());
      }
      if (f["msg"] == "run replayed") CHECK(!f["replay_of"].empty());
    }
    CHECK(actions == std::map<std::string, int>{{"run cancelled sleeper", 2}, {"run replayed flaky", 1}, {"run replayed ok", 1}});

    // A request that fails inside the engine (the store refuses the event) is logged, but not
    // its path as it came: for POST /e/{key} it holds the key.
    {
      SqliteDb db(dir.file("t.db"), 5s);
      db.exec("CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
    }
    CHECK(post("/e/" + event_key, {}, R"({"name":"test/ok"})") == 500);
    bool failure_logged = false;
    for (Fields& f : capture.parsed()) failure_logged |= f["msg"] == "request failed";
    CHECK(failure_logged);

    std::vector<std::string> lines = capture.lines();
    CHECK(lines.size() > 10);
    std::string leaks;
    for (const std::string& line : lines) {
      for (const std::string& key : {event_key, api_key, wrong_event_key, wrong_api_key}) {
        if (line.find(key) != std::string::npos) leaks += line + "\n";
      }
    }
    CHECK_MESSAGE(leaks.empty(), "keys in the log:\n", leaks);
  }
}
