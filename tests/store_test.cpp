// The store contract, written once against the Store interfaces and run on every store:
// SQLite in memory, SQLite on a file, and PostgreSQL (a private server, tests/postgres_server).
#include <map>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include "engine/base/ids.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "engine/store/open_store.hpp"
#include "engine/store/sqlite/sqlite_store.hpp"
#include "tests/postgres_server.hpp"
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

struct Postgres {
  static std::unique_ptr<Store> open(const TempDir&) { return open_store(postgres_test_database(), {}); }
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

// An id made at `t`, as the engine makes run and event ids (the time filters and retention
// rely on ids that start with their creation time).
std::string id_at(TimePoint t) { return IdGenerator().next(t); }

// Ingests at `at` event `event_id` (name "x") with one run of `function_id`, already leased to
// "w1" (lease epoch 1) when `leased`.
void ingest_one(Store& store, const std::string& event_id, const std::string& run_id, TimePoint at,
                bool leased = false, const std::string& function_id = "fn") {
  IngestStore::Item it{event_id, Event{.name = "x", .ts = at}, {}};
  NewRun run{.id = run_id, .function_id = function_id, .event_id = event_id};
  if (leased) run.lease = lease("w1", at + 1h);
  it.runs.push_back(run);
  REQUIRE(store.ingest({it}, at, 24h).at(0) == IngestStore::Outcome::accepted);
}

// Commits the transition to `status` (at `at`) of a run held under `epoch`.
void finish(Store& store, const std::string& run_id, int64_t epoch, RunStatus status, TimePoint at,
            TimePoint available_at = {}) {
  RunTransition t{.status = status, .available_at = available_at};
  if (status == RunStatus::completed) t.output = "1";
  if (status == RunStatus::failed) t.error = R"({"message":"boom"})";
  REQUIRE(store.commit(Commit{.run_id = run_id, .lease_epoch = epoch, .transition = t, .now = at}) ==
          JournalStore::CommitResult::committed);
}

ClaimedRun held(const std::string& run_id, int64_t epoch) { return ClaimedRun{run_id, "fn", "", epoch, 0}; }

FunctionRecord function(const std::string& id, const std::vector<std::string>& events) {
  FunctionRecord f{.id = id, .name = id + "-name", .config = {{"retries", 3}}, .registered_at = kT0,
                   .registered_by = "proc-1"};
  for (const auto& e : events) f.triggers.push_back(Trigger{e});
  return f;
}

// The event names of a function's triggers.
std::vector<std::string> names_of(const std::vector<Trigger>& triggers) {
  std::vector<std::string> out;
  for (const auto& t : triggers) out.push_back(t.event);
  return out;
}

std::multiset<std::string> functions_of(const std::vector<Run>& runs) {
  std::multiset<std::string> out;
  for (const Run& r : runs) out.insert(r.function_id);
  return out;
}

std::vector<std::string> ids_of(const std::vector<Run>& runs) {
  std::vector<std::string> out;
  for (const Run& r : runs) out.push_back(r.id);
  return out;
}

std::vector<std::string> ids_of(const std::vector<StoredEvent>& events) {
  std::vector<std::string> out;
  for (const StoredEvent& e : events) out.push_back(e.id);
  return out;
}

}  // namespace

