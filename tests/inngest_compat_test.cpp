// The real inngest npm package (tests/inngest_compat, pinned by its package-lock.json) sending
// to durable: its send(), configured by INNGEST_BASE_URL or INNGEST_DEV and INNGEST_EVENT_KEY
// as an application would be, starts runs here, and its retried sends are recognised by their
// x-inngest-event-id-seed header. Node runs tests/inngest_compat/send.mjs in a child process
// that talks to 127.0.0.1 only.
//
// Needs `node` on the PATH and `npm ci` done in tests/inngest_compat (scripts/install-deps.sh
// and scripts/test.sh see to both). Without them the tests fail, saying so: skipping would
// let CI pass without ever checking the compatibility.
#include <chrono>
#include <filesystem>

#include <doctest/doctest.h>

#include "engine/engine_access.hpp"
#include "engine/events/event_id_seed.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

const std::filesystem::path kCompatDir = std::filesystem::path(DURABLE_SOURCE_DIR) / "tests" / "inngest_compat";
constexpr const char* kEventKey = "compat-key";

// node and the installed inngest package, or a failed test that says how to get them.
std::string require_node_and_sdk() {
  std::string node = find_on_path("node");
  REQUIRE_MESSAGE(!node.empty(), "node is not on the PATH: the inngest compatibility test needs Node.js "
                                 "(bash scripts/install-deps.sh installs Debian's nodejs and npm)");
  REQUIRE_MESSAGE(std::filesystem::exists(kCompatDir / "node_modules" / "inngest" / "package.json"),
                  "the inngest npm package is not installed in " << kCompatDir.string()
                      << "/node_modules: run `npm ci --prefix tests/inngest_compat` (bash scripts/test.sh does)");
  return node;
}

// Runs `node send.mjs <args>` with only `env` (and PATH) in its environment, so that nothing
// from the test's own environment (NODE_ENV, INNGEST_*, ...) changes what the SDK does. Fails
// the test unless it exits 0 within 60 s; returns what it printed on stdout, as JSON.
nlohmann::json run_send_mjs(const TempDir& dir, const std::string& node, const std::vector<std::string>& args,
                            std::vector<std::string> env) {
  return run_node_script(node, (kCompatDir / "send.mjs").string(), args, std::move(env), dir, 60s);
}

// An engine on a manual clock whose function "compat" echoes the data of `event_name`
// events, serving the event API on a free port of 127.0.0.1. The clock starts at the real
// time: the SDK's id seeds carry its clock, and the engine uses them only when they are close
// to its own.
struct Server {
  explicit Server(const std::string& event_name) : clock(std::make_shared<ManualClock>(SystemClock().now())),
                                                   engine(engine_options(dir.file("t.db"), clock)) {
    engine.function({.id = "compat"}, on_event(event_name), [](Context& ctx) { return ctx.event.data; });
    port = engine.listen({.host = "127.0.0.1", .port = 0, .event_keys = {kEventKey}});
    url = "http://127.0.0.1:" + std::to_string(port);
  }

  // How many events named `name` are stored.
  int64_t events_named(const std::string& name) {
    return static_cast<int64_t>(EngineAccess::store(engine).list_events(EventFilter{.name = name}, 100000, "").size());
  }

  TempDir dir;
  std::shared_ptr<ManualClock> clock;
  Engine engine;
  int port = 0;
  std::string url;
};

std::vector<std::string> ids_of(const nlohmann::json& list) {
  REQUIRE(list.is_array());
  return list.get<std::vector<std::string>>();
}

}  // namespace

