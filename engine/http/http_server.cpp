#include "engine/http/http_server.hpp"

// Boost.Beast over Asio (Debian's libboost-dev, header-only): connections are served by a
// few network threads without blocking, each connection's steps run on its own strand, and
// handlers run on a separate pool. cpp-httplib, which served the API before, gives each
// connection a thread of a fixed pool for as long as it is open and limits reads one at a
// time: eight clients sending a header line every 2 s took every thread and the server
// stopped answering (docs/architecture.md, "HTTP").
#include <sys/resource.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/base/log.hpp"
#include "engine/base/request_error.hpp"
#include "engine/base/thread_name.hpp"
#include "engine/http/http_encoding.hpp"

namespace durable {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

// The network threads: parsing and socket work only, so two keep up with many connections.
constexpr int kNetworkThreads = 2;
// How long stop() waits for answers of requests already being handled to go out.
constexpr std::chrono::seconds kStopGrace{5};
// After refusing a request whose body was not read, the connection is closed only once the
// client stopped sending or this much time or data went by (a close with unread data makes
// the kernel send a reset, which can destroy the answer before the client reads it).
constexpr std::chrono::seconds kLingerTime{2};
constexpr size_t kLingerBytes = 1024 * 1024;
// Answers smaller than this are sent uncompressed: gzip would save nothing worth its time.
constexpr size_t kCompressMin = 1024;

bool compressible(std::string_view content_type) {
  return content_type.starts_with("application/json") || content_type.starts_with("text/");
}

}  // namespace

struct HttpServer::State {
  State(const ServeOptions& o, std::unique_ptr<HttpRouter> r)
      : options(o), router(std::move(r)), acceptor(net::make_strand(ioc)), handlers(static_cast<size_t>(o.handler_threads)) {}

  const ServeOptions options;
  std::unique_ptr<HttpRouter> router;

  std::mutex mu;
  std::condition_variable answered;                     // in_flight went down
  bool started = false;                                 // guarded by mu
  bool stopping = false;                                // guarded by mu
  int in_flight = 0;                                    // guarded by mu: handed to `handlers`, answer not yet sent
  std::unordered_map<Connection*, std::weak_ptr<Connection>> open;  // guarded by mu
  std::atomic<int> connections{0};

  // Declared after what connections use: destroying these destroys the connections that
  // pending work still holds, which then update the members above.
  net::io_context ioc;
  tcp::acceptor acceptor;  // on a strand of its own: stop() closes it from another thread
  net::thread_pool handlers;  // runs the routes' handlers
  std::vector<std::thread> network_threads;

  void accept();
};

