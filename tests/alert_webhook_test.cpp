// The failure alert webhook: a failed run is POSTed, signed, to a real receiver on 127.0.0.1;
// delivery is retried on the backoff table (moved by a ManualClock); completed runs send
// nothing; bad configurations are refused at construction.
#include <stdlib.h>

#include <functional>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <doctest/doctest.h>

#include "engine/exec/alert_webhook.hpp"
#include "engine/store/open_store.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kSecret = "whsec_test";
constexpr const char* kPath = "/hooks/secret-token";

// An HTTP server on 127.0.0.1 that records what is POSTed to kPath and answers with the given
// statuses in turn (the last one from then on).
class Receiver {
 public:
  struct Request {
    std::string body;
    std::string signature;
    std::string content_type;
    std::string event_id;
  };

  explicit Receiver(std::vector<int> answers = {200}) : answers_(std::move(answers)) {
    server_.Post(kPath, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      if (on_request_) on_request_(req.body);
      requests_.push_back({req.body, req.get_header_value(kAlertSignatureHeader), req.get_header_value("Content-Type"),
                           req.get_header_value(kAlertEventIdHeader)});
      res.status = answers_[std::min(requests_.size(), answers_.size()) - 1];
      if (res.status >= 300 && !retry_after_.empty()) res.set_header("Retry-After", retry_after_);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();  // stop() is ignored before that
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + kPath; }
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // Sent with every non-2xx answer from now on.
  void retry_after(std::string seconds) {
    std::lock_guard lock(mu_);
    retry_after_ = std::move(seconds);
  }
  // Calls `fn` with each body as it arrives, before answering.
  void on_request(std::function<void(const std::string&)> fn) {
    std::lock_guard lock(mu_);
    on_request_ = std::move(fn);
  }

 private:
  httplib::Server server_;
  std::vector<int> answers_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Request> requests_;
  std::function<void(const std::string&)> on_request_;
  std::string retry_after_;
};

EngineOptions with_webhook(EngineOptions options, std::string url, std::string secret = kSecret) {
  options.alert_webhook = AlertWebhook{std::move(url), std::move(secret)};
  return options;
}

// A function whose one step fails for good at its first attempt.
void add_failing_function(Engine& engine) {
  engine.function({.id = "charge", .retries = 0}, on_event("test/charge"), [](Context& ctx) {
    ctx.step.run("card", []() -> int { throw std::runtime_error("card service down"); });
  });
}

// t and v1 of "t=<t>,v1=<hex>".
std::pair<int64_t, std::string> parse_signature(const std::string& header) {
  REQUIRE(header.rfind("t=", 0) == 0);
  size_t comma = header.find(",v1=");
  REQUIRE(comma != std::string::npos);
  return {std::stoll(header.substr(2, comma - 2)), header.substr(comma + 4)};
}

std::vector<Run> alert_runs(const std::string& database) {
  auto store_owner = open_store(database, {});
  Store& store = *store_owner;
  return store.list_runs(RunFilter{.function_id = kAlertWebhookFunctionId}, 100, "");
}

std::string construction_error(std::optional<AlertWebhook> webhook) {
  try {
    Engine engine({.database = ":memory:", .log_level = "off", .alert_webhook = std::move(webhook)});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

}  // namespace

TEST_SUITE("alerts") {
  TEST_CASE("sign_alert is HMAC-SHA256 over \"<t>.<body>\" in hex (checked against openssl dgst -hmac)") {
    // printf '%s' '1893456000.{"function_id":"charge","run_id":"r1"}' | openssl dgst -sha256 -hmac whsec_test
    CHECK(sign_alert("whsec_test", 1893456000, R"({"function_id":"charge","run_id":"r1"})") ==
          "e759b7df2f9fb5444ac82edd31c864aa44d65d123d6e3a8d598e834bde4cc7df");
  }

  TEST_CASE("alert URLs are taken apart into scheme, host, port and path") {
    AlertUrl u = parse_alert_url("https://alerts.example.com/hooks/x?team=ops#frag");
    CHECK(u.scheme == "https");
    CHECK(u.host == "alerts.example.com");
    CHECK(u.port == 443);
    CHECK(u.path == "/hooks/x?team=ops");
    u = parse_alert_url("HTTP://127.0.0.1:9000");
    CHECK(u.scheme == "http");
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 9000);
    CHECK(u.path == "/");
    u = parse_alert_url("http://[::1]:8080/a");
    CHECK(u.host == "[::1]");
    CHECK(u.port == 8080);
    CHECK(u.path == "/a");
    CHECK(parse_alert_url("http://h?x=1").path == "/?x=1");
  }

  TEST_CASE("an invalid webhook configuration fails the Engine's construction, saying why") {
    CHECK(construction_error(AlertWebhook{"ftp://example.com/x", kSecret}).find("the scheme must be http or https") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"example.com/x", kSecret}).find("expected http://host") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http:///x", kSecret}).find("the host is missing") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://h:0/x", kSecret}).find("the port must be") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://h:70000/x", kSecret}).find("the port must be") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://h:x/", kSecret}).find("the port must be") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://u:p@h/x", kSecret}).find("credentials") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://h/a b", kSecret}).find("space") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://[::1/x", kSecret}).find("']'") != std::string::npos);
    CHECK(construction_error(AlertWebhook{"http://h/x", ""}) == "the alert webhook's secret is empty: set AlertWebhook::secret");
    CHECK(construction_error(AlertWebhook{"http://h/x", kSecret}) == "");
    CHECK(construction_error(std::nullopt) == "");
  }

