// Helpers shared by the tests: temporary directories, engines on a manual clock, reading a
// run's journal back, and child processes (servers, node scripts).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <durable/durable.hpp>

#include "engine/store/store.hpp"

namespace durable::testing {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Retries without waiting (tests move a ManualClock instead): every retry is due 1 s later.
Backoff fast_backoff();

// The database the tests' engines use for the SQLite file `path`: `path` itself, or, when
// DURABLE_TEST_BACKEND=postgres, a database of the private PostgreSQL server
// (tests/postgres_server.hpp), the same one for every call with the same path. Tests about
// semantics give their engines this, so the same test runs on either backend.
std::string test_database(const std::string& path);

// Options for an engine on test_database(database) driven by `clock`: 4 workers, warnings only.
EngineOptions engine_options(const std::string& database, std::shared_ptr<Clock> clock);

// The journal of `run_id` in test_database(path), read through a store of its own.
std::vector<JournalEntry> read_journal(const std::string& path, const std::string& run_id);

// The entries of `kind` in `journal`.
std::vector<JournalEntry> entries_of(const std::vector<JournalEntry>& journal, JournalKind kind);

// The only run that event `event_id` started. Fails the test if there is not exactly one.
Run only_run(const Engine& engine, const std::string& event_id);

// Advances `clock` by `d`, then waits until the engine has nothing due (Engine::drain).
void advance(Engine& engine, ManualClock& clock, std::chrono::milliseconds d);

// A TCP port on 127.0.0.1 that was free a moment ago (for a server in a child process).
int free_port();

// A program run as a child process, its stdout and stderr going to `log_path`. Killed with
// SIGKILL (and reaped) on destruction, so a failed REQUIRE leaves no orphan behind.
class ChildProcess {
 public:
  // `env`: extra NAME=value entries on top of this process's environment.
  ChildProcess(std::vector<std::string> args, const std::string& log_path, std::vector<std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Whether it is still running (false once it exited by itself).
  bool running();
  // The raw wait status once running() found that it exited by itself; nullopt before.
  std::optional<int> exit_status() const { return exit_status_; }
  // Sends `signal`, waits for the exit and returns the raw wait status.
  int stop(int signal);

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// The environment entries that preload `library` (LD_PRELOAD) into a ChildProcess. In a build
// with ASan, they also tell ASan not to insist on being the first library loaded (the
// preloaded one is not instrumented).
std::vector<std::string> preload_env(const std::string& library);

// `program` as the shell would find it on the PATH, or "" when it is not there.
std::string find_on_path(const std::string& program);

// Runs `node <script> <args>` with only `env` (NAME=value entries) and this process's PATH in
// its environment, so that nothing else from the test's environment (NODE_ENV, ...) changes
// what the script does. Its stdout and stderr go to files in `dir`. Fails the test, showing
// both, unless it exits 0 within `timeout`; returns what it printed on stdout, parsed as JSON.
// `node` is its path (find_on_path("node")).
nlohmann::json run_node_script(const std::string& node, const std::string& script, const std::vector<std::string>& args,
                               std::vector<std::string> env, const TempDir& dir, std::chrono::seconds timeout);

// Polls `condition` every 10 ms of real time until it holds or `timeout` passes (for waiting
// on another process, never on time itself). Returns its last value.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace durable::testing
