// The dashboard in a real browser: Debian's chromium, driven by Playwright (playwright-core,
// pinned by tests/dashboard_e2e/package-lock.json) from tests/dashboard_e2e/dashboard.mjs,
// against an engine in this process. The script logs in, searches runs by id and time, finds
// a failed run, resumes it once its cause is fixed, reruns a run from a step with an edited
// output, times the page of a 1,000-step run, sends an event from the events page, opens a
// bulk replay without confirming it, bulk-cancels sleeping runs, and pages through 2,000 runs;
// this test then checks on the engine's side that each of those did what it should, and
// nothing more. A second script, framing.mjs, checks that a page of another origin cannot
// show the dashboard in a frame (clickjacking). Screenshots of every page go to $DURABLE_TEST_ARTIFACTS/dashboard
// (scripts/test.sh sets it to build/test-artifacts), else ./test-artifacts/dashboard.
//
// Needs `node` on the PATH, /usr/bin/chromium and `npm ci` done in tests/dashboard_e2e
// (scripts/install-deps.sh and scripts/test.sh see to all three). Without them the test fails,
// saying so: skipping would let CI pass without the dashboard ever being opened.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

const std::filesystem::path kE2eDir = std::filesystem::path(DURABLE_SOURCE_DIR) / "tests" / "dashboard_e2e";
const std::filesystem::path kChromium = "/usr/bin/chromium";
constexpr const char* kApiKey = "e2e-api-key";
constexpr const char* kEventKey = "e2e-event-key";
constexpr int kBigRunSteps = 1000;
constexpr int kManyRuns = 2000;  // of "ping": the runs page pages through them

// node, chromium and playwright-core, or a failed test that says how to get them.
std::string require_node_chromium_playwright() {
  std::string node = find_on_path("node");
  REQUIRE_MESSAGE(!node.empty(), "node is not on the PATH: the dashboard's browser test needs Node.js "
                                 "(bash scripts/install-deps.sh installs Debian's nodejs and npm)");
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  kChromium.string() << " is missing: the dashboard's browser test runs Debian's chromium "
                                        "(bash scripts/install-deps.sh installs it: apt-get install chromium)");
  REQUIRE_MESSAGE(std::filesystem::exists(kE2eDir / "node_modules" / "playwright-core" / "package.json"),
                  "the playwright-core npm package is not installed in " << kE2eDir.string()
                      << "/node_modules: run `npm ci --prefix tests/dashboard_e2e` (bash scripts/test.sh does)");
  return node;
}

// Where the screenshots go: a directory a person can open after the run (a TempDir would be
// gone by then). Emptied first, so that only this run's files are there.
std::filesystem::path screenshot_dir() {
  const char* artifacts = std::getenv("DURABLE_TEST_ARTIFACTS");
  std::filesystem::path dir = std::filesystem::absolute(artifacts && *artifacts ? artifacts : "test-artifacts") / "dashboard";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string status_of(const Engine& engine, const std::string& run_id) {
  auto run = engine.get_run(run_id);
  return run ? std::string(to_string(run->status)) : "(no such run)";
}

}  // namespace