TEST_SUITE("store") {
  TEST_CASE_TEMPLATE("ingest stores events with their runs and run_started entries", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("an ingest that fails stores nothing of its batch", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    // The second item reuses a run id: the whole batch must be rolled back.
    CHECK_THROWS_AS(store->ingest({item("E1", "x", {"R1"}), item("E2", "x", {"R1"})}, kT0, 24h), StoreError);
    CHECK_FALSE(store->find_event("E1"));
    CHECK_FALSE(store->find_event("E2"));
    CHECK_FALSE(store->find_run("R1"));
  }

  TEST_CASE_TEMPLATE("a repeated dedup key within the window is stored as a duplicate without runs", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("claim takes due runs of the given functions, earliest first, up to the limit", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("runs created with a lease start running without a claim", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("commit appends entries in order and applies the transition", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("claim takes sleeping runs a little ahead of their deadline, but never retries", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("a worker whose lease was taken over cannot commit (fencing)", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("a journal entry is never overwritten", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("renewed leases are not recovered", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1", "R2"})}, kT0, 24h);
    store->claim({"fn"}, kT0, lease("alive", kT0 + 30s), 1);
    store->claim({"fn"}, kT0, lease("dead", kT0 + 30s), 1);
    CHECK(store->renew_leases("alive", {"R1", "R2"}, kT0 + 60s, kT0 + 30s) == 1);  // R2 is not alive's
    CHECK(store->recover_expired_leases(kT0 + 45s).size() == 1);  // only the dead worker's run
    auto queued = store->claim({"fn"}, kT0 + 45s, lease("alive", kT0 + 75s), 10);
    CHECK(queued.size() == 1);
  }

  TEST_CASE_TEMPLATE("a failed run records its error and can start a failure-handler run", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("concurrent commits from many threads all land", S, SqliteMemory, SqliteFile, Postgres) {
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

  TEST_CASE_TEMPLATE("register_functions records functions and replaces their triggers; unregister forgets them", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    CHECK(store->list_functions().empty());
    store->register_functions({function("f2", {"c/d"}), function("f1", {"a/b", "a/*"})});
    auto fns = store->list_functions();
    REQUIRE(fns.size() == 2);
    CHECK(fns[0].id == "f1");  // by id
    CHECK(fns[1].id == "f2");
    CHECK(fns[0].name == "f1-name");
    auto f1_names = names_of(fns[0].triggers);
    CHECK(std::set<std::string>(f1_names.begin(), f1_names.end()) == std::set<std::string>{"a/b", "a/*"});
    CHECK(fns[0].config == nlohmann::json{{"retries", 3}});
    CHECK(fns[0].registered_at == kT0);
    CHECK(fns[0].registered_by == "proc-1");
    CHECK(names_of(fns[1].triggers) == std::vector<std::string>{"c/d"});

    // Registering f1 again replaces its record and all its triggers.
    FunctionRecord again = function("f1", {"x/y"});
    again.name = "renamed";
    again.config = {{"retries", 0}};
    again.registered_at = kT0 + 1h;
    again.registered_by = "proc-2";
    store->register_functions({again});
    fns = store->list_functions();
    REQUIRE(fns.size() == 2);
    CHECK(fns[0].name == "renamed");
    CHECK(names_of(fns[0].triggers) == std::vector<std::string>{"x/y"});
    CHECK(fns[0].config == nlohmann::json{{"retries", 0}});
    CHECK(fns[0].registered_at == kT0 + 1h);
    CHECK(fns[0].registered_by == "proc-2");
    CHECK(names_of(fns[1].triggers) == std::vector<std::string>{"c/d"});  // others untouched

    CHECK_FALSE(store->unregister_function("nope"));
    CHECK(store->unregister_function("f2"));
    CHECK_FALSE(store->unregister_function("f2"));
    fns = store->list_functions();
    REQUIRE(fns.size() == 1);
    CHECK(fns[0].id == "f1");
  }

  TEST_CASE_TEMPLATE("ingest starts queued runs of the recorded functions the event triggers", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    store->register_functions({function("exact", {"a/b"}), function("wild", {"a/*"}), function("both", {"a/b", "a/*"}),
                               function("other", {"c/d"}), function("given", {"a/b"})});
    // "given" already has a run in the item (this process matched it): it gets no second one.
    IngestStore::Item it = item("E1", "a/b", {});
    it.runs.push_back(NewRun{.id = "R1", .function_id = "given", .event_id = "E1"});
    CHECK(store->ingest({it}, kT0, 24h)[0] == IngestStore::Outcome::accepted);
    auto runs = store->runs_for_event("E1");
    CHECK(functions_of(runs) == std::multiset<std::string>{"both", "exact", "given", "wild"});  // "both" once
    for (const Run& r : runs) {
      CHECK(r.status == RunStatus::queued);
      CHECK(r.event_id == "E1");
      CHECK(r.created_at == kT0);
      CHECK(r.available_at == kT0);
      auto journal = store->load_journal(r.id);
      REQUIRE(journal.size() == 1);
      CHECK(journal[0].kind == JournalKind::run_started);
    }
    // The recorded runs are claimable by their functions.
    CHECK(store->claim({"exact", "wild", "both"}, kT0, lease("w1", kT0 + 30s), 10).size() == 3);

    store->ingest({item("E2", "a/x/y", {}), item("E3", "c/d", {}), item("E4", "b/a", {}), item("E5", "c/d/e", {})}, kT0, 24h);
    CHECK(functions_of(store->runs_for_event("E2")) == std::multiset<std::string>{"both", "wild"});
    CHECK(functions_of(store->runs_for_event("E3")) == std::multiset<std::string>{"other"});
    CHECK(store->runs_for_event("E4").empty());
    CHECK(store->runs_for_event("E5").empty());  // an exact trigger is not a prefix
    // Several events at once: the runs of each, none of the others'.
    auto page = store->runs_for_events({"E2", "E3", "E4", "nope"});
    CHECK(functions_of(page) == std::multiset<std::string>{"both", "wild", "other"});
    for (const Run& r : page) CHECK((r.event_id == "E2" || r.event_id == "E3"));
    CHECK(store->runs_for_events({}).empty());

    // A duplicate starts no runs, recorded or not.
    store->ingest({item("E6", "c/d", {}, "key")}, kT0, 24h);
    CHECK(store->ingest({item("E7", "c/d", {}, "key")}, kT0, 24h)[0] == IngestStore::Outcome::duplicate);
    CHECK(store->runs_for_event("E6").size() == 1);
    CHECK(store->runs_for_event("E7").empty());

    // Unregistered functions no longer start runs; registering again brings them back.
    CHECK(store->unregister_function("wild"));
    store->ingest({item("E8", "a/x", {})}, kT0, 24h);
    CHECK(functions_of(store->runs_for_event("E8")) == std::multiset<std::string>{"both"});
    store->register_functions({function("both", {"c/d"})});  // replaced: a/* no longer
    store->ingest({item("E9", "a/x", {}), item("E10", "c/d", {})}, kT0, 24h);
    CHECK(store->runs_for_event("E9").empty());
    CHECK(functions_of(store->runs_for_event("E10")) == std::multiset<std::string>{"both", "other"});
  }

  TEST_CASE_TEMPLATE("ingest of an event id already stored returns already_stored and changes nothing", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    CHECK(store->ingest({item("E1", "x", {"R1"}, "key")}, kT0, 24h)[0] == IngestStore::Outcome::accepted);
    store->register_functions({function("rec", {"x", "y"})});
    // A retried send: same event id, even with other content, runs, and the same dedup key.
    auto outcomes = store->ingest({item("E1", "y", {"R2"}, "key"), item("E2", "x", {"R3"}), item("E2", "x", {"R4"})},
                                  kT0 + 1s, 24h);
    REQUIRE(outcomes.size() == 3);
    CHECK(outcomes[0] == IngestStore::Outcome::already_stored);
    CHECK(outcomes[1] == IngestStore::Outcome::accepted);
    CHECK(outcomes[2] == IngestStore::Outcome::already_stored);  // within one batch too
    auto e = store->find_event("E1");
    REQUIRE(e);
    CHECK(e->event.name == "x");
    CHECK(e->received_at == kT0);
    CHECK_FALSE(e->duplicate);
    CHECK(ids_of(store->runs_for_event("E1")) == std::vector<std::string>{"R1"});  // no R2, no recorded run
    CHECK_FALSE(store->find_run("R2"));
    CHECK_FALSE(store->find_run("R4"));
    CHECK(functions_of(store->runs_for_event("E2")) == std::multiset<std::string>{"fn", "rec"});
    CHECK(store->load_journal("R1").size() == 1);
  }

  TEST_CASE_TEMPLATE("list_runs lists newest first, filtered, in keyset pages; count_runs agrees", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    // run[i] created at kT0 + i s, of "fn" (even i) or "other" (odd): 0 completed, 1 failed, 2 running, 3 queued, 4 cancelled, 5 queued.
    std::vector<std::string> run, ev;
    for (int i = 0; i < 6; ++i) {
      TimePoint at = kT0 + std::chrono::seconds(i);
      ev.push_back(id_at(at));
      run.push_back(id_at(at));
      bool leased = i == 0 || i == 1 || i == 2 || i == 4;
      ingest_one(*store, ev[i], run[i], at, leased, i % 2 ? "other" : "fn");
    }
    finish(*store, run[0], 1, RunStatus::completed, kT0 + 10s);
    finish(*store, run[1], 1, RunStatus::failed, kT0 + 10s);
    REQUIRE(store->cancel_runs({run[4]}, kT0 + 10s)[0] == RunAdmin::Change::done);

    auto list = [&](const RunFilter& f, int limit = 100, const std::string& before = "") {
      auto runs = store->list_runs(f, limit, before);
      if (limit == 100) CHECK(store->count_runs(f) == static_cast<int64_t>(runs.size()));
      return ids_of(runs);
    };
    using V = std::vector<std::string>;
    CHECK(list({}) == V{run[5], run[4], run[3], run[2], run[1], run[0]});
    CHECK(list({.statuses = {RunStatus::queued}}) == V{run[5], run[3]});
    CHECK(list({.statuses = {RunStatus::completed, RunStatus::failed}}) == V{run[1], run[0]});
    CHECK(list({.statuses = {RunStatus::running, RunStatus::cancelled, RunStatus::sleeping}}) == V{run[4], run[2]});
    CHECK(list({.statuses = {RunStatus::sleeping}}).empty());
    CHECK(list({.function_id = "other"}) == V{run[5], run[3], run[1]});
    CHECK(list({.function_id = "nope"}).empty());
    CHECK(list({.event_id = ev[2]}) == V{run[2]});
    CHECK(list({.created_after = kT0 + 2s}) == V{run[5], run[4], run[3], run[2]});  // inclusive
    CHECK(list({.created_before = kT0 + 2s}) == V{run[1], run[0]});                  // exclusive
    CHECK(list({.created_after = kT0 + 1s, .created_before = kT0 + 4s}) == V{run[3], run[2], run[1]});
    CHECK(list({.statuses = {RunStatus::queued, RunStatus::running}, .function_id = "fn"}) == V{run[2]});
    CHECK(list({.statuses = {RunStatus::queued}, .function_id = "other", .created_after = kT0 + 4s}) == V{run[5]});
    CHECK(list({.statuses = {RunStatus::queued}, .function_id = "fn"}).empty());

    auto r0 = store->list_runs({.event_id = ev[0]}, 10, "");
    REQUIRE(r0.size() == 1);
    CHECK(r0[0].status == RunStatus::completed);
    CHECK(r0[0].function_id == "fn");
    CHECK(r0[0].output == 1);
    CHECK(r0[0].created_at == kT0);
    CHECK(r0[0].ended_at == kT0 + 10s);

    // Keyset paging: limit, then before_id = the last id of the page.
    CHECK(list({}, 2) == V{run[5], run[4]});
    CHECK(list({}, 2, run[4]) == V{run[3], run[2]});
    CHECK(list({}, 2, run[2]) == V{run[1], run[0]});
    CHECK(list({}, 2, run[0]).empty());
    CHECK(list({.function_id = "fn"}, 1, run[4]) == V{run[2]});
    // A run created after the first page does not shift the next one.
    ingest_one(*store, id_at(kT0 + 1min), id_at(kT0 + 1min), kT0 + 1min);
    CHECK(list({}, 2, run[4]) == V{run[3], run[2]});
    // With trim_page: ask for limit + 1.
    auto page = store->list_runs({}, 4, "");
    std::string cursor = trim_page(page, 3);
    CHECK(cursor == run[4]);
    CHECK(page.size() == 3);
    page = store->list_runs({}, 4, cursor);
    cursor = trim_page(page, 3);
    CHECK(cursor == run[1]);
    page = store->list_runs({}, 4, cursor);
    CHECK(trim_page(page, 3).empty());
    CHECK(ids_of(page) == V{run[0]});
    CHECK(store->count_runs({}) == 7);
  }

  TEST_CASE_TEMPLATE("count_runs_by_time counts a filter's runs by function, status and time bucket", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    // Runs of "fn" created at kT0 + 0, 9, 10, 25 and 30 s (the one at 9 s failed), and one of
    // "other" at 10 s.
    std::vector<std::string> fn_runs;
    for (int s : {0, 9, 10, 25, 30}) {
      TimePoint at = kT0 + std::chrono::seconds(s);
      fn_runs.push_back(id_at(at));
      ingest_one(*store, id_at(at), fn_runs.back(), at, /*leased=*/s == 9, "fn");
    }
    finish(*store, fn_runs[1], 1, RunStatus::failed, kT0 + 20s);
    ingest_one(*store, id_at(kT0 + 10s + 1ms), id_at(kT0 + 10s + 1ms), kT0 + 10s + 1ms, false, "other");

    // Counts of "fn", by (bucket, status); "other"'s are checked on their own.
    int64_t other_counted = 0;
    auto counts = [&](const RunFilter& f, TimePoint from, int buckets) {
      std::map<std::pair<int64_t, std::string>, int64_t> out;
      other_counted = 0;
      for (const RunCount& c : store->count_runs_by_time(f, from, 10s, buckets)) {
        CHECK(c.count > 0);
        if (c.function_id == "other") {
          CHECK(c.bucket == 1);
          other_counted += c.count;
          continue;
        }
        CHECK(c.function_id == "fn");
        out[{c.bucket, std::string(to_string(c.status))}] = c.count;
      }
      return out;
    };
    using M = std::map<std::pair<int64_t, std::string>, int64_t>;
    // Buckets of 10 s from kT0: [0, 10) holds 0 s and 9 s, [10, 20) 10 s, [20, 30) 25 s; 30 s is past the range.
    CHECK(counts({.function_id = "fn"}, kT0, 3) == M{{{0, "queued"}, 1}, {{0, "failed"}, 1}, {{1, "queued"}, 1}, {{2, "queued"}, 1}});
    CHECK(other_counted == 0);
    // Every function at once, each counted apart.
    CHECK(counts({}, kT0, 3) == M{{{0, "queued"}, 1}, {{0, "failed"}, 1}, {{1, "queued"}, 1}, {{2, "queued"}, 1}});
    CHECK(other_counted == 1);
    CHECK(counts({.statuses = {RunStatus::failed}}, kT0, 3) == M{{{0, "failed"}, 1}});
    // A range starting between runs: [5 s, 15 s) holds 9 s and 10 s, [15 s, 25 s) none, [25 s, 35 s) 25 s and 30 s.
    CHECK(counts({.function_id = "fn"}, kT0 + 5s, 3) == M{{{0, "failed"}, 1}, {{0, "queued"}, 1}, {{2, "queued"}, 2}});
    // The filter's own time bounds narrow the range.
    CHECK(counts({.function_id = "fn", .created_after = kT0 + 10s}, kT0, 3) == M{{{1, "queued"}, 1}, {{2, "queued"}, 1}});
    CHECK(counts({.function_id = "fn", .created_before = kT0 + 10s}, kT0, 3) == M{{{0, "queued"}, 1}, {{0, "failed"}, 1}});
    CHECK(counts({.function_id = "nope"}, kT0, 3).empty());
    CHECK(counts({}, kT0 + 1h, 3).empty());
  }

  TEST_CASE_TEMPLATE("list_events lists newest first, by name and time range, in keyset pages", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    std::vector<std::string> ev;
    for (int i = 0; i < 5; ++i) {
      TimePoint at = kT0 + std::chrono::seconds(i);
      ev.push_back(id_at(at));
      IngestStore::Item it{ev[i], Event{.name = i % 2 ? "b" : "a", .data = {{"i", i}}, .ts = at}, {}};
      store->ingest({it}, at, 24h);
    }
    using V = std::vector<std::string>;
    CHECK(ids_of(store->list_events({}, 100, "")) == V{ev[4], ev[3], ev[2], ev[1], ev[0]});
    CHECK(ids_of(store->list_events({.name = "b"}, 100, "")) == V{ev[3], ev[1]});
    CHECK(store->list_events({.name = "c"}, 100, "").empty());
    CHECK(ids_of(store->list_events({.received_after = kT0 + 3s}, 100, "")) == V{ev[4], ev[3]});   // inclusive
    CHECK(ids_of(store->list_events({.received_before = kT0 + 1s}, 100, "")) == V{ev[0]});          // exclusive
    CHECK(ids_of(store->list_events({.name = "a", .received_after = kT0 + 1s, .received_before = kT0 + 4s}, 100, "")) ==
          V{ev[2]});
    CHECK(ids_of(store->list_events({}, 2, "")) == V{ev[4], ev[3]});
    CHECK(ids_of(store->list_events({}, 2, ev[3])) == V{ev[2], ev[1]});
    CHECK(ids_of(store->list_events({}, 2, ev[1])) == V{ev[0]});
    CHECK(ids_of(store->list_events({.name = "a"}, 1, ev[4])) == V{ev[2]});
    auto one = store->list_events({.name = "b", .received_before = kT0 + 2s}, 10, "");
    REQUIRE(one.size() == 1);
    CHECK(one[0].event.name == "b");
    CHECK(one[0].event.data == nlohmann::json{{"i", 1}});
    CHECK(one[0].received_at == kT0 + 1s);
    CHECK_FALSE(one[0].duplicate);
  }

  TEST_CASE_TEMPLATE("holds_lease is true only for the current epoch of a running run", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    CHECK_FALSE(store->holds_lease("R1", 0));  // queued
    auto run = store->claim({"fn"}, kT0, lease("w1", kT0 + 30s), 1).at(0);
    CHECK(store->holds_lease("R1", run.lease_epoch));
    CHECK_FALSE(store->holds_lease("R1", run.lease_epoch - 1));
    CHECK_FALSE(store->holds_lease("R1", run.lease_epoch + 1));
    CHECK_FALSE(store->holds_lease("nope", run.lease_epoch));
    finish(*store, "R1", run.lease_epoch, RunStatus::sleeping, kT0 + 1s, kT0 + 1h);
    CHECK_FALSE(store->holds_lease("R1", run.lease_epoch));  // a transition ends the lease
    auto again = store->claim({"fn"}, kT0 + 1h, lease("w1", kT0 + 2h), 1).at(0);
    CHECK(store->holds_lease("R1", again.lease_epoch));
    CHECK_FALSE(store->holds_lease("R1", run.lease_epoch));
  }

  TEST_CASE_TEMPLATE("recover_expired_leases returns the runs it put back in the queue", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    ingest_one(*store, "E1", "R1", kT0, true, "f1");    // lease until kT0 + 1h
    ingest_one(*store, "E2", "R2", kT0 + 1s, true, "f2");
    ingest_one(*store, "E3", "R3", kT0, false, "f1");   // queued: nothing to recover
    CHECK(store->recover_expired_leases(kT0 + 1h - 1ms).empty());
    auto recovered = store->recover_expired_leases(kT0 + 1h);
    REQUIRE(recovered.size() == 1);
    CHECK(recovered[0].run_id == "R1");
    CHECK(recovered[0].function_id == "f1");
    CHECK_FALSE(store->holds_lease("R1", 1));
    CHECK(store->find_run("R1")->available_at == kT0 + 1h);
    recovered = store->recover_expired_leases(kT0 + 2h);
    REQUIRE(recovered.size() == 1);
    CHECK(recovered[0].run_id == "R2");
    CHECK(recovered[0].function_id == "f2");
    CHECK(store->recover_expired_leases(kT0 + 3h).empty());
  }

  TEST_CASE_TEMPLATE("cancel_runs cancels unfinished runs and fences out their holders", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    ingest_one(*store, "E1", "Rq", kT0);                // queued
    ingest_one(*store, "E2", "Rr", kT0, true);          // running, epoch 1
    ingest_one(*store, "E3", "Rs", kT0, true);          // will sleep
    ingest_one(*store, "E4", "Rc", kT0, true);          // will complete
    finish(*store, "Rs", 1, RunStatus::sleeping, kT0 + 1s, kT0 + 1h);
    finish(*store, "Rc", 1, RunStatus::completed, kT0 + 1s);
    REQUIRE(store->commit(step_commit(held("Rr", 1), 1, "a", kT0 + 1s)) == JournalStore::CommitResult::committed);
    CHECK(store->holds_lease("Rr", 1));

    auto results = store->cancel_runs({"Rr", "Rc", "nope", "Rq", "Rs"}, kT0 + 5s);
    using C = RunAdmin::Change;
    CHECK(results == std::vector<C>{C::done, C::refused, C::not_found, C::done, C::done});
    for (const char* id : {"Rr", "Rq", "Rs"}) {
      CAPTURE(id);
      auto r = store->find_run(id);
      CHECK(r->status == RunStatus::cancelled);
      CHECK(r->ended_at == kT0 + 5s);
      auto journal = store->load_journal(id);
      REQUIRE(!journal.empty());
      CHECK(journal.back().kind == JournalKind::run_cancelled);
      CHECK(journal.back().seq == static_cast<int64_t>(journal.size()) - 1);
      CHECK(journal.back().recorded_at == kT0 + 5s);
      CHECK(nlohmann::json::parse(journal.back().payload) == nlohmann::json::object());
    }
    CHECK(store->load_journal("Rr").size() == 3);  // run_started, step a, run_cancelled at seq 2
    CHECK(store->find_run("Rc")->status == RunStatus::completed);
    CHECK(store->load_journal("Rc").size() == 1);

    // The holder of Rr can commit nothing more.
    CHECK_FALSE(store->holds_lease("Rr", 1));
    CHECK(store->commit(step_commit(held("Rr", 1), 3, "b", kT0 + 6s)) == JournalStore::CommitResult::lease_lost);
    Commit done{.run_id = "Rr", .lease_epoch = 1,
                .transition = RunTransition{.status = RunStatus::completed, .output = "1"}, .now = kT0 + 6s};
    CHECK(store->commit(done) == JournalStore::CommitResult::lease_lost);
    CHECK(store->find_run("Rr")->status == RunStatus::cancelled);
    CHECK(store->load_journal("Rr").size() == 3);

    // Cancelled runs are never claimed or recovered; cancelling again is refused.
    CHECK(store->claim({"fn"}, kT0 + 2h, lease("w2", kT0 + 3h), 10).empty());
    CHECK(store->recover_expired_leases(kT0 + 3h).empty());
    CHECK(store->cancel_runs({"Rr"}, kT0 + 7s) == std::vector<C>{C::refused});
    CHECK(store->load_journal("Rr").size() == 3);
    QueueDepth d = store->queue_depth(kT0 + 2h);
    CHECK(d.runnable + d.scheduled + d.sleeping + d.running == 0);
  }

  TEST_CASE_TEMPLATE("resume_run puts a failed or cancelled run back in the queue under a new epoch", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    ingest_one(*store, "E1", "Rf", kT0, true);
    ingest_one(*store, "E2", "Rx", kT0, true);
    ingest_one(*store, "E3", "Rc", kT0, true);
    ingest_one(*store, "E4", "Rr", kT0, true);
    ingest_one(*store, "E5", "Rq", kT0);
    RunTransition failed{.status = RunStatus::failed, .attempt = 3, .error = R"({"message":"boom"})"};
    REQUIRE(store->commit(Commit{.run_id = "Rf", .lease_epoch = 1,
                                 .entries = {JournalEntry{.seq = 1, .kind = JournalKind::run_failed,
                                                          .payload = R"({"message":"boom"})", .recorded_at = kT0 + 1s}},
                                 .transition = failed, .now = kT0 + 1s}) == JournalStore::CommitResult::committed);
    REQUIRE(store->find_run("Rf")->attempt == 3);
    finish(*store, "Rc", 1, RunStatus::completed, kT0 + 1s);
    REQUIRE(store->cancel_runs({"Rx"}, kT0 + 1s)[0] == RunAdmin::Change::done);

    using C = RunAdmin::Change;
    CHECK(store->resume_run("Rc", kT0 + 10s) == C::refused);
    CHECK(store->resume_run("Rr", kT0 + 10s) == C::refused);
    CHECK(store->resume_run("Rq", kT0 + 10s) == C::refused);
    CHECK(store->resume_run("nope", kT0 + 10s) == C::not_found);
    CHECK(store->holds_lease("Rr", 1));  // a refused resume leaves the holder alone
    CHECK(store->load_journal("Rc").size() == 1);

    CHECK(store->resume_run("Rf", kT0 + 10s) == C::done);
    CHECK(store->resume_run("Rx", kT0 + 10s) == C::done);
    for (const char* id : {"Rf", "Rx"}) {
      CAPTURE(id);
      auto r = store->find_run(id);
      CHECK(r->status == RunStatus::queued);
      CHECK(r->available_at == kT0 + 10s);
      CHECK(r->attempt == 0);
      CHECK(r->error.is_null());
      CHECK_FALSE(r->ended_at);
      auto journal = store->load_journal(id);
      REQUIRE(journal.size() == 3);  // run_started, run_failed / run_cancelled, run_resumed
      CHECK(journal[2].seq == 2);
      CHECK(journal[2].kind == JournalKind::run_resumed);
      CHECK(journal[2].recorded_at == kT0 + 10s);
    }
    CHECK(store->load_journal("Rx")[1].kind == JournalKind::run_cancelled);
    CHECK(store->resume_run("Rf", kT0 + 11s) == C::refused);  // queued now

    // Due now, not before; the old epoch stays fenced out.
    CHECK(store->queue_depth(kT0 + 10s).runnable == 3);  // Rf, Rx, Rq
    CHECK(store->claim({"fn"}, kT0 + 9s, lease("w2", kT0 + 1h), 10).size() == 1);  // only Rq, queued at kT0
    auto claimed = store->claim({"fn"}, kT0 + 10s, lease("w2", kT0 + 1h), 10);
    REQUIRE(claimed.size() == 2);
    for (const ClaimedRun& c : claimed) {
      CAPTURE(c.run_id);
      CHECK(c.lease_epoch > 1);
      CHECK(c.attempt == 0);
      CHECK_FALSE(store->holds_lease(c.run_id, 1));
      CHECK(store->commit(step_commit(held(c.run_id, 1), 3, "a", kT0 + 11s)) == JournalStore::CommitResult::lease_lost);
      CHECK(store->commit(step_commit(c, 3, "a", kT0 + 11s)) == JournalStore::CommitResult::committed);
    }
  }

  TEST_CASE_TEMPLATE("resume_run advances the epoch even before anyone claims the run", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    ingest_one(*store, "E1", "R1", kT0, true);  // epoch 1
    finish(*store, "R1", 1, RunStatus::failed, kT0 + 1s);
    CHECK(store->claim({"fn"}, kT0 + 1h, lease("w1", kT0 + 2h), 1).empty());  // failed runs are not claimed
    REQUIRE(store->resume_run("R1", kT0 + 2s) == RunAdmin::Change::done);
    auto claimed = store->claim({"fn"}, kT0 + 2s, lease("w2", kT0 + 1h), 1).at(0);
    // Without the resume's own advance this claim would be epoch 2.
    CHECK(claimed.lease_epoch >= 3);
  }

  TEST_CASE_TEMPLATE("create_runs creates queued replays with their entries numbered from 1", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    store->ingest({item("E1", "x", {"R1"})}, kT0, 24h);
    std::string rp1 = id_at(kT0 + 1h), rp2 = id_at(kT0 + 2h), rp3 = id_at(kT0 + 2h + 1ms);
    NewRun replay{.id = rp1, .function_id = "fn", .event_id = "E1", .started_payload = R"({"replay":true})",
                  .replay_of = "R1",
                  .entries = {step_entry(7, "a", "10", kT0 + 1s), step_entry(7, "b", "20", kT0 + 2s)}};
    store->create_runs({replay}, kT0 + 1h);
    auto r = store->find_run(rp1);
    REQUIRE(r);
    CHECK(r->status == RunStatus::queued);
    CHECK(r->replay_of == "R1");
    CHECK(r->event_id == "E1");
    CHECK(r->created_at == kT0 + 1h);
    CHECK(r->available_at == kT0 + 1h);
    auto journal = store->load_journal(rp1);
    REQUIRE(journal.size() == 3);
    CHECK(journal[0].kind == JournalKind::run_started);
    CHECK(journal[0].seq == 0);
    CHECK(nlohmann::json::parse(journal[0].payload) == nlohmann::json{{"replay", true}});
    CHECK(journal[1].seq == 1);
    CHECK(journal[1].step_key == "a");
    CHECK(journal[1].payload == "10");
    CHECK(journal[1].recorded_at == kT0 + 1s);
    CHECK(journal[2].seq == 2);
    CHECK(journal[2].step_key == "b");
    CHECK(store->find_run("R1")->replay_of.empty());

    // Several in one call; replays_of lists them oldest first.
    store->create_runs({NewRun{.id = rp2, .function_id = "fn", .event_id = "E1", .replay_of = "R1"},
                        NewRun{.id = rp3, .function_id = "fn", .event_id = "E1", .replay_of = rp1}},
                       kT0 + 2h);
    CHECK(store->replays_of("R1") == std::vector<std::string>{rp1, rp2});
    CHECK(store->replays_of(rp1) == std::vector<std::string>{rp3});
    CHECK(store->replays_of(rp2).empty());
    CHECK(store->replays_of("nope").empty());
    CHECK(store->load_journal(rp2).size() == 1);
    CHECK(store->claim({"fn"}, kT0 + 2h, lease("w1", kT0 + 3h), 10).size() == 4);  // R1 and the three replays

    // One transaction: a run id that exists fails the whole call.
    std::string rp4 = id_at(kT0 + 3h);
    CHECK_THROWS_AS(store->create_runs({NewRun{.id = rp4, .function_id = "fn", .event_id = "E1", .replay_of = "R1"},
                                        NewRun{.id = rp1, .function_id = "fn", .event_id = "E1", .replay_of = "R1"}},
                                       kT0 + 3h),
                    StoreError);
    CHECK_FALSE(store->find_run(rp4));
    CHECK(store->replays_of("R1").size() == 2);
  }

  TEST_CASE_TEMPLATE("delete_finished_runs deletes runs that finished before the cutoff, with their journals", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    const TimePoint cutoff = kT0 + 5min;
    std::vector<std::string> run;
    for (int i = 0; i < 6; ++i) {
      TimePoint at = kT0 + std::chrono::seconds(i);
      run.push_back(id_at(at));
      ingest_one(*store, id_at(at), run[i], at, i != 3);
    }
    finish(*store, run[0], 1, RunStatus::completed, kT0 + 1min);
    finish(*store, run[1], 1, RunStatus::failed, kT0 + 2min);
    REQUIRE(store->cancel_runs({run[2]}, kT0 + 3min)[0] == RunAdmin::Change::done);
    // run[3] stays queued; run[4] ends after the cutoff, run[5] exactly at it.
    finish(*store, run[4], 1, RunStatus::completed, kT0 + 10min);
    finish(*store, run[5], 1, RunStatus::completed, cutoff);

    CHECK(store->delete_finished_runs(cutoff, 2) == 2);
    CHECK(store->delete_finished_runs(cutoff, 2) == 1);
    CHECK(store->delete_finished_runs(cutoff, 2) == 0);
    for (int i : {0, 1, 2}) {
      CAPTURE(i);
      CHECK_FALSE(store->find_run(run[i]));
      CHECK(store->load_journal(run[i]).empty());
    }
    for (int i : {3, 4, 5}) {
      CAPTURE(i);
      CHECK(store->find_run(run[i]));
      CHECK_FALSE(store->load_journal(run[i]).empty());
    }
    CHECK(store->count_runs({}) == 3);
    // Their events stay (delete_unreferenced_events removes them).
    CHECK(store->list_events({}, 100, "").size() == 6);
    CHECK(store->delete_finished_runs(kT0 + 1h, 10) == 2);
    CHECK(store->find_run(run[3]));
  }

  TEST_CASE_TEMPLATE("delete_unreferenced_events deletes old events no run refers to", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    const TimePoint cutoff = kT0 + 5min;
    std::vector<std::string> ev;
    for (int i = 0; i < 5; ++i) ev.push_back(id_at(kT0 + std::chrono::seconds(i)));
    std::string late = id_at(kT0 + 10min);
    std::string run = id_at(kT0 + 1s);
    store->ingest({item(ev[0], "x", {})}, kT0, 24h);
    ingest_one(*store, ev[1], run, kT0 + 1s, true);                     // referenced by a run
    store->ingest({item(ev[2], "x", {}, "key")}, kT0 + 2s, 24h);
    store->ingest({item(ev[3], "x", {}, "key")}, kT0 + 3s, 24h);        // a duplicate: no runs
    IngestStore::Item other = item(ev[4], "x", {});
    other.runs.push_back(NewRun{.id = id_at(kT0 + 4s), .function_id = "fn", .event_id = ev[4]});
    store->ingest({other}, kT0 + 4s, 24h);                               // referenced by a queued run
    store->ingest({item(late, "x", {})}, kT0 + 10min, 24h);              // received after the cutoff

    CHECK(store->delete_unreferenced_events(cutoff, 1) == 1);
    CHECK(store->delete_unreferenced_events(cutoff, 10) == 2);
    CHECK(store->delete_unreferenced_events(cutoff, 10) == 0);
    CHECK_FALSE(store->find_event(ev[0]));
    CHECK_FALSE(store->find_event(ev[2]));
    CHECK_FALSE(store->find_event(ev[3]));
    CHECK(store->find_event(ev[1]));
    CHECK(store->find_event(ev[4]));
    CHECK(store->find_event(late));

    // Once its run is deleted, the event goes too.
    finish(*store, run, 1, RunStatus::completed, kT0 + 1min);
    CHECK(store->delete_finished_runs(cutoff, 10) == 1);
    CHECK(store->delete_unreferenced_events(cutoff, 10) == 1);
    CHECK_FALSE(store->find_event(ev[1]));
    CHECK(store->find_event(ev[4]));
  }

  TEST_CASE_TEMPLATE("queue_depth counts runnable, scheduled, sleeping and running runs", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    QueueDepth d = store->queue_depth(kT0);
    CHECK(d.runnable == 0);
    CHECK(d.scheduled == 0);
    CHECK(d.sleeping == 0);
    CHECK(d.running == 0);

    ingest_one(*store, "E1", "Rq1", kT0);
    ingest_one(*store, "E2", "Rq2", kT0 + 1s);
    ingest_one(*store, "E3", "Rretry", kT0, true);
    ingest_one(*store, "E4", "Rsleep", kT0, true);
    ingest_one(*store, "E5", "Rrun", kT0, true);
    ingest_one(*store, "E6", "Rdone", kT0, true);
    ingest_one(*store, "E7", "Rfail", kT0, true);
    ingest_one(*store, "E8", "Rcancel", kT0);
    finish(*store, "Rretry", 1, RunStatus::queued, kT0, kT0 + 1h);
    finish(*store, "Rsleep", 1, RunStatus::sleeping, kT0, kT0 + 2h);
    finish(*store, "Rdone", 1, RunStatus::completed, kT0);
    finish(*store, "Rfail", 1, RunStatus::failed, kT0);
    store->cancel_runs({"Rcancel"}, kT0);

    d = store->queue_depth(kT0 + 1s);
    CHECK(d.runnable == 2);
    CHECK(d.scheduled == 1);
    CHECK(d.sleeping == 1);
    CHECK(d.running == 1);
    d = store->queue_depth(kT0);  // Rq2 is not due yet
    CHECK(d.runnable == 1);
    CHECK(d.scheduled == 2);
    d = store->queue_depth(kT0 + 1h);  // the retry is due
    CHECK(d.runnable == 3);
    CHECK(d.scheduled == 0);
    CHECK(d.sleeping == 1);
    CHECK(d.running == 1);
  }

  TEST_CASE_TEMPLATE("Commit::new_events stores events that start runs of the recorded functions", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    store->register_functions({function("on-finished", {"fn/finished"}), function("on-any", {"fn/*"})});
    ingest_one(*store, "E1", "R1", kT0, true);
    CHECK(store->runs_for_event("E1").size() == 1);  // "x" triggers no recorded function

    IngestStore::Item finished = item("L1", "fn/finished", {});
    finished.runs.push_back(NewRun{.id = "R-given", .function_id = "on-finished", .event_id = "L1"});
    Commit done{.run_id = "R1", .lease_epoch = 1,
                .entries = {JournalEntry{.seq = 1, .kind = JournalKind::run_completed, .payload = "1", .recorded_at = kT0 + 1s}},
                .transition = RunTransition{.status = RunStatus::completed, .output = "1"},
                .new_events = {finished, item("L2", "other", {})},
                .now = kT0 + 1s};
    CHECK(store->commit(done) == JournalStore::CommitResult::committed);
    auto e = store->find_event("L1");
    REQUIRE(e);
    CHECK(e->event.name == "fn/finished");
    CHECK(e->received_at == kT0 + 1s);
    CHECK(store->find_event("L2"));
    auto runs = store->runs_for_event("L1");
    CHECK(functions_of(runs) == std::multiset<std::string>{"on-any", "on-finished"});  // on-finished once: R-given
    CHECK(store->find_run("R-given"));
    for (const Run& r : runs) {
      CHECK(r.status == RunStatus::queued);
      CHECK(r.created_at == kT0 + 1s);
    }
    CHECK(store->runs_for_event("L2").empty());

    // A refused commit stores none of its events.
    ingest_one(*store, "E2", "R2", kT0, true);
    REQUIRE(store->cancel_runs({"R2"}, kT0 + 2s)[0] == RunAdmin::Change::done);
    Commit lost{.run_id = "R2", .lease_epoch = 1,
                .transition = RunTransition{.status = RunStatus::completed, .output = "1"},
                .new_events = {item("L3", "fn/finished", {})},
                .now = kT0 + 3s};
    CHECK(store->commit(lost) == JournalStore::CommitResult::lease_lost);
    CHECK_FALSE(store->find_event("L3"));
    CHECK(store->runs_for_event("L3").empty());
  }

  TEST_CASE_TEMPLATE("commit_wait resolves at once with an event stored since the wait began, else registers it", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    std::vector<std::string> woken;
    store->set_wait_listener([&](const std::vector<std::string>& ids) { woken.insert(woken.end(), ids.begin(), ids.end()); });
    IngestStore::Item trigger{"E1", Event{.name = "invoice/created", .data = {{"id", "A"}, {"total", 10}}, .ts = kT0}, {}};
    trigger.runs.push_back(NewRun{.id = "R1", .function_id = "fn", .event_id = "E1", .lease = lease("w1", kT0 + 1h)});
    REQUIRE(store->ingest({trigger}, kT0, 24h).at(0) == IngestStore::Outcome::accepted);
    auto paid = [](const std::string& id, const std::string& invoice, int amount) {
      return IngestStore::Item{id, Event{.name = "invoice/paid", .data = {{"id", invoice}, {"amount", amount}}, .ts = kT0}, {}};
    };
    WaitRegistration wait{.step_key = "pay", .event = "invoice/paid", .match_path = "data.id", .match_value = "\"A\"",
                          .condition = "async.data.amount >= event.data.total", .trigger_event_id = "E1",
                          .since = kT0 + 1s, .expires_at = kT0 + 1h};
    // Before the window, another invoice, too little: none counts. Then the one that does,
    // in the window, before the registration commits.
    store->ingest({paid("P0", "A", 10)}, kT0 + 999ms, 24h);
    store->ingest({paid("P1", "B", 10), paid("P2", "A", 5), paid("P3", "A", 10), paid("P4", "A", 20)}, kT0 + 2s, 24h);
    auto wait_commit = [&](int64_t seq) {
      return Commit{.run_id = "R1", .lease_epoch = 1,
                    .entries = {JournalEntry{.seq = seq, .kind = JournalKind::wait_started, .step_key = "pay", .payload = "{}"}},
                    .transition = RunTransition{.status = RunStatus::waiting, .available_at = kT0 + 1h},
                    .now = kT0 + 3s};
    };
    JournalStore::WaitOutcome out = store->commit_wait(wait_commit(1), wait);
    CHECK(out.result == JournalStore::CommitResult::committed);
    REQUIRE(out.arrived);
    CHECK(out.arrived->id == "P3");
    CHECK(store->find_run("R1")->status == RunStatus::running);  // still ours: it goes on
    auto journal = store->load_journal("R1");
    REQUIRE(journal.size() == 3);
    CHECK(journal[2].kind == JournalKind::wait_resolved);
    CHECK(nlohmann::json::parse(journal[2].payload)["event_id"] == "P3");

    // Nothing there yet: registered; the run waits until the timeout, in the queue.
    wait.step_key = "pay-again";
    wait.since = kT0 + 4s;
    Commit again = wait_commit(3);
    again.entries[0].step_key = "pay-again";
    out = store->commit_wait(again, wait);
    CHECK_FALSE(out.arrived);
    Run waiting = *store->find_run("R1");
    CHECK(waiting.status == RunStatus::waiting);
    CHECK(waiting.available_at == kT0 + 1h);
    CHECK(store->queue_depth(kT0 + 5s).waiting == 1);
    CHECK(woken.empty());

    // A matching event resolves it in its own transaction: the run is queued under a new
    // epoch (a worker holding it for the timeout is fenced out).
    store->ingest({paid("P5", "A", 3)}, kT0 + 5s, 24h);  // condition false
    CHECK(store->find_run("R1")->status == RunStatus::waiting);
    store->ingest({paid("P6", "A", 30)}, kT0 + 6s, 24h);
    Run queued = *store->find_run("R1");
    CHECK(queued.status == RunStatus::queued);
    CHECK(queued.available_at == kT0 + 6s);
    CHECK(woken == std::vector<std::string>{"fn"});
    journal = store->load_journal("R1");
    REQUIRE(journal.size() == 5);
    CHECK(journal[4].kind == JournalKind::wait_resolved);
    CHECK(journal[4].step_key == "pay-again");
    CHECK(nlohmann::json::parse(journal[4].payload)["event_id"] == "P6");
    CHECK(store->commit(step_commit(held("R1", 1), 5, "late", kT0 + 7s)) == JournalStore::CommitResult::lease_lost);
    // Resolved once: a second matching event appends nothing.
    store->ingest({paid("P7", "A", 30)}, kT0 + 8s, 24h);
    CHECK(store->load_journal("R1").size() == 5);
  }

  TEST_CASE_TEMPLATE("a registered wait expires: no event resolves it after its timeout, and the run is claimed then", S, SqliteMemory, SqliteFile, Postgres) {
    TempDir dir;
    auto store = S::open(dir);
    ingest_one(*store, "E1", "R1", kT0, true);
    WaitRegistration wait{.step_key = "w", .event = "ping", .trigger_event_id = "E1", .since = kT0, .expires_at = kT0 + 1min};
    Commit c{.run_id = "R1", .lease_epoch = 1,
             .entries = {JournalEntry{.seq = 1, .kind = JournalKind::wait_started, .step_key = "w", .payload = "{}"}},
             .transition = RunTransition{.status = RunStatus::waiting, .available_at = kT0 + 1min},
             .now = kT0};
    REQUIRE_FALSE(store->commit_wait(c, wait).arrived);
    CHECK(store->claim({"fn"}, kT0 + 59s, lease("w2", kT0 + 2min), 10).empty());
    store->ingest({item("P1", "ping", {})}, kT0 + 1min, 24h);
    CHECK(store->load_journal("R1").size() == 2);  // too late
    auto claimed = store->claim({"fn"}, kT0 + 1min, lease("w2", kT0 + 2min), 10);
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].run_id == "R1");
  }
}