// One client connection: a loop of wait for a request, read its head, admit it, read its
// body, handle it (on the handler pool), write the answer. Every step runs on the
// connection's strand, but for the handling of a request and the first attempt to write its
// answer, which the handler's thread does while nothing else touches the connection.
class HttpServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, State& state)
      : state_(state),
        stream_(std::move(socket)),
        buffer_(state.options.max_header_bytes + 64 * 1024) {
    state_.connections.fetch_add(1);
  }
  ~Connection() {
    state_.connections.fetch_sub(1);
    std::lock_guard lock(state_.mu);
    state_.open.erase(this);
  }

  void start() {
    {
      std::lock_guard lock(state_.mu);
      if (state_.stopping) return;
      state_.open.emplace(this, weak_from_this());
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      // Synchronous writes (write_from_handler) must never block a handler thread on a slow
      // reader; asynchronous operations are unaffected by this mode.
      beast::error_code ignored;
      self->stream_.socket().non_blocking(true, ignored);
      self->wait_for_request();
    });
  }

  // From stop(): closes the connection unless a request of it is being handled, whose
  // answer then goes out before the close.
  void close_when_idle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      if (!self->busy_) self->close();
    });
  }

 private:
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  // Between requests: the idle timeout runs until the next request's first byte.
  void wait_for_request() {
    if (closing_) return close();
    request_ = HttpRequest{};
    route_ = nullptr;
    parser_.reset();
    if (buffer_.size() > 0) return read_head(std::chrono::steady_clock::now());  // pipelined
    stream_.expires_after(state_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return;  // closed by the client, or idle too long (the stream closed itself)
      self->buffer_.commit(n);
      self->read_head(std::chrono::steady_clock::now());
    });
  }

  void read_head(SteadyTime first_byte) {
    first_byte_ = first_byte;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(state_.options.max_header_bytes));
    // No body limit yet: with one, a Content-Length over it fails the head itself, before
    // the route and the credentials are known (an unauthenticated request must get 401).
    // (The largest value, not boost::none: Beast 1.74 compares a Content-Length with the
    // limit as an optional, and any length is more than none.)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    // One deadline for the whole head, however it trickles in: not a timeout per read.
    stream_.expires_at(first_byte_ + state_.options.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_head(ec); });
  }

  void on_head(beast::error_code ec) {
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      return;  // gone, or too slow: the stream is closed
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) return refuse(state_.router->refusal(431));
    if (ec) return refuse(state_.router->refusal(400, fmt::format("malformed HTTP request: {}", ec.message())));

    const auto& head = parser_->get();
    request_.method = std::string(head.method_string());
    if (!parse_target(std::string_view(head.target().data(), head.target().size()), request_.path, request_.query)) {
      return refuse(state_.router->refusal(400, "the request target must be a path starting with '/'"));
    }
    for (const auto& field : head) {
      request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    beast::error_code ignored;
    request_.remote_addr = stream_.socket().remote_endpoint(ignored).address().to_string(ignored);

    // Who may call what is settled before a byte of the body is read.
    HttpRouter::Admission admission = state_.router->admit(request_);
    if (admission.refusal) return refuse(std::move(*admission.refusal));
    route_ = admission.route;
    if (auto length = parser_->content_length(); length && *length > state_.options.max_request_bytes) {
      return refuse(state_.router->refusal(413));
    }
    parser_->body_limit(static_cast<uint64_t>(state_.options.max_request_bytes));
    if (parser_->is_done()) return handle();
    if (beast::iequals(head[http::field::expect], "100-continue")) {
      auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, head.version());
      stream_.expires_at(first_byte_ + state_.options.request_timeout);
      return http::async_write(stream_, *go_on, [self = shared_from_this(), go_on](beast::error_code ec, size_t) {
        if (!ec) self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    // The body shares the request's deadline; it is counted as it arrives (body_limit), so
    // a chunked body cannot grow past the limit either.
    stream_.expires_at(first_byte_ + state_.options.request_timeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::body_limit) return self->refuse(self->state_.router->refusal(413));
      if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof ||
          ec == net::error::operation_aborted || ec == net::error::connection_reset || ec == net::error::broken_pipe) {
        return;
      }
      if (ec) return self->refuse(self->state_.router->refusal(400, fmt::format("malformed HTTP body: {}", ec.message())));
      self->handle();
    });
  }

  void handle() {
    request_.body = std::move(parser_->get().body());
    keep_alive_ = parser_->keep_alive();
    head_only_ = request_.method == "HEAD";
    version_ = parser_->get().version();
    bool gzip_ok = accepts_gzip(request_.header("Accept-Encoding"));
    std::string coding = request_.header("Content-Encoding");
    if (route_->quick && coding.empty()) {
      return respond(finish(state_.router->handle(*route_, request_), gzip_ok));
    }
    std::lock_guard lock(state_.mu);
    if (state_.stopping) return close();
    ++state_.in_flight;
    busy_ = true;
    // From here until the answer is out nothing runs on this connection's strand: no read is
    // outstanding, and the deadline is off (it comes back for the write, if one is needed).
    stream_.expires_never();
    // Posted under mu: stop() sets `stopping` under mu before it joins the pool, so every
    // request counted in in_flight is in the pool's queue by then.
    net::post(state_.handlers, [self = shared_from_this(), gzip_ok, coding = std::move(coding)] {
      HttpResponse response;
      try {
        self->request_.body = decode_body(std::move(self->request_.body), coding, self->state_.options.max_request_bytes);
        response = self->state_.router->handle(*self->route_, self->request_);
      } catch (const RequestError& e) {
        response = error_response(e.status(), e.what());
      }
      self->write_from_handler(self->make_response(self->finish(std::move(response), gzip_ok)));
    });
  }

  // On the handler's thread: writes the answer straight to the socket, which nothing else
  // uses meanwhile (see handle()). Usually it all goes into the socket's buffer at once, and
  // the client has its answer without a hand-off to a network thread; whatever the socket
  // does not take is written by the strand.
  void write_from_handler(std::shared_ptr<http::response<http::string_body>> res) {
    auto serializer = std::make_shared<http::serializer<false, http::string_body>>(*res);
    beast::error_code ec;
    do {
      http::write_some(stream_.socket(), *serializer, ec);  // the socket is non-blocking
    } while (!ec && !serializer->is_done());
    net::post(stream_.get_executor(), [self = shared_from_this(), res, serializer, ec] {
      if (ec != net::error::would_block && ec != net::error::try_again) return self->written(ec, res->keep_alive(), true);
      self->stream_.expires_after(self->state_.options.write_timeout);
      http::async_write(self->stream_, *serializer, [self, res, serializer](beast::error_code ec, size_t) {
        self->written(ec, res->keep_alive(), true);
      });
    });
  }

  // Security headers and compression (on the thread that has the answer, so a handler
  // thread pays for compressing what its handler made).
  HttpResponse finish(HttpResponse response, bool gzip_ok) const {
    HttpRouter::add_security_headers(response);
    if (gzip_ok && !head_only_ && response.body.size() >= kCompressMin && compressible(response.content_type)) {
      std::string packed = gzip(response.body);
      if (!packed.empty()) {
        response.body = std::move(packed);
        response.headers.emplace_back("Content-Encoding", "gzip");
        response.headers.emplace_back("Vary", "Accept-Encoding");
      }
    }
    return response;
  }

  std::shared_ptr<http::response<http::string_body>> make_response(HttpResponse r) const {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version_);
    res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->insert(name, value);
    res->keep_alive(keep_alive_ && !closing_);
    size_t length = r.body.size();
    if (!head_only_) res->body() = std::move(r.body);
    res->content_length(length);
    return res;
  }

  // A quick route's answer, on the strand.
  void respond(HttpResponse r) {
    auto res = make_response(std::move(r));
    stream_.expires_after(state_.options.write_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->written(ec, res->keep_alive(), false);
    });
  }

  // The answer is out (or could not be sent): on to the next request, or closed. `counted`:
  // it was a request of the handler pool, counted in State::in_flight.
  void written(beast::error_code ec, bool keep_alive, bool counted) {
    if (counted) answered();
    if (ec || !keep_alive) return close();
    wait_for_request();
  }

  void answered() {
    busy_ = false;
    {
      std::lock_guard lock(state_.mu);
      --state_.in_flight;
    }
    state_.answered.notify_all();
  }

  // Answers a request refused before (all of) its body was read, then closes the connection.
  void refuse(HttpResponse r) {
    HttpRouter::add_security_headers(r);
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status),
                                                                     parser_ ? parser_->get().version() : 11);
    res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->insert(name, value);
    res->keep_alive(false);
    res->content_length(r.body.size());
    if (request_.method != "HEAD") res->body() = std::move(r.body);
    stream_.expires_after(state_.options.write_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec) return self->close();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      self->lingered_ = 0;
      self->stream_.expires_after(kLingerTime);
      self->linger();
    });
  }

  // Reads and drops what the client still sends, until it closes, kLingerTime passes or
  // kLingerBytes went by.
  void linger() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(16 * 1024), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ >= kLingerBytes) return self->close();
      self->linger();
    });
  }

  State& state_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  const Route* route_ = nullptr;
  SteadyTime first_byte_{};
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_only_ = false;
  bool busy_ = false;                // a request is with the handlers
  std::atomic<bool> closing_{false};  // the server is stopping: close after the current answer
  size_t lingered_ = 0;
};

