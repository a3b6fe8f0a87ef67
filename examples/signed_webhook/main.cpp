// A Stripe webhook endpoint in front of durable. The application serves POST /webhooks/stripe
// on its own port; each delivery whose Stripe-Signature checks out becomes the durable event
// "stripe/<type>", and "stripe/checkout.session.completed" starts the durable function
// "fulfil-order" (record the payment, e-mail a receipt; fulfil_order.cpp). A delivery that
// Stripe retries is acknowledged again and starts nothing new. durable's own API (events,
// runs, the CLI) is served on a second port.
//
//   STRIPE_WEBHOOK_SECRET=whsec_... ./signed_webhook
//
// Environment (all optional):
//   STRIPE_WEBHOOK_SECRET  the endpoint's signing secret (default: a local development one)
//   WEBHOOK_HOST, WEBHOOK_PORT  where the webhook endpoint listens (127.0.0.1, 3000)
//   DURABLE_PORT           where durable's API listens (8288, on 127.0.0.1)
//   DURABLE_EVENT_KEY, DURABLE_API_KEY  keys of durable's API (local development ones)
//
// It prints an openssl + curl command that signs a sample event and sends it.
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <httplib.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <durable/durable.hpp>

#include "../common/env.hpp"
#include "fulfil_order.hpp"
#include "webhook_endpoint.hpp"

namespace {

constexpr const char* kDevSecret = "whsec_local_dev_secret_not_for_production";
constexpr size_t kMaxBodyBytes = 256 * 1024;

using examples::env_or;
using examples::env_port;

// The webhook server, listening on its own thread until destroyed.
class WebhookServer {
 public:
  WebhookServer(httplib::Server& server, const std::string& host, int port) : server_(server) {
    if (!server_.bind_to_port(host.c_str(), port)) {
      throw std::runtime_error(fmt::format("cannot listen on {}:{} (is the port in use?)", host, port));
    }
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      stopped_ = true;
    });
    // httplib ignores stop() until it runs.
    while (!server_.is_running() && !stopped_) std::this_thread::yield();
  }
  ~WebhookServer() {
    server_.stop();
    thread_.join();
  }

 private:
  httplib::Server& server_;
  std::thread thread_;
  std::atomic<bool> stopped_ = false;
};

// What to paste into a shell to send a signed checkout.session.completed event. The secret
// is written out only when it is the development default.
std::string curl_hint(const std::string& url, bool secret_from_env) {
  std::string secret = secret_from_env ? "$STRIPE_WEBHOOK_SECRET" : kDevSecret;
  return fmt::format(
      "  body='{{\"id\":\"evt_test_'$(date +%s)'\",\"object\":\"event\",\"type\":\"checkout.session.completed\","
      "\"data\":{{\"object\":{{\"id\":\"cs_test_1\",\"object\":\"checkout.session\",\"payment_status\":\"paid\","
      "\"amount_total\":2500,\"currency\":\"eur\",\"customer_details\":{{\"email\":\"ada@example.com\"}}}}}}}}'\n"
      "  t=$(date +%s)\n"
      "  sig=$(printf '%s' \"$t.$body\" | openssl dgst -sha256 -hmac \"{}\" | awk '{{print $NF}}')\n"
      "  curl -i -H \"Stripe-Signature: t=$t,v1=$sig\" -H 'Content-Type: application/json' \\\n"
      "       --data-binary \"$body\" {}\n",
      secret, url);
}

}  // namespace

int main() {
  try {
    const char* configured_secret = std::getenv("STRIPE_WEBHOOK_SECRET");
    bool secret_from_env = configured_secret && *configured_secret;
    std::string secret = secret_from_env ? configured_secret : kDevSecret;
    std::string webhook_host = env_or("WEBHOOK_HOST", "127.0.0.1");
    int webhook_port = env_port("WEBHOOK_PORT", 3000);
    int durable_port = env_port("DURABLE_PORT", 8288);
    std::string event_key = env_or("DURABLE_EVENT_KEY", "local-dev-key");
    std::string api_key = env_or("DURABLE_API_KEY", "local-dev-api-key");

    OrderLog orders("orders.jsonl");  // declared first: the engine's function refers to it
    durable::Engine engine({.database = "signed_webhook.db"});
    add_fulfil_order_function(engine, orders);

    httplib::Server webhooks;
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second copy of this
    // program would share the port (and the requests) instead of failing to start.
    webhooks.set_socket_options([](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    // httplib reads a body whole before calling a handler; over this it answers 413 unread.
    webhooks.set_payload_max_length(kMaxBodyBytes);
    webhooks.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;  // the endpoint's own answers
      std::string message = res.status == 413   ? fmt::format("the body is over the limit of {} bytes", kMaxBodyBytes)
                            : res.status == 404 ? std::string("no such endpoint: Stripe webhooks go to POST /webhooks/stripe")
                                                : fmt::format("HTTP {}", res.status);
      res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
    });
    webhooks.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::cerr << fmt::format("webhook: {} {} -> {} {}\n", req.method, req.path, res.status, res.body);
    });
    webhook::add_stripe_endpoint(webhooks, {.secret = secret, .max_body_bytes = kMaxBodyBytes},
                                 [&engine](const durable::Event& e) { return engine.send(e); });
    WebhookServer listening(webhooks, webhook_host, webhook_port);

    std::string url = fmt::format("http://{}:{}/webhooks/stripe", webhook_host, webhook_port);
    std::cout << fmt::format(
                     "\nsigned_webhook: Stripe webhooks go to {}\n"
                     "signing secret: {}\n\n"
                     "send a signed checkout.session.completed event with\n\n{}\n"
                     "(run the t=, sig= and curl lines again to redeliver the same event, as Stripe does on a retry:\n"
                     "it is answered 200 again and starts no second run)\n\n"
                     "to forward real test-mode events instead: stripe listen --forward-to {}\n"
                     "then restart this program with STRIPE_WEBHOOK_SECRET set to the whsec_ secret it prints.\n\n"
                     "payments and receipts are appended to {}; watch the runs with the CLI (docs/cli.md):\n\n"
                     "  DURABLE_API_KEY={} build/durable --url http://127.0.0.1:{} runs\n\n"
                     "Ctrl-C stops.\n",
                     url,
                     secret_from_env ? "from STRIPE_WEBHOOK_SECRET (not printed: the command below reads it from your shell)"
                                     : fmt::format("{} (the local development default: STRIPE_WEBHOOK_SECRET is not set)",
                                                   kDevSecret),
                     curl_hint(url, secret_from_env), url, orders.path(), api_key, durable_port)
              << std::flush;
    return engine.serve({.port = durable_port, .event_keys = {event_key}, .api_keys = {api_key}});
  } catch (const std::exception& e) {
    std::cerr << "signed_webhook: " << e.what() << "\n";
    return 1;
  }
}
