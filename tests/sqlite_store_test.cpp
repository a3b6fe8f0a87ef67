// What is particular to the SQLite store: WAL, the durability setting, group commit, and
// several stores (processes) sharing one file.
#include <filesystem>
#include <latch>
#include <thread>

#include <doctest/doctest.h>

#include "engine/group_commit.hpp"
#include "engine/sqlite.hpp"
#include "engine/sqlite_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

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

  TEST_CASE("the WAL stays bounded under writes that never pause" * doctest::timeout(60)) {
    // Checkpoints run beside the writer; without their catch-up pass, a WAL written to
    // without pause is never restarted and grows for ever (some 27,000 frames here).
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
    auto frames = std::filesystem::file_size(dir.file("w.db-wal")) / (4096 + 24);
    MESSAGE("WAL high-water mark: " << frames << " frames after 20000 commits");
    CHECK(frames < 10000);
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
