// The invoice example (examples/invoice/), run on the test kit: the e-mails it sends when the
// invoice is paid at once, paid after the reminder, or never paid, on the virtual clock, to
// the millisecond. Nothing is mocked: the steps write to a real outbox file.
#include <durable/testing.hpp>

#include <doctest/doctest.h>

#include "examples/invoice/invoice_workflow.hpp"
#include "examples/common/outbox.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::milliseconds kDay = 24h;

// An invoice/created event for 120.00 EUR to Ada.
Event invoice_created(const std::string& invoice_id) {
  return {.name = invoice::kCreatedEvent,
          .data = {{"invoiceId", invoice_id},
                   {"amount", 12000},
                   {"currency", "EUR"},
                   {"customer", {{"name", "Ada Lovelace"}, {"email", "ada@example.com"}}}}};
}

Event invoice_paid(const std::string& invoice_id, int64_t amount = 12000) {
  return {.name = invoice::kPaidEvent, .data = {{"invoiceId", invoice_id}, {"amount", amount}}};
}

// The test kit with "invoice" registered, e-mailing into a fresh outbox file. The clock starts
// at 2030-01-01T00:00:00Z.
struct Billing {
  testing::TempDir dir;
  examples::Outbox outbox{dir.file("outbox.jsonl")};
  testing::TestEngine t;

  Billing() { invoice::register_invoice(t, outbox); }

  // "tag to", one per e-mail sent, oldest first.
  std::vector<std::string> sent() const {
    std::vector<std::string> out;
    for (const examples::Email& e : outbox.emails()) out.push_back(e.tag + " " + e.to);
    return out;
  }
  examples::Email last() const {
    auto emails = outbox.emails();
    REQUIRE_FALSE(emails.empty());
    return emails.back();
  }
};

std::vector<std::string> step_keys(const testing::TestRun& run) {
  std::vector<std::string> keys;
  for (const auto& s : run.steps()) keys.push_back(s.key);
  return keys;
}

using Sent = std::vector<std::string>;

}  // namespace

