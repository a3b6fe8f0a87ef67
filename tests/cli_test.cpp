// The `durable` command line, run as a real process (the binary CMake built) against a real
// engine listening on 127.0.0.1 in this process, on a manual clock: what it prints, and its
// exit codes (0 done, 1 failed, 2 bad command line).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

extern char** environ;

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The environment of this process without its DURABLE_* variables (so that the developer's
// own settings cannot leak into a test), plus `env` ("NAME=value" each).
std::vector<std::string> child_environment(const std::vector<std::string>& env) {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    if (!std::string_view(*e).starts_with("DURABLE_")) out.emplace_back(*e);
  }
  out.insert(out.end(), env.begin(), env.end());
  return out;
}

// Starts the durable binary with `args` and `env`, stdout and stderr to files in `dir`,
// stdin from `stdin_text`. Returns its pid.
pid_t spawn_cli(const TempDir& dir, const std::vector<std::string>& args, const std::vector<std::string>& env,
                const std::string& stdin_text = "") {
  std::ofstream(dir.file("stdin")) << stdin_text;
  std::vector<std::string> argv_text = {DURABLE_CLI};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto env_text = child_environment(env);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::string in = dir.file("stdin"), out = dir.file("stdout"), err = dir.file("stderr");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(rc == 0, "cannot start " << argv[0] << ": " << std::strerror(rc));
  return pid;
}

CliResult wait_cli(const TempDir& dir, pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE(WIFEXITED(status), "durable died of signal " << WTERMSIG(status));
  return {WEXITSTATUS(status), read_file(dir.file("stdout")), read_file(dir.file("stderr"))};
}

