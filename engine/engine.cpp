// The Engine facade (declared in sdk/durable/engine.hpp): it owns the store, the function
// registry, the executor, the scheduler and the HTTP server, and wires them together.
#include <durable/engine.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "engine/base/ids.hpp"
#include "engine/base/log.hpp"
#include "engine/engine_access.hpp"
#include "engine/exec/alert_webhook.hpp"
#include "engine/exec/cron_triggers.hpp"
#include "engine/exec/executor.hpp"
#include "engine/exec/function_registry.hpp"
#include "engine/exec/ingest.hpp"
#include "engine/exec/metrics.hpp"
#include "engine/exec/retention.hpp"
#include "engine/exec/run_cache.hpp"
#include "engine/exec/run_control.hpp"
#include "engine/exec/scheduler.hpp"
#include "engine/http/api.hpp"
#include "engine/http/dashboard.hpp"
#include "engine/http/http_server.hpp"
#include "engine/store/open_store.hpp"

namespace durable {

namespace {

// How long before a sleep ends its run is claimed and loaded (see SchedulerOptions).
constexpr std::chrono::milliseconds kClaimAhead{50};

// serve()'s exit code after the store failed (fail-stop): sysexits.h's EX_IOERR.
constexpr int kExitStoreFailed = 74;

std::string make_owner_id() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
  return fmt::format("{}:{}:{}", host, getpid(), random_hex(4));
}

std::vector<std::string> split_keys(const char* text) {
  std::vector<std::string> keys;
  std::string current;
  for (const char* p = text; p && *p; ++p) {
    if (*p == ',') {
      if (!current.empty()) keys.push_back(current);
      current.clear();
    } else if (*p != ' ') {
      current += *p;
    }
  }
  if (!current.empty()) keys.push_back(current);
  return keys;
}

// The configured keys, else those in the environment variable `env`.
std::vector<std::string> configured_keys(std::vector<std::string> keys, const char* env) {
  return keys.empty() ? split_keys(std::getenv(env)) : keys;
}

// serve() waits on a pipe that the signal handler writes to: the one async-signal-safe way
// to wake a thread, whichever thread the kernel delivers the signal to.
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  int saved = errno;
  char byte = 1;
  [[maybe_unused]] auto n = write(g_signal_pipe[1], &byte, 1);
  errno = saved;
}

}  // namespace

class Engine::Impl {
 public:
  friend class EngineAccess;

  explicit Impl(EngineOptions options)
      : options_(std::move(options)),
        clock_(options_.clock ? options_.clock : std::make_shared<SystemClock>()),
        owner_(make_owner_id()) {
    set_log_level(parse_log_level(options_.log_level));
    if (options_.workers < 1) throw Error("EngineOptions::workers must be at least 1");
    if (options_.lease_ttl < std::chrono::milliseconds(100)) throw Error("EngineOptions::lease_ttl must be at least 100 ms");
    if (options_.retention.count() < 0) throw Error("EngineOptions::retention must not be negative (0 keeps everything)");
    if (options_.poll_interval < std::chrono::milliseconds(1)) throw Error("EngineOptions::poll_interval must be positive");
    register_alert_webhook(functions_, options_.alert_webhook, clock_);
    options_.database = resolve_database_url(options_.database);
    store_ = open_store(options_.database, StoreOpenOptions{.durability = options_.durability});
    // A wait resolved by an event stored here (or by a run's commit) queues its run: claim it
    // at once if it is ours. Other processes' runs are found by their polling.
    // Fail-stop: the store refuses every write from now on; serve() exits so that a supervisor
    // restarts the process, whose recovery reads only what is on disk.
    store_->set_failure_listener([this](const std::string& failure) {
      log(LogLevel::error, "the store failed; the process must be restarted", {{"error", failure}});
      std::lock_guard lock(serve_mu_);
      if (serving_) {
        char byte = 1;
        [[maybe_unused]] auto n = write(g_signal_pipe[1], &byte, 1);
      }
    });
    store_->set_wait_listener([this](const std::vector<std::string>& function_ids) {
      for (const auto& id : function_ids) {
        if (functions_.find(id)) {
          notify();
          return;
        }
      }
    });
    env_ = std::make_unique<ExecutionEnv>(ExecutionEnv{*store_, *clock_, ids_, functions_,
                                                       [this](TimePoint at, bool sleep) { wake_at(at, sleep); },
                                                       stopping_, run_cache_, metrics_, mocks_,
                                                       [this](std::function<void()> task) {
                                                         executor_->run_task(std::move(task));
                                                       }});
    executor_ = std::make_unique<Executor>(*env_, options_.workers, [this] {
      if (Scheduler* s = scheduler_ptr()) s->notify_slot_free();
    });
    ingestor_ = std::make_unique<EventIngestor>(EventIngestor::Options{owner_, options_.lease_ttl}, *store_,
                                                functions_, ids_, *clock_, *executor_, metrics_, [this] { notify(); });
    control_ = std::make_unique<RunControl>(*store_, *clock_, ids_, metrics_, [this] { notify(); });
    retention_ = std::make_unique<Retention>(RetentionOptions{.max_age = options_.retention}, *store_, *clock_);
  }

