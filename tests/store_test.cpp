// The store contract, written once against the Store interfaces and run on every store:
// SQLite in memory and SQLite on a file (and PostgreSQL, when it exists, by adding a type).
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include "engine/sqlite.hpp"
#include "engine/sqlite_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

struct SqliteMemory {
  static std::unique_ptr<Store> open(const TempDir&) {
    return std::make_unique<SqliteStore>(SqliteStoreOptions{.path = ":memory:"});
  }
};

struct SqliteFile {
  static std::unique_ptr<Store> open(const TempDir& dir) {
    return std::make_unique<SqliteStore>(SqliteStoreOptions{.path = dir.file("store.db"), .durability = Durability::normal});
  }
};

const TimePoint kT0 = from_millis(1893456000000);

IngestStore::Item item(const std::string& event_id, const std::string& name, std::vector<std::string> run_ids,
                       const std::string& dedup_key = "") {
  IngestStore::Item it{event_id, Event{.id = dedup_key, .name = name, .data = {{"n", 1}}, .ts = kT0}, {}};
  for (auto& r : run_ids) it.runs.push_back(NewRun{.id = r, .function_id = "fn", .event_id = event_id});
  return it;
}

Lease lease(const std::string& owner, TimePoint expires) { return Lease{owner, expires}; }

JournalEntry step_entry(int64_t seq, const std::string& key, const std::string& payload, TimePoint at) {
  return JournalEntry{.seq = seq, .kind = JournalKind::step_completed, .step_key = key, .payload = payload, .recorded_at = at};
}

Commit step_commit(const ClaimedRun& run, int64_t seq, const std::string& key, TimePoint at) {
  return Commit{.run_id = run.run_id, .lease_epoch = run.lease_epoch,
                .entries = {step_entry(seq, key, "1", at)}, .now = at};
}

}  // namespace