// Runs `durable args...` to its end.
CliResult run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                  const std::string& stdin_text = "") {
  TempDir dir;
  return wait_cli(dir, spawn_cli(dir, args, env, stdin_text));
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

constexpr const char* kApiKey = "api-key-1";
constexpr const char* kEventKey = "event-key-1";

// An engine on a manual clock, listening on a free port, with functions for every command:
//   greet   test/greet  steps compose and send; returns {"sent": greeting}; has a failure handler
//   flaky   test/flaky  step charge fails for good (no retries) until `charge_works`
//   pair    test/pair   steps first and second, counting their executions
//   napper  test/nap    sleeps an hour, then step after
//   grumpy  test/grumpy step fine, then throws outside any step (1 retry, 1 s later)
struct Server {
  Server() : clock(std::make_shared<ManualClock>()), engine(engine_options(dir.file("t.db"), clock)) {
    engine.function({.id = "greet", .on_failure = [](Context&, const Failure&) {}}, on_event("test/greet"), [](Context& ctx) {
      auto greeting = ctx.step.run("compose", [&] { return "Hello, " + ctx.event.data.value("name", std::string("you")); });
      ctx.step.run("send", [] { return true; });
      return nlohmann::json{{"sent", greeting}};
    });
    engine.function({.id = "flaky", .retries = 0}, on_event("test/flaky"), [this](Context& ctx) {
      return ctx.step.run("charge", [this] {
        if (!charge_works) throw NonRetriableError("card declined");
        return std::string("charged");
      });
    });
    engine.function({.id = "pair"}, on_event("test/pair"), [this](Context& ctx) {
      int a = ctx.step.run("first", [this] { return ++first_runs; });
      int b = ctx.step.run("second", [this] { return ++second_runs; });
      return nlohmann::json{{"first", a}, {"second", b}};
    });
    engine.function({.id = "napper"}, on_event("test/nap"), [](Context& ctx) {
      ctx.step.sleep("nap", std::chrono::hours(1));
      ctx.step.run("after", [] { return 1; });
    });
    engine.function({.id = "grumpy", .retries = 1, .backoff = fast_backoff()}, on_event("test/grumpy"), [](Context& ctx) {
      ctx.step.run("fine", [] { return 1; });
      throw std::runtime_error("not today");
    });
    port = engine.listen({.port = 0, .event_keys = {kEventKey}, .api_keys = {kApiKey}});
    url = "http://127.0.0.1:" + std::to_string(port);
  }

  // Runs `durable args...` against this engine (its URL and keys in the environment).
  CliResult cli(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    return run_cli(args, {"DURABLE_URL=" + url, std::string("DURABLE_API_KEY=") + kApiKey,
                          std::string("DURABLE_EVENT_KEY=") + kEventKey},
                   stdin_text);
  }

  // Sends an event with the CLI, lets its run go as far as it can, and returns the run.
  Run send(const std::string& name, const std::string& data = "{}") {
    auto r = cli({"send", name, data});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto ids = lines_of(r.out);
    REQUIRE(ids.size() == 1);
    REQUIRE(engine.drain());
    return only_run(engine, ids[0]);
  }

  Run get(const std::string& run_id) {
    auto run = engine.get_run(run_id);
    REQUIRE(run);
    return *run;
  }

  TempDir dir;
  std::shared_ptr<ManualClock> clock;
  std::atomic<bool> charge_works{false};
  std::atomic<int> first_runs{0};
  std::atomic<int> second_runs{0};
  Engine engine;
  int port = 0;
  std::string url;
};

void check_usage_error(const CliResult& r, const std::string& message) {
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK_MESSAGE(contains(r.err, message), r.err);
  CHECK_MESSAGE(contains(r.err, "--help"), r.err);
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("--help exits 0: the top level lists every command, a command's help its options") {
    auto top = run_cli({"--help"});
    CHECK(top.exit_code == 0);
    for (const char* command : {"send", "runs", "run", "cancel", "resume", "replay", "events", "functions", "gc", "serve"}) {
      CHECK_MESSAGE(contains(top.out, std::string("  ") + command + " "), command);
    }
    CHECK(run_cli({"-h"}).out == top.out);
    CHECK(run_cli({"help"}).out == top.out);

    auto runs = run_cli({"runs", "--help"});
    CHECK(runs.exit_code == 0);
    CHECK(contains(runs.out, "Usage: durable runs"));
    CHECK(contains(runs.out, "--since DURATION"));
    CHECK(contains(runs.out, "--url URL"));
    CHECK(run_cli({"replay", "-h"}).out == run_cli({"help", "replay"}).out);
    // --help wins over everything else on the line, even a missing argument.
    CHECK(run_cli({"run", "--help"}).exit_code == 0);
    CHECK(run_cli({"--url", "http://x:1", "cancel", "-h"}).exit_code == 0);
  }

  TEST_CASE("a bad command line exits 2 with a message and a hint to --help, without calling the engine") {
    check_usage_error(run_cli({}), "missing a COMMAND");
    check_usage_error(run_cli({"frobnicate"}), "unknown command 'frobnicate'");
    check_usage_error(run_cli({"runs", "--frob"}), "unknown option '--frob'");
    check_usage_error(run_cli({"runs", "--limit"}), "option '--limit' needs a value");
    check_usage_error(run_cli({"runs", "--limit", "0"}), "--limit: '0' is not a positive integer");
    check_usage_error(run_cli({"runs", "--since", "5 minutes"}), "--since: '5 minutes' is not a duration");
    check_usage_error(run_cli({"runs", "--since", "5x"}), "is not a duration");
    check_usage_error(run_cli({"runs", "--status", "done"}), "'done' is not a run status");
    check_usage_error(run_cli({"runs", "--json=yes"}), "option '--json' takes no value");
    check_usage_error(run_cli({"run"}), "missing the run ID");
    check_usage_error(run_cli({"run", "a", "b"}), "unexpected argument 'b'");
    check_usage_error(run_cli({"cancel"}), "missing the run ID");
    check_usage_error(run_cli({"replay", "r1", "--output", "1"}), "give --from too");
    check_usage_error(run_cli({"replay", "--status", "failed", "--from", "x"}), "--from and --output replay one run");
    check_usage_error(run_cli({"replay", "r1", "--from", "x", "--output", "{nope"}), "--output is not valid JSON");
    check_usage_error(run_cli({"gc"}), "missing --older-than");
    check_usage_error(run_cli({"gc", "--older-than", "0s"}), "more than zero");
    check_usage_error(run_cli({"send"}), "missing the event NAME");
    check_usage_error(run_cli({"send", "a/b"}), "no event key");
    check_usage_error(run_cli({"send", "a/b", "{", "--event-key", "k"}), "the event data is not valid JSON");
    check_usage_error(run_cli({"send", "a/b", "[1]", "--event-key", "k"}), "must be a JSON object");
    check_usage_error(run_cli({"send", "a/b", "@/no/such/file", "--event-key", "k"}), "cannot read the data file");
    check_usage_error(run_cli({"runs", "--url", "ftp//:"}), "is not a URL");
    // The hint names the command when there is one.
    CHECK(contains(run_cli({"runs", "--frob"}).err, "durable runs --help"));
  }

  TEST_CASE("an engine that cannot be reached exits 1 and names the URL") {
    std::string url = "http://127.0.0.1:" + std::to_string(free_port());
    for (const std::vector<std::string>& args : {std::vector<std::string>{"runs", "--url", url},
                                                std::vector<std::string>{"send", "a/b", "--url", url, "--event-key", "k"}}) {
      auto r = run_cli(args);
      CHECK(r.exit_code == 1);
      CHECK(r.out.empty());
      CHECK_MESSAGE(contains(r.err, "cannot reach the engine at " + url), r.err);
    }
    // DURABLE_URL is the default of --url.
    auto r = run_cli({"functions"}, {"DURABLE_URL=" + url});
    CHECK(r.exit_code == 1);
    CHECK(contains(r.err, url));
  }

  TEST_CASE("send prints the event id; runs lists its run; run ID shows the run and its steps") {
    Server s;
    Run run = s.send("test/greet", R"({"name":"Ada"})");
    CHECK(run.status == RunStatus::completed);

    auto runs = s.cli({"runs"});
    REQUIRE_MESSAGE(runs.exit_code == 0, runs.err);
    auto lines = lines_of(runs.out);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].starts_with("ID  "));
    CHECK(contains(lines[0], "FUNCTION"));
    CHECK(lines[1] == run.id + "  greet     completed  2030-01-01 00:00:00  0ms");

    auto shown = s.cli({"run", run.id});
    REQUIRE_MESSAGE(shown.exit_code == 0, shown.err);
    INFO(shown.out);
    CHECK(contains(shown.out, "run        " + run.id + "\n"));
    CHECK(contains(shown.out, "function   greet\n"));
    CHECK(contains(shown.out, "status     completed\n"));
    CHECK(contains(shown.out, "event      " + run.event_id + " test/greet\n"));
    CHECK(contains(shown.out, "created    2030-01-01 00:00:00 UTC\n"));
    CHECK(contains(shown.out, R"(output     {"sent":"Hello, Ada"})"));
    auto table = shown.out.substr(shown.out.find("\n\n") + 2);
    auto rows = lines_of(table);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0] == "STEP     STATUS     ATTEMPTS  DURATION  OUTPUT");
    CHECK(rows[1] == R"(compose  completed  1         0ms       "Hello, Ada")");
    CHECK(rows[2] == "send     completed  1         0ms       true");
  }

  TEST_CASE("--json prints the API's JSON") {
    Server s;
    auto sent = s.cli({"send", "test/greet", "--json"});
    REQUIRE_MESSAGE(sent.exit_code == 0, sent.err);
    auto answer = nlohmann::json::parse(sent.out);
    REQUIRE(answer["ids"].size() == 1);
    REQUIRE(s.engine.drain());
    Run run = only_run(s.engine, answer["ids"][0]);

    auto runs = nlohmann::json::parse(s.cli({"runs", "--json"}).out);
    REQUIRE(runs["runs"].size() == 1);
    CHECK(runs["runs"][0]["id"] == run.id);
    CHECK(runs["next_cursor"].is_null());

    auto shown = nlohmann::json::parse(s.cli({"run", run.id, "--json"}).out);
    CHECK(shown["status"] == "completed");
    REQUIRE(shown["steps"].size() == 2);
    CHECK(shown["steps"][0]["key"] == "compose");

    auto events = nlohmann::json::parse(s.cli({"events", "--name", "test/greet", "--json"}).out);
    REQUIRE(events["events"].size() == 1);
    CHECK(events["events"][0]["id"] == answer["ids"][0]);

    auto functions = nlohmann::json::parse(s.cli({"functions", "--json"}).out);
    CHECK(functions["functions"].size() == 6);  // greet-failure too
    // --json may come before the command too.
    CHECK(nlohmann::json::parse(s.cli({"--json", "runs"}).out) == runs);
  }

  TEST_CASE("send reads the data from a file or from stdin; options override the environment") {
    Server s;
    std::ofstream(s.dir.file("data.json")) << R"({"name":"File"})";
    CHECK(s.send("test/greet", "@" + s.dir.file("data.json")).output == nlohmann::json{{"sent", "Hello, File"}});

    auto r = s.cli({"send", "test/greet", "-"}, R"({"name":"Stdin"})");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    REQUIRE(s.engine.drain());
    CHECK(only_run(s.engine, lines_of(r.out).at(0)).output == nlohmann::json{{"sent", "Hello, Stdin"}});

    auto wrong_key = s.cli({"send", "test/greet", "--event-key", "nope"});
    CHECK(wrong_key.exit_code == 1);
    CHECK(contains(wrong_key.err, "unknown event key (HTTP 401)"));
    auto wrong_url = s.cli({"runs", "--url", "http://127.0.0.1:" + std::to_string(free_port())});
    CHECK(wrong_url.exit_code == 1);
  }

  TEST_CASE("the engine's refusals exit 1 with its message and status") {
    Server s;
    auto unknown = s.cli({"run", "no-such-run"});
    CHECK(unknown.exit_code == 1);
    CHECK(unknown.out.empty());
    CHECK_MESSAGE(contains(unknown.err, "(HTTP 404)"), unknown.err);

    auto no_key = run_cli({"runs", "--url", s.url});
    CHECK(no_key.exit_code == 1);
    CHECK_MESSAGE(contains(no_key.err, "(set --key or DURABLE_API_KEY) (HTTP 401)"), no_key.err);
    auto bad_key = run_cli({"runs", "--url", s.url, "--key", "wrong"});
    CHECK(bad_key.exit_code == 1);
    CHECK(contains(bad_key.err, "(HTTP 401)"));
  }

  TEST_CASE("cancel stops a sleeping run; cancelling it again is refused (409)") {
    Server s;
    Run run = s.send("test/nap");
    REQUIRE(run.status == RunStatus::sleeping);

    auto r = s.cli({"cancel", run.id});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == "cancelled " + run.id + "\n");
    CHECK(s.get(run.id).status == RunStatus::cancelled);
    advance(s.engine, *s.clock, 2h);
    CHECK(s.get(run.id).status == RunStatus::cancelled);

    auto again = s.cli({"cancel", run.id});
    CHECK(again.exit_code == 1);
    CHECK_MESSAGE(contains(again.err, "(HTTP 409)"), again.err);
  }

  TEST_CASE("run shows a failed run's error; resume runs it again from the failed step") {
    Server s;
    Run run = s.send("test/flaky");
    REQUIRE(run.status == RunStatus::failed);

    auto shown = s.cli({"run", run.id});
    INFO(shown.out);
    CHECK(contains(shown.out, "status     failed\n"));
    CHECK(contains(shown.out, "error      durable::NonRetriableError: card declined (step charge)\n"));
    CHECK(contains(shown.out, "charge  failed  1         0ms       durable::NonRetriableError: card declined\n"));

    s.charge_works = true;
    auto r = s.cli({"resume", run.id});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out.starts_with("resumed " + run.id + " (now "));
    REQUIRE(s.engine.drain());
    CHECK(s.get(run.id).status == RunStatus::completed);
    CHECK(s.get(run.id).output == "charged");

    auto again = s.cli({"resume", run.id});
    CHECK(again.exit_code == 1);
    CHECK(contains(again.err, "(HTTP 409)"));
  }

  TEST_CASE("run shows the failures of the function's code outside steps") {
    Server s;
    Run run = s.send("test/grumpy");
    advance(s.engine, *s.clock, 1s);
    REQUIRE(s.get(run.id).status == RunStatus::failed);
    auto shown = s.cli({"run", run.id});
    INFO(shown.out);
    CHECK(contains(shown.out, "error      std::runtime_error: not today\n"));
    CHECK(contains(shown.out, "fine  completed  1         0ms       1\n"));
    CHECK(contains(shown.out, "\nBODY ATTEMPT  FAILED AT (UTC)      ERROR\n"
                              "0             2030-01-01 00:00:00  std::runtime_error: not today\n"
                              "1             2030-01-01 00:00:01  std::runtime_error: not today\n"));
  }

  TEST_CASE("replay --from STEP keeps the steps before it and runs it and the rest again") {
    Server s;
    Run run = s.send("test/pair");
    REQUIRE(run.output == nlohmann::json{{"first", 1}, {"second", 1}});

    auto r = s.cli({"replay", run.id, "--from", "second"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    std::string replay_id = lines_of(r.out).at(0);
    CHECK(replay_id != run.id);
    REQUIRE(s.engine.drain());
    Run replay = s.get(replay_id);
    CHECK(replay.replay_of == run.id);
    CHECK(replay.status == RunStatus::completed);
    CHECK(replay.output == nlohmann::json{{"first", 1}, {"second", 2}});
    CHECK(s.first_runs == 1);

    // The original lists its replay; the replay names the original.
    CHECK(contains(s.cli({"run", run.id}).out, "replays    " + replay_id + "\n"));
    CHECK(contains(s.cli({"run", replay_id}).out, "replay of  " + run.id + "\n"));

    // A whole replay runs every step again.
    auto whole = s.cli({"replay", run.id});
    REQUIRE_MESSAGE(whole.exit_code == 0, whole.err);
    REQUIRE(s.engine.drain());
    CHECK(s.get(lines_of(whole.out).at(0)).output == nlohmann::json{{"first", 2}, {"second", 3}});

    auto unknown = s.cli({"replay", run.id, "--from", "third"});
    CHECK(unknown.exit_code == 1);
    CHECK(contains(unknown.err, "(HTTP 400)"));
  }

  TEST_CASE("bulk replay and bulk cancel work through every matching run") {
    Server s;
    std::vector<std::string> failed;
    for (int i = 0; i < 3; ++i) failed.push_back(s.send("test/flaky").id);
    s.send("test/greet");
    std::vector<std::string> sleeping;
    for (int i = 0; i < 2; ++i) sleeping.push_back(s.send("test/nap").id);

    s.charge_works = true;
    auto r = s.cli({"replay", "--status", "failed", "--function", "flaky", "--since", "1h"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == "replayed 3 runs\n");
    CHECK(r.err.empty());  // no progress bar: stderr is not a terminal
    REQUIRE(s.engine.drain());
    auto replays = nlohmann::json::parse(s.cli({"runs", "--function", "flaky", "--status", "completed", "--json"}).out);
    CHECK(replays["runs"].size() == 3);

    auto none = s.cli({"replay", "--function", "no-such-function"});
    CHECK(none.exit_code == 0);
    CHECK(none.out == "no runs matched\n");

    auto cancelled = s.cli({"cancel", "--function", "napper", "--status", "sleeping", "--json"});
    REQUIRE_MESSAGE(cancelled.exit_code == 0, cancelled.err);
    auto answer = nlohmann::json::parse(cancelled.out);
    CHECK(answer["count"] == 2);
    CHECK(answer["total"] == 2);
    CHECK(answer["run_ids"].size() == 2);
    for (const auto& id : sleeping) CHECK(s.get(id).status == RunStatus::cancelled);
  }

  TEST_CASE("events, functions and gc") {
    Server s;
    s.send("test/greet", R"({"name":"Ada"})");
    s.send("test/pair");

    // Each run's end is an event too (durable/function.finished).
    auto events = s.cli({"events"});
    REQUIRE_MESSAGE(events.exit_code == 0, events.err);
    CHECK(lines_of(events.out).size() == 5);
    CHECK(events.out.find("test/pair") < events.out.find("test/greet"));  // newest first
    auto greets = lines_of(s.cli({"events", "--name", "test/greet"}).out);
    REQUIRE(greets.size() == 2);
    CHECK(greets[0].starts_with("ID  "));
    CHECK(contains(greets[1], R"(  test/greet  2030-01-01 00:00:00  {"name":"Ada"})"));
    auto first_page = s.cli({"events", "--limit", "1"});
    CHECK(lines_of(first_page.out).size() == 2);
    CHECK(contains(first_page.err, "more events: repeat with --cursor "));
    std::string cursor = first_page.err.substr(first_page.err.rfind(' ') + 1);
    cursor.pop_back();  // the newline
    auto second_page = s.cli({"events", "--limit", "1", "--cursor", cursor});
    REQUIRE(lines_of(second_page.out).size() == 2);
    CHECK(lines_of(second_page.out)[1] != lines_of(first_page.out)[1]);

    auto functions = s.cli({"functions"});
    REQUIRE_MESSAGE(functions.exit_code == 0, functions.err);
    CHECK(contains(functions.out, "greet "));
    CHECK(contains(functions.out, "test/greet"));
    CHECK(contains(functions.out, "napper"));
    CHECK(contains(functions.out, "greet-failure  failures of greet  "));
    auto unregistered = s.cli({"unregister", "napper"});
    REQUIRE_MESSAGE(unregistered.exit_code == 0, unregistered.err);
    CHECK(unregistered.out == "unregistered napper\n");
    CHECK(!contains(s.cli({"functions"}).out, "napper"));
    auto again = s.cli({"unregister", "napper"});
    CHECK(again.exit_code == 1);
    CHECK(contains(again.err, "no function with id 'napper'"));
    CHECK(s.cli({"unregister"}).exit_code == 2);

    auto kept = s.cli({"gc", "--older-than", "7d"});
    REQUIRE_MESSAGE(kept.exit_code == 0, kept.err);
    CHECK(kept.out == "deleted 0 runs and 0 events\n");
    s.clock->advance(std::chrono::days(8));
    auto gone = s.cli({"gc", "--older-than", "7d"});
    CHECK(gone.out == "deleted 2 runs and 4 events\n");
    CHECK(s.cli({"runs"}).out == "no runs\n");
  }

  TEST_CASE("serve refuses a bad limit before it creates the database or listens") {
    TempDir dir;
    const std::string db = dir.file("never.db");
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"--max-request-bytes", "0"}, "--max-request-bytes: '0' is not a positive integer"},
        {{"--max-event-bytes", "-5"}, "--max-event-bytes: '-5' is not a positive integer"},
        {{"--max-connections", "2000000"}, "--max-connections: give a number from 1 to 1000000"},
        {{"--header-timeout", "0s"}, "--header-timeout: the duration must be more than zero"},
        {{"--request-timeout", "soon"}, "--request-timeout: 'soon' is not a duration"},
        {{"--idle-timeout"}, "--idle-timeout"},
    };
    for (const auto& [flags, message] : bad) {
      std::vector<std::string> args = {"serve", "--database", db, "--port", "0"};
      args.insert(args.end(), flags.begin(), flags.end());
      auto result = run_cli(args);
      CAPTURE(result.err);
      CHECK(result.exit_code == 2);
      CHECK(contains(result.err, message));
    }
    CHECK_FALSE(std::filesystem::exists(db));
  }

  TEST_CASE("serve refuses a database URL it cannot open, naming it with its password masked") {
    TempDir dir;
    for (const std::string& url : {std::string("postgres://app:hunter2@127.0.0.1:1/app"), std::string("mysql://x@db/app"),
                                   "sqlite:" + dir.file("no-such-dir/app.db")}) {
      auto result = run_cli({"serve", "--database", url, "--port", "0"});
      CAPTURE(result.err);
      CHECK(result.exit_code != 0);
      CHECK(contains(result.err, url == "postgres://app:hunter2@127.0.0.1:1/app" ? "postgres://app:***@127.0.0.1:1/app" : url));
      CHECK_FALSE(contains(result.err, "hunter2"));
    }
  }

  TEST_CASE("serve takes its database from DURABLE_DATABASE when --database is not given") {
    auto opened = run_cli({"serve", "--port", "0"}, {"DURABLE_DATABASE=mysql://x@db/app"});
    CAPTURE(opened.err);
    CHECK(opened.exit_code != 0);
    CHECK(contains(opened.err, "mysql://x@db/app"));
  }

  TEST_CASE("serve runs the API over a database until SIGTERM") {
    TempDir dir;
    int port = free_port();
    pid_t pid = spawn_cli(dir, {"serve", "--database", dir.file("s.db"), "--port", std::to_string(port), "--api-key",
                                std::string("other,") + kApiKey, "--event-key", kEventKey},
                          {});
    // Waits for the server process to listen (not for time to pass: the process is starting).
    httplib::Client http("127.0.0.1", port);
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
      auto res = http.Get("/health");
      up = res && res->status == 200;
      if (!up) std::this_thread::sleep_for(20ms);
    }
    CHECK(up);
    std::string url = "http://127.0.0.1:" + std::to_string(port);
    auto sent = run_cli({"send", "any/thing", "--url", url, "--event-key", kEventKey});
    CHECK_MESSAGE(sent.exit_code == 0, sent.err);
    auto events = run_cli({"events", "--url", url, "--key", kApiKey});
    CHECK(contains(events.out, "any/thing"));
    kill(pid, SIGTERM);
    CHECK(wait_cli(dir, pid).exit_code == 0);
  }
}
