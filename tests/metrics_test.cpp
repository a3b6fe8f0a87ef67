// GET /metrics over real HTTP: the text passes `promtool check metrics` (a real Prometheus
// parser and linter, from Debian's prometheus package) without a single remark, and every
// figure read back from it matches what the test made the engine do.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include <httplib.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/exec/metrics.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

const std::string kApiKey = "metrics-test-api-key";
const std::string kEventKey = "metrics-test-event-key";

// The path of `program` in a directory of $PATH, or "" if there is none.
std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct CheckResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// `promtool check metrics` on `text` (through a file in `dir`: promtool reads stdin).
CheckResult promtool_check(const TempDir& dir, const std::string& text) {
  std::string promtool = find_on_path("promtool");
  REQUIRE_MESSAGE(!promtool.empty(),
                  "promtool is not on PATH: run scripts/install-deps.sh (Debian package prometheus)");
  std::string input = dir.file("metrics.txt");
  std::ofstream(input) << text;
  std::string command = "'" + promtool + "' check metrics < '" + input + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe);
  CheckResult result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

// Requires promtool to accept `text` with nothing to say: a lint remark ("counter metrics
// should have _total suffix"...) fails the test as much as a parse error.
void check_with_promtool(const TempDir& dir, const std::string& text) {
  CheckResult r = promtool_check(dir, text);
  CHECK_MESSAGE(r.exit_code == 0, "promtool check metrics: exit ", r.exit_code, "\n", r.output, "\n--- input:\n", text);
  CHECK_MESSAGE(r.output.empty(), "promtool check metrics:\n", r.output);
}

// The samples of an exposition, by metric name, then by their labels written "k=v,k=v"
// (sorted by key): "durable_steps_total" -> {"function=ok,outcome=completed" -> 4}.
using Family = std::map<std::string, double>;
using Samples = std::map<std::string, Family>;

// A small parser of the text format's sample lines, `name{k="v",...} value`: what this test
// reads back. (promtool has checked the format itself.)
Samples parse_samples(const std::string& text) {
  Samples out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t i = line.find_first_of("{ ");
    REQUIRE_MESSAGE(i != std::string::npos, line);
    std::string name = line.substr(0, i);
    std::map<std::string, std::string> labels;
    if (line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        size_t eq = line.find('=', i);
        REQUIRE_MESSAGE(eq != std::string::npos, line);
        std::string key = line.substr(i, eq - i);
        i = eq + 1;
        REQUIRE_MESSAGE(line.at(i) == '"', line);
        std::string value;
        for (++i; line.at(i) != '"'; ++i) {
          if (line[i] == '\\') value += line.at(++i) == 'n' ? '\n' : line[i];
          else value += line[i];
        }
        ++i;  // the closing quote
        if (line.at(i) == ',') ++i;
        labels[key] = value;
      }
      ++i;  // '}'
    }
    REQUIRE_MESSAGE(line.at(i) == ' ', line);
    std::string value = line.substr(i + 1);
    std::string key;
    for (const auto& [k, v] : labels) key += (key.empty() ? "" : ",") + k + "=" + v;
    double number = value == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(value);
    REQUIRE_MESSAGE(out[name].emplace(key, number).second, "sample given twice: ", line);
  }
  return out;
}

// A family as text, so that a mismatch shows both sides.
std::string show(const Family& family) {
  std::string out;
  for (const auto& [labels, value] : family) out += "{" + labels + "} " + fmt::format("{}", value) + "\n";
  return out;
}

// Checks the step duration histogram of `function_id`: every bucket present, cumulative
// counts that never decrease, +Inf equal to _count, and _count equal to `steps`.
void check_histogram(const Samples& samples, const std::string& function_id, double steps) {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  std::string prefix = "function=" + function_id + ",le=";
  for (const auto& [labels, count] : samples.at("durable_step_duration_seconds_bucket")) {
    if (labels.rfind(prefix, 0) != 0) continue;
    std::string le = labels.substr(prefix.size());
    buckets.emplace_back(le == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(le), count);
  }
  std::sort(buckets.begin(), buckets.end());
  REQUIRE(buckets.size() == Metrics::kBuckets.size() + 1);
  for (size_t i = 0; i < Metrics::kBuckets.size(); ++i) CHECK(buckets[i].first == Metrics::kBuckets[i]);
  CHECK(std::isinf(buckets.back().first));
  for (size_t i = 1; i < buckets.size(); ++i) CHECK(buckets[i].second >= buckets[i - 1].second);
  double count = samples.at("durable_step_duration_seconds_count").at("function=" + function_id);
  CHECK(buckets.back().second == count);
  CHECK(count == steps);
  CHECK(samples.at("durable_step_duration_seconds_sum").at("function=" + function_id) >= 0);
}

httplib::Headers bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

// A step that blocks until `release` once it has signalled `inside`.
struct BlockedStep {
  std::latch inside{1};
  std::latch release{1};
};

