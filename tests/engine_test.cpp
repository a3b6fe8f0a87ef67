// The Engine facade: registering functions and triggers, sending events in-process, the
// context a function sees, and a clean stop on SIGTERM/SIGINT (in a real child process).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

auto noop = [](Context&) {};

std::string registration_error(FunctionOptions options, Triggers triggers) {
  Engine engine({.database = ":memory:", .log_level = "off"});
  try {
    engine.function(std::move(options), std::move(triggers), noop);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("registering a function reports what is wrong with it") {
    CHECK(registration_error({.id = ""}, on_event("a")) == "function id is empty: set FunctionOptions::id");
    CHECK(registration_error({.id = "has space"}, on_event("a")).find("has the character ' '") != std::string::npos);
    CHECK(registration_error({.id = "f", .retries = -1}, on_event("a")) == "function 'f': retries is negative");
    CHECK(registration_error({.id = "f", .backoff = {.delays = {}}}, on_event("a")) == "function 'f': the backoff table is empty");
    CHECK(registration_error({.id = "f"}, on_event("")) == "function 'f': a trigger has an empty event name");
    CHECK(registration_error({.id = "f"}, on_event("image*")).find("only as a final \"prefix/*\"") != std::string::npos);
    CHECK(registration_error({.id = "f"}, on_event("*")).find("only as a final") != std::string::npos);
    CHECK(registration_error({.id = "f"}, on_event("a/*/b")).find("only as a final") != std::string::npos);
    CHECK(registration_error({.id = "f"}, {}) == "function 'f' has no trigger");

    Engine engine({.database = ":memory:", .log_level = "off"});
    engine.function({.id = "f"}, on_event("a"), noop);
    CHECK_THROWS_WITH_AS(engine.function({.id = "f"}, on_event("b"), noop), "function 'f' is registered twice", Error);
    engine.start();
    CHECK_THROWS_WITH_AS(engine.function({.id = "g"}, on_event("b"), noop),
                         doctest::Contains("registered after the engine started"), Error);
  }

  TEST_CASE("prefix wildcards and several triggers per function pick the functions an event starts") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "images"}, on_event("image/*"), noop);
    engine.function({.id = "audit"}, {on_event("image/profile.uploaded"), on_event("user/*")}, noop);
    engine.function({.id = "exact"}, on_event("image/profile.uploaded"), noop);
    engine.start();
    auto functions_started_by = [&](const std::string& name) {
      std::vector<std::string> ids;
      for (auto& run : engine.runs_for_event(engine.send({.name = name}))) ids.push_back(run.function_id);
      std::sort(ids.begin(), ids.end());
      return ids;
    };
    CHECK(functions_started_by("image/profile.uploaded") == std::vector<std::string>{"audit", "exact", "images"});
    CHECK(functions_started_by("image/deleted") == std::vector<std::string>{"images"});
    CHECK(functions_started_by("user/signed.up") == std::vector<std::string>{"audit"});
    CHECK(functions_started_by("image").empty());    // the wildcard needs something after "image/"
    CHECK(functions_started_by("images/x").empty());
    CHECK(functions_started_by("billing/paid").empty());  // stored, starts nothing
    REQUIRE(engine.drain());
  }

  TEST_CASE("a trigger filter starts the function only for the events it is true of, here and in other processes") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "big-eur"},
                    {on_event("order/created", "event.data.amount > 100 && event.data.currency == 'EUR'"),
                     on_event("order/*", "event.data.vip")},
                    noop);
    engine.function({.id = "all"}, on_event("order/created"), noop);
    engine.start();
    // Another process on the database, with no functions: its ingest reads the recorded
    // triggers and their filters.
    Engine other(engine_options(dir.file("t.db"), clock));
    for (Engine* sender : {&engine, &other}) {
      auto started_by = [&](nlohmann::json data) {
        std::vector<std::string> ids;
        for (auto& run : sender->runs_for_event(sender->send({.name = "order/created", .data = data}))) {
          ids.push_back(run.function_id);
        }
        std::sort(ids.begin(), ids.end());
        return ids;
      };
      CHECK(started_by({{"amount", 250}, {"currency", "EUR"}}) == std::vector<std::string>{"all", "big-eur"});
      CHECK(started_by({{"amount", 50}, {"currency", "EUR"}}) == std::vector<std::string>{"all"});
      CHECK(started_by({{"amount", 250}, {"currency", "USD"}}) == std::vector<std::string>{"all"});
      CHECK(started_by({{"currency", "EUR"}}) == std::vector<std::string>{"all"});  // no amount: null > 100 is false
      CHECK(started_by({{"amount", 1}, {"vip", true}}) == std::vector<std::string>{"all", "big-eur"});  // the other trigger
    }
    REQUIRE(engine.drain());
  }

  TEST_CASE("a malformed trigger filter is refused at registration, naming the column") {
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<ManualClock>()));
    CHECK_THROWS_WITH_AS(engine.function({.id = "f"}, on_event("a/b", "event.data.x >"), noop),
                         doctest::Contains("function 'f': the filter of trigger 'a/b' is invalid: column"), Error);
  }

  TEST_CASE("Engine::send refuses invalid events like the HTTP API and then stores nothing") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "f"}, on_event("a"), noop);
    CHECK_THROWS_WITH_AS(engine.send(Event{.name = ""}), "event name is empty", Error);
    CHECK_THROWS_WITH_AS(engine.send(Event{.name = "a", .data = nlohmann::json::array()}), "\"data\" must be a JSON object", Error);
    CHECK_THROWS_WITH_AS(engine.send(std::vector<Event>{{.name = "a"}, {.name = std::string(600, 'x')}}),
                         doctest::Contains("event 1: event name is 600 characters long"), Error);
    // The engine's own events cannot be forged (an invoking run would take a forged
    // durable/function.finished for its child's).
    CHECK_THROWS_WITH_AS(engine.send(Event{.name = "durable/function.finished", .data = {{"run_id", "x"}}}),
                         "event name 'durable/function.finished': names starting with \"durable/\" are reserved for "
                         "the engine's own events",
                         Error);
    engine.start();
    REQUIRE(engine.drain());
    // Nothing of the refused batch was stored: its valid first event started no run.
    auto ok = engine.send(Event{.name = "a"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, ok).status == RunStatus::completed);
  }

  TEST_CASE("the context carries the event, its id, the run id, the function id and the attempt") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::mutex mu;
    nlohmann::json seen;
    engine.function({.id = "ctx"}, on_event("test/ctx"), [&](Context& ctx) {
      std::lock_guard lock(mu);
      seen = {{"name", ctx.event.name}, {"data", ctx.event.data}, {"user", ctx.event.user}, {"id", ctx.event.id},
              {"ts", to_millis(ctx.event.ts)}, {"event_id", ctx.event_id}, {"run_id", ctx.run_id},
              {"function_id", ctx.function_id}, {"attempt", ctx.attempt}};
    });
    engine.start();
    auto event_id = engine.send({.id = "k1", .name = "test/ctx", .data = {{"x", 1}}, .user = {{"id", "u"}}});
    REQUIRE(engine.drain());
    Run run = only_run(engine, event_id);
    std::lock_guard lock(mu);
    CHECK(seen["name"] == "test/ctx");
    CHECK(seen["data"] == nlohmann::json{{"x", 1}});
    CHECK(seen["user"] == nlohmann::json{{"id", "u"}});
    CHECK(seen["id"] == "k1");
    CHECK(seen["ts"] == to_millis(clock->now()));
    CHECK(seen["event_id"] == event_id);
    CHECK(seen["run_id"] == run.id);
    CHECK(seen["function_id"] == "ctx");
    CHECK(seen["attempt"] == 0);
  }

  TEST_CASE("stop() right after listen() returns" * doctest::timeout(30)) {
    for (int i = 0; i < 20; ++i) {
      Engine engine({.database = ":memory:", .log_level = "off"});
      engine.listen({.port = 0, .event_keys = {"k"}});
      CHECK(engine.stop(0ms));
    }
  }

  TEST_CASE("serve() on a port in use throws and leaves the process's signal handling alone") {
    struct sigaction before {}, after {};
    sigaction(SIGINT, nullptr, &before);
    int port = free_port();
    Engine first({.database = ":memory:", .log_level = "off"});
    first.listen({.port = port, .event_keys = {"k"}});
    Engine second({.database = ":memory:", .log_level = "off"});
    CHECK_THROWS_WITH_AS(second.serve({.port = port, .event_keys = {"k"}}), doctest::Contains("cannot listen"), Error);
    sigaction(SIGINT, nullptr, &after);
    CHECK(reinterpret_cast<void*>(after.sa_handler) == reinterpret_cast<void*>(before.sa_handler));
  }

  TEST_CASE("events sent before start() wait, then run once the engine starts") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "later"}, on_event("test/later"), [](Context& ctx) { return ctx.step.run("s", [] { return 1; }); });
    auto event_id = engine.send({.name = "test/later"});
    CHECK(only_run(engine, event_id).status == RunStatus::queued);
    engine.start();
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).status == RunStatus::completed);
  }
}