  ~Impl() {
    stop(std::chrono::milliseconds(0));
    retention_.reset();
    // Workers may still be finishing a step, and then call into the scheduler (wake_at,
    // notify): join them first, then drop the scheduler.
    executor_.reset();
    std::unique_ptr<Scheduler> scheduler;
    {
      std::lock_guard lock(mu_);
      scheduler = std::move(scheduler_);
    }
    scheduler.reset();
  }

  void add_function(FunctionOptions options, std::vector<Trigger> triggers, Handler handler) {
    std::lock_guard lock(mu_);
    if (started_) throw Error(fmt::format("function '{}' registered after the engine started: register every function first", options.id));
    functions_.add(std::move(options), std::move(triggers), std::move(handler));
  }

  void start() {
    std::lock_guard lock(mu_);
    if (started_) return;
    if (stopped_) throw Error("the engine was stopped; create a new Engine to start again");
    started_ = true;
    // Recorded before any claim, so that events ingested by other processes start runs of
    // these functions from now on.
    store_->register_functions(functions_.records(owner_, clock_->now()));
    scheduler_ = std::make_unique<Scheduler>(
        SchedulerOptions{owner_, functions_.ids(), options_.lease_ttl, options_.poll_interval,
                         clock_->advances_by_itself() ? kClaimAhead : std::chrono::milliseconds(0),
                         [this](int n) { metrics_.leases_recovered(n); }},
        *store_, *executor_, *clock_);
    executor_->start();
    scheduler_->start();
    retention_->start();
    // (The scheduler directly: mu_ is held here, and the catch-up fires within start(). The
    // triggers stop before the scheduler goes.)
    cron_ = std::make_unique<CronTriggers>(functions_.schedules(), *store_, *clock_, ids_,
                                           [scheduler = scheduler_.get()] { scheduler->notify(); });
    cron_->start();
    log(LogLevel::info, "engine started",
        {{"database", masked_url(options_.database)}, {"functions", std::to_string(functions_.ids().size())},
         {"workers", std::to_string(options_.workers)}, {"worker_id", owner_}});
  }

  std::vector<std::string> send(std::vector<Event> events) {
    for (size_t i = 0; i < events.size(); ++i) {
      try {
        validate_event(events[i]);
      } catch (const RequestError& e) {
        throw Error(events.size() == 1 ? std::string(e.what()) : fmt::format("event {}: {}", i, e.what()));
      }
    }
    return ingestor_->ingest(std::move(events));
  }

  int listen(ServeOptions options) {
    start();
    HttpKeys keys{configured_keys(options.event_keys, "DURABLE_EVENT_KEY"),
                  configured_keys(options.api_keys, "DURABLE_API_KEY")};
    if (keys.event_keys.empty()) {
      // A first run works at once, and says how to configure it. (An event key only lets its
      // holder send events; no API key is ever made up, since one controls every run.)
      keys.event_keys.push_back(random_hex(16));
      std::fprintf(stderr, "durable: no event key configured (ServeOptions::event_keys or DURABLE_EVENT_KEY); "
                           "this run accepts the key %s\n", keys.event_keys[0].c_str());
    }
    if (keys.api_keys.empty()) {
      log(LogLevel::warn, "no API key configured (ServeOptions::api_keys or DURABLE_API_KEY): the REST API /v1 "
                          "refuses every request");
    }
    std::lock_guard lock(mu_);
    if (http_) throw Error("the HTTP API is already listening");
    if (stopped_) throw Error("the engine was stopped");
    api_ = std::make_unique<ApiServices>(ApiServices{
        *store_, *clock_, *ingestor_, *control_, EventLimits{options.max_event_bytes, options.max_request_bytes},
        [this] { return metrics_.render(store_->stats(), store_->queue_depth(clock_->now())); },
        [this](TimePoint cutoff) { return retention_->collect(cutoff); },
        [this](const std::string& id, int limit) -> std::optional<VerifyReport> {
          if (!functions_.find(id)) return std::nullopt;
          return verify(id, limit);
        }});
    std::vector<Route> routes = api_routes(api_.get(), options.metrics_require_api_key);
    for (Route& route : dashboard_routes()) routes.push_back(std::move(route));
    auto http = std::make_unique<HttpServer>(
        options, std::make_unique<HttpRouter>(std::move(keys), std::move(routes), options.max_request_bytes));
    int port = http->start();
    http_ = std::move(http);
    log(LogLevel::info, "listening", {{"url", fmt::format("http://{}:{}", options.host, port)}});
    return port;
  }

