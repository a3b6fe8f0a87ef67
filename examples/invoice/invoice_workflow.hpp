// The invoice workflow: when an invoice is created, e-mail it to the customer and wait for its
// payment. Unpaid after 3 days: a reminder. Still unpaid 7 days after it was sent: collections
// are told and the invoice is overdue. Paid at any point: a receipt, and the run ends.
//
//   examples::Outbox outbox("invoice_outbox.jsonl");     // declared first: the function uses it
//   durable::Engine engine({.database = "invoice.db"});
//   invoice::register_invoice(engine, outbox);           // a durable::testing::TestEngine works too
//
// The run, step by step (its journal shows the same keys):
//
//   send-invoice          e-mail the invoice ("invoice")
//   wait-for-payment      wait up to 3 days for invoice/paid with the same data.invoiceId
//   send-reminder         unpaid: e-mail a reminder ("reminder")
//   wait-after-reminder   wait 4 more days
//   escalate              still unpaid: e-mail collections ("escalation"); output status "overdue"
//   mark-paid             paid during either wait: e-mail a receipt ("receipt"); status "paid"
//
// main.cpp serves it; tests/invoice_example_test.cpp runs it on the test kit.
#pragma once

#include <chrono>
#include <string>

#include <durable/durable.hpp>

#include "../common/outbox.hpp"

namespace invoice {

using examples::Email;
using examples::Outbox;

// The event that starts a run, and the one that ends its waits.
inline constexpr const char* kCreatedEvent = "invoice/created";
inline constexpr const char* kPaidEvent = "invoice/paid";

struct Settings {
  // How long after sending the invoice the customer is reminded. Default: 3 days.
  std::chrono::milliseconds remind_after = std::chrono::hours(24 * 3);
  // How long after sending the invoice an unpaid one goes to collections; more than
  // remind_after. Default: 7 days.
  std::chrono::milliseconds escalate_after = std::chrono::hours(24 * 7);
  // Who is told about overdue invoices. Default: collections@example.com.
  std::string collections = "collections@example.com";
  // Customers pay at this URL followed by the invoice id. Default: https://pay.example.com/invoices/.
  std::string pay_url = "https://pay.example.com/invoices/";
};

// The options of the function: id "invoice", 3 retries of a failed step.
durable::FunctionOptions function_options();

// The body of "invoice", e-mailing through `outbox` (which must outlive the engine). The
// invoice/created event's data:
//
//   {"invoiceId": "INV-1001", "amount": 12000, "currency": "EUR",        amount in cents
//    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"}}
//
// An event without these fails its run at once (durable::NonRetriableError), sending nothing.
// A payment is an invoice/paid event with the same "invoiceId" (a string, compared exactly),
// e.g. {"invoiceId": "INV-1001", "amount": 12000}. The run's output is
// {"invoiceId", "status": "paid" | "overdue", "reminders": 0 | 1} and, when paid, "paidAt"
// (the payment event's ts, ms) and "amountPaid" (its data.amount, or null).
// Throws std::invalid_argument unless 0 < remind_after < escalate_after.
durable::Handler make_handler(Outbox& outbox, Settings settings = {});

// Registers "invoice" on `engine`: a durable::Engine or a durable::testing::TestEngine, whose
// function() methods have the same signature. Throws what they and make_handler() throw.
template <class E>
void register_invoice(E& engine, Outbox& outbox, Settings settings = {}) {
  engine.function(function_options(), durable::on_event(kCreatedEvent), make_handler(outbox, std::move(settings)));
}

}  // namespace invoice