void HttpServer::State::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;  // stopping
    if (ec) {
      // Out of file descriptors (or the like): wait a moment rather than spin; the
      // connections already open go on being served and free theirs.
      log(LogLevel::warn, "cannot accept a connection", {{"error", ec.message()}});
      auto timer = std::make_shared<net::steady_timer>(acceptor.get_executor(), std::chrono::milliseconds(100));
      timer->async_wait([this, timer](beast::error_code) { accept(); });
      return;
    }
    if (connections.load() >= options.max_connections) {
      // Refused at once, with an answer that says why, written without waiting for the
      // client (a blocking write is bounded by the socket's send buffer, which is empty).
      static constexpr std::string_view kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
          "Retry-After: 1\r\nContent-Length: 58\r\n\r\n{\"error\": \"too many connections to this server; try again\"}";
      beast::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(net::buffer(kBusy), ignored);
      socket.close(ignored);
    } else {
      std::make_shared<Connection>(std::move(socket), *this)->start();
    }
    accept();
  });
}

HttpServer::HttpServer(const ServeOptions& options, std::unique_ptr<HttpRouter> router)
    : state_(std::make_unique<State>(options, std::move(router))) {
  if (options.handler_threads < 1) throw Error("ServeOptions::handler_threads must be at least 1");
  if (options.max_connections < 1) throw Error("ServeOptions::max_connections must be at least 1");
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::start() {
  State& s = *state_;
  // Every connection is a file descriptor; the soft limit is often 1,024 while the hard one
  // allows far more. Raising the soft limit up to the hard one needs no privilege.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  beast::error_code ec;
  auto address = net::ip::make_address(s.options.host, ec);
  if (ec) throw Error(fmt::format("cannot listen on '{}': not an IP address", s.options.host));
  tcp::endpoint endpoint(address, static_cast<unsigned short>(s.options.port));
  s.acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only (a restarted server binds while old connections are in TIME_WAIT); not
  // SO_REUSEPORT, with which a second engine on the same port would share its connections
  // instead of failing to start.
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw Error(fmt::format("cannot listen on {}:{} (is the port in use?): {}", s.options.host, s.options.port, ec.message()));
  }
  int port = s.acceptor.local_endpoint().port();
  {
    std::lock_guard lock(s.mu);
    s.started = true;
  }
  s.accept();
  for (int i = 0; i < kNetworkThreads; ++i) {
    s.network_threads.emplace_back([&s] {
      name_this_thread("durable-http");
      s.ioc.run();
    });
  }
  return port;
}

void HttpServer::stop() {
  State& s = *state_;
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(s.mu);
    if (!s.started || s.stopping) return;
    s.stopping = true;
    for (auto& [raw, weak] : s.open) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  for (auto& c : open) c->close_when_idle();
  open.clear();
  // Requests being handled finish; their answers go out (each connection then closes).
  s.handlers.join();
  {
    std::unique_lock lock(s.mu);
    s.answered.wait_for(lock, kStopGrace, [&] { return s.in_flight == 0; });
  }
  s.ioc.stop();
  for (auto& t : s.network_threads) t.join();
  s.network_threads.clear();
}

}  // namespace durable
