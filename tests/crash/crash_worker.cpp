// The child process of tests/crash_test.cpp and of the crash torture (tests/torture/): an
// engine that runs the 20-step function "crash-20", and "crash-primitives" (a send, an invoke,
// a parallel group and a wait), until it is killed. Every step body first appends
// "<generation> <run_id> <step_key>" to a ledger, so the parent can tell afterwards which step
// bodies ran in which incarnation.
//
//   crash_worker --database F --ledger L --port-file P --generation G
//                [--workers N] [--lease-ttl-ms MS] [--step-ms MS]
//   crash_worker --database F --ledger L --serve-port PORT --generation G [...]
//
// Once the HTTP API listens (event key "crash"), the port is written to P (through a rename,
// so a reader never sees half of it); then the process waits for SIGKILL, which it also gets
// when its parent dies. With --serve-port it runs Engine::serve() on PORT instead, and exits
// with serve()'s exit code (tests/fail_stop_test.cpp: 74 after the store failed).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include <durable/durable.hpp>

namespace {

constexpr int kSteps = 20;

struct Args {
  std::string database;
  std::string ledger;
  std::string port_file;
  int generation = -1;
  int workers = 4;
  int lease_ttl_ms = 750;
  int step_ms = 2;
  int serve_port = -1;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "crash_worker: %s\nusage: crash_worker --database F --ledger L (--port-file P | --serve-port PORT) "
               "--generation G [--workers N] [--lease-ttl-ms MS] [--step-ms MS]\n",
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
    } else if (flag == "--ledger") {
      args.ledger = value;
    } else if (flag == "--port-file") {
      args.port_file = value;
    } else if (flag == "--generation") {
      args.generation = number();
    } else if (flag == "--workers") {
      args.workers = number();
    } else if (flag == "--lease-ttl-ms") {
      args.lease_ttl_ms = number();
    } else if (flag == "--step-ms") {
      args.step_ms = number();
    } else if (flag == "--serve-port") {
      args.serve_port = number();
    } else {
      usage(fmt::format("unknown option {}", flag));
    }
  }
  if (args.database.empty() || args.ledger.empty() || (args.port_file.empty() && args.serve_port < 0) ||
      args.generation < 0) {
    usage("--database, --ledger, --port-file (or --serve-port) and --generation are required");
  }
  return args;
}

// Appends `line` with a single write(2) on an O_APPEND descriptor: the line lands whole and at
// the end even with several workers writing, and a SIGKILL after the call cannot lose it (it is
// in the page cache, which belongs to the kernel, not to this process).
void append_line(int fd, const std::string& line) {
  ssize_t n = write(fd, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    // The ledger is the evidence the test rests on: better to die (the parent notices a worker
    // that exits by itself) than to go on with a gap in it.
    std::perror("crash_worker: cannot append to the ledger");
    std::abort();
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  // If the test dies without killing us (a crash, a SIGPIPE), do not live on as an orphan.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int ledger = open(args.ledger.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (ledger < 0) {
    std::perror("crash_worker: cannot open the ledger");
    return 1;
  }

  // A short lease: the runs the killed incarnation held are taken over soon after the restart.
  durable::Engine engine({.database = args.database,
                          .durability = durable::Durability::full,
                          .workers = args.workers,
                          .lease_ttl = std::chrono::milliseconds(args.lease_ttl_ms),
                          .log_level = "warn"});
  const int generation = args.generation;
  const auto step_time = std::chrono::milliseconds(args.step_ms);
  engine.function({.id = "crash-20"}, durable::on_event("crash/test"), [&](durable::Context& ctx) {
    int64_t seed = ctx.event.data.at("seed").get<int64_t>();
    int64_t sum = 0;
    for (int i = 0; i < kSteps; ++i) {
      std::string id = fmt::format("step-{}", i);  // distinct ids: the step key is the id
      sum += ctx.step.run(id, [&] {
        append_line(ledger, fmt::format("{} {} {}\n", generation, ctx.run_id, id));
        // A little work, so that kills land between a step's start and its commit too.
        std::this_thread::sleep_for(step_time);
        return seed * 100 + i;
      });
      // A short durable sleep, after step `seed % 20` and 20-80 ms long, so that kills find
      // runs asleep at every point of their course: its deadline must survive the kills too, and
      // on the real clock the run is claimed ahead of it and held until it ends.
      if (i == seed % kSteps) ctx.step.sleep("nap", std::chrono::milliseconds(20 * (1 + seed % 4)));
    }
    return sum;
  });
  // The workflow primitives under kills. Output: 2 seed (the invoked run) + 3 seed + 3 (the
  // parallel bodies) + 1000 (the acknowledgement arrived).
  engine.function({.id = "crash-primitives"}, durable::on_event("crash/primitives"), [&](durable::Context& ctx) {
    int64_t seed = ctx.event.data.at("seed").get<int64_t>();
    ctx.step.send_event("ping", durable::Event{.name = "crash/ping", .data = {{"seed", seed}}});
    auto doubled = ctx.step.invoke<int64_t>("double", {.function = "crash-double", .data = {{"seed", seed}}});
    auto body = [&](int i) {
      return [&, i] {
        append_line(ledger, fmt::format("{} {} fan[{}]\n", generation, ctx.run_id, i));
        std::this_thread::sleep_for(5 * step_time);
        return seed + i;
      };
    };
    auto [a, b, c] = ctx.step.run_all("fan", body(0), body(1), body(2));
    auto ack = ctx.step.wait_for_event("ack", {.event = "crash/ack", .match = "data.seed", .timeout = std::chrono::minutes(5)});
    return doubled + a + b + c + (ack ? 1000 : 0);
  });
  engine.function({.id = "crash-double"}, durable::on_event("crash/never"), [&](durable::Context& ctx) {
    int64_t seed = ctx.event.data.at("seed").get<int64_t>();
    return ctx.step.run("double", [&] {
      std::this_thread::sleep_for(step_time);
      return seed * 2;
    });
  });
  engine.function({.id = "crash-ping"}, durable::on_event("crash/ping"), [](durable::Context& ctx) { return ctx.event.data.at("seed"); });
  if (args.serve_port >= 0) return engine.serve({.port = args.serve_port, .event_keys = {"crash"}});
  int port = engine.listen({.port = 0, .event_keys = {"crash"}});

  std::string tmp = args.port_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << '\n';
    if (!out.flush()) {
      std::perror("crash_worker: cannot write the port file");
      return 1;
    }
  }
  std::filesystem::rename(tmp, args.port_file);

  for (;;) pause();  // until SIGKILL
}
