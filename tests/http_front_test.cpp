// The HTTP front door against slow, idle, numerous and oversized clients (issue 11): a
// normal client is answered while hundreds of connections are held open; slow clients are cut
// off at deadlines for the whole head and the whole request, not per read; a thousand
// keep-alive clients are all served; bodies are counted as they arrive (chunked, or inflated
// from gzip) and refused past the limit, before they cost memory; unauthenticated requests
// are refused before their body is read; every answer carries the security headers.
//
// These tests talk raw HTTP over sockets, since they must misbehave as no HTTP library would.
// Nothing asserts a duration: slow clients trickle until the server closes them (a server that
// timed out per read would never close them, and the test would fail), and what is measured
// goes to bench/http_front_bench.cpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <thread>

#include <httplib.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/engine_access.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kKey = "front-key";
constexpr const char* kApiKey = "front-api-key";

struct Answer {
  int status = 0;
  std::string head;  // status line and headers, as received
  std::string body;
  bool has_header(const std::string& line) const { return head.find(line) != std::string::npos; }
};

// One client connection over a plain socket.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE_MESSAGE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, "connect: " << errno);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // False once the server closed or reset the connection.
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // The next answer (head and Content-Length body; only the head for an answer to HEAD), or
  // nullopt if the connection closed first or nothing came within `timeout`.
  std::optional<Answer> read_answer(std::chrono::milliseconds timeout = 30s, bool head_only = false) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t head_end = std::string::npos, need = 0;
    for (;;) {
      if (head_end == std::string::npos && (head_end = pending_.find("\r\n\r\n")) != std::string::npos) {
        std::string lower = pending_.substr(0, head_end);
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (auto at = lower.find("content-length:"); at != std::string::npos && !head_only) {
          need = std::strtoul(lower.c_str() + at + 15, nullptr, 10);
        }
      }
      if (head_end != std::string::npos && pending_.size() >= head_end + 4 + need) break;
      if (!receive(deadline)) return std::nullopt;
    }
    Answer a;
    a.head = pending_.substr(0, head_end + 2);
    a.body = pending_.substr(head_end + 4, need);
    a.status = std::atoi(a.head.c_str() + 9);
    pending_.erase(0, head_end + 4 + need);
    return a;
  }

  // Whether the server closes the connection within `timeout` (reading and dropping
  // whatever it sends before that).
  bool closed_by_server(std::chrono::milliseconds timeout = 30s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (receive(deadline)) {
    }
    return eof_;
  }

 private:
  // Reads what arrives before `deadline`; false on timeout, end of stream or error.
  bool receive(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[16384];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string pending_;
  bool eof_ = false;
};

std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
  return fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{}",
                     path, extra_headers, body.size(), body);
}

std::string get(const std::string& path, const std::string& extra_headers = "") {
  return fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n", path, extra_headers);
}

std::string event_json(int n) { return fmt::format(R"({{"name":"front/test","data":{{"n":{}}}}})", n); }

// An engine with one function on "front/*", listening on a free port with `options`.
struct FrontServer {
  explicit FrontServer(ServeOptions options = {})
      : clock(std::make_shared<ManualClock>()), engine(engine_options(dir.file("t.db"), clock)) {
    engine.function({.id = "echo"}, on_event("front/*"), [](Context& ctx) { return ctx.event.data; });
    options.port = 0;
    options.event_keys = {kKey};
    options.api_keys = {kApiKey};
    port = engine.listen(options);
  }

  int64_t events() {
    return static_cast<int64_t>(EngineAccess::store(engine).list_events(EventFilter{.name = "front/test"}, 100000, "").size());
  }

  // /health and an event, each on a new connection: both must be answered.
  void check_answers_normal_clients(int n) {
    RawClient health(port);
    REQUIRE(health.send(get("/health")));
    auto h = health.read_answer();
    REQUIRE_MESSAGE(h, "GET /health was not answered");
    CHECK(h->status == 200);
    RawClient sender(port);
    REQUIRE(sender.send(post(std::string("/e/") + kKey, event_json(n))));
    auto e = sender.read_answer();
    REQUIRE_MESSAGE(e, "POST /e/{key} was not answered");
    CHECK(e->status == 200);
  }

