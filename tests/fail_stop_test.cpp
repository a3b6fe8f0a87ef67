// Fail-stop: after an error that may have lost acknowledged data (a failed fsync above all:
// the kernel may have dropped the pages it could not write, PostgreSQL's "fsyncgate"), the
// store refuses every write, /health says so, and `serve()` exits 74 for its supervisor to
// restart it; recovery then reads only what is on disk. A full disk is not such an error: it
// is refused and the store goes on.
//
// The real-process test preloads tests/faults/fsync_fault (LD_PRELOAD) into a server that
// ingests events over HTTP from several clients, and makes one of its WAL syncs fail. The
// in-process tests use tests/faults/power_cut_vfs to make every I/O fail, or the disk full.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/base/log.hpp"
#include "engine/engine_access.hpp"
#include "engine/store/sqlite/group_commit.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "engine/store/sqlite/sqlite_store.hpp"
#include "tests/faults/power_cut_vfs.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kFailStopText = "the store stopped writing after an I/O error and the process must be restarted";

int64_t monotonic_ns() {
  // steady_clock is CLOCK_MONOTONIC, the clock the shim reports in.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One POST /e/{key} as the client saw it.
struct Reply {
  int64_t seed;
  int64_t sent_ns;
  int64_t replied_ns;
  int status;
  std::string event_id;  // when 200
};

}  // namespace

