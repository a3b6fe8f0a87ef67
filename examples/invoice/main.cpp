// Invoices that chase their own payment, served over HTTP: an invoice/created event e-mails the
// invoice and starts a run that waits for invoice/paid. No payment within 3 days: a reminder;
// none within 7 days: an e-mail to collections. A payment at any point: a receipt. The waits
// hold no thread and survive restarts (the workflow is in invoice_workflow.cpp).
//
//   ./invoice
//
// Environment (all optional):
//   DURABLE_PORT                        where durable's API listens (8288, on 127.0.0.1)
//   DURABLE_EVENT_KEY, DURABLE_API_KEY  keys of durable's API (local development ones)
//   INVOICE_DAY_SECONDS                 how long a "day" lasts, to try it out (86400)
//
// It prints the curl commands that create an invoice and pay it. E-mails go to
// invoice_outbox.jsonl, the engine's database is invoice.db, both in the working directory.
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include <durable/durable.hpp>

#include "../common/env.hpp"
#include "invoice_workflow.hpp"
#include "../common/outbox.hpp"

namespace {

using examples::env_int;
using examples::env_or;

}  // namespace

int main() {
  try {
    int port = env_int("DURABLE_PORT", 8288, 65535);
    int day_seconds = env_int("INVOICE_DAY_SECONDS", 86400, 86400);
    std::string event_key = env_or("DURABLE_EVENT_KEY", "local-dev-key");
    std::string api_key = env_or("DURABLE_API_KEY", "local-dev-api-key");
    std::chrono::seconds day(day_seconds);

    examples::Outbox outbox("invoice_outbox.jsonl");  // declared first: the engine's function uses it
    durable::Engine engine({.database = "invoice.db"});
    invoice::register_invoice(engine, outbox, {.remind_after = 3 * day, .escalate_after = 7 * day});

    std::string events_url = fmt::format("http://127.0.0.1:{}/e/{}", port, event_key);
    std::cout << fmt::format(
                     "\ninvoice: create an invoice with\n\n"
                     "  curl -d '{{\"name\":\"invoice/created\",\"data\":{{\"invoiceId\":\"INV-1001\",\"amount\":12000,"
                     "\"currency\":\"EUR\",\"customer\":{{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\"}}}}}}' \\\n"
                     "       {}\n\n"
                     "and pay it with\n\n"
                     "  curl -d '{{\"name\":\"invoice/paid\",\"data\":{{\"invoiceId\":\"INV-1001\",\"amount\":12000}}}}' {}\n\n"
                     "Unpaid, it is reminded after 3 days and goes to collections after 7; a day lasts {} s{}.\n"
                     "E-mails are appended to {} (tail -f {}). Watch the runs with\n\n"
                     "  curl -H 'Authorization: Bearer {}' 'http://127.0.0.1:{}/v1/runs?function=invoice'\n"
                     "  DURABLE_API_KEY={} build/durable --url http://127.0.0.1:{} runs\n\n"
                     "Ctrl-C stops; the waits go on when it starts again.\n",
                     events_url, events_url, day_seconds,
                     day_seconds == 86400 ? " (INVOICE_DAY_SECONDS=10 makes it 10 s, to watch it happen)" : "",
                     outbox.path(), outbox.path(), api_key, port, api_key, port)
              << std::flush;
    return engine.serve({.port = port, .event_keys = {event_key}, .api_keys = {api_key}});
  } catch (const std::exception& e) {
    std::cerr << "invoice: " << e.what() << "\n";
    return 1;
  }
}
