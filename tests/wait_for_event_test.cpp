// step.wait_for_event: the first matching event or nothing at the timeout; race-free; no
// thread held; survives restarts.
#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// A ManualClock that runs an action inside one particular call of now(): the `nth` call made,
// after arm(), by the thread that armed it. The executor reads the clock when a wait begins
// (its window opens) and again when it commits the wait's registration, so an action on the
// second read happens after the wait began and before it was registered.
class HookClock final : public Clock {
 public:
  TimePoint now() const override {
    if (armed_.load() && std::this_thread::get_id() == thread_ && ++calls_ == nth_) {
      armed_ = false;
      action_();
    }
    return clock_.now();
  }
  bool advances_by_itself() const override { return false; }
  int subscribe(std::function<void()> listener) override { return clock_.subscribe(std::move(listener)); }
  void unsubscribe(int id) override { clock_.unsubscribe(id); }

  void arm(int nth, std::function<void()> action) {
    thread_ = std::this_thread::get_id();
    calls_ = 0;
    nth_ = nth;
    action_ = std::move(action);
    armed_ = true;
  }
  ManualClock& manual() { return clock_; }

 private:
  ManualClock clock_;
  mutable std::atomic<bool> armed_{false};
  std::thread::id thread_;
  mutable int calls_ = 0;
  int nth_ = 0;
  std::function<void()> action_;
};

Event invoice_paid(const std::string& invoice, int amount) {
  return Event{.name = "invoice/paid", .data = {{"invoiceId", invoice}, {"amount", amount}}};
}

// An invoice run: waits up to 7 days for its payment (of at least the total), then records
// what it got. `bodies` counts executions of the function.
void define_invoice(Engine& engine, std::atomic<int>& bodies, std::atomic<int>& sent) {
  engine.function({.id = "invoice"}, on_event("invoice/created"), [&](Context& ctx) {
    ++bodies;
    ctx.step.run("send-invoice", [&] { return ++sent; });
    auto paid = ctx.step.wait_for_event("wait-for-payment", {.event = "invoice/paid",
                                                             .match = "data.invoiceId",
                                                             .if_ = "async.data.amount >= event.data.total",
                                                             .timeout = 7 * 24h});
    if (!paid) return nlohmann::json("unpaid");
    return nlohmann::json{{"paid", paid->data.at("amount")}};
  });
}

// An engine on a manual clock with the invoice function, started. `more` defines other
// functions first; `workers` overrides the default.
struct Invoices {
  explicit Invoices(std::function<void(Engine&)> more = {}, int workers = 0)
      : engine([&] {
          EngineOptions options = engine_options(dir.file("t.db"), clock);
          if (workers > 0) options.workers = workers;
          return options;
        }()) {
    define_invoice(engine, bodies, sent);
    if (more) more(engine);
    engine.start();
  }
  // Sends invoice/created for `invoice` with this total; returns the event's id.
  std::string create(const std::string& invoice, int total) {
    return engine.send({.name = "invoice/created", .data = {{"invoiceId", invoice}, {"total", total}}});
  }

  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::atomic<int> bodies{0}, sent{0};
  Engine engine;
};

}  // namespace