// serve() in a child process: the test sends it signals like an operator or a deploy would.
TEST_SUITE("shutdown") {
  namespace fs = std::filesystem;

  // The function both the child and the test's own engine register: step "a" records that it
  // started and waits for the test's go-ahead (a file); step "b" records that it ran.
  void define_two_steps(Engine& engine, const fs::path& dir) {
    engine.function({.id = "two-steps"}, on_event("test/two"), [dir](Context& ctx) {
      ctx.step.run("a", [&] {
        std::ofstream(dir / "ledger", std::ios::app) << "a\n";
        std::ofstream(dir / "a-started").flush();
        while (!fs::exists(dir / "a-release")) std::this_thread::sleep_for(1ms);  // the child's "work"
        return 1;
      });
      ctx.step.run("b", [&] {
        std::ofstream(dir / "ledger", std::ios::app) << "b\n";
        return 2;
      });
      return 3;
    });
  }

  std::vector<std::string> ledger(const fs::path& dir) {
    std::ifstream in(dir / "ledger");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  // Forks a child that sends itself one "test/two" event and serves on `port` until a signal.
  pid_t start_child(const TempDir& dir, int port, std::chrono::milliseconds grace) {
    std::fflush(nullptr);  // or the child may print the parent's buffered output again
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 1;
      try {
        Engine engine({.database = dir.file("t.db"), .lease_ttl = 2s, .log_level = "off"});
        define_two_steps(engine, dir.path());
        engine.send(Event{.name = "test/two"});
        code = engine.serve({.port = port, .event_keys = {"k"}, .shutdown_grace = grace});
      } catch (...) {
        code = 3;
      }
      _exit(code);
    }
    return pid;
  }

  void wait_for_file(const fs::path& path) {
    auto end = std::chrono::steady_clock::now() + 20s;
    while (!fs::exists(path)) {
      REQUIRE(std::chrono::steady_clock::now() < end);
      std::this_thread::sleep_for(1ms);
    }
  }

  int exit_code_of(pid_t pid) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  }

  TEST_CASE("on SIGTERM or SIGINT, serve() lets the running step finish, starts no other, and exits 0" * doctest::timeout(30)) {
    int signal = SIGTERM;
    SUBCASE("SIGTERM") { signal = SIGTERM; }
    SUBCASE("SIGINT") { signal = SIGINT; }
    TempDir dir;
    int port = free_port();
    pid_t child = start_child(dir, port, 10s);
    httplib::Client http("127.0.0.1", port);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!http.Get("/health")) {  // serving
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(1ms);
    }
    wait_for_file(dir.path() / "a-started");
    REQUIRE(kill(child, signal) == 0);
    // Once the API stops answering, the engine is stopping: let step "a" finish now, inside
    // the grace period. (Released earlier, "b" might start before the signal is handled.)
    while (http.Get("/health")) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(1ms);
    }
    std::ofstream(dir.path() / "a-release").flush();
    CHECK(exit_code_of(child) == 0);
    CHECK(ledger(dir.path()) == std::vector<std::string>{"a"});

    // The next start continues at "b" at once: the run was handed back, not left leased.
    auto clock = std::make_shared<ManualClock>(SystemClock().now());
    Engine engine(engine_options(dir.file("t.db"), clock));
    define_two_steps(engine, dir.path());
    engine.start();
    REQUIRE(engine.drain());
    CHECK(ledger(dir.path()) == std::vector<std::string>{"a", "b"});
  }

  TEST_CASE("a step still running after the grace period is left to lease recovery; the exit code is still 0" * doctest::timeout(30)) {
    TempDir dir;
    pid_t child = start_child(dir, free_port(), 200ms);
    wait_for_file(dir.path() / "a-started");
    REQUIRE(kill(child, SIGTERM) == 0);
    CHECK(exit_code_of(child) == 0);  // step "a" never finished

    // The child's lease (2 s) is still held; once it has expired, the next start recovers
    // the run and replays it from the top: "a" was never committed, so it runs again.
    auto clock = std::make_shared<ManualClock>(SystemClock().now() + 1min);
    std::ofstream(dir.path() / "a-release").flush();
    Engine engine(engine_options(dir.file("t.db"), clock));
    define_two_steps(engine, dir.path());
    engine.start();
    REQUIRE(engine.drain());
    CHECK(ledger(dir.path()) == std::vector<std::string>{"a", "a", "b"});
  }
}
