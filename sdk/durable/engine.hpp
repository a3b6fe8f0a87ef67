// The Engine: registers functions, stores events and runs in a database, executes runs on a
// pool of worker threads and serves the HTTP API. One Engine per process and database.
//
//   durable::Engine engine({.database = "app.db"});
//   engine.function({.id = "hello"}, durable::on_event("demo/hello"),
//                   [](durable::Context& ctx) { return ctx.step.run("greet", [] { return 42; }); });
//   return engine.serve({.port = 8288});  // until SIGINT/SIGTERM
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include <durable/clock.hpp>
#include <durable/context.hpp>
#include <durable/event.hpp>
#include <durable/function.hpp>
#include <durable/run.hpp>

namespace durable {

class EngineAccess;

// How hard each commit is pushed to disk.
enum class Durability {
  full,    // fsync on every commit (SQLite synchronous=FULL): nothing acknowledged is lost
  normal,  // WAL with synchronous=NORMAL: survives process crashes; a power loss loses the
           // commits since the WAL was last synced, i.e. since the last checkpoint began
           // (docs/operations.md, "Storage faults")
};

// Where failed runs are reported (EngineOptions::alert_webhook; docs/operations.md, "Failure
// alerts"): the engine POSTs the data of each durable/function.failed event to `url`, signed
// with `secret`, from a durable function of its own, "durable/alert-webhook".
struct AlertWebhook {
  // "http://host[:port][/path]" or "https://..." (verified against the system's CAs).
  std::string url;
  // The HMAC-SHA256 key of the X-Durable-Signature header. Required (non-empty).
  std::string secret;
};

struct EngineOptions {
  // The database (docs/configuration.md, "Database"): a SQLite file path, created if missing
  // ("app.db", or "sqlite:app.db"); ":memory:" for a private in-memory database.
  // Default (empty): the DURABLE_DATABASE environment variable, else "durable.db" in the
  // working directory.
  std::string database;
  // Default: full.
  Durability durability = Durability::full;
  // Worker threads, i.e. how many runs execute at once. Throughput grows with this number
  // because concurrent steps share commits. Default: 64.
  int workers = 64;
  // How long a worker's claim on a run lasts without renewal. Runs of a crashed process are
  // taken over this long after its last renewal. Renewed every third of it. Default: 30 s.
  std::chrono::milliseconds lease_ttl = std::chrono::seconds(30);
  // How often the database is checked for work this process was not told about (runs
  // created or woken by other processes). Default: 500 ms.
  std::chrono::milliseconds poll_interval = std::chrono::milliseconds(500);
  // The time source. Default: the system clock. Tests pass a ManualClock.
  std::shared_ptr<Clock> clock;
  // Log lines with at least this level go to stderr: "debug", "info", "warn", "error" or
  // "off". Default: "info".
  std::string log_level = "info";
  // Finished runs (completed, failed, cancelled) are deleted, with their journals, this long
  // after they ended, and then the events no run refers to; in the background, in small
  // batches. 0: keep everything. Default: 30 days.
  std::chrono::milliseconds retention = std::chrono::hours(24 * 30);
  // POST every failed run, signed, to a URL. An invalid URL or an empty secret: the
  // constructor throws durable::Error. Default: DURABLE_ALERT_URL and DURABLE_ALERT_SECRET
  // from the environment when DURABLE_ALERT_URL is set, else none.
  std::optional<AlertWebhook> alert_webhook;
};

struct ServeOptions {
  // Address to listen on. Default: loopback only.
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (listen() returns it). Default: 8288.
  int port = 8288;
  // Keys accepted by POST /e/{key}. Default (empty): the comma-separated keys in the
  // DURABLE_EVENT_KEY environment variable, else one random key, printed at start.
  std::vector<std::string> event_keys;
  // Keys accepted by the REST API (/v1/*) in "Authorization: Bearer <key>". Default (empty):
  // the comma-separated keys in DURABLE_API_KEY; without any, /v1 refuses every request.
  std::vector<std::string> api_keys;
  // Whether GET /metrics needs an API key too. Default: false (Prometheus scrapes it).
  bool metrics_require_api_key = false;
  // Largest accepted event (its JSON text) in bytes; larger: 413. Default: 512 KiB.
  size_t max_event_bytes = 512 * 1024;
  // Largest accepted request body in bytes, counted as it arrives, and again after a gzip or
  // deflate body is inflated; larger: 413 and the connection closed. Default: 3 MiB.
  size_t max_request_bytes = 3 * 1024 * 1024;
  // Largest request head (request line and headers) in bytes; larger: 431. Default: 16 KiB.
  size_t max_header_bytes = 16 * 1024;
  // A request's head must have arrived this long after its first byte, however slowly it
  // comes; then the connection is closed. Default: 10 s.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  // The whole request, body included, must have arrived this long after its first byte.
  // Default: 60 s.
  std::chrono::milliseconds request_timeout = std::chrono::seconds(60);
  // A keep-alive connection with no request under way is closed after this. Default: 60 s.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // An answer the client does not read within this is abandoned, and the connection closed.
  // Default: 60 s.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(60);
  // Open connections at most; more are answered 503 and closed. (Each is a file descriptor:
  // the server raises the process's soft limit to the hard one.) Default: 10,000.
  int max_connections = 10000;
  // Threads that run request handlers (ingest, queries, operator actions); connections
  // themselves need none. Default: 16.
  int handler_threads = 16;
  // On shutdown, how long running steps get to finish before the process exits anyway (what
  // is left is recovered through leases on the next start). Default: 10 s.
  std::chrono::milliseconds shutdown_grace = std::chrono::seconds(10);
};

// How one stored run replays against this process's code (Engine::verify).
struct VerifiedRun {
  std::string run_id;
  RunStatus status = RunStatus::queued;
  std::string expected;    // the step the journal has at the point of divergence ...
  std::string actual;      // ... and the step the code reached instead
  std::string message;     // why, as a NondeterminismError would say
  int steps_replayed = 0;  // recorded steps the replay went through
};

struct VerifyReport {
  std::string function_id;
  int checked = 0;                 // runs replayed
  std::vector<VerifiedRun> diverged;  // those that would fail with a NondeterminismError
};

class Engine {
 public:
  // Opens (creating or migrating) the database. Throws durable::Error when it cannot, e.g.
  // when the database was written by a newer version of durable.
  explicit Engine(EngineOptions options = {});
  // Stops the workers (see stop()) and closes the database.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Registers a function. `handler` takes a Context& and returns void, nlohmann::json or any
  // JSON-convertible value (the run's output). Call before start()/serve(). Throws
  // durable::Error for a missing or duplicate id, an invalid trigger or a negative retry count.
  template <class Fn>
  void function(FunctionOptions options, Triggers triggers, Fn&& handler) {
    using Result = std::invoke_result_t<Fn&, Context&>;
    if constexpr (std::is_void_v<Result>) {
      add_function(std::move(options), std::move(triggers.list),
                   [fn = std::forward<Fn>(handler)](Context& ctx) mutable -> nlohmann::json {
                     fn(ctx);
                     return nullptr;
                   });
    } else {
      add_function(std::move(options), std::move(triggers.list),
                   [fn = std::forward<Fn>(handler)](Context& ctx) mutable -> nlohmann::json {
                     return nlohmann::json(fn(ctx));
                   });
    }
  }
  void add_function(FunctionOptions options, std::vector<Trigger> triggers, Handler handler);

