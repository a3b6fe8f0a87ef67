// Client: sends events to a durable engine over HTTP, from any process.
//
//   durable::Client client("http://127.0.0.1:8288", "my-event-key");
//   auto ids = client.send({.name = "image/profile.uploaded", .data = {{"userId", "u_1"}}});
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <durable/event.hpp>

namespace durable {

class Client {
 public:
  // `base_url`: scheme, host and port, e.g. "http://127.0.0.1:8288". `event_key`: a key the
  // engine accepts on POST /e/{key}.
  Client(std::string base_url, std::string event_key,
         std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one event or several in one request; returns the engine's ids for them, in order.
  // Throws durable::Error with the engine's message when the engine refuses them, or when it
  // cannot be reached. Not thread-safe: use one Client per thread.
  std::string send(const Event& event);
  std::vector<std::string> send(const std::vector<Event>& events);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace durable