TEST_SUITE("fail_stop") {
  TEST_CASE("a fatal error stops the writer for good; busy, disk-full and constraint errors do not") {
    TempDir dir;
    SqliteDb db(dir.file("g.db"), 1s);
    db.exec("CREATE TABLE t (v INTEGER PRIMARY KEY)");
    GroupCommitWriter writer(db, nullptr);
    std::vector<std::string> told;
    writer.set_failure_listener([&](const std::string& failure) { told.push_back(failure); });
    set_log_sink([](std::string_view) {});  // the failure's error line

    for (int code : {SQLITE_BUSY, SQLITE_FULL, SQLITE_CONSTRAINT_PRIMARYKEY, 0}) {
      CAPTURE(code);
      CHECK_FALSE(sqlite_error(code, "").is_fatal());
      CHECK_THROWS_AS(writer.write([code](SqliteDb&) { throw sqlite_error(code, "refused"); }), StoreError);
      CHECK_FALSE(writer.failure());
    }
    // What the caller should do: try again (busy, disk full), or not (a taken key).
    CHECK(sqlite_error(SQLITE_BUSY, "").is_transient());
    CHECK(sqlite_error(SQLITE_LOCKED_SHAREDCACHE, "").is_transient());
    CHECK(sqlite_error(SQLITE_FULL, "").is_transient());
    CHECK(sqlite_error(SQLITE_CONSTRAINT_PRIMARYKEY, "").is_conflict());
    CHECK(sqlite_error(SQLITE_ERROR, "").is_conflict());
    for (int code : {SQLITE_IOERR_FSYNC, SQLITE_IOERR_WRITE, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_NOMEM, SQLITE_READONLY_DBMOVED}) {
      CAPTURE(code);
      CHECK(sqlite_error(code, "").is_fatal());
    }
    writer.write([](SqliteDb& d) { d.cached("INSERT INTO t VALUES (1)").exec(); });

    try {
      writer.write([](SqliteDb& d) {
        d.cached("INSERT INTO t VALUES (2)").exec();
        throw sqlite_error(SQLITE_IOERR_FSYNC, "sqlite: disk I/O error");
      });
      FAIL("a fatal error was not rethrown");
    } catch (const StoreError& e) {
      CHECK(e.code() == SQLITE_IOERR_FSYNC);
      CHECK(std::string(e.what()).find(kFailStopText) != std::string::npos);
    }
    REQUIRE(writer.failure());
    CHECK(writer.failure()->find("disk I/O error") != std::string::npos);
    CHECK(told == std::vector<std::string>{*writer.failure()});

    bool ran = false;
    CHECK_THROWS_WITH_AS(writer.write([&](SqliteDb&) { ran = true; }), doctest::Contains(kFailStopText), StoreError);
    CHECK_FALSE(ran);
    Statement rows(db.handle(), "SELECT group_concat(v) FROM t");
    REQUIRE(rows.step());
    CHECK(rows.get_text(0) == "1");
    CHECK(told.size() == 1);
    set_log_sink(nullptr);
  }

  TEST_CASE("a failed store answers /health with 503 and refuses every write with the reason" * doctest::timeout(30)) {
    TempDir dir;
    PowerCutVfs vfs({});
    {
      Engine engine({.database = dir.file("f.db"), .workers = 2, .log_level = "off"});
      engine.function({.id = "noop"}, on_event("f/go"), [](Context&) {});
      int port = engine.listen({.port = 0, .event_keys = {"k"}});
      httplib::Client http("127.0.0.1", port);
      auto health = http.Get("/health");
      REQUIRE(health);
      CHECK(health->status == 200);
      engine.send(Event{.name = "f/go"});

      vfs.cut();  // every I/O fails from now on: the next write fails the store
      CHECK_THROWS_WITH_AS(engine.send(Event{.name = "f/go"}), doctest::Contains(kFailStopText), Error);
      CHECK_THROWS_WITH_AS(engine.send(Event{.name = "f/go"}), doctest::Contains(kFailStopText), Error);
      auto failure = EngineAccess::store(engine).failure();
      REQUIRE(failure);

      health = http.Get("/health");
      REQUIRE(health);
      CHECK(health->status == 503);
      auto body = nlohmann::json::parse(health->body);
      CHECK(body["status"] == "failed");
      CHECK(body["error"] == *failure);

      auto sent = http.Post("/e/k", R"({"name":"f/go"})", "application/json");
      REQUIRE(sent);
      CHECK(sent->status >= 500);
      CHECK(sent->body.find("must be restarted") != std::string::npos);
    }
    PowerCutVfs::reboot(dir.file("f.db"));
  }

  TEST_CASE("a full disk refuses writes without stopping the store; once there is room they succeed" * doctest::timeout(30)) {
    TempDir dir;
    PowerCutVfs vfs({});
    {
      Engine engine({.database = dir.file("full.db"), .workers = 2, .lease_ttl = 200ms, .poll_interval = 20ms,
                     .log_level = "off"});
      engine.function({.id = "two-steps"}, on_event("full/go"), [](Context& ctx) {
        int a = ctx.step.run("a", [] { return 1; });
        return a + ctx.step.run("b", [] { return 2; });
      });
      engine.start();
      std::string before = engine.send(Event{.name = "full/go"});
      vfs.set_disk_full(true);
      CHECK_THROWS_AS(engine.send(Event{.name = "full/go"}), Error);
      CHECK_FALSE(EngineAccess::store(engine).failure());
      vfs.set_disk_full(false);
      std::string after = engine.send(Event{.name = "full/go"});
      CHECK_FALSE(EngineAccess::store(engine).failure());
      // Executions whose commits the full disk refused are recovered through their leases.
      for (const std::string& id : {before, after}) {
        REQUIRE(wait_until([&] { return only_run(engine, id).status == RunStatus::completed; }, 10s));
        CHECK(only_run(engine, id).output == 3);
      }
    }
  }

  TEST_CASE("after an fsync fails, the server acknowledges nothing more and exits 74; a restart keeps every "
            "acknowledged event" * doctest::timeout(180)) {
    TempDir dir;
    const std::string db = dir.file("fault.db"), report = dir.file("fsync-fault.txt");
    const int port = free_port();
    // The 120th sync of the WAL: past the start-up's (the preallocation, the schema, the
    // function records), well inside the load. Slow steps (20 ms) leave most syncs to the
    // ingests, so the failed one is usually an ingest's, whose request is answered 5xx.
    constexpr int kFailAt = 120;
    auto worker_args = [&](int generation) {
      return std::vector<std::string>{DURABLE_CRASH_WORKER, "--database", db, "--ledger", dir.file("ledger.txt"),
                                      "--serve-port", std::to_string(port), "--generation", std::to_string(generation),
                                      "--step-ms", "20", "--lease-ttl-ms", "500"};
    };
    auto healthy = [&] {
      httplib::Client probe("127.0.0.1", port);
      auto res = probe.Get("/health");
      return res && res->status == 200;
    };
    std::vector<std::string> fault_env = preload_env(DURABLE_FSYNC_FAULT);
    fault_env.insert(fault_env.end(), {fmt::format("DURABLE_FSYNC_FAIL_AT={}", kFailAt), "DURABLE_FSYNC_FAIL_SUFFIX=-wal",
                                       "DURABLE_FSYNC_FAULT_REPORT=" + report});
    ChildProcess faulty(worker_args(0), dir.file("worker-0.log"), fault_env);
    REQUIRE_MESSAGE(wait_until(healthy, 10s), "the server did not start:\n" << file_text(dir.file("worker-0.log")));

    constexpr int kClients = 4;
    constexpr int kMaxPerClient = 3000;
    std::atomic<int64_t> next_seed{0};
    std::vector<std::vector<Reply>> replies(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        httplib::Client http("127.0.0.1", port);
        http.set_keep_alive(true);
        for (int i = 0; i < kMaxPerClient; ++i) {
          int64_t seed = next_seed.fetch_add(1);
          Reply r{.seed = seed, .sent_ns = monotonic_ns()};
          auto res = http.Post("/e/crash", fmt::format(R"({{"name":"crash/test","data":{{"seed":{}}}}})", seed),
                               "application/json");
          r.replied_ns = monotonic_ns();
          if (!res) break;  // the server has gone
          r.status = res->status;
          if (r.status == 200) r.event_id = nlohmann::json::parse(res->body)["ids"][0];
          replies[c].push_back(r);
        }
      });
    }
    for (auto& t : clients) t.join();

    // The server stops by itself, and says why.
    REQUIRE_MESSAGE(wait_until([&] { return !faulty.running(); }, 30s), "the server did not exit after the fsync failure");
    REQUIRE(faulty.exit_status());
    const int status = *faulty.exit_status();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 74);
    const std::string log = file_text(dir.file("worker-0.log"));
    CHECK_MESSAGE(log.find("store failed") != std::string::npos, log);

    // The shim failed a sync of the WAL: SQLite syncs through the libc's fdatasync.
    std::istringstream line(file_text(report));
    int call = 0;
    int64_t failed_ns = 0;
    std::string path;
    REQUIRE_MESSAGE(static_cast<bool>(line >> call >> failed_ns >> path), "the shim never failed a sync: " << file_text(report));
    CHECK(call == kFailAt);
    CHECK(path == db + "-wal");

    std::vector<Reply> acked;
    int64_t first_refusal_ns = INT64_MAX;
    size_t refused = 0;
    for (const auto& list : replies) {
      for (const Reply& r : list) {
        if (r.status == 200) {
          acked.push_back(r);
        } else {
          ++refused;
          first_refusal_ns = std::min(first_refusal_ns, r.replied_ns);
        }
      }
    }
    REQUIRE_MESSAGE(!acked.empty(), "the sync failed before any event was acknowledged: raise kFailAt");
    int after_failure = 0, after_refusal = 0;
    for (const Reply& r : acked) {
      if (r.sent_ns > failed_ns) ++after_failure;
      if (r.sent_ns > first_refusal_ns) ++after_refusal;
    }
    CHECK_MESSAGE(after_failure == 0, after_failure << " requests sent after the failed fsync were acknowledged");
    CHECK_MESSAGE(after_refusal == 0, after_refusal << " requests sent after the first refusal were acknowledged");

    // Restarted without the fault, the server has every acknowledged event, and runs them all.
    ChildProcess restarted(worker_args(1), dir.file("worker-1.log"));
    REQUIRE_MESSAGE(wait_until(healthy, 10s), "the restarted server did not start:\n" << file_text(dir.file("worker-1.log")));
    SqliteStore store({.path = db});
    std::vector<std::string> run_ids;
    for (const Reply& r : acked) {
      CAPTURE(r.event_id);
      REQUIRE(store.find_event(r.event_id));
      auto runs = store.runs_for_event(r.event_id);
      REQUIRE(runs.size() == 1);
      run_ids.push_back(runs[0].id);
    }
    REQUIRE_MESSAGE(wait_until([&] {
      return std::all_of(run_ids.begin(), run_ids.end(), [&](const std::string& id) {
        auto run = store.find_run(id);
        return run && is_finished(run->status);
      });
    }, 60s), "the acknowledged events' runs did not all finish after the restart");
    for (size_t i = 0; i < acked.size(); ++i) {
      auto run = store.find_run(run_ids[i]);
      CHECK(run->status == RunStatus::completed);
      CHECK(run->output == acked[i].seed * 2000 + 190);  // the 20 steps' seed * 100 + i
    }
    int stopped = restarted.stop(SIGTERM);
    CHECK(WIFEXITED(stopped));
    CHECK(WEXITSTATUS(stopped) == 0);
    MESSAGE(acked.size() << " events acknowledged before the failed fsync, " << refused
                         << " refused after it; the server exited 74");
  }
}