  int serve(ServeOptions options) {
    auto grace = options.shutdown_grace;
    // The handlers go in before the engine starts: a signal that comes while it starts (runs
    // may already be executing) must stop it cleanly too, not kill the process. If listen()
    // throws, the process's signal handling is put back as it was.
    if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) throw Error("cannot create the signal pipe");
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    struct sigaction old_int {}, old_term {};
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);
    auto restore = [&] {
      {
        std::lock_guard lock(serve_mu_);
        serving_ = false;
      }
      sigaction(SIGINT, &old_int, nullptr);
      sigaction(SIGTERM, &old_term, nullptr);
      close(g_signal_pipe[0]);
      close(g_signal_pipe[1]);
    };
    {
      // From here a store failure wakes this thread too (the failure listener).
      std::lock_guard lock(serve_mu_);
      serving_ = true;
    }
    try {
      listen(std::move(options));
    } catch (...) {
      restore();
      throw;
    }
    // A failure before serving_ was set wrote nothing to the pipe: do not wait for it.
    char byte;
    while (!store_->failure() && read(g_signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    // Fail-stop: nothing more can be committed, so a step's grace would be for nothing; exit
    // with kExitStoreFailed so that the supervisor restarts the process.
    const bool failed = store_->failure().has_value();
    if (failed) {
      log(LogLevel::error, "stopping at once: the store failed after an I/O error", {{"exit_code", std::to_string(kExitStoreFailed)}});
      grace = std::chrono::milliseconds(0);
    } else {
      log(LogLevel::info, "stopping: finishing running steps", {{"grace_ms", std::to_string(grace.count())}});
    }
    bool clean = stop(grace);
    restore();
    const int exit_code = failed ? kExitStoreFailed : 0;
    if (!clean) {
      // Some step bodies are still running and cannot be interrupted. Their runs stay leased
      // and are recovered when the lease expires; everything committed is safe on disk. Exit
      // without running destructors that would wait for those threads.
      log(LogLevel::warn, "steps still running after the grace period; exiting, they will be recovered through leases");
      std::fflush(nullptr);
      std::_Exit(exit_code);
    }
    log(LogLevel::info, "stopped");
    return exit_code;
  }

  bool stop(std::chrono::milliseconds grace) {
    std::unique_ptr<HttpServer> http;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return stop_was_clean_;
      stopped_ = true;
      http = std::move(http_);
    }
    // Executions first learn that no new step may start (they hand their run back at their
    // next step); then no new events, no new claims.
    stopping_.store(true);
    if (http) http->stop();
    // Leases are renewed until the executions are over: a step that is given its grace
    // period must not lose its run to another process meanwhile.
    Scheduler* scheduler = scheduler_ptr();
    if (scheduler) scheduler->stop_claiming();
    retention_->stop();
    if (CronTriggers* cron = cron_ptr()) cron->stop();
    stop_was_clean_ = executor_->stop(grace);
    if (scheduler) scheduler->stop();
    return stop_was_clean_;
  }

  VerifyReport verify(std::string_view function_id, int limit) {
    if (!functions_.find(function_id)) {
      throw Error(fmt::format("function '{}' is not registered in this process: verify replays against the code "
                              "that registers it",
                              function_id));
    }
    VerifyReport report{.function_id = std::string(function_id)};
    std::string before;
    while (report.checked < limit) {
      std::vector<Run> page = store_->list_runs(RunFilter{.function_id = std::string(function_id)},
                                                std::min(500, limit - report.checked), before);
      if (page.empty()) break;
      before = page.back().id;
      for (const Run& run : page) {
        ReplayCheck check = RunExecution(*env_, ClaimedRun{.run_id = run.id, .function_id = run.function_id,
                                                           .event_id = run.event_id, .started_at = run.started_at})
                                .check_replay();
        ++report.checked;
        if (!check.diverged) continue;
        report.diverged.push_back(VerifiedRun{.run_id = run.id, .status = run.status, .expected = check.expected, .actual = check.actual,
                                              .message = check.message, .steps_replayed = check.steps_replayed});
      }
    }
    return report;
  }

  bool drain(std::chrono::milliseconds timeout) {
    Scheduler* scheduler;
    {
      std::lock_guard lock(mu_);
      if (!started_ || stopped_) return executor_->idle();
      scheduler = scheduler_.get();
    }
    return scheduler->drain(timeout);
  }

  std::optional<Run> get_run(std::string_view id) { return store_->find_run(id); }
  std::vector<Run> runs_for_event(std::string_view id) { return store_->runs_for_event(id); }

 private:
  void notify() {
    if (Scheduler* s = scheduler_ptr()) s->notify();
  }
  void wake_at(TimePoint at, bool sleep) {
    if (Scheduler* s = scheduler_ptr()) s->wake_at(at, sleep);
  }
  CronTriggers* cron_ptr() {
    std::lock_guard lock(mu_);
    return cron_.get();
  }
  Scheduler* scheduler_ptr() {
    std::lock_guard lock(mu_);
    return scheduler_.get();
  }

  EngineOptions options_;
  std::shared_ptr<Clock> clock_;
  const std::string owner_;
  IdGenerator ids_;
  FunctionRegistry functions_;  // frozen once started_
  std::atomic<bool> stopping_{false};
  RunCache run_cache_;

  std::mutex mu_;
  bool started_ = false;        // guarded by mu_
  bool stopped_ = false;        // guarded by mu_
  bool stop_was_clean_ = true;
  std::mutex serve_mu_;
  bool serving_ = false;  // guarded by serve_mu_: serve() waits on g_signal_pipe
  std::unique_ptr<HttpServer> http_;  // guarded by mu_
  std::unique_ptr<ApiServices> api_;  // guarded by mu_; set with http_, kept after it stops
  Metrics metrics_;

  // Declared in dependency order: destroyed from the bottom up, each before what it uses.
  std::unique_ptr<Store> store_;
  std::unique_ptr<ExecutionEnv> env_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<EventIngestor> ingestor_;
  std::unique_ptr<RunControl> control_;
  std::unique_ptr<Retention> retention_;
  std::unique_ptr<Scheduler> scheduler_;  // set once by start() under mu_
  std::unique_ptr<CronTriggers> cron_;    // set once by start() under mu_
  StepMocks mocks_;                        // the test kit's (EngineAccess)
};

