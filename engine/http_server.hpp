// The HTTP API, served by cpp-httplib on its own threads:
//   POST /e/{event_key}  Inngest's event API: one event or an array -> {"ids":[...],"status":200}
//   GET  /health         liveness, without a key
// Every error answers a JSON body {"error": "..."} with its status. docs/event-api.md has the
// contract.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <durable/engine.hpp>

#include "engine/ingest.hpp"

namespace httplib {
class Server;
}

namespace durable {

class HttpServer {
 public:
  // `event_keys` must not be empty.
  HttpServer(const ServeOptions& options, std::vector<std::string> event_keys, EventIngestor& ingestor);
  // Stops (see stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving in the background; returns the port. Throws durable::Error when
  // it cannot bind.
  int start();
  // Stops accepting connections and waits for requests in progress. Idempotent.
  void stop();

 private:
  bool known_key(const std::string& key) const;

  ServeOptions options_;
  std::vector<std::string> event_keys_;
  EventIngestor& ingestor_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> listen_returned_{false};
  std::thread thread_;
};

}  // namespace durable
