// The HTTP front door under hostile clients (issue 11): how fast a normal client is answered
// while hundreds of slow or idle connections are held open, whether a thousand keep-alive
// clients at once are all served, and how much memory an oversized or compressed body costs
// the server. It is a client only: point it at any running server (`durable serve`, an
// example) so that two builds can be compared.
//
//   http_front_bench --port 8288 --event-key KEY [--pid PID] [--slow 512] [--clients 1000]
//
// With --pid (the server's), it reads the server's resident memory from /proc before and
// after the body attacks.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace {

using Clock = std::chrono::steady_clock;

int g_port = 8288;
std::string g_key;

int connect_to_server() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(g_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads one answer (head and Content-Length body) within `timeout`; returns its status, or
// -1 on timeout or a closed connection.
int read_answer(int fd, std::chrono::milliseconds timeout, std::string* body = nullptr) {
  auto deadline = Clock::now() + timeout;
  std::string data;
  size_t head_end = std::string::npos, need = 0;
  char buf[16384];
  for (;;) {
    if (head_end != std::string::npos && data.size() >= head_end + 4 + need) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return -1;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return -1;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return -1;
    data.append(buf, static_cast<size_t>(n));
    if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
      std::string head = data.substr(0, head_end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto at = head.find("content-length:"); at != std::string::npos) need = std::strtoul(head.c_str() + at + 15, nullptr, 10);
    }
  }
  if (body) *body = data.substr(head_end + 4, need);
  return std::atoi(data.c_str() + 9);
}

std::string request(const std::string& method, const std::string& path, const std::string& body = "") {
  return fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                     method, path, body.size(), body);
}

struct Probe {
  std::vector<double> ms;  // answered probes
  int failed = 0;          // no answer within the timeout
};