  TempDir dir;
  std::shared_ptr<ManualClock> clock;
  Engine engine;
  int port = 0;
};

// `text` gzip-compressed, `copies` times over (a stream, so the input is never all in memory).
std::string gzip_of_copies(const std::string& text, int copies) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out;
  char buf[1 << 16];
  for (int i = 0; i < copies; ++i) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    int flush = i + 1 == copies ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof(buf);
      deflate(&z, flush);
      out.append(buf, sizeof(buf) - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

// Sends `mib` MiB of chunked body after `head` on its own thread, and reads the answer
// meanwhile: the server answers (and then closes) before the body is over.
std::optional<Answer> flood_chunked(int port, const std::string& head, int mib) {
  RawClient c(port);
  REQUIRE(c.send(head));
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    std::string chunk(1024 * 1024, ' ');
    std::string framed = fmt::format("{:x}\r\n", chunk.size()) + chunk + "\r\n";
    for (int i = 0; i < mib && !stop; ++i) {
      if (!c.send(framed)) return;
    }
    c.send("0\r\n\r\n");
  });
  auto answer = c.read_answer();
  stop = true;
  bool closed = c.closed_by_server();
  sender.join();
  CHECK_MESSAGE(closed, "the connection of a refused body stayed open");
  return answer;
}

// The peak resident memory of process `pid`, in KiB.
long peak_resident_kib(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

}  // namespace