TEST_SUITE("dashboard_e2e") {
  TEST_CASE("in chromium: log in, find the failed run, resume it once its cause is fixed, rerun from a step with an "
            "edited output; a 1,000-step run renders in under a second" *
            doctest::timeout(300)) {
    std::string node = require_node_chromium_playwright();
    TempDir dir;
    // What the functions' steps use, declared before the engine so that they outlive its workers.
    const std::string fix_file = dir.file("provider-fixed");
    std::atomic<int> reserve_bodies{0};
    // The browser's clock and the engine's must agree (the pages show times and durations, the
    // runs filter takes dates), and the runs must go on by themselves while the browser
    // watches: the real clock. Nothing here waits for time to pass, only for work to finish.
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<SystemClock>()));
    // a. A payment that fails until its cause is fixed: the file `provider-fixed`, which the
    // script creates before it clicks Resume. No retries, so the first failure fails the run.
    engine.function({.id = "charge-order", .retries = 0}, on_event("shop/order.placed"), [&](Context& ctx) {
      ctx.step.run("reserve", [&] {
        ++reserve_bodies;
        return nlohmann::json{{"reserved", true}};
      });
      ctx.step.run("charge", [&] {
        if (!std::filesystem::exists(fix_file)) throw std::runtime_error("payment provider unavailable");
        return nlohmann::json{{"charged", ctx.event.data.at("amount")}};
      });
      ctx.step.run("receipt", [] { return nlohmann::json{{"sent", true}}; });
      return nlohmann::json{{"status", "paid"}};
    });
    // b. A total computed from a quote: rerun from "quote" with {"price": 21}, it is 42.
    engine.function({.id = "quote-order"}, on_event("shop/quote.requested"), [](Context& ctx) {
      auto quote = ctx.step.run("quote", [] { return nlohmann::json{{"price", 10}}; });
      return ctx.step.run("total", [&] { return nlohmann::json{{"total", quote.at("price").get<int>() * 2}}; });
    });
    // c. A long run, for the speed of the run page.
    engine.function({.id = "bulk-import"}, on_event("shop/import.requested"), [](Context& ctx) {
      for (int i = 0; i < kBigRunSteps; ++i) {
        ctx.step.run("row-" + std::to_string(i), [i] { return nlohmann::json{{"row", i}}; });
      }
      return nlohmann::json{{"rows", kBigRunSteps}};
    });
    // d. Runs asleep for an hour, for the sleep's timeline and a bulk cancel.
    engine.function({.id = "nap"}, on_event("shop/nap"), [](Context& ctx) {
      ctx.step.sleep("nap", 1h);
      return nlohmann::json{{"rested", true}};
    });
    // e. Many small runs, for paging.
    engine.function({.id = "ping"}, on_event("shop/ping"), [](Context&) { return nlohmann::json{{"pong", true}}; });
    int port = engine.listen({.host = "127.0.0.1", .port = 0, .event_keys = {kEventKey}, .api_keys = {kApiKey}});

    // The many first, so that the runs page opens on the others, which are newer.
    engine.send(std::vector<Event>(kManyRuns, Event{.name = "shop/ping"}));
    std::string charge_event = engine.send({.name = "shop/order.placed", .data = {{"amount", 25}}});
    std::string charge_run = only_run(engine, charge_event).id;
    std::string quote_run = only_run(engine, engine.send({.name = "shop/quote.requested", .data = {{"n", 0}}})).id;
    std::string big_run = only_run(engine, engine.send({.name = "shop/import.requested"})).id;
    std::vector<std::string> runs = {charge_run, quote_run, big_run};
    std::vector<std::string> nap_runs;
    for (int i = 0; i < 3; ++i) nap_runs.push_back(only_run(engine, engine.send({.name = "shop/nap"})).id);
    // More finished runs, so that the runs page and the bulk replay have several to show.
    for (int n = 1; n <= 3; ++n) {
      runs.push_back(only_run(engine, engine.send({.name = "shop/quote.requested", .data = {{"n", n}}})).id);
    }
    auto store_owner = open_store(dir.file("t.db"), {});
    Store& store = *store_owner;
    bool finished = wait_until([&] {
      for (const auto& id : runs) {
        if (!is_finished(engine.get_run(id)->status)) return false;
      }
      for (const auto& id : nap_runs) {
        if (engine.get_run(id)->status != RunStatus::sleeping) return false;
      }
      return store.count_runs({.statuses = {RunStatus::completed}, .function_id = "ping"}) == kManyRuns;
    }, 60s);
    REQUIRE_MESSAGE(finished, "the runs did not finish within 60 s; the 1,000-step run is " << status_of(engine, big_run));
    REQUIRE_MESSAGE(status_of(engine, charge_run) == "failed", "charge-order run " << charge_run);
    REQUIRE_MESSAGE(status_of(engine, quote_run) == "completed", "quote-order run " << quote_run);
    REQUIRE_MESSAGE(status_of(engine, big_run) == "completed", "bulk-import run " << big_run);
    REQUIRE(reserve_bodies == 1);

    std::filesystem::path shots = screenshot_dir();
    auto result = run_node_script(node, (kE2eDir / "dashboard.mjs").string(), {},
                                  {"DURABLE_URL=http://127.0.0.1:" + std::to_string(port),
                                   std::string("DURABLE_API_KEY=") + kApiKey,
                                   "DURABLE_FIX_FILE=" + fix_file,
                                   "DURABLE_SCREENSHOTS=" + shots.string(),
                                   "DURABLE_FAILED_RUN=" + charge_run,
                                   "DURABLE_FAILED_EVENT=" + charge_event,
                                   "DURABLE_PAGED_FUNCTION=ping",
                                   "DURABLE_PAGED_RUNS=" + std::to_string(kManyRuns),
                                   "DURABLE_NAP_RUNS=" + nap_runs[0] + "," + nap_runs[1] + "," + nap_runs[2],
                                   "DURABLE_QUOTE_RUN=" + quote_run,
                                   "DURABLE_BIG_RUN=" + big_run,
                                   // chromium's profile and caches: in the test's directory,
                                   // not in the home of whoever runs the suite.
                                   "HOME=" + dir.path().string()},
                                  dir, 180s);
    REQUIRE(engine.drain());

    // Resume: the same run, completed; "reserve" memoized, "charge" failed once, then ran again.
    auto charged = engine.get_run(charge_run);
    REQUIRE(charged);
    CHECK(charged->status == RunStatus::completed);
    CHECK(charged->output == nlohmann::json{{"status", "paid"}});
    CHECK(reserve_bodies == 1);
    auto journal = read_journal(dir.file("t.db"), charge_run);
    std::vector<std::string> charge_history;
    for (const auto& e : journal) {
      if (e.step_key == "charge") charge_history.push_back(std::string(to_string(e.kind)));
    }
    CHECK(charge_history == std::vector<std::string>{"step_failed", "step_completed"});
    CHECK(entries_of(journal, JournalKind::run_resumed).size() == 1);
    int reserve_records = 0;
    for (const auto& e : entries_of(journal, JournalKind::step_completed)) reserve_records += e.step_key == "reserve";
    CHECK(reserve_records == 1);

    // Rerun from "quote" with {"price": 21}: one replay of the quote run, the one the page
    // opened, with the total of the edited price; the original untouched.
    auto replays = store.replays_of(quote_run);
    REQUIRE(replays.size() == 1);
    CHECK(result.value("rerun_run", "") == replays[0]);
    auto rerun = engine.get_run(replays[0]);
    REQUIRE(rerun);
    CHECK(rerun->replay_of == quote_run);
    CHECK(rerun->status == RunStatus::completed);
    CHECK(rerun->output == nlohmann::json{{"total", 42}});
    CHECK(engine.get_run(quote_run)->output == nlohmann::json{{"total", 20}});

    // The event sent from the events page: stored with its data, and it started a quote run.
    REQUIRE(result["sent_event"].is_string());
    auto sent = store.find_event(result["sent_event"].get<std::string>());
    REQUIRE(sent);
    CHECK(sent->event.name == "shop/quote.requested");
    CHECK(sent->event.data == nlohmann::json{{"note", "from the dashboard"}});
    CHECK(engine.runs_for_event(sent->id).size() == 1);

    // The bulk replay was opened and closed, not confirmed: no run replays anything but the
    // rerun. Runs of quote-order: the 4 sent here, the rerun, the dashboard's event's.
    CHECK(store.count_runs({.function_id = "quote-order"}) == 6);
    for (const auto& run : store.list_runs({}, 100, "")) {
      CHECK_MESSAGE((run.replay_of.empty() || run.id == replays[0]), "an unexpected replay: " << run.id);
    }
    REQUIRE(result["bulk_count"].is_number_integer());
    // The completed quote-order runs when the dialog opened: the 4 sent here and the rerun,
    // and the dashboard's event's unless it was still running.
    CHECK(result["bulk_count"].get<int>() >= 5);
    CHECK(result["bulk_count"].get<int>() <= 6);

    // Cancel matching, confirmed: the sleeping runs were cancelled.
    for (const auto& id : nap_runs) CHECK(status_of(engine, id) == "cancelled");

    // The 1,000-step run's page: route start to rendered, as the page and as the test saw it.
    REQUIRE(result["render_ms"].is_number());
    double render_ms = result["render_ms"].get<double>();
    MESSAGE("the run page of a " << kBigRunSteps << "-step run rendered in " << render_ms << " ms ("
                                 << result.value("render", nlohmann::json()).dump() << ")");
    CHECK(render_ms < 1000);

    // Paging through the ping runs: every run once, the last page as fast as the first.
    nlohmann::json paging = result["paging"];
    MESSAGE("paging through " << kManyRuns << " runs, 50 a page: " << paging.dump());
    CHECK(paging["runs"] == kManyRuns);
    CHECK(paging["pages"] == kManyRuns / 50);

    std::vector<std::string> expected_shots = {"login.png",         "runs.png",         "run-failed.png",
                                               "run-completed.png", "rerun-dialog.png", "run-rerun.png",
                                               "run-1000-steps.png", "functions.png",   "events.png",
                                               "bulk.png",          "run-sleeping.png"};
    REQUIRE(result["screenshots"].is_array());
    for (const auto& name : expected_shots) {
      auto path = shots / name;
      CHECK_MESSAGE((std::filesystem::exists(path) && std::filesystem::file_size(path) > 0), "no screenshot " << path);
    }
    for (const auto& path : result["screenshots"]) {
      CHECK_MESSAGE(std::filesystem::exists(path.get<std::string>()), "no screenshot " << path);
    }
    MESSAGE("screenshots of the dashboard: " << shots.string());
    engine.stop();
  }

  TEST_CASE("in chromium: a page of another origin cannot show the dashboard in a frame, even to a logged-in browser" *
            doctest::timeout(120)) {
    std::string node = require_node_chromium_playwright();
    TempDir dir;
    Engine engine(engine_options(dir.file("t.db"), std::make_shared<SystemClock>()));
    int port = engine.listen({.host = "127.0.0.1", .port = 0, .event_keys = {kEventKey}, .api_keys = {kApiKey}});
    auto result = run_node_script(node, (kE2eDir / "framing.mjs").string(), {},
                                  {"DURABLE_URL=http://127.0.0.1:" + std::to_string(port),
                                   std::string("DURABLE_API_KEY=") + kApiKey, "HOME=" + dir.path().string()},
                                  dir, 90s);
    MESSAGE("framing: " << result.dump());
    // The same pages load outside a frame: the frames below were refused, not broken.
    CHECK(result["direct"]["login"] == true);
    CHECK(result["direct"]["dashboard"] == true);
    REQUIRE(result["frames"].size() == 3);
    for (const auto& frame : result["frames"]) {
      CHECK_MESSAGE(frame["shows_dashboard"] == false, "a frame of another origin showed " << frame.dump());
    }
    engine.stop();
  }
}