TEST_SUITE("store") {
  TEST_CASE_TEMPLATE("ingest stores events with their runs and run_started entries", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    auto outcomes = store->ingest({item("E1", "a/b", {"R1", "R2"}), item("E2", "a/c", {})}, kT0, 24h);
    REQUIRE(outcomes.size() == 2);
    CHECK(outcomes[0] == IngestStore::Outcome::accepted);
    CHECK(outcomes[1] == IngestStore::Outcome::accepted);

    auto e = store->find_event("E1");
    REQUIRE(e);
    CHECK(e->event.name == "a/b");
    CHECK(e->event.data == nlohmann::json{{"n", 1}});
    CHECK(e->received_at == kT0);
    CHECK_FALSE(e->duplicate);
    CHECK_FALSE(store->find_event("nope"));

    auto runs = store->runs_for_event("E1");
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].id == "R1");
    CHECK(runs[0].status == RunStatus::queued);
    CHECK(runs[0].created_at == kT0);
    auto journal = store->load_journal("R1");
    REQUIRE(journal.size() == 1);
    CHECK(journal[0].kind == JournalKind::run_started);
    CHECK(store->runs_for_event("E2").empty());
  }

  TEST_CASE_TEMPLATE("an ingest that fails stores nothing of its batch", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    // The second item reuses a run id: the whole batch must be rolled back.
    CHECK_THROWS_AS(store->ingest({item("E1", "x", {"R1"}), item("E2", "x", {"R1"})}, kT0, 24h), StoreError);
    CHECK_FALSE(store->find_event("E1"));
    CHECK_FALSE(store->find_event("E2"));
    CHECK_FALSE(store->find_run("R1"));
  }

  TEST_CASE_TEMPLATE("a repeated dedup key within the window is stored as a duplicate without runs", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    CHECK(store->ingest({item("E1", "x", {"R1"}, "key-1")}, kT0, 24h)[0] == IngestStore::Outcome::accepted);
    auto again = store->ingest({item("E2", "x", {"R2"}, "key-1"), item("E3", "x", {"R3"}, "key-1")}, kT0 + 1h, 24h);
    CHECK(again[0] == IngestStore::Outcome::duplicate);
    CHECK(again[1] == IngestStore::Outcome::duplicate);
    REQUIRE(store->find_event("E2"));
    CHECK(store->find_event("E2")->duplicate);
    CHECK_FALSE(store->find_run("R2"));
    // Other keys are independent; after the window the key starts runs again.
    CHECK(store->ingest({item("E4", "x", {"R4"}, "key-2")}, kT0 + 2h, 24h)[0] == IngestStore::Outcome::accepted);
    CHECK(store->ingest({item("E5", "x", {"R5"}, "key-1")}, kT0 + 25h, 24h)[0] == IngestStore::Outcome::accepted);
    CHECK(store->find_run("R5"));
  }

  TEST_CASE_TEMPLATE("claim takes due runs of the given functions, earliest first, up to the limit", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    store->ingest({item("E2", "x", {"R2"})}, kT0 + 1s, 24h);
    store->ingest({item("E3", "x", {"R3"})}, kT0 + 2s, 24h);
    IngestStore::Item other = item("E4", "x", {});
    other.runs.push_back(NewRun{.id = "R4", .function_id = "other", .event_id = "E4"});
    store->ingest({other}, kT0, 24h);

    CHECK(store->claim({"fn"}, kT0 - 1s, lease("w1", kT0 + 30s), 10).empty());  // nothing due yet
    auto first = store->claim({"fn"}, kT0 + 5s, lease("w1", kT0 + 35s), 2);
    REQUIRE(first.size() == 2);
    std::set<std::string> ids{first[0].run_id, first[1].run_id};
    CHECK(ids == std::set<std::string>{"R1", "R2"});
    CHECK(first[0].lease_epoch == 1);
    CHECK(store->find_run("R1")->status == RunStatus::running);
    CHECK(store->find_run("R1")->started_at == kT0 + 5s);

    auto rest = store->claim({"fn"}, kT0 + 5s, lease("w2", kT0 + 35s), 10);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].run_id == "R3");
    CHECK(store->claim({"fn"}, kT0 + 5s, lease("w2", kT0 + 35s), 10).empty());  // claimed runs are not claimed twice
    CHECK(store->claim({"other"}, kT0 + 5s, lease("w2", kT0 + 35s), 10).size() == 1);
  }

  TEST_CASE_TEMPLATE("runs created with a lease start running without a claim", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    IngestStore::Item it = item("E1", "x", {});
    it.runs.push_back(NewRun{.id = "R1", .function_id = "fn", .event_id = "E1", .lease = lease("w1", kT0 + 30s)});
    store->ingest({it}, kT0, 24h);
    CHECK(store->find_run("R1")->status == RunStatus::running);
    CHECK(store->claim({"fn"}, kT0, lease("w2", kT0 + 30s), 10).empty());
    ClaimedRun held{"R1", "fn", "E1", 1, 0};
    CHECK(store->commit(step_commit(held, 1, "a", kT0)) == JournalStore::CommitResult::committed);
  }

  TEST_CASE_TEMPLATE("commit appends entries in order and applies the transition", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    auto run = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), 1).at(0);
    CHECK(store->commit(step_commit(run, 1, "a", kT0 + 1s)) == JournalStore::CommitResult::committed);
    Commit sleep{.run_id = "R1", .lease_epoch = run.lease_epoch,
                 .entries = {JournalEntry{.seq = 2, .kind = JournalKind::sleep_scheduled, .step_key = "nap",
                                          .payload = R"({"until":1})", .recorded_at = kT0 + 2s}},
                 .transition = RunTransition{.status = RunStatus::sleeping, .available_at = kT0 + 1h},
                 .now = kT0 + 2s};
    CHECK(store->commit(sleep) == JournalStore::CommitResult::committed);

    auto journal = store->load_journal("R1");
    REQUIRE(journal.size() == 3);
    CHECK(journal[1].kind == JournalKind::step_completed);
    CHECK(journal[1].step_key == "a");
    CHECK(journal[1].recorded_at == kT0 + 1s);
    CHECK(journal[2].kind == JournalKind::sleep_scheduled);
    auto r = store->find_run("R1");
    CHECK(r->status == RunStatus::sleeping);
    CHECK(r->available_at == kT0 + 1h);
    CHECK_FALSE(r->ended_at);
    CHECK(store->next_due({"fn"}) == kT0 + 1h);

    // The sleeping run is due at its deadline, not before.
    CHECK(store->claim({"fn"}, kT0 + 59min, lease("w1", kT0 + 2h), 1).empty());
    auto woken = store->claim({"fn"}, kT0 + 1h, lease("w1", kT0 + 2h), 1);
    REQUIRE(woken.size() == 1);
    CHECK(woken[0].lease_epoch == run.lease_epoch + 1);
    Commit done{.run_id = "R1", .lease_epoch = woken[0].lease_epoch,
                .entries = {JournalEntry{.seq = 3, .kind = JournalKind::run_completed, .payload = "42", .recorded_at = kT0 + 1h}},
                .transition = RunTransition{.status = RunStatus::completed, .output = "42"},
                .now = kT0 + 1h};
    CHECK(store->commit(done) == JournalStore::CommitResult::committed);
    r = store->find_run("R1");
    CHECK(r->status == RunStatus::completed);
    CHECK(r->output == 42);
    CHECK(r->ended_at == kT0 + 1h);
    CHECK_FALSE(store->next_due({"fn"}));
  }

  TEST_CASE_TEMPLATE("claim takes sleeping runs a little ahead of their deadline, but never retries", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1", "R2"})}, kT0, 24h);
    auto both = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), 2);
    REQUIRE(both.size() == 2);
    auto park = [&](const ClaimedRun& run, RunStatus status) {
      Commit c{.run_id = run.run_id, .lease_epoch = run.lease_epoch,
               .transition = RunTransition{.status = status, .available_at = kT0 + 10s}, .now = kT0};
      REQUIRE(store->commit(c) == JournalStore::CommitResult::committed);
    };
    park(both[0], RunStatus::sleeping);  // a sleep ending at +10 s
    park(both[1], RunStatus::queued);    // a retry due at +10 s
    auto early = store->claim({"fn"}, kT0 + 9950ms, lease("w1", kT0 + 40s), 10, 50ms);
    REQUIRE(early.size() == 1);
    CHECK(early[0].run_id == both[0].run_id);
    CHECK(early[0].available_at == kT0 + 10s);  // the worker holds it until then
    CHECK(store->claim({"fn"}, kT0 + 9950ms, lease("w1", kT0 + 40s), 10, 50ms).empty());
    CHECK(store->claim({"fn"}, kT0 + 10s, lease("w1", kT0 + 40s), 10).size() == 1);  // the retry, when due
  }

  TEST_CASE_TEMPLATE("a worker whose lease was taken over cannot commit (fencing)", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    auto stale = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), 1).at(0);
    CHECK(store->commit(step_commit(stale, 1, "a", kT0 + 1s)) == JournalStore::CommitResult::committed);

    // w1 stops renewing; its lease expires and the run goes back to the queue.
    CHECK(store->recover_expired_leases(kT0 + 29s).empty());
    CHECK(store->recover_expired_leases(kT0 + 30s).size() == 1);
    CHECK(store->find_run("R1")->status == RunStatus::queued);
    // Recovery alone already fences w1 out, before anyone claims the run.
    CHECK(store->commit(step_commit(stale, 2, "b", kT0 + 31s)) == JournalStore::CommitResult::lease_lost);

    auto fresh = store->claim({"fn"}, kT0 + 31s, lease("w2", kT0 + 61s), 1).at(0);
    CHECK(fresh.lease_epoch > stale.lease_epoch);
    CHECK(store->commit(step_commit(stale, 2, "b", kT0 + 32s)) == JournalStore::CommitResult::lease_lost);
    Commit stale_finish{.run_id = "R1", .lease_epoch = stale.lease_epoch,
                        .transition = RunTransition{.status = RunStatus::completed, .output = "1"}, .now = kT0 + 32s};
    CHECK(store->commit(stale_finish) == JournalStore::CommitResult::lease_lost);
    CHECK(store->commit(step_commit(fresh, 2, "b", kT0 + 33s)) == JournalStore::CommitResult::committed);

    auto journal = store->load_journal("R1");
    REQUIRE(journal.size() == 3);
    CHECK(journal[2].recorded_at == kT0 + 33s);  // w2's entry, not w1's
    CHECK(store->find_run("R1")->status == RunStatus::running);
  }

  TEST_CASE_TEMPLATE("a journal entry is never overwritten", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    auto run = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), 1).at(0);
    CHECK_THROWS_AS(store->commit(step_commit(run, 0, "a", kT0)), StoreError);  // seq 0 is run_started
    CHECK(store->commit(step_commit(run, 1, "a", kT0)) == JournalStore::CommitResult::committed);
    CHECK_THROWS_AS(store->commit(step_commit(run, 1, "b", kT0)), StoreError);
    auto journal = store->load_journal("R1");
    REQUIRE(journal.size() == 2);
    CHECK(journal[1].step_key == "a");
  }

  TEST_CASE_TEMPLATE("renewed leases are not recovered", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1", "R2"})}, kT0, 24h);
    store->claim({"fn"}, kT0, lease("alive", kT0 + 30s), 1);
    store->claim({"fn"}, kT0, lease("dead", kT0 + 30s), 1);
    CHECK(store->renew_leases("alive", {"R1", "R2"}, kT0 + 60s) == 1);  // R2 is not alive's
    CHECK(store->recover_expired_leases(kT0 + 45s).size() == 1);  // only the dead worker's run
    auto queued = store->claim({"fn"}, kT0 + 45s, lease("alive", kT0 + 75s), 10);
    CHECK(queued.size() == 1);
  }

  TEST_CASE_TEMPLATE("a failed run records its error and can start a failure-handler run", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    auto run = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), 1).at(0);
    Commit failed{.run_id = "R1", .lease_epoch = run.lease_epoch,
                  .entries = {JournalEntry{.seq = 1, .kind = JournalKind::run_failed, .payload = R"({"message":"boom"})", .recorded_at = kT0}},
                  .transition = RunTransition{.status = RunStatus::failed, .error = R"({"message":"boom"})"},
                  .new_runs = {NewRun{.id = "R2", .function_id = "fn-failure", .event_id = "E1"}},
                  .now = kT0};
    CHECK(store->commit(failed) == JournalStore::CommitResult::committed);
    CHECK(store->find_run("R1")->error["message"] == "boom");
    CHECK(store->find_run("R2")->status == RunStatus::queued);
    CHECK(store->runs_for_event("E1").size() == 2);
  }

  TEST_CASE_TEMPLATE("concurrent commits from many threads all land", S, SqliteMemory, SqliteFile) {
    TempDir dir;
    auto store = S::open(dir);
    constexpr int kRuns = 16, kSteps = 50;
    std::vector<IngestStore::Item> items;
    for (int i = 0; i < kRuns; ++i) items.push_back(item("E" + std::to_string(i), "x", {"R" + std::to_string(i)}));
    store->ingest(items, kT0, 24h);
    auto runs = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), kRuns);
    REQUIRE(runs.size() == kRuns);
    std::vector<std::thread> threads;
    for (auto& run : runs) {
      threads.emplace_back([&store, run] {
        for (int s = 1; s <= kSteps; ++s) {
          REQUIRE(store->commit(step_commit(run, s, "s" + std::to_string(s), kT0)) == JournalStore::CommitResult::committed);
        }
      });
    }
    for (auto& t : threads) t.join();
    for (auto& run : runs) CHECK(store->load_journal(run.run_id).size() == kSteps + 1);
    StoreStats stats = store->stats();
    CHECK(stats.writes >= kRuns * kSteps);
    CHECK(stats.commits <= stats.writes);
  }
}
