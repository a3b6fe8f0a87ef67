#include "tests/testing.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include "engine/store/open_store.hpp"
#include "tests/postgres_server.hpp"

extern char** environ;

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

std::string test_database(const std::string& path) {
  static const bool postgres = [] {
    const char* backend = std::getenv("DURABLE_TEST_BACKEND");
    return backend && std::string_view(backend) == "postgres";
  }();
  if (!postgres || path == ":memory:") return path;
  static std::mutex mu;
  static std::map<std::string, std::string> urls;
  std::lock_guard lock(mu);
  auto it = urls.find(path);
  if (it == urls.end()) it = urls.emplace(path, postgres_test_database()).first;
  return it->second;
}

EngineOptions engine_options(const std::string& database, std::shared_ptr<Clock> clock) {
  return EngineOptions{.database = test_database(database),
                       .durability = Durability::normal,
                       .workers = 4,
                       .clock = std::move(clock),
                       .log_level = "off"};
}

std::vector<JournalEntry> read_journal(const std::string& path, const std::string& run_id) {
  return open_store(test_database(path), {})->load_journal(run_id);
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

ChildProcess::ChildProcess(std::vector<std::string> args, const std::string& log_path, std::vector<std::string> env) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Ours first: getenv() returns the first entry of a name.
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) pid_ = -1;
  REQUIRE_MESSAGE(rc == 0, "cannot start " << args[0] << ": " << std::strerror(rc));
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop(SIGKILL);
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    exit_status_ = status;
    return false;
  }
  return true;
}

int ChildProcess::stop(int signal) {
  REQUIRE(pid_ > 0);
  int status = 0;
  kill(pid_, signal);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::vector<std::string> preload_env(const std::string& library) {
  const char* asan = std::getenv("ASAN_OPTIONS");
  return {"LD_PRELOAD=" + library,
          "ASAN_OPTIONS=" + (asan && *asan ? std::string(asan) + ":" : std::string()) + "verify_asan_link_order=0"};
}

std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

namespace {

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

nlohmann::json run_node_script(const std::string& node, const std::string& script, const std::vector<std::string>& args,
                               std::vector<std::string> env, const TempDir& dir, std::chrono::seconds timeout) {
  std::string name = std::filesystem::path(script).filename().string();
  std::vector<std::string> argv_text = {node, script};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (const char* path = std::getenv("PATH")) env.push_back(std::string("PATH=") + path);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::string out = dir.file(name + ".out"), err = dir.file(name + ".err");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, node.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(rc == 0, "cannot start " << node << ": " << std::strerror(rc));

  // Polled rather than a blocking waitpid, so that a hung script fails the test instead of
  // stalling the suite.
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      // SIGTERM first: a script may have children of its own to end (Playwright closes its
      // browser on SIGTERM; a SIGKILLed node would leave chromium behind). SIGKILL if it
      // is still there 5 s later.
      kill(pid, SIGTERM);
      bool ended = wait_until([&] { return waitpid(pid, &status, WNOHANG) != 0; }, std::chrono::seconds(5));
      if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
      }
      FAIL("node " << name << " did not finish within " << timeout.count() << " s; stdout:\n"
                   << file_text(out) << "\nstderr:\n" << file_text(err));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string printed = file_text(out);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "node " << name << " failed (status " << status << "); stdout:\n"
                          << printed << "\nstderr:\n" << file_text(err));
  auto parsed = nlohmann::json::parse(printed, nullptr, false);
  REQUIRE_MESSAGE(!parsed.is_discarded(), "node " << name << " printed no JSON:\n" << printed << "\nstderr:\n" << file_text(err));
  return parsed;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace durable::testing
