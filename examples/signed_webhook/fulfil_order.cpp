#include "fulfil_order.hpp"

#include <cctype>
#include <cstdint>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace {

// The string at `key` of the object `j`, or "" (Stripe sends null for many absent fields).
std::string text(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// 2500 and "eur" -> "25.00 EUR". Every currency here has cents; Stripe's zero-decimal ones
// (JPY, KRW, ...) would need a table.
std::string format_amount(int64_t minor_units, std::string currency) {
  for (char& c : currency) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return fmt::format("{}.{:02} {}", minor_units / 100, minor_units % 100, currency);
}

}  // namespace

OrderLog::OrderLog(std::string path) : path_(std::move(path)) {}

void OrderLog::append(const nlohmann::json& record) {
  std::lock_guard lock(mu_);
  std::ofstream out(path_, std::ios::app);
  out << record.dump() << '\n' << std::flush;
  if (!out) throw std::runtime_error(fmt::format("cannot append to {}", path_));
}

std::vector<nlohmann::json> OrderLog::records() const {
  std::lock_guard lock(mu_);
  std::vector<nlohmann::json> out;
  std::ifstream in(path_);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

void add_fulfil_order_function(durable::Engine& engine, OrderLog& orders) {
  engine.function(
      {.id = "fulfil-order", .name = "Fulfil a Stripe Checkout order", .retries = 3},
      durable::on_event("stripe/checkout.session.completed"),
      [&orders](durable::Context& ctx) -> nlohmann::json {
        // The event's data is the Stripe event; the Checkout session is its data.object.
        // Reading the event outside steps is safe: it is the same on every replay.
        const nlohmann::json& stripe_event = ctx.event.data;
        if (!stripe_event.contains("data") || !stripe_event["data"].is_object() ||
            !stripe_event["data"].contains("object") || !stripe_event["data"]["object"].is_object()) {
          throw durable::NonRetriableError("the Stripe event has no data.object: not a Checkout session");
        }
        const nlohmann::json& session = stripe_event["data"]["object"];
        std::string session_id = text(session, "id");
        std::string order_id = "order_" + session_id;
        if (text(session, "payment_status") != "paid") {
          // A delayed payment method (a bank debit): Stripe sends
          // checkout.session.async_payment_succeeded once the money is there.
          return {{"order", order_id}, {"fulfilled", false}, {"payment_status", text(session, "payment_status")}};
        }
        int64_t amount = session.contains("amount_total") && session["amount_total"].is_number_integer()
                             ? session["amount_total"].get<int64_t>()
                             : 0;
        std::string currency = text(session, "currency");
        std::string email = text(session.contains("customer_details") ? session["customer_details"] : nullptr, "email");
        if (email.empty()) email = text(session, "customer_email");

        // Each step runs once per order, even when the run is retried or the process restarts
        // in between (a crash in the middle of a step body runs that body again: real code
        // would pass order_id to its database and mail provider as an idempotency key).
        ctx.step.run("record-payment", [&] {
          orders.append({{"kind", "payment"},
                         {"order", order_id},
                         {"stripe_event", ctx.event.id},
                         {"amount", amount},
                         {"currency", currency}});
        });
        if (!email.empty()) {
          ctx.step.run("send-receipt", [&] {
            orders.append({{"kind", "receipt"},
                           {"order", order_id},
                           {"to", email},
                           {"text", fmt::format("Thank you! We received {} for your order {}.",
                                                format_amount(amount, currency), order_id)}});
          });
        }
        return {{"order", order_id},
                {"fulfilled", true},
                {"amount", format_amount(amount, currency)},
                {"receipt_to", email.empty() ? nlohmann::json(nullptr) : nlohmann::json(email)}};
      });
}
