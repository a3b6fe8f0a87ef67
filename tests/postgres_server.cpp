#include "tests/postgres_server.hpp"

#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/store/postgres/pg.hpp"
#include "tests/testing.hpp"

namespace durable::testing {

namespace {

// The output of `command` (through sh), its exit status in `status`.
std::string run(const std::string& command, int& status) {
  std::string out;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) {
    status = -1;
    return "popen failed";
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  status = pclose(p);
  return out;
}

class Server {
 public:
  Server() {
    int status = 0;
    const char* env = std::getenv("DURABLE_PG_BINDIR");
    bindir_ = env ? env : run("pg_config --bindir", status);
    while (!bindir_.empty() && (bindir_.back() == '\n' || bindir_.back() == ' ')) bindir_.pop_back();
    if (!std::filesystem::exists(bindir_ + "/initdb")) {
      error_ = fmt::format("no PostgreSQL server programs in '{}' (pg_config --bindir): install postgresql-15 "
                           "(scripts/install-deps.sh does)",
                           bindir_);
      return;
    }
    char tmpl[] = "/tmp/durable-pg-XXXXXX";
    if (!mkdtemp(tmpl)) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    // The server refuses to run as root: as root, it runs as the postgres user.
    if (geteuid() == 0) {
      passwd* pw = getpwnam("postgres");
      if (!pw) {
        error_ = "running as root, and there is no 'postgres' user to run the server as";
        return;
      }
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        error_ = "cannot give the server's directory to the postgres user";
        return;
      }
      as_ = "runuser -u postgres -- ";
    }
    port_ = free_port();
    std::string out = run(fmt::format("{}{}/initdb -D {}/data -A trust -U durable -E UTF8 --no-sync", as_, bindir_, dir_),
                          status);
    if (status != 0) {
      error_ = "initdb failed: " + out;
      return;
    }
    out = run(fmt::format("{}{}/pg_ctl -D {}/data -l {}/server.log -w -t 60 -o \"-p {} -k {} -c listen_addresses=127.0.0.1 "
                          "-c max_connections=300 -c fsync=on\" start",
                          as_, bindir_, dir_, dir_, port_, dir_),
              status);
    if (status != 0) {
      std::ifstream log(dir_ + "/server.log");
      std::stringstream text;
      text << log.rdbuf();
      error_ = "pg_ctl start failed: " + out + "\n" + text.str();
      return;
    }
    started_ = true;
  }

  ~Server() {
    if (started_) {
      int status = 0;
      run(fmt::format("{}{}/pg_ctl -D {}/data -m immediate -w stop", as_, bindir_, dir_), status);
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  std::string database() {
    if (!started_) FAIL("the tests' PostgreSQL server could not start: " << error_);
    std::string name = fmt::format("t_{}_{}", getpid(), next_++);
    std::string admin = fmt::format("postgres://durable@127.0.0.1:{}/postgres", port_);
    PgConn(admin, admin).exec("CREATE DATABASE " + name);
    return fmt::format("postgres://durable@127.0.0.1:{}/{}", port_, name);
  }

 private:
  std::string bindir_, dir_, as_, error_;
  int port_ = 0;
  bool started_ = false;
  std::atomic<int> next_{0};
};

}  // namespace

std::string postgres_test_database() {
  static Server server;
  return server.database();
}

}  // namespace durable::testing
