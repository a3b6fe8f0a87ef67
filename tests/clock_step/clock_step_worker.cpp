// The child process of tests/clock_step_test.cpp: an engine on the system clock, run by the
// test under libfaketime so that its wall clock can be stepped while it works. It serves two
// functions until it is killed:
//
//   "chain" (event clock/chain): five steps of a little real work each; the third fails on its
//     first attempt and is retried 1 s later (an engine-set delay).
//   "nap" (event clock/nap): a step, a user sleep of data.ms milliseconds, a step.
//
//   clock_step_worker --database F --port-file P [--workers N] [--lease-ttl-ms MS]
//
// Once the HTTP API listens (event key "clock"), the port is written to P (through a rename,
// so a reader never sees half of it); then the process waits for SIGKILL, which it also gets
// when its parent dies.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include <durable/durable.hpp>

namespace {

struct Args {
  std::string database;
  std::string port_file;
  int workers = 4;
  int lease_ttl_ms = 3000;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "clock_step_worker: %s\nusage: clock_step_worker --database F --port-file P [--workers N] "
               "[--lease-ttl-ms MS]\n",
               problem.c_str());
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", flag));
    std::string value = argv[++i];
    auto number = [&] {
      try {
        return std::stoi(value);
      } catch (const std::exception&) {
        usage(fmt::format("{} needs a number, not '{}'", flag, value));
      }
    };
    if (flag == "--database") {
      args.database = value;
    } else if (flag == "--port-file") {
      args.port_file = value;
    } else if (flag == "--workers") {
      args.workers = number();
    } else if (flag == "--lease-ttl-ms") {
      args.lease_ttl_ms = number();
    } else {
      usage(fmt::format("unknown option {}", flag));
    }
  }
  if (args.database.empty() || args.port_file.empty()) usage("--database and --port-file are required");
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  // If the test dies without killing us, do not live on as an orphan.
  prctl(PR_SET_PDEATHSIG, SIGKILL);

  durable::Engine engine({.database = args.database,
                          .durability = durable::Durability::normal,
                          .workers = args.workers,
                          .lease_ttl = std::chrono::milliseconds(args.lease_ttl_ms),
                          .log_level = "warn"});
  // Runs whose third step already failed once in this process: it fails only the first time.
  std::mutex mu;
  std::set<std::string> failed_once;
  durable::FunctionOptions chain{.id = "chain",
                                 .retries = 3,
                                 .backoff = {.delays = {std::chrono::seconds(1)},
                                             .max_jitter = std::chrono::milliseconds(0)}};
  engine.function(chain, durable::on_event("clock/chain"), [&](durable::Context& ctx) {
    int64_t sum = 0;
    for (int i = 0; i < 5; ++i) {
      sum += ctx.step.run(fmt::format("s{}", i), [&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a little work, in real time
        if (i == 2) {
          std::lock_guard lock(mu);
          if (failed_once.insert(ctx.run_id).second) throw std::runtime_error("first attempt fails");
        }
        return i;
      });
    }
    return sum;
  });
  engine.function({.id = "nap"}, durable::on_event("clock/nap"), [](durable::Context& ctx) {
    ctx.step.run("before", [] { return 1; });
    ctx.step.sleep("nap", std::chrono::milliseconds(ctx.event.data.at("ms").get<int64_t>()));
    return ctx.step.run("after", [] { return 2; });
  });
  int port = engine.listen({.port = 0, .event_keys = {"clock"}});

  std::string tmp = args.port_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << '\n';
    if (!out.flush()) {
      std::perror("clock_step_worker: cannot write the port file");
      return 1;
    }
  }
  std::filesystem::rename(tmp, args.port_file);

  for (;;) pause();  // until SIGKILL
}