TEST_SUITE("invoice_example") {
  TEST_CASE("an invoice paid within 3 days gets a receipt and no reminder") {
    Billing b;
    auto run = b.t.trigger(invoice_created("INV-1001"));
    CHECK(run.status() == RunStatus::waiting);
    REQUIRE(b.sent() == Sent{"invoice ada@example.com"});

    examples::Email sent = b.last();
    CHECK(sent.subject == "Invoice INV-1001: 120.00 EUR");
    CHECK(sent.body ==
          "Dear Ada Lovelace,\n\nplease find below invoice INV-1001 for 120.00 EUR, due by 2030-01-08.\n"
          "Pay online: https://pay.example.com/invoices/INV-1001\n\nThank you!\n");
    CHECK(run.step("send-invoice").output == nlohmann::json(sent));  // the journal shows the e-mail

    b.t.advance(2 * kDay);
    b.t.send(invoice_paid("INV-1001", 12000));
    REQUIRE(run.status() == RunStatus::completed);
    CHECK(run.output() == nlohmann::json{{"invoiceId", "INV-1001"},
                                         {"status", "paid"},
                                         {"reminders", 0},
                                         {"paidAt", to_millis(b.t.now())},
                                         {"amountPaid", 12000}});
    CHECK(b.sent() == Sent{"invoice ada@example.com", "receipt ada@example.com"});
    examples::Email receipt = b.last();
    CHECK(receipt.subject == "Receipt for invoice INV-1001");
    CHECK(receipt.body ==
          "Dear Ada Lovelace,\n\nthank you: we received your payment of 120.00 EUR for invoice INV-1001 on 2030-01-03.\n");
    CHECK(step_keys(run) == std::vector<std::string>{"send-invoice", "wait-for-payment", "mark-paid"});

    // The deadlines it no longer waits for send nothing.
    b.t.advance(10 * kDay);
    CHECK(b.sent().size() == 2);
  }

  TEST_CASE("an invoice paid after the reminder gets exactly one reminder, then a receipt") {
    Billing b;
    auto run = b.t.trigger(invoice_created("INV-1002"));
    b.t.advance(3 * kDay - 1ms);
    CHECK(b.sent() == Sent{"invoice ada@example.com"});
    b.t.advance(1ms);
    REQUIRE(b.sent() == Sent{"invoice ada@example.com", "reminder ada@example.com"});
    CHECK(run.status() == RunStatus::waiting);
    CHECK(run.step("wait-for-payment").details["timed_out"] == true);

    examples::Email reminder = b.last();
    CHECK(reminder.subject == "Reminder: invoice INV-1002 is unpaid");
    CHECK(reminder.body ==
          "Dear Ada Lovelace,\n\nwe have not yet received the payment of invoice INV-1002 for 120.00 EUR, due by "
          "2030-01-08.\nPay online: https://pay.example.com/invoices/INV-1002\n\n"
          "If you have paid already, please ignore this e-mail.\n");

    b.t.advance(1 * kDay);  // day 4; a partial payment is still a payment here (see README.md)
    b.t.send(invoice_paid("INV-1002", 5000));
    REQUIRE(run.status() == RunStatus::completed);
    CHECK(run.output()["status"] == "paid");
    CHECK(run.output()["reminders"] == 1);
    CHECK(run.output()["amountPaid"] == 5000);
    CHECK(b.sent() == Sent{"invoice ada@example.com", "reminder ada@example.com", "receipt ada@example.com"});
    CHECK(b.last().body ==
          "Dear Ada Lovelace,\n\nthank you: we received your payment of 50.00 EUR for invoice INV-1002 on 2030-01-05.\n");
    CHECK(step_keys(run) ==
          std::vector<std::string>{"send-invoice", "wait-for-payment", "send-reminder", "wait-after-reminder", "mark-paid"});

    b.t.advance(7 * kDay);
    CHECK(b.sent().size() == 3);  // no escalation
  }

  TEST_CASE("an invoice never paid is reminded at day 3 and escalated to collections at day 7, to the millisecond") {
    Billing b;
    auto run = b.t.trigger(invoice_created("INV-1003"));
    b.t.advance(3 * kDay - 1ms);
    CHECK(b.sent().size() == 1);
    b.t.advance(1ms);
    CHECK(b.sent() == Sent{"invoice ada@example.com", "reminder ada@example.com"});

    b.t.advance(4 * kDay - 1ms);  // 7 days less 1 ms after the invoice
    CHECK(b.sent() == Sent{"invoice ada@example.com", "reminder ada@example.com"});
    CHECK(run.status() == RunStatus::waiting);
    b.t.advance(1ms);
    REQUIRE(run.status() == RunStatus::completed);
    CHECK(run.output() == nlohmann::json{{"invoiceId", "INV-1003"}, {"status", "overdue"}, {"reminders", 1}});
    CHECK(b.sent() ==
          Sent{"invoice ada@example.com", "reminder ada@example.com", "escalation collections@example.com"});

    examples::Email escalation = b.last();
    CHECK(escalation.subject == "Overdue: invoice INV-1003 (120.00 EUR)");
    CHECK(escalation.body ==
          "Invoice INV-1003 for 120.00 EUR to Ada Lovelace <ada@example.com> was sent on 2030-01-01 and is still "
          "unpaid 7 days later, after one reminder. It is now overdue: please take it over.\n");
    CHECK(step_keys(run) ==
          std::vector<std::string>{"send-invoice", "wait-for-payment", "send-reminder", "wait-after-reminder", "escalate"});
    CHECK(run.step("wait-after-reminder").details["timed_out"] == true);
    for (const auto& step : run.steps()) CHECK(step.attempts <= 1);  // every e-mail sent once

    // A payment that comes after the escalation changes nothing for this run.
    b.t.send(invoice_paid("INV-1003"));
    CHECK(run.output()["status"] == "overdue");
    CHECK(b.sent().size() == 3);
  }

  TEST_CASE("a payment for another invoice does not count") {
    Billing b;
    auto first = b.t.trigger(invoice_created("1001"));
    auto second = b.t.trigger(invoice_created("1002"));
    REQUIRE(b.sent().size() == 2);

    SUBCASE("another id") { b.t.send(invoice_paid("1003")); }
    SUBCASE("the id as a number, not a string") {
      b.t.send({.name = invoice::kPaidEvent, .data = {{"invoiceId", 1001}, {"amount", 12000}}});
    }
    SUBCASE("the id in another field") {
      b.t.send({.name = invoice::kPaidEvent, .data = {{"invoice", "1001"}, {"amount", 12000}}});
    }
    SUBCASE("the id in another event") { b.t.send({.name = "invoice/refunded", .data = {{"invoiceId", "1001"}}}); }
    CHECK(first.status() == RunStatus::waiting);
    CHECK(second.status() == RunStatus::waiting);
    CHECK(b.sent().size() == 2);

    // 1002's payment ends 1002's run only; 1001 is chased as usual.
    b.t.send(invoice_paid("1002"));
    CHECK(second.output()["status"] == "paid");
    CHECK(first.status() == RunStatus::waiting);
    b.t.advance(3 * kDay);
    CHECK(first.step("send-reminder").output["subject"] == "Reminder: invoice 1001 is unpaid");
    b.t.send(invoice_paid("1001"));
    CHECK(first.output()["status"] == "paid");
    CHECK(first.output()["reminders"] == 1);
    CHECK(b.sent() == Sent{"invoice ada@example.com", "invoice ada@example.com", "receipt ada@example.com",
                           "reminder ada@example.com", "receipt ada@example.com"});
  }

  TEST_CASE("an invoice without a customer e-mail fails at once and sends nothing") {
    Billing b;
    auto run = b.t.trigger({.name = invoice::kCreatedEvent,
                            .data = {{"invoiceId", "INV-9"}, {"amount", 100}, {"currency", "EUR"}, {"customer", {}}}});
    CHECK(run.status() == RunStatus::failed);
    CHECK(run.error()["message"] == "invoice INV-9: no \"customer\": {\"email\"} to send it to");
    CHECK(run.steps().empty());
    CHECK(b.sent().empty());
  }
}