  TEST_CASE("a run that fails for good is POSTed once, signed, after its failure is recorded") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Receiver receiver;
    Engine engine(with_webhook(engine_options(dir.file("t.db"), clock), receiver.url()));
    std::optional<RunStatus> status_at_delivery;
    receiver.on_request([&](const std::string& body) {
      status_at_delivery = engine.get_run(nlohmann::json::parse(body).at("run_id").get<std::string>())->status;
    });
    add_failing_function(engine);
    engine.start();
    auto event_id = engine.send({.name = "test/charge"});
    REQUIRE(engine.drain());
    advance(engine, *clock, 24h);  // nothing is sent again

    Run failed = only_run(engine, event_id);
    CHECK(failed.status == RunStatus::failed);
    auto requests = receiver.requests();
    REQUIRE(requests.size() == 1);
    CHECK(status_at_delivery == RunStatus::failed);
    auto body = nlohmann::json::parse(requests[0].body);
    CHECK(body["run_id"] == failed.id);
    CHECK(body["function_id"] == "charge");
    CHECK(body["status"] == "failed");
    CHECK(body["event"] == nlohmann::json{{"id", event_id}, {"name", "test/charge"}});
    CHECK(body["error"] == failed.error);
    CHECK(body["error"]["message"] == "card service down");
    CHECK(body["error"]["step"] == "card");
    CHECK(requests[0].content_type == "application/json");

    auto [t, v1] = parse_signature(requests[0].signature);
    CHECK(t == to_millis(clock->now() - 24h) / 1000);  // the engine's clock when it was sent
    CHECK(v1 == sign_alert(kSecret, t, requests[0].body));
    CHECK(v1 != sign_alert("another secret", t, requests[0].body));

