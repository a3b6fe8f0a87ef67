// The application's Stripe webhook endpoint, POST /webhooks/stripe: it checks the
// Stripe-Signature of each delivery over the raw body, and hands every genuine Stripe event to
// durable as the event "stripe/<type>" (e.g. "stripe/checkout.session.completed"), whose data
// is the Stripe event object. The durable event's dedup id is the Stripe event id, so a
// delivery that Stripe retries is acknowledged again but starts nothing new.
//
//   httplib::Server server;  // the application's own server
//   webhook::add_stripe_endpoint(server, {.secret = "whsec_..."},
//                                [&engine](const durable::Event& e) { return engine.send(e); });
//   server.listen("127.0.0.1", 3000);
//
// Answers, each with a JSON body:
//   200 {"received": true, "event_id": "<durable event id>"}   stored (or a known redelivery)
//   401 {"error": "..."}  no, a malformed or a wrong signature, or one signed too long ago
//   400 {"error": "..."}  signed, but not a JSON object with a string "id" and "type"
//   413 {"error": "..."}  a body over max_body_bytes
//   500 {"error": "..."}  durable could not store the event; Stripe retries later
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include <durable/event.hpp>

#include "webhook_signature.hpp"

namespace httplib {
class Server;
}

namespace webhook {

// The prefix of the durable event names: "stripe/" + the Stripe event type.
constexpr const char* kEventPrefix = "stripe/";

// Stores one event durably and returns its durable id: Engine::send, in practice. Throws
// durable::Error when the event cannot be stored. Called from the server's threads at once.
using SendEvent = std::function<std::string(const durable::Event&)>;

struct EndpointOptions {
  // Where Stripe POSTs (an httplib pattern, i.e. a regular expression). Default: /webhooks/stripe.
  std::string path = "/webhooks/stripe";
  // The endpoint's signing secret, "whsec_..." (Stripe's dashboard, or `stripe listen`). Required.
  std::string secret;
  // Largest body accepted, in bytes; larger: 413 before the signature is computed. Stripe
  // events are a few KiB. Default: 256 KiB. (httplib reads a body whole before any handler
  // runs; set the server's payload_max_length too, to bound that.)
  size_t max_body_bytes = 256 * 1024;
  // How far the signing time may be from now, either way. Default: 5 minutes.
  std::chrono::seconds tolerance = kTolerance;
  // The current time, for the tolerance check. Default (empty): the system clock.
  std::function<std::chrono::system_clock::time_point()> now;
};

// Registers the endpoint on `server`. `send` is called for each verified event, on the
// server's threads, and must stay callable as long as the server runs. Throws
// std::invalid_argument for an empty secret or an empty `send`.
void add_stripe_endpoint(httplib::Server& server, EndpointOptions options, SendEvent send);

}  // namespace webhook
