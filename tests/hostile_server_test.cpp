// Clients facing a hostile or broken server on 127.0.0.1: answers nested 100,000 levels deep,
// numbers out of a double's range, ids that are not strings. The SDK's Client and the CLI
// report them as errors and never crash.
#include <httplib.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;

namespace {

// A server that answers every GET and POST with the status and body last given.
class FakeEngine {
 public:
  FakeEngine() {
    auto handler = [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu_);
      res.status = status_;
      res.set_content(body_, "application/json");
    };
    server_.Get(".*", handler);
    server_.Post(".*", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();  // stop() is ignored before that
  }
  ~FakeEngine() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void answer(int status, std::string body) {
    std::lock_guard lock(mu_);
    status_ = status;
    body_ = std::move(body);
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int status_ = 200;        // guarded by mu_
  std::string body_ = "{}";  // guarded by mu_
};

const std::string kDeep = std::string(100'000, '[') + std::string(100'000, ']');

// Answers no client can take as the API's JSON: nested too deep, a number out of range, not JSON.
const std::vector<std::pair<int, std::string>> kUnparsable = {
    {200, kDeep},
    {200, R"({"ids":)" + kDeep + "}"},
    {400, R"({"error":)" + kDeep + "}"},
    {200, R"({"ids":["01JQDAE4RQF8MBCR55T5AK4KXS"],"big":1e400})"},
    {200, "1e999999"},
    {500, std::string(1'000'000, '{')},
};

}  // namespace

TEST_SUITE("hostile_server") {
  TEST_CASE("the SDK's Client refuses a hostile engine's answers with an Error and does not crash") {
    FakeEngine server;
    Client client(server.url(), "k");
    auto answers = kUnparsable;
    answers.push_back({200, R"({"ids":[1,2]})"});
    answers.push_back({200, R"({"ids":"01JQDAE4RQF8MBCR55T5AK4KXS"})"});
    for (const auto& [status, body] : answers) {
      CAPTURE(status);
      CAPTURE(body.substr(0, 40));
      server.answer(status, body);
      CHECK_THROWS_AS(client.send(Event{.name = "a/b"}), Error);
    }
    server.answer(200, R"({"ids":["01JQDAE4RQF8MBCR55T5AK4KXS"],"status":200})");
    CHECK(client.send(Event{.name = "a/b"}) == "01JQDAE4RQF8MBCR55T5AK4KXS");
  }

  TEST_CASE("the CLI reports a hostile engine's answers as errors, exits 1, and does not crash") {
    FakeEngine server;
    TempDir dir;
    std::string out = dir.file("out");
    auto run_cli = [&](const std::string& args) {
      std::string command = std::string(DURABLE_CLI) + " " + args + " --url " + server.url() + " --key k >" + out + " 2>&1";
      int status = std::system(command.c_str());
      REQUIRE(WIFEXITED(status));  // not killed by a signal
      std::ifstream file(out);
      std::stringstream text;
      text << file.rdbuf();
      return std::make_pair(WEXITSTATUS(status), text.str());
    };
    for (const auto& [status, body] : kUnparsable) {
      CAPTURE(status);
      CAPTURE(body.substr(0, 40));
      server.answer(status, body);
      for (const char* command : {"runs", "run 01JQDAE4RQF8MBCR55T5AK4KXS", "cancel 01JQDAE4RQF8MBCR55T5AK4KXS"}) {
        CAPTURE(command);
        auto [code, output] = run_cli(command);
        CHECK(code == 1);
        CHECK_MESSAGE(output.find("unexpected answer from") != std::string::npos, output.substr(0, 300));
      }
    }
  }
}
