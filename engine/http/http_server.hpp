// The HTTP server: the network side of the engine's HTTP API. It accepts connections, reads
// requests under limits and deadlines, hands each complete request to an HttpRouter on a pool
// of handler threads, and writes the answers back. Every connection is served asynchronously
// (Boost.Beast over Asio, on a couple of network threads), so a connection costs a socket and
// a small buffer, not a thread: slow or idle clients cannot starve the others.
//
// What a client may cost, and for how long (all in ServeOptions, docs/security.md):
// - the request head: at most `max_header_bytes`, all of it within `header_timeout` of its
//   first byte; the whole request, body included, within `request_timeout` of that byte;
// - the body: read only once the route and the caller's credentials are known to be good
//   (an unauthenticated request is answered 401 before a byte of its body is read); counted
//   as it arrives, chunked or not, and refused with 413 past `max_request_bytes`; a gzip or
//   deflate body is refused as soon as its inflated size passes that limit too;
// - an idle keep-alive connection is closed after `idle_timeout`; an answer the client does
//   not read is abandoned after `write_timeout`; beyond `max_connections`, new connections
//   are answered 503 and closed.
// A request refused before its body was read is answered with `Connection: close`.
#pragma once

#include <memory>

#include <durable/engine.hpp>

#include "engine/http/http_router.hpp"

namespace durable {

class HttpServer {
 public:
  // Serves `router` with the limits of `options` (host, port, max_* and *_timeout fields).
  HttpServer(const ServeOptions& options, std::unique_ptr<HttpRouter> router);
  // Stops (see stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving in the background; returns the port. Raises this process's
  // soft limit on open files to its hard limit (each connection is a file descriptor).
  // Throws durable::Error when it cannot bind.
  int start();
  // Stops accepting connections, lets the requests already being handled finish and their
  // answers go out (for a few seconds at most), closes every connection and joins the
  // threads. Idempotent.
  void stop();

 private:
  class Connection;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace durable
