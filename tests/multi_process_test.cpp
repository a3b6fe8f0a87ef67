// Several processes on one database: `durable serve` runs the HTTP API with no functions of
// its own, and a worker process (tests/crash/crash_worker) registers its function in the
// store and executes the runs. An event sent to the API process starts a run that the worker
// executes, and the API process reports it: the API reads the store, not in-process state.
//
// Waits in real time for the other processes (never for time itself).
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>

#include <httplib.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

nlohmann::json get_json(httplib::Client& http, const std::string& path) {
  auto res = http.Get(path.c_str(), {{"Authorization", "Bearer api-key"}});
  REQUIRE_MESSAGE(res, "GET " << path << " failed");
  REQUIRE_MESSAGE(res->status == 200, "GET " << path << ": " << res->status << " " << res->body);
  return nlohmann::json::parse(res->body);
}

}  // namespace

TEST_SUITE("multi_process") {
  TEST_CASE("an event sent to `durable serve` starts a run that a worker process executes") {
    TempDir dir;
    std::string db = dir.file("shared.db");
    int api_port = free_port();
    ChildProcess api({DURABLE_CLI, "serve", "--database", db, "--port", std::to_string(api_port)}, dir.file("serve.log"),
                     {"DURABLE_EVENT_KEY=event-key", "DURABLE_API_KEY=api-key"});
    httplib::Client http("127.0.0.1", api_port);
    REQUIRE_MESSAGE(wait_until([&] { return static_cast<bool>(http.Get("/health")); }, 10s),
                    "durable serve did not answer within 10 s");

    ChildProcess worker({DURABLE_CRASH_WORKER, "--database", db, "--ledger", dir.file("ledger.txt"), "--port-file",
                         dir.file("port"), "--generation", "0", "--step-ms", "0"},
                        dir.file("worker.log"));
    // The worker writes its port file after start(), which records its function in the store.
    REQUIRE_MESSAGE(wait_until([&] { return std::ifstream(dir.file("port")).good(); }, 10s), "the worker did not start");

    // The API process knows the worker's functions from the store (listed by id).
    auto functions = get_json(http, "/v1/functions")["functions"];
    std::vector<std::string> ids;
    for (const auto& f : functions) ids.push_back(f["id"]);
    CHECK(ids == std::vector<std::string>{"crash-20", "crash-double", "crash-ping", "crash-primitives"});
    REQUIRE(functions[0]["id"] == "crash-20");
    CHECK(functions[0]["triggers"][0]["event"] == "crash/test");

    auto sent = http.Post("/e/event-key", R"({"name":"crash/test","data":{"seed":7}})", "application/json");
    REQUIRE(sent);
    REQUIRE(sent->status == 200);
    std::string event_id = nlohmann::json::parse(sent->body)["ids"][0];

    // The API process has no function, yet its ingest started the worker's.
    auto runs = get_json(http, "/v1/events/" + event_id + "/runs")["runs"];
    REQUIRE(runs.size() == 1);
    CHECK(runs[0]["function_id"] == "crash-20");
    std::string run_id = runs[0]["id"];

    nlohmann::json run;
    bool completed = wait_until([&] {
      run = get_json(http, "/v1/runs/" + run_id);
      return run["status"] == "completed";
    }, 30s);
    REQUIRE_MESSAGE(completed, "the run did not complete within 30 s: " << run.dump());
    int64_t expected = 0;
    for (int i = 0; i < 20; ++i) expected += 7 * 100 + i;
    CHECK(run["output"] == expected);
    CHECK(run["steps"].size() == 21);  // 20 steps and the sleep

    // Every step ran once, in the worker.
    std::ifstream ledger(dir.file("ledger.txt"));
    int lines = 0;
    for (std::string line; std::getline(ledger, line);) ++lines;
    CHECK(lines == 20);

    int status = api.stop(SIGTERM);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}
