// The signed-webhook example: Stripe-Signature verification (a known HMAC vector, tampering,
// the wrong secret, the 5-minute tolerance either way, rolled secrets, malformed headers), and
// the endpoint over HTTP on 127.0.0.1 in front of a real engine running fulfil-order: a good
// delivery completes a run, a bad one is refused with 401 and stores nothing, and a redelivery
// of the same Stripe event starts no second run. Time is injected; nothing sleeps.
#include <atomic>
#include <cctype>
#include <optional>
#include <thread>

#include <httplib.h>

#include <doctest/doctest.h>

#include "examples/signed_webhook/fulfil_order.hpp"
#include "examples/signed_webhook/webhook_endpoint.hpp"
#include "examples/signed_webhook/webhook_signature.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;
using webhook::SignatureStatus;

namespace {

constexpr const char* kSecret = "whsec_test_secret";
constexpr const char* kApiKey = "test-api-key";

// Computed with openssl:
//   printf '%s' '1700000000.{"id":"evt_1","type":"checkout.session.completed"}' | openssl dgst -sha256 -hmac whsec_test_secret
constexpr int64_t kVectorTime = 1700000000;
constexpr const char* kVectorBody = R"({"id":"evt_1","type":"checkout.session.completed"})";
constexpr const char* kVectorSignature = "a13d4b1f9003bc2fb6c06224e878b6056185eaa50d40e1e7dc05517f8af41d7b";

std::chrono::system_clock::time_point at(int64_t unix_seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
}

int64_t unix_seconds(const Clock& clock) { return to_millis(clock.now()) / 1000; }

// A Stripe checkout.session.completed event, as Stripe sends it (abridged).
std::string checkout_completed(const std::string& event_id, const std::string& session_id = "cs_test_1") {
  return nlohmann::json{{"id", event_id},
                        {"object", "event"},
                        {"type", "checkout.session.completed"},
                        {"created", 1893455990},
                        {"livemode", false},
                        {"data",
                         {{"object",
                           {{"id", session_id},
                            {"object", "checkout.session"},
                            {"payment_status", "paid"},
                            {"amount_total", 2500},
                            {"currency", "eur"},
                            {"customer_details", {{"email", "ada@example.com"}}}}}}}}
      .dump();
}

// The example's endpoint on 127.0.0.1 (a free port), handing events to `send`, at the time
// `now` says.
class Endpoint {
 public:
  Endpoint(webhook::SendEvent send, std::function<std::chrono::system_clock::time_point()> now,
           size_t max_body_bytes = 256 * 1024) {
    webhook::add_stripe_endpoint(server_, {.secret = kSecret, .max_body_bytes = max_body_bytes, .now = std::move(now)},
                                 std::move(send));
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();  // stop() is ignored before that
  }
  ~Endpoint() {
    server_.stop();
    thread_.join();
  }

  // POSTs `body` to /webhooks/stripe with `signature` as Stripe-Signature (none: no header).
  httplib::Result post(const std::string& body, std::optional<std::string> signature) {
    httplib::Client client("127.0.0.1", port_);
    httplib::Headers headers;
    if (signature) headers.emplace(webhook::kSignatureHeader, *signature);
    return client.Post("/webhooks/stripe", headers, body, "application/json");
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// GET `path` of durable's API at `port`, with the API key; the JSON it answers.
nlohmann::json api_get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get(path.c_str(), httplib::Headers{{"Authorization", std::string("Bearer ") + kApiKey}});
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 200, res->body);
  return nlohmann::json::parse(res->body);
}

int status_of(const httplib::Result& res) { return res ? res->status : -1; }

nlohmann::json body_of(const httplib::Result& res) {
  REQUIRE(res);
  return nlohmann::json::parse(res->body);
}

// The example as it runs in main.cpp: an engine with fulfil-order (on a manual clock, with its
// API on a free port to list events and runs) behind the endpoint, which reads the same clock.
struct Shop {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  OrderLog orders{dir.file("orders.jsonl")};
  Engine engine{engine_options(dir.file("engine.db"), clock)};
  int api_port = 0;
  std::optional<Endpoint> endpoint;

