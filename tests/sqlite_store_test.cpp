// What is particular to the SQLite store: WAL, the durability setting, group commit, and
// several stores (processes) sharing one file.
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <latch>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>

#include "engine/store/sqlite/group_commit.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "engine/store/sqlite/sqlite_store.hpp"
#include "engine/store/sqlite/wal_checkpointer.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// The WAL file's layout (https://sqlite.org/fileformat2.html#walformat): a 32-byte header, then
// frames of a 24-byte header and a page (4 KiB, SQLite's default page size).
constexpr uintmax_t kWalHeaderBytes = 32;
constexpr uintmax_t kWalFrameBytes = 24 + 4096;

}  // namespace

TEST_SUITE("sqlite_store") {
  TEST_CASE("the database is in WAL mode and the durability setting picks synchronous FULL or NORMAL") {
    TempDir dir;
    {
      SqliteStore full({.path = dir.file("full.db")});
      CHECK(full.synchronous_level() == 2);
      SqliteStore normal({.path = dir.file("normal.db"), .durability = Durability::normal});
      CHECK(normal.synchronous_level() == 1);
    }
    SqliteDb db(dir.file("full.db"), 1s);
    Statement mode(db.handle(), "PRAGMA journal_mode");
    REQUIRE(mode.step());
    CHECK(mode.get_text(0) == "wal");
  }

  TEST_CASE("callers that arrive while a transaction commits share the next one (group commit)" * doctest::timeout(10)) {
    TempDir dir;
    SqliteDb db(dir.file("g.db"), 1s);
    db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)");
    GroupCommitWriter writer(db, nullptr);
    std::latch first_inside(1), release(1);
    std::thread first([&] {
      writer.write([&](SqliteDb& d) {
        first_inside.count_down();
        release.wait();  // holds the writer inside the first transaction
        d.cached("INSERT INTO t VALUES (0)").exec();
      });
    });
    first_inside.wait();
    constexpr int kWaiting = 10;
    std::vector<std::thread> others;
    for (int i = 1; i <= kWaiting; ++i) {
      others.emplace_back([&, i] { writer.write([i](SqliteDb& d) { d.cached("INSERT INTO t VALUES (?)").bind(1, i).exec(); }); });
    }
    while (writer.queued() < kWaiting) std::this_thread::yield();
    release.count_down();
    first.join();
    for (auto& t : others) t.join();
    CHECK(writer.commits() == 2);  // the first alone, then the ten together
    CHECK(writer.writes() == kWaiting + 1);
  }

  TEST_CASE("work that throws is rolled back alone; the others in its transaction commit") {
    TempDir dir;
    SqliteDb db(dir.file("g.db"), 1s);
    db.exec("CREATE TABLE t (v INTEGER PRIMARY KEY)");
    GroupCommitWriter writer(db, nullptr);
    writer.write([](SqliteDb& d) { d.cached("INSERT INTO t VALUES (1)").exec(); });
    CHECK_THROWS_AS(writer.write([](SqliteDb& d) {
      d.cached("INSERT INTO t VALUES (2)").exec();
      d.cached("INSERT INTO t VALUES (1)").exec();  // constraint violation
    }), StoreError);
    writer.write([](SqliteDb& d) { d.cached("INSERT INTO t VALUES (3)").exec(); });
    Statement count(db.handle(), "SELECT group_concat(v) FROM t");
    REQUIRE(count.step());
    CHECK(count.get_text(0) == "1,3");
  }

  TEST_CASE("the WAL stays under its bound under writes that never pause" * doctest::timeout(60)) {
    // Checkpoints run beside the writer; without their catch-up pass, a WAL written to
    // without pause is never restarted and grows for ever (some 27,000 frames here). However
    // slow the checkpoint thread, the writer enforces the bound before each transaction.
    TempDir dir;
    SqliteStore store({.path = dir.file("w.db"), .durability = Durability::normal});
    const TimePoint t0 = from_millis(1893456000000);
    store.ingest({IngestStore::Item{"E", Event{.name = "x", .ts = t0}, {NewRun{.id = "R", .function_id = "fn", .event_id = "E"}}}},
                 t0, 24h);
    auto run = store.claim({"fn"}, t0, Lease{"w", t0 + 30s}, 1).at(0);
    std::string payload(500, 'p');
    for (int seq = 1; seq <= 20000; ++seq) {
      Commit c{.run_id = "R", .lease_epoch = run.lease_epoch,
               .entries = {JournalEntry{.seq = seq, .kind = JournalKind::step_completed, .step_key = "s",
                                        .payload = "\"" + payload + "\"", .recorded_at = t0}},
               .now = t0};
      REQUIRE(store.commit(c) == JournalStore::CommitResult::committed);
    }
    // The WAL file is never shortened, so its size is the high-water mark. One of these
    // commits writes a handful of pages.
    auto frames = (std::filesystem::file_size(dir.file("w.db-wal")) - kWalHeaderBytes) / kWalFrameBytes;
    MESSAGE("WAL high-water mark: " << frames << " frames after 20000 commits");
    CHECK(frames <= static_cast<uintmax_t>(WalCheckpointerOptions{}.limit_frames + 16));
  }

  TEST_CASE("the WAL never passes its bound while the checkpoint thread is stalled; writers wait for a checkpoint" *
            doctest::timeout(60)) {
    TempDir dir;
    const std::string path = dir.file("b.db");
    SqliteDb db(path, 5s);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    GroupCommitWriter writer(db, nullptr);
    // The checkpoint thread gets no CPU at all: it is held before its first pass until the
    // writers are done.
    std::mutex mu;
    std::condition_variable cv;
    bool release = false;
    int stalled = 0;
    constexpr int kLimit = 400;
    WalCheckpointer checkpointer(db, writer, path,
                                 {.threshold_frames = 100, .limit_frames = kLimit, .before_pass = [&] {
                                    std::unique_lock lock(mu);
                                    ++stalled;
                                    cv.wait(lock, [&] { return release; });
                                  }});
    constexpr int kThreads = 8, kWritesEach = 400;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kWritesEach; ++i) {
          writer.write([](SqliteDb& d) { d.cached("INSERT INTO t (v) VALUES (printf('%.1000c', 'v'))").exec(); });
        }
      });
    }
    for (auto& t : threads) t.join();
    auto frames = (std::filesystem::file_size(path + "-wal") - kWalHeaderBytes) / kWalFrameBytes;
    {
      std::lock_guard lock(mu);
      release = true;
      CHECK(stalled == 1);  // the thread never got past its first pass
    }
    cv.notify_all();
    // 3,200 rows of 1 KiB: some 800 pages written, twice the bound. A transaction holds at
    // most 8 rows (one per thread): a few pages.
    MESSAGE("WAL high-water mark: " << frames << " frames; the writers waited for " << checkpointer.forced_checkpoints()
                                    << " checkpoints");
    CHECK(frames <= static_cast<uintmax_t>(kLimit + 16));
    CHECK(checkpointer.forced_checkpoints() >= 1);
    Statement count(db.handle(), "SELECT count(*) FROM t");
    REQUIRE(count.step());
    CHECK(count.get_int(0) == kThreads * kWritesEach);
  }

  TEST_CASE("writers at the WAL's bound wait for the checkpoint thread's pass in progress rather than fail" *
            doctest::timeout(60)) {
    // SQLite refuses a second checkpoint at once (SQLITE_BUSY, no busy handler) while one runs:
    // with a tiny threshold and bound, the writer's own checkpoints keep meeting the thread's.
    TempDir dir;
    const std::string path = dir.file("c.db");
    SqliteDb db(path, 5s);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    GroupCommitWriter writer(db, nullptr);
    constexpr int kLimit = 40;
    WalCheckpointer checkpointer(db, writer, path, {.threshold_frames = 10, .limit_frames = kLimit});
    constexpr int kThreads = 8, kWritesEach = 300;
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kWritesEach; ++i) {
          try {
            writer.write([](SqliteDb& d) { d.cached("INSERT INTO t (v) VALUES (printf('%.1000c', 'v'))").exec(); });
          } catch (const StoreError&) {
            ++failed;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    auto frames = (std::filesystem::file_size(path + "-wal") - kWalHeaderBytes) / kWalFrameBytes;
    MESSAGE("WAL high-water mark: " << frames << " frames; " << checkpointer.checkpoints() << " passes, "
                                    << checkpointer.forced_checkpoints() << " checkpoints the writers waited for");
    CHECK(failed == 0);
    CHECK(frames <= static_cast<uintmax_t>(kLimit + 16));
  }

  TEST_CASE("a read transaction held open stops the WAL at its bound: writes fail as busy until it ends" *
            doctest::timeout(30)) {
    TempDir dir;
    const std::string path = dir.file("r.db");
    // The writer connection's busy timeout is how long a write waits for the reader.
    SqliteDb db(path, 100ms);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    GroupCommitWriter writer(db, nullptr);
    constexpr int kLimit = 200;
    WalCheckpointer checkpointer(db, writer, path, {.threshold_frames = 50, .limit_frames = kLimit});
    auto insert = [&] { writer.write([](SqliteDb& d) { d.cached("INSERT INTO t (v) VALUES (printf('%.1000c', 'v'))").exec(); }); };
    for (int i = 0; i < 20; ++i) insert();

    // Another connection (another process, say) holds a snapshot that needs the WAL.
    SqliteDb reader(path, 100ms);
    reader.exec("BEGIN");
    Statement snapshot(reader.handle(), "SELECT count(*) FROM t");
    REQUIRE(snapshot.step());
    int written = 0;
    bool refused = false;
    for (; written < 2000 && !refused; ++written) {
      try {
        insert();
      } catch (const StoreError& e) {
        CHECK(is_sqlite_busy(e));
        CHECK(e.is_transient());
        CHECK(std::string(e.what()).find("WAL is at its bound") != std::string::npos);
        refused = true;
      }
    }
    REQUIRE(refused);
    CHECK_THROWS_AS(insert(), StoreError);  // and again, for as long as the reader stays
    auto frames = (std::filesystem::file_size(path + "-wal") - kWalHeaderBytes) / kWalFrameBytes;
    CHECK(frames <= static_cast<uintmax_t>(kLimit + 16));
    CHECK_FALSE(writer.failed());

    snapshot.reset();
    reader.exec("COMMIT");
    insert();  // the reader is gone: the writer checkpoints, and the WAL starts over
    CHECK(checkpointer.forced_checkpoints() >= 1);
    MESSAGE("refused after " << written << " writes at " << frames << " frames (bound " << kLimit << ")");
  }

  TEST_CASE("two stores on one file (two processes) both write, waiting for each other's lock") {
    TempDir dir;
    SqliteStore a({.path = dir.file("shared.db"), .durability = Durability::normal});
    SqliteStore b({.path = dir.file("shared.db"), .durability = Durability::normal});
    const TimePoint t0 = from_millis(1893456000000);
    constexpr int kEach = 200;
    auto ingest_many = [&](SqliteStore& store, const std::string& prefix) {
      for (int i = 0; i < kEach; ++i) {
        std::string id = prefix + std::to_string(i);
        store.ingest({IngestStore::Item{id, Event{.name = "x", .ts = t0}, {NewRun{.id = "R" + id, .function_id = "fn", .event_id = id}}}},
                     t0, 24h);
      }
    };
    std::thread ta([&] { ingest_many(a, "a"); });
    std::thread tb([&] { ingest_many(b, "b"); });
    ta.join();
    tb.join();
    // Each store sees the other's writes.
    CHECK(a.find_event("b" + std::to_string(kEach - 1)));
    CHECK(b.find_event("a" + std::to_string(kEach - 1)));
    CHECK(a.claim({"fn"}, t0, Lease{"w", t0 + 30s}, 1000).size() == 2 * kEach);
  }
}