TEST_SUITE("inngest_compat") {
  TEST_CASE("the inngest npm package's send() delivers one event and an array to durable, which runs them" *
            doctest::timeout(120)) {
    std::string node = require_node_and_sdk();
    Server s("compat/sent");
    // The two ways an application points the SDK at a server of its own. INNGEST_DEV=0 is a
    // production setting: the SDK then insists on an event key, and with INNGEST_BASE_URL set
    // it sends there and nowhere else (no look for a dev server on localhost:8288 first).
    std::vector<std::string> env;
    SUBCASE("INNGEST_BASE_URL with INNGEST_DEV=0") {
      env = {"INNGEST_BASE_URL=" + s.url, "INNGEST_DEV=0", std::string("INNGEST_EVENT_KEY=") + kEventKey};
    }
    SUBCASE("INNGEST_DEV=<url>") {
      env = {"INNGEST_DEV=" + s.url, std::string("INNGEST_EVENT_KEY=") + kEventKey};
    }
    auto sent = run_send_mjs(s.dir, node, {"send", "compat/sent"}, env);

    auto single = ids_of(sent["single"]);
    auto batch = ids_of(sent["batch"]);
    REQUIRE(single.size() == 1);
    REQUIRE(batch.size() == 2);
    // Only these: the engine adds its own (lifecycle) events when the runs end.
    CHECK(s.events_named("compat/sent") == 3);
    // The ids the SDK returned are durable's: each names a stored event and the run it started,
    // committed before the SDK got its answer.
    std::vector<std::string> all = {single[0], batch[0], batch[1]};
    for (const auto& id : all) {
      CHECK(id.size() == 26);
      CHECK_MESSAGE(s.engine.runs_for_event(id).size() == 1, "event " << id);
    }
    REQUIRE(s.engine.drain());
    for (int n = 0; n < 3; ++n) {
      Run run = only_run(s.engine, all[n]);
      CHECK(run.status == RunStatus::completed);
      CHECK(run.output == nlohmann::json{{"n", n}});
    }
  }

  TEST_CASE("a send() that the inngest SDK retries after a lost answer gets the same ids and starts its runs once" *
            doctest::timeout(120)) {
    std::string node = require_node_and_sdk();
    Server s("compat/retried");
    // send.mjs puts a proxy between the SDK and durable that forwards the first attempt but
    // cuts its connection instead of answering: durable has stored the events, the SDK sees a
    // network error and retries by itself, with the same x-inngest-event-id-seed header. This
    // is the real SDK's retry, not an imitation of its request.
    auto result = run_send_mjs(s.dir, node, {"retry", "compat/retried"},
                               {"INNGEST_BASE_URL=" + s.url, "INNGEST_DEV=0", std::string("INNGEST_EVENT_KEY=") + kEventKey});

    auto& attempts = result["attempts"];
    REQUIRE(attempts.is_array());
    REQUIRE_MESSAGE(attempts.size() == 2, "attempts: " << attempts.dump());
    REQUIRE(attempts[0]["seed"].is_string());
    std::string seed = attempts[0]["seed"];
    CHECK_MESSAGE(attempts[1]["seed"] == seed, "the SDK changed its seed between attempts: " << attempts.dump());
    CHECK(attempts[0]["status"] == 200);
    CHECK(attempts[1]["status"] == 200);
    auto first = ids_of(attempts[0]["ids"]);
    auto sdk_ids = ids_of(result["ids"]);
    REQUIRE(first.size() == 2);
    REQUIRE(sdk_ids.size() == 2);

    auto seeded = event_ids_from_seed(seed, 2);
    REQUIRE_MESSAGE(seeded, "durable cannot read the SDK's seed header '" << seed << "'");
    CHECK_MESSAGE(first == *seeded, "the first attempt's ids are not those of its x-inngest-event-id-seed header '"
                                        << seed << "': " << attempts.dump());
    CHECK_MESSAGE(sdk_ids == first, "the retried send() got other ids than the attempt durable stored: "
                                        << result.dump());

    // One run per event, however many attempts reached durable.
    REQUIRE(s.engine.drain());
    CHECK(EngineAccess::store(s.engine).count_runs(RunFilter{}) == 2);
    for (int n = 0; n < 2; ++n) {
      auto runs = s.engine.runs_for_event(sdk_ids[n]);
      REQUIRE_MESSAGE(runs.size() == 1, "event " << sdk_ids[n]);
      CHECK(runs[0].status == RunStatus::completed);
      CHECK(runs[0].output == nlohmann::json{{"n", n + 1}});
    }
  }
}