TEST_SUITE("wait_for_event") {
  TEST_CASE("the run waits, holding its place, until an event matches its name, match field and condition") {
    Invoices w;
    auto created = w.create("A", 100);
    REQUIRE(w.engine.drain());
    Run waiting = only_run(w.engine, created);
    CHECK(waiting.status == RunStatus::waiting);
    CHECK(waiting.available_at == w.clock->now() + 7 * 24h);  // the timeout

    w.engine.send(invoice_paid("B", 100));                       // another invoice
    w.engine.send({.name = "invoice/refunded", .data = {{"invoiceId", "A"}, {"amount", 100}}});  // another name
    w.engine.send(invoice_paid("A", 50));                        // the condition is false
    REQUIRE(w.engine.drain());
    CHECK(only_run(w.engine, created).status == RunStatus::waiting);

    auto payment = w.engine.send(invoice_paid("A", 120));
    w.engine.send(invoice_paid("A", 130));  // the wait is over: this one changes nothing
    REQUIRE(w.engine.drain());
    Run done = only_run(w.engine, created);
    CHECK(done.status == RunStatus::completed);
    CHECK(done.output == nlohmann::json{{"paid", 120}});
    CHECK(w.sent == 1);  // the step before the wait ran once

    auto journal = read_journal(w.dir.file("t.db"), done.id);
    auto resolved = entries_of(journal, JournalKind::wait_resolved);
    REQUIRE(resolved.size() == 1);
    CHECK(resolved[0].step_key == "wait-for-payment");
    CHECK(nlohmann::json::parse(resolved[0].payload)["event_id"] == payment);
    REQUIRE(entries_of(journal, JournalKind::wait_started).size() == 1);
  }

  TEST_CASE("the wait returns nothing at its timeout, and never before") {
    Invoices w;
    auto created = w.create("A", 100);
    REQUIRE(w.engine.drain());
    advance(w.engine, *w.clock, 7 * 24h - 1ms);
    CHECK(only_run(w.engine, created).status == RunStatus::waiting);
    advance(w.engine, *w.clock, 1ms);
    Run done = only_run(w.engine, created);
    CHECK(done.status == RunStatus::completed);
    CHECK(done.output == "unpaid");
    // A payment after the timeout finds no wait.
    w.engine.send(invoice_paid("A", 100));
    REQUIRE(w.engine.drain());
    CHECK(only_run(w.engine, created).output == "unpaid");
    auto resolved = entries_of(read_journal(w.dir.file("t.db"), done.id), JournalKind::wait_resolved);
    REQUIRE(resolved.size() == 1);
    CHECK(nlohmann::json::parse(resolved[0].payload) == nlohmann::json{{"timeout", true}});
  }

  TEST_CASE("an event that arrives after the wait began but before it was registered is matched") {
    TempDir dir;
    auto clock = std::make_shared<HookClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    std::atomic<int> bodies{0};
    std::string payment;
    engine.function({.id = "invoice"}, on_event("invoice/created"), [&](Context& ctx) {
      ++bodies;
      // The payment is ingested inside the executor's second clock read of the wait: after
      // the wait's window opened and before the commit that registers it.
      clock->arm(2, [&] { payment = engine.send(invoice_paid("A", 100)); });
      auto paid = ctx.step.wait_for_event("wait-for-payment",
                                          {.event = "invoice/paid", .match = "data.invoiceId", .timeout = 1h});
      return paid ? paid->data.at("amount").get<int>() : -1;
    });
    engine.start();
    auto created = engine.send({.name = "invoice/created", .data = {{"invoiceId", "A"}}});
    REQUIRE(engine.drain());
    Run done = only_run(engine, created);
    REQUIRE(!payment.empty());
    CHECK(done.status == RunStatus::completed);
    CHECK(done.output == 100);
    // Resolved by the registering commit itself: the run never suspended, so the function ran
    // once. (Had the event been missed, the run would wait for an hour and return -1.)
    CHECK(bodies == 1);
    auto resolved = entries_of(read_journal(dir.file("t.db"), done.id), JournalKind::wait_resolved);
    REQUIRE(resolved.size() == 1);
    CHECK(nlohmann::json::parse(resolved[0].payload)["event_id"] == payment);
  }

  TEST_CASE("an event that arrived before the wait began does not count") {
    Invoices w;
    w.engine.send(invoice_paid("A", 100));
    REQUIRE(w.engine.drain());
    w.clock->advance(1ms);
    auto created = w.create("A", 100);
    REQUIRE(w.engine.drain());
    CHECK(only_run(w.engine, created).status == RunStatus::waiting);
  }

  TEST_CASE("waiting runs hold no thread") {
    Invoices w(
        [](Engine& e) {
          e.function({.id = "quick"}, on_event("test/quick"), [](Context& ctx) { return ctx.step.run("now", [] { return 2; }); });
        },
        /*workers=*/1);
    Engine& engine = w.engine;
    std::vector<std::string> invoices;
    for (int i = 0; i < 20; ++i) invoices.push_back(w.create(std::to_string(i), 1));
    auto quick = engine.send({.name = "test/quick"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, quick).status == RunStatus::completed);
    for (auto& id : invoices) CHECK(only_run(engine, id).status == RunStatus::waiting);
    std::vector<Event> payments;
    for (int i = 0; i < 20; ++i) payments.push_back(invoice_paid(std::to_string(i), 1));
    engine.send(payments);
    REQUIRE(engine.drain());
    for (auto& id : invoices) CHECK(only_run(engine, id).output == nlohmann::json{{"paid", 1}});
  }

  TEST_CASE("a wait registered before a restart is resolved by an event sent after it, to another engine") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    std::atomic<int> bodies{0}, sent{0};
    std::string created;
    {
      Engine engine(engine_options(dir.file("t.db"), clock));
      define_invoice(engine, bodies, sent);
      engine.start();
      created = engine.send({.name = "invoice/created", .data = {{"invoiceId", "A"}, {"total", 100}}});
      REQUIRE(engine.drain());
      CHECK(only_run(engine, created).status == RunStatus::waiting);
    }
    {
      // An engine with no functions (an API process) stores the payment.
      Engine api(engine_options(dir.file("t.db"), clock));
      api.start();
      api.send(invoice_paid("A", 100));
      CHECK(only_run(api, created).status == RunStatus::queued);
    }
    Engine engine(engine_options(dir.file("t.db"), clock));
    define_invoice(engine, bodies, sent);
    engine.start();
    REQUIRE(engine.drain());
    CHECK(only_run(engine, created).output == nlohmann::json{{"paid", 100}});
    CHECK(sent == 1);
  }

  TEST_CASE("invalid options fail the run with a message naming the step") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "bad"}, on_event("test/bad"), [](Context& ctx) {
      std::string which = ctx.event.data.at("which");
      WaitForEventOptions o{.event = "x/y", .timeout = 1h};
      if (which == "event") o.event = "";
      if (which == "timeout") o.timeout = 0ms;
      if (which == "match") o.match = "data..id";
      if (which == "match-dash") o.match = "data.invoice-id";
      if (which == "if") o.if_ = "async.data.x ==";
      ctx.step.wait_for_event("w", o);
    });
    engine.start();
    for (auto [which, message] : std::vector<std::pair<std::string, std::string>>{
             {"event", "needs .event"}, {"timeout", "needs a .timeout"}, {"match", "not a field path"},
             {"match-dash", "not a field path"}, {"if", "the if_ expression is invalid"}}) {
      CAPTURE(which);
      auto id = engine.send({.name = "test/bad", .data = {{"which", which}}});
      REQUIRE(engine.drain());
      Run run = only_run(engine, id);
      CHECK(run.status == RunStatus::failed);
      CHECK(run.error.at("message").get<std::string>().find(message) != std::string::npos);
      CHECK(run.error.at("message").get<std::string>().find("step 'w'") != std::string::npos);
    }
  }

  TEST_CASE("cancelling a waiting run removes its wait: a later event wakes nothing") {
    Invoices w;
    auto created = w.create("A", 1);
    REQUIRE(w.engine.drain());
    std::string run_id = only_run(w.engine, created).id;
    auto store_owner = open_store(w.dir.file("t.db"), {});
    Store& store = *store_owner;
    REQUIRE(store.cancel_runs({run_id}, w.clock->now()).at(0) == RunAdmin::Change::done);
    w.engine.send(invoice_paid("A", 1));
    REQUIRE(w.engine.drain());
    CHECK(only_run(w.engine, created).status == RunStatus::cancelled);
    CHECK(entries_of(read_journal(w.dir.file("t.db"), run_id), JournalKind::wait_resolved).empty());
    CHECK(w.bodies == 1);
  }

  TEST_CASE("match compares numbers by value: 150.0 matches 150") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "order"}, on_event("order/placed"), [](Context& ctx) {
      return ctx.step.wait_for_event("shipped", {.event = "order/shipped", .match = "data.order", .timeout = 1h}).has_value();
    });
    engine.start();
    auto placed = engine.send({.name = "order/placed", .data = {{"order", 150}}});
    REQUIRE(engine.drain());
    engine.send({.name = "order/shipped", .data = {{"order", 150.5}}});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, placed).status == RunStatus::waiting);
    engine.send({.name = "order/shipped", .data = {{"order", 150.0}}});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, placed).output == true);
  }
}