TEST_SUITE("http_front") {
  TEST_CASE("512 slow or idle connections held open do not keep normal clients from being answered" *
            doctest::timeout(120)) {
    FrontServer s;
    std::vector<std::unique_ptr<RawClient>> slow;
    for (int i = 0; i < 512; ++i) {
      slow.push_back(std::make_unique<RawClient>(s.port));
      if (i % 3 == 0) slow.back()->send(std::string("POST /e/") + kKey + " HTTP/1.1\r\nHost: x\r\n");  // half a head
      if (i % 3 == 1) slow.back()->send(std::string("POST /e/") + kKey + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{");
      // i % 3 == 2: connected, silent
    }
    for (int n = 0; n < 10; ++n) s.check_answers_normal_clients(n);
    CHECK(s.events() == 10);
    // The slow ones are still being served too: one finishes its body and is answered.
    RawClient& body = *slow[1];
    std::string rest = R"("name":"front/test","data":{"slow":true}})";
    REQUIRE(body.send(rest + std::string(999 - rest.size(), ' ')));
    auto answer = body.read_answer();
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK(s.events() == 11);
  }

  TEST_CASE("a head sent slowly is cut off at the head's deadline, however steadily it comes" * doctest::timeout(120)) {
    FrontServer s({.header_timeout = 200ms, .request_timeout = 400ms, .idle_timeout = 60s});
    RawClient c(s.port);
    REQUIRE(c.send(std::string("POST /e/") + kKey + " HTTP/1.1\r\n"));
    // A header line every 20 ms: each read comes quickly, the head never ends.
    bool cut = false;
    for (int line = 0; line < 3000 && !cut; ++line) {
      cut = !c.send(fmt::format("X-Slow-{}: 1\r\n", line));
      if (!cut) cut = c.closed_by_server(20ms);
    }
    CHECK_MESSAGE(cut, "a client trickling its head was never cut off");
    s.check_answers_normal_clients(0);
  }

  TEST_CASE("a body sent slowly is cut off at the request's deadline" * doctest::timeout(120)) {
    FrontServer s({.header_timeout = 200ms, .request_timeout = 400ms, .idle_timeout = 60s});
    RawClient c(s.port);
    REQUIRE(c.send(std::string("POST /e/") + kKey + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
    bool cut = false;
    for (int byte = 0; byte < 3000 && !cut; ++byte) {
      cut = !c.send(" ");
      if (!cut) cut = c.closed_by_server(20ms);
    }
    CHECK_MESSAGE(cut, "a client trickling its body was never cut off");
    CHECK(s.events() == 0);
  }

  TEST_CASE("an idle keep-alive connection is closed after the idle timeout; an active one is kept" *
            doctest::timeout(60)) {
    FrontServer s({.idle_timeout = 200ms});
    RawClient c(s.port);
    REQUIRE(c.send(get("/health")));
    auto answer = c.read_answer();
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK_FALSE(answer->has_header("Connection: close"));
    CHECK(c.closed_by_server());
  }

  TEST_CASE("1,000 keep-alive clients at once are all served, each twice on its connection" * doctest::timeout(300)) {
    FrontServer s;
    constexpr int kClients = 1000;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<RawClient>(s.port));
    // Every client sends before any reads: all 1,000 requests are open at once.
    for (int i = 0; i < kClients; ++i) REQUIRE(clients[i]->send(post(std::string("/e/") + kKey, event_json(i))));
    int answered = 0;
    for (auto& c : clients) {
      auto a = c->read_answer();
      answered += a && a->status == 200;
    }
    CHECK(answered == kClients);
    for (auto& c : clients) REQUIRE(c->send(get("/health")));
    answered = 0;
    for (auto& c : clients) {
      auto a = c->read_answer();
      answered += a && a->status == 200;
    }
    CHECK(answered == kClients);
    CHECK(s.events() == kClients);
  }

  TEST_CASE("beyond max_connections a new connection is answered 503 and closed" * doctest::timeout(60)) {
    FrontServer s({.max_connections = 8});
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<RawClient>(s.port));
    // The server counts a connection once it has accepted it: wait for all 8 to be served.
    for (auto& c : held) {
      REQUIRE(c->send(get("/health")));
      REQUIRE(c->read_answer());
    }
    RawClient extra(s.port);
    auto answer = extra.read_answer();
    REQUIRE(answer);
    CHECK(answer->status == 503);
    CHECK(extra.closed_by_server());
    held.pop_back();
    // One closed: a new connection gets in (once the server has seen the close).
    bool served = wait_until([&] {
      RawClient again(s.port);
      if (!again.send(get("/health"))) return false;
      auto a = again.read_answer(5s);
      return a && a->status == 200;
    }, 30s);
    CHECK(served);
  }

  TEST_CASE("a chunked body past the limit is refused with 413 as it arrives, and the connection closed" *
            doctest::timeout(120)) {
    FrontServer s({.max_request_bytes = 1024 * 1024});
    std::string head = fmt::format("POST /e/{} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n",
                                   kKey);
    auto answer = flood_chunked(s.port, head, 64);
    REQUIRE(answer);
    CHECK(answer->status == 413);
    CHECK(answer->has_header("Connection: close"));
    CHECK(nlohmann::json::parse(answer->body)["error"].get<std::string>().find("1048576") != std::string::npos);
    CHECK(s.events() == 0);
    s.check_answers_normal_clients(0);
  }

  TEST_CASE("a Content-Length past the limit is refused with 413 before the body is sent" * doctest::timeout(60)) {
    FrontServer s({.max_request_bytes = 1024 * 1024});
    RawClient c(s.port);
    REQUIRE(c.send(fmt::format("POST /e/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n", kKey)));
    auto answer = c.read_answer();
    REQUIRE(answer);
    CHECK(answer->status == 413);
    CHECK(c.closed_by_server());
  }

  TEST_CASE("a gzip body is taken inflated; one that inflates past the limit is refused with 413; unknown codings 415" *
            doctest::timeout(120)) {
    FrontServer s({.max_request_bytes = 1024 * 1024});
    {
      RawClient c(s.port);
      std::string packed = gzip_of_copies(event_json(1), 1);
      REQUIRE(c.send(post(std::string("/e/") + kKey, packed, "Content-Encoding: gzip\r\n")));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 200);
      CHECK(s.events() == 1);
    }
    {
      // 64 MiB of spaces in about 64 KiB of gzip.
      RawClient c(s.port);
      std::string bomb = gzip_of_copies(std::string(1024 * 1024, ' '), 64);
      REQUIRE(bomb.size() < 1024 * 1024);
      REQUIRE(c.send(post(std::string("/e/") + kKey, bomb, "Content-Encoding: gzip\r\n")));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 413);
      CHECK(nlohmann::json::parse(answer->body)["error"].get<std::string>().find("inflates") != std::string::npos);
    }
    {
      RawClient c(s.port);
      REQUIRE(c.send(post(std::string("/e/") + kKey, event_json(2), "Content-Encoding: br\r\n")));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 415);
    }
    {
      RawClient c(s.port);
      REQUIRE(c.send(post(std::string("/e/") + kKey, "not gzip at all", "Content-Encoding: gzip\r\n")));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 400);
    }
    CHECK(s.events() == 1);
  }

  TEST_CASE("an unauthenticated request is refused before its body is read" * doctest::timeout(60)) {
    FrontServer s;
    SUBCASE("a wrong event key, a large body announced") {
      RawClient c(s.port);
      REQUIRE(c.send("POST /e/wrong-key HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 401);
      CHECK(answer->has_header("Connection: close"));
    }
    SUBCASE("no API key, a chunked body of unknown length") {
      RawClient c(s.port);
      REQUIRE(c.send("POST /v1/gc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 401);
      CHECK(c.closed_by_server());
    }
    SUBCASE("Expect: 100-continue gets a refusal, not a go-ahead") {
      RawClient c(s.port);
      REQUIRE(c.send("POST /e/wrong-key HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 401);
    }
  }

  TEST_CASE("a request that expects 100-continue is told to go on, then answered" * doctest::timeout(60)) {
    FrontServer s;
    RawClient c(s.port);
    std::string body = event_json(7);
    REQUIRE(c.send(fmt::format("POST /e/{} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                               kKey, body.size())));
    auto go_on = c.read_answer();
    REQUIRE(go_on);
    CHECK(go_on->status == 100);
    REQUIRE(c.send(body));
    auto answer = c.read_answer();
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK(s.events() == 1);
  }

  TEST_CASE("malformed requests and oversized heads get a JSON error and a closed connection" * doctest::timeout(60)) {
    FrontServer s({.max_header_bytes = 4096});
    SUBCASE("not HTTP") {
      RawClient c(s.port);
      REQUIRE(c.send("HELLO THERE\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 400);
      CHECK(nlohmann::json::parse(answer->body).contains("error"));
      CHECK(c.closed_by_server());
    }
    SUBCASE("a target that is not a path") {
      RawClient c(s.port);
      REQUIRE(c.send("GET health HTTP/1.1\r\nHost: x\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 400);
    }
    SUBCASE("a head over max_header_bytes") {
      RawClient c(s.port);
      REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8192, 'a') + "\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 431);
    }
    SUBCASE("a wrong method on a known path") {
      RawClient c(s.port);
      REQUIRE(c.send("DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n"));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 405);
      CHECK(answer->has_header("Allow: GET"));
    }
    s.check_answers_normal_clients(0);
  }

  TEST_CASE("every answer carries the headers that forbid framing and sniffing, with a strict CSP") {
    FrontServer s;
    auto check_headers = [](const Answer& a) {
      CHECK(a.has_header("X-Frame-Options: DENY"));
      CHECK(a.has_header("X-Content-Type-Options: nosniff"));
      CHECK(a.has_header("frame-ancestors 'none'"));
      CHECK(a.has_header("script-src 'self'"));
    };
    for (const std::string& request : {get("/health"), get("/login"), get("/"), get("/v1/runs"), get("/nowhere"),
                                       get("/assets/style.css"), post("/e/wrong", "{}")}) {
      RawClient c(s.port);
      REQUIRE(c.send(request));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CAPTURE(request);
      check_headers(*answer);
    }
    RawClient c(s.port);
    REQUIRE(c.send(fmt::format("POST /e/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", kKey)));
    auto refused = c.read_answer();
    REQUIRE(refused);
    CHECK(refused->status == 413);
    check_headers(*refused);
  }

  TEST_CASE("answers are gzip-compressed for clients that accept it, and HEAD gets the length without the body") {
    FrontServer s;
    RawClient c(s.port);
    REQUIRE(c.send(get("/assets/style.css", "Accept-Encoding: gzip, br\r\n")));
    auto packed = c.read_answer();
    REQUIRE(packed);
    CHECK(packed->status == 200);
    CHECK(packed->has_header("Content-Encoding: gzip"));
    REQUIRE(c.send("HEAD /assets/style.css HTTP/1.1\r\nHost: x\r\n\r\n"));
    // The answer to HEAD has a Content-Length but no body: read the head alone.
    auto head = c.read_answer(30s, /*head_only=*/true);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->body.empty());
    REQUIRE(c.send(get("/health")));  // nothing of a body was left on the connection
    auto next = c.read_answer();
    REQUIRE(next);
    CHECK(next->body == R"({"status":"ok"})");
  }

  TEST_CASE("a server process grows by a small multiple of the body limit, whatever a client sends" *
            doctest::timeout(300)) {
    TempDir dir;
    int port = free_port();
    constexpr size_t kLimit = 1024 * 1024;
    ChildProcess server({DURABLE_CLI, "serve", "--database", dir.file("t.db"), "--port", std::to_string(port),
                         "--event-key", kKey, "--api-key", kApiKey, "--max-request-bytes", std::to_string(kLimit)},
                        dir.file("serve.log"));
    httplib::Client http("127.0.0.1", port);
    REQUIRE(wait_until([&] { return static_cast<bool>(http.Get("/health")); }, 30s));
    // A request or two of each kind first, so that the baseline holds the threads and buffers
    // of normal work.
    for (int i = 0; i < 4; ++i) {
      RawClient c(port);
      REQUIRE(c.send(post(std::string("/e/") + kKey, event_json(i))));
      REQUIRE(c.read_answer());
    }
    long before = peak_resident_kib(server.pid());
    REQUIRE(before > 0);
    std::string chunked = "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    auto keyed = flood_chunked(port, fmt::format(fmt::runtime(chunked), std::string("/e/") + kKey), 256);
    REQUIRE(keyed);
    CHECK(keyed->status == 413);
    auto unkeyed = flood_chunked(port, fmt::format(fmt::runtime(chunked), "/e/wrong-key"), 256);
    REQUIRE(unkeyed);
    CHECK(unkeyed->status == 401);
    auto gc = flood_chunked(port, fmt::format(fmt::runtime(chunked), "/v1/gc"), 64);
    REQUIRE(gc);
    CHECK(gc->status == 401);
    {
      RawClient c(port);
      std::string bomb = gzip_of_copies(std::string(1024 * 1024, ' '), 512);
      REQUIRE(c.send(post(std::string("/e/") + kKey, bomb, "Content-Encoding: gzip\r\n")));
      auto answer = c.read_answer();
      REQUIRE(answer);
      CHECK(answer->status == 413);
    }
    long after = peak_resident_kib(server.pid());
    long grown_kib = after - before;
    MESSAGE("the server's peak resident memory grew by " << grown_kib << " KiB, with a body limit of "
                                                         << kLimit / 1024 << " KiB, under 256 MiB bodies and a 512 MiB gzip bomb");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // A sanitizer keeps freed memory in quarantine and adds shadow memory: its RSS says
    // nothing about the server's. The uninstrumented build of the same suite checks the bound.
    MESSAGE("sanitizer build: the bound on growth is checked by the uninstrumented build only");
#else
    CHECK(grown_kib < static_cast<long>(8 * kLimit / 1024));
#endif
  }
}
