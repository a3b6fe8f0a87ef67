// The order-fulfilment workflow: when Stripe reports a paid Checkout session, record the
// payment and e-mail the customer a receipt. Our stand-ins for the order database and the
// mail server are one append-only JSON-lines file (watch it with `tail -f`). main.cpp runs it
// behind the webhook endpoint; tests/signed_webhook_test.cpp runs it on an engine.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include <durable/durable.hpp>

// An append-only file of JSON records, one a line.
class OrderLog {
 public:
  // The file at `path` is created on the first append.
  explicit OrderLog(std::string path);

  // Appends `record` as one line and flushes it. Thread-safe. Throws std::runtime_error when
  // the file cannot be written.
  void append(const nlohmann::json& record);

  // Every record, oldest first (none if the file does not exist). Thread-safe.
  std::vector<nlohmann::json> records() const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  mutable std::mutex mu_;  // serialises appends and reads of path_
};

// Registers "fulfil-order", triggered by "stripe/checkout.session.completed" events whose data
// is the Stripe event (the session is data.data.object). A paid session gets two steps:
// "record-payment" appends {"kind": "payment", ...} to `orders`, and "send-receipt" appends
// {"kind": "receipt", "to": <email>, ...} when the session has a customer e-mail. A session
// not paid yet (a delayed payment method) is left alone. `orders` must outlive the engine.
void add_fulfil_order_function(durable::Engine& engine, OrderLog& orders);