  // Starts the workers and the scheduler: runs stored in the database (sleeping, retrying,
  // left behind by a crash) resume. Idempotent. serve() and listen() call it.
  void start();

  // Stores events (validated like the HTTP API: throws durable::Error saying what is wrong,
  // and then stores nothing) and the runs they start, in one durable commit. Returns the
  // engine's ids for the events, in order. Thread-safe; works before start() too (the runs
  // wait until then).
  std::string send(const Event& event);
  std::vector<std::string> send(const std::vector<Event>& events);

  // A snapshot of one run, or nullopt if there is none with that id. Thread-safe.
  std::optional<Run> get_run(std::string_view run_id) const;
  // The runs an event started, oldest first. Thread-safe.
  std::vector<Run> runs_for_event(std::string_view event_id) const;

  // Starts the HTTP API in the background and returns the port it listens on. Throws
  // durable::Error when it cannot listen.
  int listen(ServeOptions options = {});

  // start(), listen(), then blocks until SIGINT or SIGTERM; then stops (see stop()) and
  // returns the process exit code: 0 after a clean stop. If the store fails meanwhile (an
  // fsync or other I/O error: it then refuses every write, see docs/operations.md, "Storage
  // faults"), it stops at once, without a grace period, and returns 74 (EX_IOERR): restart
  // the process, which recovers from what is on disk.
  int serve(ServeOptions options = {});

  // Stops the HTTP API, stops claiming runs, and lets running executions finish their
  // current step for up to `grace`; they then suspend and their runs return to the queue.
  // Executions still busy after `grace` are left to lease recovery. Returns true when every
  // execution ended within `grace`. Idempotent. The engine cannot be started again.
  bool stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  // Replays the journals of the stored runs of `function_id` (newest first, at most `limit`;
  // finished runs too) against the function as registered here, without running any step
  // body or writing anything, and reports those whose journal the code would not follow: run
  // it before deploying a change to a function with runs in flight (docs/steps.md,
  // "Determinism"). Needs no start(). Throws durable::Error if the function is not registered
  // here.
  VerifyReport verify(std::string_view function_id, int limit = 10000);

  // Blocks until no run is executing and none is due at the clock's current time (a test
  // aid: with a ManualClock, advance the clock, then drain()). Returns false if that did not
  // happen within `timeout` of real time.
  bool drain(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  class Impl;

 private:
  friend class EngineAccess;  // the test kit's way in (engine/engine_access.hpp)
  std::unique_ptr<Impl> impl_;
};

}  // namespace durable