// `count` requests, each on a new connection, one after another.
Probe probe(const std::string& method, const std::string& path, const std::string& body, int count) {
  Probe p;
  for (int i = 0; i < count; ++i) {
    auto start = Clock::now();
    int fd = connect_to_server();
    int status = fd >= 0 && send_all(fd, request(method, path, body)) ? read_answer(fd, std::chrono::seconds(5)) : -1;
    if (fd >= 0) close(fd);
    if (status / 100 == 2) {
      p.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    } else {
      ++p.failed;
    }
  }
  return p;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

void report(const char* what, const Probe& p) {
  int fast = static_cast<int>(std::count_if(p.ms.begin(), p.ms.end(), [](double ms) { return ms <= 1000; }));
  int total = static_cast<int>(p.ms.size()) + p.failed;
  fmt::print("  {:<34} {:>3}/{:<3} within 1 s   p50 {:8.2f} ms   p99 {:8.2f} ms   max {:8.2f} ms\n", what, fast, total,
             percentile(p.ms, 0.5), percentile(p.ms, 0.99), p.ms.empty() ? 0 : *std::max_element(p.ms.begin(), p.ms.end()));
}

std::string event_body() { return R"({"name":"bench/front","data":{"n":1}})"; }

void probes(int count) {
  report("GET /health", probe("GET", "/health", "", count));
  report("POST /e/{key}", probe("POST", "/e/" + g_key, event_body(), count));
}

// Slow and idle clients: a third sends its head a line every 2 s, a third sends a body a byte
// every 2 s, a third connects and says nothing. They reconnect when cut off.
void slow_clients(int count) {
  std::atomic<bool> stop{false};
  std::atomic<int> cut_off{0};
  std::vector<std::thread> threads;
  int per_thread = 64;
  for (int t = 0; t * per_thread < count; ++t) {
    threads.emplace_back([&, t] {
      int n = std::min(per_thread, count - t * per_thread);
      std::vector<int> fds(static_cast<size_t>(n), -1);
      std::vector<int> sent(static_cast<size_t>(n), 0);
      auto open = [&](int i) {
        int kind = (t * per_thread + i) % 3;
        fds[i] = connect_to_server();
        sent[i] = 0;
        if (fds[i] < 0) return;
        if (kind == 0) send_all(fds[i], "POST /e/" + g_key + " HTTP/1.1\r\n");
        if (kind == 1) send_all(fds[i], "POST /e/" + g_key + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
      };
      for (int i = 0; i < n; ++i) open(i);
      while (!stop) {
        for (int i = 0; i < n; ++i) {
          int kind = (t * per_thread + i) % 3;
          bool ok = fds[i] >= 0;
          if (ok && kind == 0) ok = send_all(fds[i], fmt::format("X-Slow-{}: {}\r\n", sent[i]++, i));
          if (ok && kind == 1) ok = send_all(fds[i], "{");
          if (ok) {
            char b;
            ok = !(recv(fds[i], &b, 1, MSG_DONTWAIT) == 0);  // 0: the server closed it
          }
          if (!ok) {
            ++cut_off;
            if (fds[i] >= 0) close(fds[i]);
            open(i);
          }
        }
        for (int w = 0; w < 20 && !stop; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      for (int fd : fds) {
        if (fd >= 0) close(fd);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));  // every slow client is connected and under way
  fmt::print("with {} slow or idle connections held open (a third each: head, body, idle):\n", count);
  probes(20);
  std::this_thread::sleep_for(std::chrono::seconds(12));
  fmt::print("  ... 15 s later ({} slow connections were cut off by the server so far):\n", cut_off.load());
  probes(20);
  stop = true;
  for (auto& t : threads) t.join();
}

// `count` clients at once, each sending two requests on one keep-alive connection.
void keep_alive_clients(int count) {
  std::vector<std::thread> threads;
  std::vector<double> ms;
  std::mutex mu;
  std::atomic<int> failed{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&] {
      int fd = connect_to_server();
      ++ready;
      while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (int r = 0; r < 2; ++r) {
        auto start = Clock::now();
        int status = fd >= 0 && send_all(fd, request("GET", "/health")) ? read_answer(fd, std::chrono::seconds(30)) : -1;
        if (status / 100 != 2) {
          ++failed;
          continue;
        }
        std::lock_guard lock(mu);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
      if (fd >= 0) close(fd);
    });
  }
  while (ready < count) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  go = true;
  for (auto& t : threads) t.join();
  fmt::print("{} keep-alive clients at once, 2 requests each: {} of {} answered (30 s timeout)   p50 {:.2f} ms   "
             "p99 {:.2f} ms\n",
             count, ms.size(), 2 * count, percentile(ms, 0.5), percentile(ms, 0.99));
}

long resident_kib(int pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Sends `mib` MiB as a chunked body to `path` (the server should cut it off at its limit).
int chunked_flood(const std::string& path, int mib) {
  int fd = connect_to_server();
  if (fd < 0) return -1;
  send_all(fd, fmt::format("POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", path));
  std::string chunk(1024 * 1024, ' ');
  std::string framed = fmt::format("{:x}\r\n", chunk.size()) + chunk + "\r\n";
  for (int i = 0; i < mib; ++i) {
    if (!send_all(fd, framed)) break;
  }
  send_all(fd, "0\r\n\r\n");
  int status = read_answer(fd, std::chrono::seconds(10));
  close(fd);
  return status;
}

int gzip_bomb(const std::string& path, int mib) {
  std::string zeros(static_cast<size_t>(mib) * 1024 * 1024, ' ');
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, zeros.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(zeros.data());
  z.avail_in = static_cast<uInt>(zeros.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  int fd = connect_to_server();
  if (fd < 0) return -1;
  send_all(fd, fmt::format("POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                           "Content-Length: {}\r\n\r\n",
                           path, out.size()));
  send_all(fd, out);
  int status = read_answer(fd, std::chrono::seconds(30));
  close(fd);
  fmt::print("    ({} KiB of gzip inflating to {} MiB)\n", out.size() / 1024, mib);
  return status;
}

void bodies(int pid) {
  fmt::print("oversized bodies (server RSS before -> after):\n");
  auto attack = [&](const char* what, auto&& fn) {
    long before = pid > 0 ? resident_kib(pid) : -1;
    int status = fn();
    long after = pid > 0 ? resident_kib(pid) : -1;
    fmt::print("  {:<48} answer {:>4}   RSS {} -> {} MiB\n", what, status, before / 1024, after / 1024);
  };
  attack("256 MiB chunked to /e/{key}", [] { return chunked_flood("/e/" + g_key, 256); });
  attack("256 MiB chunked to /e/wrong-key", [] { return chunked_flood("/e/wrong-key", 256); });
  attack("gzip of 512 MiB to /e/{key}", [] { return gzip_bomb("/e/" + g_key, 512); });
}

}  // namespace

int main(int argc, char** argv) {
  int slow = 512, clients = 1000, pid = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--port") g_port = std::atoi(argv[i + 1]);
    else if (flag == "--event-key") g_key = argv[i + 1];
    else if (flag == "--pid") pid = std::atoi(argv[i + 1]);
    else if (flag == "--slow") slow = std::atoi(argv[i + 1]);
    else if (flag == "--clients") clients = std::atoi(argv[i + 1]);
  }
  if (g_key.empty()) {
    std::fprintf(stderr, "usage: http_front_bench --port N --event-key KEY [--pid SERVER_PID] [--slow 512] [--clients 1000]\n");
    return 2;
  }
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  fmt::print("alone:\n");
  probes(20);
  slow_clients(slow);
  keep_alive_clients(clients);
  bodies(pid);
  return 0;
}