    // The delivery is a run of its own, listed like any other.
    auto runs = alert_runs(dir.file("t.db"));
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].status == RunStatus::completed);
    CHECK(runs[0].output == nlohmann::json{{"status", 200}});
    CHECK(requests[0].event_id == runs[0].event_id);  // the durable/function.failed event
  }

  TEST_CASE("a receiver that answers 500 twice then 200 gets the alert after retries; the failed run is unaffected") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Receiver receiver({500, 500, 200});
    Engine engine(with_webhook(engine_options(dir.file("t.db"), clock), receiver.url()));
    add_failing_function(engine);
    engine.start();
    auto event_id = engine.send({.name = "test/charge"});
    REQUIRE(engine.drain());
    CHECK(receiver.requests().size() == 1);
    CHECK(only_run(engine, event_id).status == RunStatus::failed);
    auto runs = alert_runs(dir.file("t.db"));
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].status == RunStatus::queued);  // waiting for its retry

    // The error stored for the attempt names the receiver, not the URL's path (a credential,
    // often).
    auto failures = entries_of(read_journal(dir.file("t.db"), runs[0].id), JournalKind::step_failed);
    REQUIRE(failures.size() == 1);
    std::string message = nlohmann::json::parse(failures[0].payload)["error"]["message"];
    CHECK(message.find("answered HTTP 500") != std::string::npos);
    CHECK(message.find("secret-token") == std::string::npos);

    // The default table: 15 s, then 30 s, each plus up to 30 s of jitter.
    advance(engine, *clock, 45s);
    CHECK(receiver.requests().size() == 2);
    advance(engine, *clock, 60s);
    auto requests = receiver.requests();
    REQUIRE(requests.size() == 3);
    CHECK(requests[2].body == requests[0].body);
    CHECK(!requests[0].event_id.empty());
    CHECK(requests[2].event_id == requests[0].event_id);  // the receiver's dedupe key
    auto [t, v1] = parse_signature(requests[2].signature);
    CHECK(t == to_millis(clock->now()) / 1000);  // signed afresh for each attempt
    CHECK(v1 == sign_alert(kSecret, t, requests[2].body));
    CHECK(alert_runs(dir.file("t.db"))[0].status == RunStatus::completed);
    Run failed = only_run(engine, event_id);
    CHECK(failed.status == RunStatus::failed);
    CHECK(failed.error["message"] == "card service down");
  }

  TEST_CASE("a 429 with Retry-After is retried after that many seconds") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Receiver receiver({429, 200});
    receiver.retry_after("120");
    Engine engine(with_webhook(engine_options(dir.file("t.db"), clock), receiver.url()));
    add_failing_function(engine);
    engine.start();
    engine.send({.name = "test/charge"});
    REQUIRE(engine.drain());
    auto runs = alert_runs(dir.file("t.db"));
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].status == RunStatus::queued);
    CHECK(runs[0].available_at == clock->now() + 120s);
    advance(engine, *clock, 120s);
    CHECK(receiver.requests().size() == 2);
    CHECK(alert_runs(dir.file("t.db"))[0].status == RunStatus::completed);
  }

  TEST_CASE("a completed run sends nothing") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Receiver receiver;
    Engine engine(with_webhook(engine_options(dir.file("t.db"), clock), receiver.url()));
    engine.function({.id = "ok"}, on_event("test/ok"), [](Context& ctx) { return ctx.step.run("s", [] { return 1; }); });
    engine.start();
    auto event_id = engine.send({.name = "test/ok"});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).status == RunStatus::completed);
    CHECK(receiver.requests().empty());
    CHECK(alert_runs(dir.file("t.db")).empty());
  }

  TEST_CASE("DURABLE_ALERT_URL and DURABLE_ALERT_SECRET configure the webhook when EngineOptions leave it unset") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Receiver receiver;
    ScopedEnv url("DURABLE_ALERT_URL", receiver.url().c_str());
    CHECK(construction_error(std::nullopt) == "DURABLE_ALERT_URL is set but DURABLE_ALERT_SECRET is not: alerts are signed with it");
    ScopedEnv secret("DURABLE_ALERT_SECRET", "from-env");
    Engine engine(engine_options(dir.file("t.db"), clock));
    add_failing_function(engine);
    engine.start();
    engine.send({.name = "test/charge"});
    REQUIRE(engine.drain());
    auto requests = receiver.requests();
    REQUIRE(requests.size() == 1);
    auto [t, v1] = parse_signature(requests[0].signature);
    CHECK(v1 == sign_alert("from-env", t, requests[0].body));
  }
}
