#include "invoice_workflow.hpp"

#include <cctype>
#include <cstdint>
#include <ctime>
#include <optional>
#include <stdexcept>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace invoice {

namespace {

struct Invoice {
  std::string id;
  int64_t amount = 0;  // cents
  std::string currency;
  std::string customer_name;
  std::string customer_email;
};

// The string at `key` of the object `j`, or "" when it is missing or not a string.
std::string text(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

Invoice parse_invoice(const nlohmann::json& data) {
  Invoice inv;
  inv.id = text(data, "invoiceId");
  if (inv.id.empty()) throw durable::NonRetriableError("the invoice has no \"invoiceId\" (a string)");
  auto amount = data.find("amount");
  if (amount == data.end() || !amount->is_number_integer() || amount->get<int64_t>() <= 0) {
    throw durable::NonRetriableError(fmt::format("invoice {}: \"amount\" must be a positive number of cents", inv.id));
  }
  inv.amount = amount->get<int64_t>();
  inv.currency = text(data, "currency");
  for (char& c : inv.currency) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (inv.currency.empty()) throw durable::NonRetriableError(fmt::format("invoice {}: no \"currency\"", inv.id));
  auto customer = data.find("customer");
  if (customer != data.end() && customer->is_object()) {
    inv.customer_email = text(*customer, "email");
    inv.customer_name = text(*customer, "name");
  }
  if (inv.customer_email.empty()) {
    throw durable::NonRetriableError(fmt::format("invoice {}: no \"customer\": {{\"email\"}} to send it to", inv.id));
  }
  if (inv.customer_name.empty()) inv.customer_name = inv.customer_email;
  return inv;
}

// 12000 and "EUR" -> "120.00 EUR".
std::string money(int64_t cents, const std::string& currency) {
  return fmt::format("{}.{:02} {}", cents / 100, cents % 100, currency);
}

// The UTC day of `t`, "2030-01-08".
std::string day_of(durable::TimePoint t) {
  return fmt::format("{:%Y-%m-%d}", fmt::gmtime(static_cast<std::time_t>(durable::to_millis(t) / 1000)));
}

// "7 days", or "70 seconds" when main.cpp shortens the days to try the example out.
std::string describe(std::chrono::milliseconds d) {
  using Days = std::chrono::duration<int64_t, std::ratio<86400>>;
  if (d % Days(1) == std::chrono::milliseconds(0)) {
    auto n = std::chrono::duration_cast<Days>(d).count();
    return fmt::format("{} day{}", n, n == 1 ? "" : "s");
  }
  return fmt::format("{} seconds", std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

}  // namespace

durable::FunctionOptions function_options() {
  return {.id = "invoice", .name = "Send an invoice and chase its payment", .retries = 3};
}

durable::Handler make_handler(Outbox& outbox, Settings settings) {
  if (settings.remind_after <= std::chrono::milliseconds(0) || settings.escalate_after <= settings.remind_after) {
    throw std::invalid_argument("invoice settings: need 0 < remind_after < escalate_after");
  }
  return [&outbox, s = std::move(settings)](durable::Context& ctx) -> nlohmann::json {
    // The event is the same on every replay, and so is everything computed from it here.
    const Invoice inv = parse_invoice(ctx.event.data);
    const std::string amount = money(inv.amount, inv.currency);
    const std::string due = day_of(ctx.event.ts + s.escalate_after);
    const std::string pay_link = s.pay_url + inv.id;

    // Each step runs once; a replay (after a wait, a retry or a restart) returns what it
    // recorded. A crash in the middle of a step body runs that body again: a real mail
    // provider would get an idempotency key such as ctx.run_id + the step id.
    ctx.step.run("send-invoice", [&] {
      Email e{.to = inv.customer_email,
              .subject = fmt::format("Invoice {}: {}", inv.id, amount),
              .body = fmt::format("Dear {},\n\nplease find below invoice {} for {}, due by {}.\n"
                                  "Pay online: {}\n\nThank you!\n",
                                  inv.customer_name, inv.id, amount, due, pay_link),
              .tag = "invoice"};
      outbox.send(e);
      return e;
    });

    // A payment counts from the moment the wait is reached; the window is recorded, so a
    // restart neither loses the payment nor extends the deadline.
    durable::WaitForEventOptions payment{.event = kPaidEvent, .match = "data.invoiceId", .timeout = s.remind_after};
    std::optional<durable::Event> paid = ctx.step.wait_for_event("wait-for-payment", payment);
    int reminders = 0;
    if (!paid) {
      ctx.step.run("send-reminder", [&] {
        Email e{.to = inv.customer_email,
                .subject = fmt::format("Reminder: invoice {} is unpaid", inv.id),
                .body = fmt::format("Dear {},\n\nwe have not yet received the payment of invoice {} for {}, "
                                    "due by {}.\nPay online: {}\n\nIf you have paid already, please ignore this "
                                    "e-mail.\n",
                                    inv.customer_name, inv.id, amount, due, pay_link),
                .tag = "reminder"};
        outbox.send(e);
        return e;
      });
      reminders = 1;
      // A payment made while the reminder was being sent, before this wait began, is not seen
      // here (see README.md); the rest of the 7 days is.
      payment.timeout = s.escalate_after - s.remind_after;
      paid = ctx.step.wait_for_event("wait-after-reminder", payment);
    }

    if (!paid) {
      ctx.step.run("escalate", [&] {
        Email e{.to = s.collections,
                .subject = fmt::format("Overdue: invoice {} ({})", inv.id, amount),
                .body = fmt::format("Invoice {} for {} to {} <{}> was sent on {} and is still unpaid {} later, "
                                    "after one reminder. It is now overdue: please take it over.\n",
                                    inv.id, amount, inv.customer_name, inv.customer_email, day_of(ctx.event.ts),
                                    describe(s.escalate_after)),
                .tag = "escalation"};
        outbox.send(e);
        return e;
      });
      return {{"invoiceId", inv.id}, {"status", "overdue"}, {"reminders", reminders}};
    }

    // The payment event is recorded in the journal: on replay `paid` is the same event.
    auto paid_amount = paid->data.find("amount");
    bool has_amount = paid_amount != paid->data.end() && paid_amount->is_number_integer();
    ctx.step.run("mark-paid", [&] {
      Email e{.to = inv.customer_email,
              .subject = fmt::format("Receipt for invoice {}", inv.id),
              .body = fmt::format("Dear {},\n\nthank you: we received your payment of {} for invoice {} on {}.\n",
                                  inv.customer_name,
                                  has_amount ? money(paid_amount->get<int64_t>(), inv.currency) : amount, inv.id,
                                  day_of(paid->ts)),
              .tag = "receipt"};
      outbox.send(e);
      return e;
    });
    return {{"invoiceId", inv.id},
            {"status", "paid"},
            {"reminders", reminders},
            {"paidAt", durable::to_millis(paid->ts)},
            {"amountPaid", has_amount ? *paid_amount : nlohmann::json(nullptr)}};
  };
}

}  // namespace invoice
