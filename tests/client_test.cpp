// durable::Client, against a real engine on 127.0.0.1.
#include <doctest/doctest.h>

#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

TEST_SUITE("client") {
  TEST_CASE("Client::send delivers events over HTTP and returns their ids") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    engine.function({.id = "greet"}, on_event("user/signed.up"), [](Context& ctx) {
      return "hello " + ctx.event.data.at("name").get<std::string>();
    });
    int port = engine.listen({.port = 0, .event_keys = {"k"}});
    Client client("http://127.0.0.1:" + std::to_string(port), "k");

    std::string id = client.send(Event{.name = "user/signed.up", .data = {{"name", "Ada"}}});
    auto ids = client.send(std::vector<Event>{{.name = "user/signed.up", .data = {{"name", "Bob"}}},
                                              {.name = "user/signed.up", .data = {{"name", "Cy"}}}});
    REQUIRE(ids.size() == 2);
    REQUIRE(engine.drain());
    CHECK(only_run(engine, id).output == "hello Ada");
    CHECK(only_run(engine, ids[0]).output == "hello Bob");
    CHECK(only_run(engine, ids[1]).output == "hello Cy");
  }

  TEST_CASE("Client::send throws with the engine's message when the engine refuses, or cannot be reached") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("t.db"), clock));
    int port = engine.listen({.port = 0, .event_keys = {"k"}});
    std::string url = "http://127.0.0.1:" + std::to_string(port);

    Client wrong_key(url, "not-k");
    CHECK_THROWS_WITH_AS(wrong_key.send(Event{.name = "x"}), doctest::Contains("unknown event key"), Error);
    Client client(url, "k");
    CHECK_THROWS_WITH_AS(client.send(Event{.name = ""}), doctest::Contains("event name is empty"), Error);
    engine.stop(0ms);
    CHECK_THROWS_WITH_AS(client.send(Event{.name = "x"}), doctest::Contains("cannot reach the engine"), Error);
  }
}
