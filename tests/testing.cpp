#include "tests/testing.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include <doctest/doctest.h>

#include "engine/sqlite_store.hpp"

namespace durable::testing {

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("durable-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Backoff fast_backoff() { return Backoff{.delays = {std::chrono::seconds(1)}, .max_jitter = std::chrono::milliseconds(0)}; }

EngineOptions engine_options(const std::string& database, std::shared_ptr<Clock> clock) {
  return EngineOptions{.database = database,
                       .durability = Durability::normal,
                       .workers = 4,
                       .clock = std::move(clock),
                       .log_level = "off"};
}

std::vector<JournalEntry> read_journal(const std::string& path, const std::string& run_id) {
  SqliteStore store({.path = path});
  return store.load_journal(run_id);
}

std::vector<JournalEntry> entries_of(const std::vector<JournalEntry>& journal, JournalKind kind) {
  std::vector<JournalEntry> out;
  for (const auto& e : journal) {
    if (e.kind == kind) out.push_back(e);
  }
  return out;
}

Run only_run(const Engine& engine, const std::string& event_id) {
  auto runs = engine.runs_for_event(event_id);
  REQUIRE(runs.size() == 1);
  return runs[0];
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

void advance(Engine& engine, ManualClock& clock, std::chrono::milliseconds d) {
  clock.advance(d);
  REQUIRE(engine.drain());
}

}  // namespace durable::testing