  Shop() {
    add_fulfil_order_function(engine, orders);
    api_port = engine.listen({.port = 0, .event_keys = {"test-event-key"}, .api_keys = {kApiKey}});
    endpoint.emplace([this](const Event& e) { return engine.send(e); }, [clock = clock] { return clock->now(); });
  }

  // Delivers `body` signed with `secret` at the clock's time, as Stripe does.
  httplib::Result deliver(const std::string& body, const std::string& secret = kSecret) {
    return endpoint->post(body, webhook::sign(secret, unix_seconds(*clock), body));
  }

  std::vector<nlohmann::json> stored_events() {
    return api_get(api_port, "/v1/events").at("events").get<std::vector<nlohmann::json>>();
  }
  std::vector<nlohmann::json> fulfil_order_runs() {
    return api_get(api_port, "/v1/runs?function=fulfil-order").at("runs").get<std::vector<nlohmann::json>>();
  }
  size_t records_of_kind(const std::string& kind) {
    size_t n = 0;
    for (const auto& r : orders.records()) n += r.at("kind") == kind;
    return n;
  }
};

}  // namespace

TEST_SUITE("signed_webhook") {
  TEST_CASE("sign() gives the HMAC-SHA256 that openssl computes for a known vector") {
    CHECK(webhook::compute_signature(kSecret, kVectorTime, kVectorBody) == kVectorSignature);
    CHECK(webhook::sign(kSecret, kVectorTime, kVectorBody) == std::string("t=1700000000,v1=") + kVectorSignature);
    auto check = webhook::verify(std::string("t=1700000000,v1=") + kVectorSignature, kVectorBody, kSecret,
                                 at(kVectorTime));
    CHECK(check.ok());
    CHECK(check.reason.empty());
  }

  TEST_CASE("a valid signature is accepted") {
    std::string body = checkout_completed("evt_2");
    auto check = webhook::verify(webhook::sign(kSecret, kVectorTime, body), body, kSecret, at(kVectorTime));
    CHECK(check.status == SignatureStatus::valid);
    CHECK(check.ok());
  }

  TEST_CASE("a tampered body is rejected") {
    std::string body = checkout_completed("evt_3");
    std::string header = webhook::sign(kSecret, kVectorTime, body);
    std::string tampered = body;
    SUBCASE("one byte changed") { tampered.replace(tampered.find("2500"), 4, "2501"); }
    SUBCASE("the same JSON, reformatted") { tampered = nlohmann::json::parse(body).dump(2); }
    SUBCASE("a trailing newline") { tampered += "\n"; }
    SUBCASE("a different timestamp with the same signature") {
      header = "t=1700000001,v1=" + webhook::compute_signature(kSecret, kVectorTime, body);
    }
    auto check = webhook::verify(header, tampered, kSecret, at(kVectorTime));
    CHECK(check.status == SignatureStatus::no_matching_signature);
    CHECK(check.reason.find("no v1 signature matches") != std::string::npos);
  }

  TEST_CASE("a signature made with another secret is rejected") {
    std::string body = checkout_completed("evt_4");
    auto check = webhook::verify(webhook::sign("whsec_someone_else", kVectorTime, body), body, kSecret, at(kVectorTime));
    CHECK(check.status == SignatureStatus::no_matching_signature);
    CHECK_FALSE(check.ok());
  }

  TEST_CASE("the timestamp may be at most 5 minutes old or ahead") {
    std::string body = checkout_completed("evt_5");
    std::string header = webhook::sign(kSecret, kVectorTime, body);
    auto at_offset = [&](int64_t seconds_later) { return webhook::verify(header, body, kSecret, at(kVectorTime + seconds_later)); };

    CHECK(at_offset(299).ok());
    CHECK(at_offset(300).ok());
    CHECK(at_offset(-299).ok());
    CHECK(at_offset(-300).ok());

    auto old = at_offset(301);
    CHECK(old.status == SignatureStatus::timestamp_outside_tolerance);
    CHECK(old.reason.find("signed 301 s ago") != std::string::npos);
    auto future = at_offset(-301);
    CHECK(future.status == SignatureStatus::timestamp_outside_tolerance);
    CHECK(future.reason.find("301 s in the future") != std::string::npos);
    CHECK(at_offset(-86400).status == SignatureStatus::timestamp_outside_tolerance);
    // A narrower tolerance is honoured too.
    CHECK(webhook::verify(header, body, kSecret, at(kVectorTime + 11), 10s).status ==
          SignatureStatus::timestamp_outside_tolerance);
  }

  TEST_CASE("any of several v1 signatures may match, so a secret can be rolled") {
    std::string body = checkout_completed("evt_6");
    std::string good = webhook::compute_signature(kSecret, kVectorTime, body);
    std::string old = webhook::compute_signature("whsec_old_secret", kVectorTime, body);
    std::string header;
    SUBCASE("the matching one last") { header = "t=1700000000,v1=" + old + ",v1=" + good; }
    SUBCASE("the matching one first") { header = "t=1700000000,v1=" + good + ",v1=" + old; }
    SUBCASE("with a v0 and spaces") { header = "t=1700000000, v1=" + old + ", v0=abc, v1=" + good; }
    SUBCASE("timestamp last") { header = "v1=" + old + ",v1=" + good + ",t=1700000000"; }
    SUBCASE("upper-case hex") {
      for (char& c : good) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      header = "t=1700000000,v1=" + good;
    }
    CHECK(webhook::verify(header, body, kSecret, at(kVectorTime)).ok());

    // None matching: still refused, however many there are.
    std::string other = webhook::compute_signature("whsec_other", kVectorTime, body);
    CHECK(webhook::verify("t=1700000000,v1=" + old + ",v1=" + other + ",v1=zz", body, kSecret, at(kVectorTime)).status ==
          SignatureStatus::no_matching_signature);
  }

  TEST_CASE("a missing or malformed header is refused with its reason") {
    std::string body = checkout_completed("evt_7");
    std::string good = webhook::compute_signature(kSecret, kVectorTime, body);
    auto verify = [&](std::optional<std::string> header) {
      return webhook::verify(header ? std::optional<std::string_view>(*header) : std::nullopt, body, kSecret,
                             at(kVectorTime));
    };

    auto missing = verify(std::nullopt);
    CHECK(missing.status == SignatureStatus::missing_header);
    CHECK(missing.reason == "the request has no Stripe-Signature header");

    struct Case {
      std::string header;
      std::string reason;
    };
    for (const Case& c : std::vector<Case>{
             {"", "malformed Stripe-Signature header: it is empty"},
             {"  ", "malformed Stripe-Signature header: it is empty"},
             {"v1=" + good, "malformed Stripe-Signature header: it has no timestamp (t=)"},
             {"t=17000000o0,v1=" + good, "malformed Stripe-Signature header: the timestamp (t=) is not a number of seconds"},
             {"t=-1700000000,v1=" + good, "malformed Stripe-Signature header: the timestamp (t=) is not a number of seconds"},
             {"t=,v1=" + good, "malformed Stripe-Signature header: the timestamp (t=) is not a number of seconds"},
             {"t=1234567890123456789,v1=" + good,
              "malformed Stripe-Signature header: the timestamp (t=) is not a number of seconds"},
             {"t=1700000000", "malformed Stripe-Signature header: it has no v1 signature"},
             {"t=1700000000,v0=" + good, "malformed Stripe-Signature header: it has no v1 signature"},
             {"t=1700000000,t=1700000000,v1=" + good, "malformed Stripe-Signature header: it has more than one timestamp (t=)"},
             {"t=1700000000," + good, "malformed Stripe-Signature header: an element is not key=value"},
         }) {
      CAPTURE(c.header);
      auto check = verify(c.header);
      CHECK(check.status == SignatureStatus::malformed_header);
      CHECK(check.reason == c.reason);
    }
  }

  TEST_CASE("a signed checkout.session.completed delivery starts fulfil-order, which records the payment and mails a receipt") {
    Shop shop;
    auto res = shop.deliver(checkout_completed("evt_100"));
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "application/json");
    auto answer = body_of(res);
    CHECK(answer.at("received") == true);
    std::string event_id = answer.at("event_id").get<std::string>();

    REQUIRE(shop.engine.drain());
    Run run = only_run(shop.engine, event_id);
    CHECK(run.function_id == "fulfil-order");
    REQUIRE(run.status == RunStatus::completed);
    CHECK(run.output == nlohmann::json{{"order", "order_cs_test_1"},
                                       {"fulfilled", true},
                                       {"amount", "25.00 EUR"},
                                       {"receipt_to", "ada@example.com"}});

    // The durable event: named for the Stripe type, the Stripe event as its data, the Stripe
    // id as its dedup id, and Stripe's `created` as its time.
    auto event = api_get(shop.api_port, "/v1/events/" + event_id);
    CHECK(event.at("name") == "stripe/checkout.session.completed");
    CHECK(event.at("sender_id") == "evt_100");
    CHECK(event.at("data") == nlohmann::json::parse(checkout_completed("evt_100")));
    CHECK(event.at("ts") == int64_t{1893455990} * 1000);

    auto records = shop.orders.records();
    REQUIRE(records.size() == 2);
    CHECK(records[0] == nlohmann::json{{"kind", "payment"},
                                       {"order", "order_cs_test_1"},
                                       {"stripe_event", "evt_100"},
                                       {"amount", 2500},
                                       {"currency", "eur"}});
    CHECK(records[1].at("kind") == "receipt");
    CHECK(records[1].at("to") == "ada@example.com");
    CHECK(records[1].at("text") == "Thank you! We received 25.00 EUR for your order order_cs_test_1.");
  }

  TEST_CASE("a delivery with a bad signature is answered 401 with the reason and stores nothing") {
    Shop shop;
    std::string body = checkout_completed("evt_200");
    std::optional<httplib::Result> res;
    std::string reason;
    SUBCASE("the wrong secret") {
      res.emplace(shop.deliver(body, "whsec_not_the_endpoint_secret"));
      reason = "no v1 signature matches";
    }
    SUBCASE("a tampered body") {
      std::string header = webhook::sign(kSecret, unix_seconds(*shop.clock), body);
      std::string tampered = body;
      tampered.replace(tampered.find("2500"), 4, "1");
      res.emplace(shop.endpoint->post(tampered, header));
      reason = "no v1 signature matches";
    }
    SUBCASE("no header") {
      res.emplace(shop.endpoint->post(body, std::nullopt));
      reason = "the request has no Stripe-Signature header";
    }
    SUBCASE("a malformed header") {
      res.emplace(shop.endpoint->post(body, "v1=" + webhook::compute_signature(kSecret, unix_seconds(*shop.clock), body)));
      reason = "it has no timestamp (t=)";
    }
    SUBCASE("a replay of a delivery signed 10 minutes ago") {
      res.emplace(shop.endpoint->post(body, webhook::sign(kSecret, unix_seconds(*shop.clock) - 600, body)));
      reason = "signed 600 s ago";
    }
    REQUIRE((res && *res));
    CHECK((*res)->status == 401);
    CHECK(body_of(*res).at("error").get<std::string>().find(reason) != std::string::npos);

    REQUIRE(shop.engine.drain());
    CHECK(shop.stored_events().empty());
    CHECK(api_get(shop.api_port, "/v1/runs").at("runs").empty());
    CHECK(shop.orders.records().empty());
  }

  TEST_CASE("a redelivered Stripe event is answered 200 again but starts no second run") {
    Shop shop;
    std::string body = checkout_completed("evt_300");
    auto first = shop.deliver(body);
    REQUIRE(first);
    REQUIRE(first->status == 200);
    std::string first_id = body_of(first).at("event_id").get<std::string>();
    REQUIRE(shop.engine.drain());
    REQUIRE(only_run(shop.engine, first_id).status == RunStatus::completed);

    // Stripe retries an hour later (our 200 was lost, say), signing the same body anew.
    advance(shop.engine, *shop.clock, 1h);
    auto again = shop.deliver(body);
    REQUIRE(again);
    CHECK(again->status == 200);
    auto answer = body_of(again);
    CHECK(answer.at("received") == true);
    std::string second_id = answer.at("event_id").get<std::string>();
    REQUIRE(shop.engine.drain());

    CHECK(shop.engine.runs_for_event(second_id).empty());
    CHECK(api_get(shop.api_port, "/v1/events/" + second_id).at("duplicate") == true);
    auto runs = shop.fulfil_order_runs();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].at("event_id") == first_id);
    CHECK(shop.records_of_kind("payment") == 1);
    CHECK(shop.records_of_kind("receipt") == 1);

    // A different Stripe event for another order is not a duplicate.
    auto other = shop.deliver(checkout_completed("evt_301", "cs_test_2"));
    REQUIRE(other);
    CHECK(other->status == 200);
    REQUIRE(shop.engine.drain());
    CHECK(only_run(shop.engine, body_of(other).at("event_id").get<std::string>()).status == RunStatus::completed);
    CHECK(shop.fulfil_order_runs().size() == 2);
    CHECK(shop.records_of_kind("payment") == 2);
  }

  TEST_CASE("a signed body that is not a Stripe event is answered 400 and stores nothing") {
    Shop shop;
    std::string body;
    std::string reason;
    SUBCASE("not JSON") {
      body = "id=evt_1&type=charge.succeeded";
      reason = "the body is not a JSON object";
    }
    SUBCASE("a JSON array") {
      body = R"([{"id":"evt_1","type":"charge.succeeded"}])";
      reason = "the body is not a JSON object";
    }
    SUBCASE("no id") {
      body = R"({"type":"charge.succeeded"})";
      reason = "the event has no \"id\"";
    }
    SUBCASE("a numeric id") {
      body = R"({"id":17,"type":"charge.succeeded"})";
      reason = "the event has no \"id\"";
    }
    SUBCASE("no type") {
      body = R"({"id":"evt_1"})";
      reason = "the event has no \"type\"";
    }
    SUBCASE("an empty type") {
      body = R"({"id":"evt_1","type":""})";
      reason = "the event has no \"type\"";
    }
    SUBCASE("a type too long for an event name") {
      body = nlohmann::json{{"id", "evt_1"}, {"type", std::string(600, 'x')}}.dump();
      reason = "the event type is too long";
    }
    auto res = shop.deliver(body);
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(body_of(res).at("error").get<std::string>().find(reason) != std::string::npos);
    CHECK(shop.stored_events().empty());
  }

  TEST_CASE("a body over the limit is answered 413 before its signature is checked") {
    std::atomic<int> sent = 0;
    Endpoint endpoint([&](const Event&) { return std::to_string(++sent); }, [] { return at(kVectorTime); },
                      /*max_body_bytes=*/1024);
    std::string big = nlohmann::json{{"id", "evt_1"}, {"type", "charge.succeeded"}, {"pad", std::string(1100, 'x')}}.dump();
    auto res = endpoint.post(big, webhook::sign(kSecret, kVectorTime, big));
    REQUIRE(res);
    CHECK(res->status == 413);
    CHECK(body_of(res).at("error").get<std::string>().find("the limit is 1024 bytes") != std::string::npos);
    CHECK(status_of(endpoint.post(big, std::nullopt)) == 413);  // no signature needed to be refused for size

    std::string small = R"({"id":"evt_1","type":"charge.succeeded"})";
    CHECK(status_of(endpoint.post(small, webhook::sign(kSecret, kVectorTime, small))) == 200);
    CHECK(sent == 1);
  }

  TEST_CASE("an event durable cannot store is answered 500, so Stripe retries it") {
    Endpoint endpoint([](const Event&) -> std::string { throw Error("database is locked"); },
                      [] { return at(kVectorTime); });
    auto res = endpoint.post(kVectorBody, webhook::sign(kSecret, kVectorTime, kVectorBody));
    REQUIRE(res);
    CHECK(res->status == 500);
    CHECK(body_of(res).at("error") == "the event could not be stored: database is locked");
  }

  TEST_CASE("the endpoint refuses to start without a secret") {
    httplib::Server server;
    CHECK_THROWS_AS(webhook::add_stripe_endpoint(server, {.secret = ""}, [](const Event&) { return std::string(); }),
                    std::invalid_argument);
  }
}