Store& EngineAccess::store(Engine& engine) { return *engine.impl_->store_; }
StepMocks& EngineAccess::mocks(Engine& engine) { return engine.impl_->mocks_; }

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Engine::~Engine() = default;

void Engine::add_function(FunctionOptions options, std::vector<Trigger> triggers, Handler handler) {
  impl_->add_function(std::move(options), std::move(triggers), std::move(handler));
}
void Engine::start() { impl_->start(); }
std::string Engine::send(const Event& event) { return impl_->send({event}).at(0); }
std::vector<std::string> Engine::send(const std::vector<Event>& events) { return impl_->send(events); }
std::optional<Run> Engine::get_run(std::string_view run_id) const { return impl_->get_run(run_id); }
std::vector<Run> Engine::runs_for_event(std::string_view event_id) const { return impl_->runs_for_event(event_id); }
int Engine::listen(ServeOptions options) { return impl_->listen(std::move(options)); }
int Engine::serve(ServeOptions options) { return impl_->serve(std::move(options)); }
bool Engine::stop(std::chrono::milliseconds grace) { return impl_->stop(grace); }
bool Engine::drain(std::chrono::milliseconds timeout) { return impl_->drain(timeout); }
VerifyReport Engine::verify(std::string_view function_id, int limit) { return impl_->verify(function_id, limit); }

}  // namespace durable