// Counts `release` down when it goes out of scope: declared after the engine whose step
// waits on it, it lets that engine's destructor (which joins the step) finish.
struct ReleaseOnExit {
  std::latch& release;
  ~ReleaseOnExit() { release.count_down(); }
};

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("GET /metrics passes promtool and its figures are the runs, steps, events and queue the engine has" *
            doctest::timeout(60)) {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "ok"}, on_event("test/ok"), [](Context& ctx) {
      return ctx.step.run("a", [] { return 1; }) + ctx.step.run("b", [] { return 2; });
    });
    engine.function({.id = "flaky", .retries = 1, .backoff = fast_backoff()}, on_event("test/flaky"), [](Context& ctx) {
      return ctx.step.run("boom", []() -> int { throw std::runtime_error("always"); });
    });
    engine.function({.id = "sleeper"}, on_event("test/sleep"), [](Context& ctx) { ctx.step.sleep("nap", 1h); });
    engine.function({.id = "retrier", .retries = 3, .backoff = fast_backoff()}, on_event("test/retry"), [](Context& ctx) {
      return ctx.step.run("later", []() -> int { throw std::runtime_error("not yet"); });
    });
    int port = engine.listen({.port = 0, .event_keys = {kEventKey}, .api_keys = {kApiKey}});
    httplib::Client http("127.0.0.1", port);

    // Another worker process on the same database (its own clock, which stays put: it never
    // renews its lease) holds a run of a function this engine does not have, blocked in a step.
    auto other_clock = std::make_shared<ManualClock>();
    Engine other(engine_options(dir.file("t.db"), other_clock));
    BlockedStep blocked;
    other.function({.id = "elsewhere"}, on_event("test/elsewhere"), [&blocked](Context& ctx) {
      return ctx.step.run("stuck", [&blocked] {
        blocked.inside.count_down();
        blocked.release.wait();
        return 0;
      });
    });
    other.start();
    ReleaseOnExit release_other{blocked.release};
    other.send({.name = "test/elsewhere"});
    blocked.inside.wait();

    // Two runs complete (two steps each).
    engine.send(std::vector<Event>{{.name = "test/ok"}, {.name = "test/ok"}});
    REQUIRE(engine.drain());
    // One fails for good after a retry: its step is retried once, then fails.
    std::string flaky_event = engine.send({.name = "test/flaky"});
    REQUIRE(engine.drain());  // the first attempt failed: its retry is due 1 s from now
    advance(engine, *clock, 1s);
    CHECK(only_run(engine, flaky_event).status == RunStatus::failed);
    // Two sleep for an hour; one of them is cancelled through the API.
    auto sleep_events = engine.send(std::vector<Event>{{.name = "test/sleep"}, {.name = "test/sleep"}});
    REQUIRE(engine.drain());
    std::string cancelled = only_run(engine, sleep_events[0]).id;
    auto cancel = http.Post("/v1/runs/" + cancelled + "/cancel", bearer(kApiKey), "", "application/json");
    REQUIRE(cancel);
    REQUIRE(cancel->status == 200);
    CHECK(only_run(engine, sleep_events[1]).status == RunStatus::sleeping);
    // The other process's lease (30 s) runs out on this engine's clock: recovered. Nobody
    // here can run it, so it stays due: runnable.
    advance(engine, *clock, 31s);
    // Last, a run whose step failed and waits a second for its retry: scheduled.
    std::string retry_event = engine.send({.name = "test/retry"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, retry_event).status == RunStatus::queued);

    auto res = http.Get("/metrics");  // open: no key needed by default
    REQUIRE(res);
    REQUIRE(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    check_with_promtool(dir, res->body);

    Samples s = parse_samples(res->body);
    CHECK(show(s["durable_runs_started_total"]) ==
          show({{"function=ok", 2}, {"function=flaky", 1}, {"function=sleeper", 2}, {"function=retrier", 1}}));
    CHECK(show(s["durable_runs_finished_total"]) == show({{"function=ok,status=completed", 2},
                                                          {"function=flaky,status=failed", 1},
                                                          {"function=sleeper,status=cancelled", 1}}));
    CHECK(show(s["durable_steps_total"]) == show({{"function=ok,outcome=completed", 4},
                                                  {"function=flaky,outcome=retried", 1},
                                                  {"function=flaky,outcome=failed", 1},
                                                  {"function=retrier,outcome=retried", 1}}));
    CHECK(s["durable_step_duration_seconds_count"].size() == 3);  // sleeps are not step bodies
    check_histogram(s, "ok", 4);
    check_histogram(s, "flaky", 2);
    check_histogram(s, "retrier", 1);
    CHECK(show(s["durable_events_ingested_total"]) == show({{"", 6}}));
    CHECK(show(s["durable_lease_recoveries_total"]) == show({{"", 1}}));
    CHECK(show(s["durable_queue_depth"]) ==
          show({{"state=runnable", 1}, {"state=scheduled", 1}, {"state=sleeping", 1}, {"state=waiting", 0},
                {"state=running", 0}}));
    double commits = s["durable_store_commits_total"][""];
    double writes = s["durable_store_commit_writes_total"][""];
    CHECK(commits > 0);
    CHECK(writes >= commits);
  }

  TEST_CASE("GET /metrics needs an API key when metrics_require_api_key is set; a fresh engine's text passes promtool") {
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<ManualClock>()));
    int port = engine.listen({.port = 0, .event_keys = {kEventKey}, .api_keys = {kApiKey}, .metrics_require_api_key = true});
    httplib::Client http("127.0.0.1", port);

    auto missing = http.Get("/metrics");
    REQUIRE(missing);
    CHECK(missing->status == 401);
    auto wrong = http.Get("/metrics", bearer("not-the-key"));
    REQUIRE(wrong);
    CHECK(wrong->status == 401);

    auto res = http.Get("/metrics", bearer(kApiKey));
    REQUIRE(res);
    REQUIRE(res->status == 200);
    check_with_promtool(dir, res->body);  // families with no samples yet, zero counters
    Samples s = parse_samples(res->body);
    CHECK(s["durable_events_ingested_total"][""] == 0);
    CHECK(s["durable_queue_depth"]["state=runnable"] == 0);
  }
}
