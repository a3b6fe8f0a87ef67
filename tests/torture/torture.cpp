#include "tests/torture/torture.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <durable/client.hpp>

#include "engine/base/crash_points.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "tests/testing.hpp"

namespace durable::testing {

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kSteps = 20;  // crash-20's steps
constexpr const char* kEventKey = "crash";
constexpr int kSenders = 2;
// A request that got no answer for this long (every worker dying at once, say) is given up,
// as a problem, so that the torture ends.
constexpr auto kGiveUpSending = 120s;
// The last incarnation has this long to make progress (finish one more run) before the
// torture stops waiting for it.
constexpr auto kDrainStall = 60s;
// An armed crash point that this many workers did not reach is not armed again.
constexpr int kMaxMisses = 8;

// A step of a run: "<run id> <step key>", the way the ledger names it.
std::string step_id(const std::string& run_id, const std::string& key) { return run_id + " " + key; }

std::string millis_text(milliseconds d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  if (s.count() < 60) return fmt::format("{:.1f} s", d.count() / 1000.0);
  return fmt::format("{}m{:02}s", s.count() / 60, s.count() % 60);
}

milliseconds since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t);
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string tail_of(const std::string& path, size_t max_lines) {
  std::istringstream in(file_text(path));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

std::optional<int> read_port(const std::string& path) {
  std::ifstream in(path);
  int port = 0;
  if (in >> port && port > 0) return port;
  return std::nullopt;
}

// How often a crash point is reached, roughly, while a worker lives: its n is drawn from 1 to
// this, so that it is reached in most incarnations armed with it, at varying moments.
int max_hit(CrashPoint point) {
  switch (point) {
    case CrashPoint::ingest_after_insert: return 2;
    case CrashPoint::before_journal_write:
    case CrashPoint::after_journal_write: return 20;
    case CrashPoint::before_commit:
    case CrashPoint::after_commit: return 30;
    case CrashPoint::recovery_before_commit:
    case CrashPoint::recovery_after_commit: return 1;
    case CrashPoint::replay_after_load: return 3;
    case CrashPoint::replay_after_memo_hit: return 10;
  }
  return 1;
}

// Sends the events over HTTP from kSenders threads: request k (events [first, first + count))
// from thread k % kSenders at its due time, again and again until it is acknowledged (to the
// worker of the moment, whose port `port` holds; 0 while none listens), and a share of them
// once more later. Every event's "id" is "torture-<i>", its data {"seed": i}.
class Sender {
 public:
  struct Request {
    int first = 0;
    int count = 0;
    milliseconds due{0};  // after start()
  };

  Sender(const TortureOptions& options, const std::atomic<int>& port, unsigned seed)
      : options_(options), port_(port), seed_(seed), acks_(static_cast<size_t>(options.runs), 0) {}
  ~Sender() {
    stop_ = true;
    join();
  }

  void start(std::vector<Request> requests) {
    requests_ = std::move(requests);
    for (int t = 0; t < kSenders; ++t) threads_.emplace_back([this, t] { run(t); });
  }
  // Every request acknowledged (or given up).
  bool finished() const { return finished_.load() == kSenders; }
  // Acknowledged sends so far.
  int progress() const { return progress_.load(); }
  // Gives up the requests not yet acknowledged.
  void stop() { stop_ = true; }
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  // Read after join().
  int requests_acked = 0;
  int attempts_unanswered = 0;
  int resends = 0;
  std::vector<std::string> problems;
  const std::vector<int>& acks() const { return acks_; }  // acknowledged sends of each event

 private:
  struct Plan {
    SteadyClock::time_point due;
    size_t request;
    bool resend;
    bool operator>(const Plan& o) const { return due > o.due; }
  };

  void run(int thread) {
    // A worker killed while a request is being written resets the connection: the write must
    // fail with EPIPE, not kill the test with SIGPIPE. Blocked in this thread only.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    std::mt19937 rng(seed_ + static_cast<unsigned>(thread));
    const auto start = SteadyClock::now();
    std::priority_queue<Plan, std::vector<Plan>, std::greater<>> plans;
    for (size_t k = static_cast<size_t>(thread); k < requests_.size(); k += kSenders) {
      plans.push(Plan{start + requests_[k].due, k, false});
    }
    std::unique_ptr<Client> client;
    int client_port = 0;
    while (!plans.empty() && !stop_) {
      Plan plan = plans.top();
      if (auto now = SteadyClock::now(); now < plan.due) {
        std::this_thread::sleep_for(std::min<SteadyClock::duration>(plan.due - now, 20ms));
        continue;
      }
      plans.pop();
      const Request& r = requests_[plan.request];
      std::vector<Event> events;
      for (int i = r.first; i < r.first + r.count; ++i) {
        events.push_back(Event{.id = fmt::format("torture-{}", i), .name = "crash/test", .data = {{"seed", i}}});
      }
      const auto first_try = SteadyClock::now();
      bool acked = false;
      int unanswered = 0;
      while (!acked && !stop_ && SteadyClock::now() - first_try < kGiveUpSending) {
        int port = port_.load();
        if (port == 0) {
          std::this_thread::sleep_for(5ms);
          continue;
        }
        if (!client || client_port != port) {
          client = std::make_unique<Client>(fmt::format("http://127.0.0.1:{}", port), kEventKey, 5s);
          client_port = port;
        }
        try {
          client->send(events);
          acked = true;
        } catch (const std::exception&) {
          // Refused (the worker is dead) or cut off (killed while it handled the request):
          // the events may or may not be stored, and are sent again, ids and all.
          ++unanswered;
          client.reset();
          std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(5, 30)(rng)));
        }
      }
      std::lock_guard lock(mu_);
      attempts_unanswered += unanswered;
      if (!acked) {
        problems.push_back(fmt::format("events {}-{} were never acknowledged; the sender gave up", r.first,
                                       r.first + r.count - 1));
        continue;
      }
      ++progress_;
      ++requests_acked;
      for (int i = r.first; i < r.first + r.count; ++i) ++acks_[static_cast<size_t>(i)];
      if (plan.resend) {
        ++resends;
      } else if (std::uniform_real_distribution<double>(0, 1)(rng) < options_.resend_share) {
        plans.push(Plan{SteadyClock::now() + milliseconds(std::uniform_int_distribution<int>(0, 3000)(rng)),
                        plan.request, true});
      }
    }
    ++finished_;
  }

  const TortureOptions& options_;
  const std::atomic<int>& port_;
  const unsigned seed_;
  std::vector<Request> requests_;  // written before the threads start
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> finished_{0};
  std::atomic<int> progress_{0};
  std::mutex mu_;  // guards the results above and acks_
  std::vector<int> acks_;
};

// The requests: one with every event, or 1-4 events each, due over the first three quarters
// of the killing.
std::vector<Sender::Request> plan_requests(const TortureOptions& options, std::mt19937& rng) {
  std::vector<Sender::Request> out;
  if (options.one_request) return {Sender::Request{0, options.runs, 0ms}};
  std::uniform_int_distribution<int> size(1, 4);
  for (int first = 0; first < options.runs;) {
    int count = std::min(size(rng), options.runs - first);
    out.push_back(Sender::Request{first, count, options.duration * 3 * first / (4 * options.runs)});
    first += count;
  }
  return out;
}

// The driver's own connection to the worker's database: reads only. Open for the whole
// torture, as a dashboard or CLI would be.
class Database {
 public:
  explicit Database(const std::string& path) : db_(path, 5s) {}

  // Steps with a step_completed entry, i.e. whose result is committed.
  std::set<std::string> committed_steps() {
    std::set<std::string> out;
    Statement s(db_.handle(), "SELECT run_id, step_key FROM journal WHERE kind = 'step_completed'");
    while (s.step()) out.insert(step_id(s.get_text(0), s.get_text(1)));
    return out;
  }

  int unfinished_runs() {
    Statement s(db_.handle(),
                "SELECT count(*) FROM runs WHERE function_id = 'crash-20' "
                "AND status NOT IN ('completed', 'failed', 'cancelled')");
    s.step();
    return static_cast<int>(s.get_int(0));
  }

  std::string describe_journal(const std::string& run_id) {
    Statement s(db_.handle(), "SELECT seq, kind, step_key, payload FROM journal WHERE run_id = ? ORDER BY seq");
    s.bind(1, run_id);
    std::string out;
    while (s.step()) {
      out += fmt::format("    {} {} {} {}\n", s.get_int(0), s.get_text(1), s.get_optional_text(2).value_or("-"),
                         s.get_optional_text(3).value_or("null"));
    }
    return out;
  }

  SqliteDb& db() { return db_; }

 private:
  SqliteDb db_;
};

// What the driver learns of one incarnation.
struct Incarnation {
  int generation = 0;
  std::optional<CrashPoint> armed;
  bool ready = false;         // it wrote its port file
  bool ended_by_itself = false;
  int status = 0;             // the raw wait status
};

class Torture {
 public:
  explicit Torture(const TortureOptions& options)
      : options_(options),
        rng_(options.seed),
        database_(dir_.file("torture.db")),
        ledger_(dir_.file("ledger.txt")),
        port_file_(dir_.file("port")),
        max_life_(options.max_life.count() > 0 ? options.max_life
                                                : 2 * options.duration / std::max(1, options.min_kills)),
        sender_(options, port_, rng_()) {
    report_.seed = options.seed;
    report_.steps = options.runs * kSteps;
  }

  TortureReport run() {
    const auto start = SteadyClock::now();
    kill_phase();
    report_.kill_phase = since(start);
    const auto drain_start = SteadyClock::now();
    drain();
    report_.drain = since(drain_start);
    check_runs();
    check_ledger();
    report_.integrity = integrity_check();
    if (report_.integrity != "ok") problem("PRAGMA integrity_check: " + report_.integrity);
    report_.total = since(start);
    return report_;
  }

 private:
  std::string log_path(int generation) const { return dir_.file(fmt::format("worker-{}.log", generation)); }

  void problem(std::string text) { report_.problems.push_back(std::move(text)); }

  std::unique_ptr<ChildProcess> spawn(int generation, std::optional<CrashPoint> point) {
    std::filesystem::remove(port_file_);  // the new worker's, not the last one's
    std::vector<std::string> env;
    if (point) {
      int n = std::uniform_int_distribution<int>(1, max_hit(*point))(rng_);
      env.push_back(fmt::format("DURABLE_CRASH_AT={}:{}", to_string(*point), n));
    }
    ++report_.incarnations;
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{DURABLE_CRASH_WORKER, "--database", database_, "--ledger", ledger_, "--port-file",
                                 port_file_, "--generation", std::to_string(generation), "--workers",
                                 std::to_string(options_.workers), "--lease-ttl-ms",
                                 std::to_string(options_.lease_ttl_ms), "--step-ms", std::to_string(options_.step_ms)},
        log_path(generation), env);
  }

  // A crash point for the next incarnation, or none (a plain kill).
  std::optional<CrashPoint> choose_point(int generation) {
    if (generation == 0 || options_.hits_per_point <= 0) return std::nullopt;
    if (idle()) return std::nullopt;  // no commit, no lease, no replay left to crash in
    if (std::uniform_real_distribution<double>(0, 1)(rng_) >= options_.point_share) return std::nullopt;
    // Ingest can be crashed in only while requests are being sent: it goes first until it has
    // its share.
    const std::string ingest(to_string(CrashPoint::ingest_after_insert));
    if (!sender_.finished() && report_.point_kills[ingest] < options_.hits_per_point &&
        report_.points_missed[ingest] < kMaxMisses) {
      return CrashPoint::ingest_after_insert;
    }
    std::vector<CrashPoint> candidates;
    for (CrashPoint p : kCrashPoints) {
      if (report_.points_missed[std::string(to_string(p))] >= kMaxMisses) continue;
      // Ingest is reached only while requests are being sent.
      if (p == CrashPoint::ingest_after_insert && sender_.finished()) continue;
      candidates.push_back(p);
    }
    if (candidates.empty()) return std::nullopt;
    std::shuffle(candidates.begin(), candidates.end(), rng_);
    // The point that killed least so far.
    return *std::min_element(candidates.begin(), candidates.end(), [&](CrashPoint a, CrashPoint b) {
      return report_.point_kills[std::string(to_string(a))] < report_.point_kills[std::string(to_string(b))];
    });
  }

  // Everything is sent and every run finished: no crash point can be reached any more.
  bool idle() { return sender_.finished() && db_->unfinished_runs() == 0; }

  bool points_done() {
    if (options_.hits_per_point <= 0) return true;
    return std::all_of(std::begin(kCrashPoints), std::end(kCrashPoints), [&](CrashPoint p) {
      std::string name(to_string(p));
      return report_.point_kills[name] >= options_.hits_per_point || report_.points_missed[name] >= kMaxMisses;
    });
  }

  // Starts incarnation after incarnation and ends each (a random SIGKILL, or its crash point),
  // until the torture has lasted long enough and killed often enough.
  void kill_phase() {
    const auto start = SteadyClock::now();
    const milliseconds point_wait = std::max<milliseconds>(3s, 2 * max_life_);
    std::uniform_int_distribution<long> life_ms(20, std::max<long>(21, max_life_.count()));
    auto next_progress = start + 30s;
    for (int generation = 0;; ++generation) {
      Incarnation inc{.generation = generation, .armed = choose_point(generation)};
      auto worker = spawn(generation, inc.armed);
      auto end_by = SteadyClock::now() + (inc.armed ? point_wait : milliseconds(life_ms(rng_)));
      const auto spawned = SteadyClock::now();
      for (;;) {
        if (!inc.ready) {
          if (std::optional<int> port = read_port(port_file_)) {
            inc.ready = true;
            port_ = *port;
            if (generation == 0) {
              started_sending();
              end_by = SteadyClock::now() + milliseconds(life_ms(rng_));
            }
          }
        }
        if (!worker->running()) {
          inc.ended_by_itself = true;
          inc.status = worker->exit_status().value_or(0);
          break;
        }
        // The first worker must come up: it creates the database the driver then reads.
        if (generation == 0 && !inc.ready) {
          REQUIRE_MESSAGE(SteadyClock::now() - spawned < 30s, "the first worker did not listen within 30 s; its log:\n"
                                                                 << tail_of(log_path(0), 30));
        } else if (SteadyClock::now() >= end_by) {
          inc.status = worker->stop(SIGKILL);
          break;
        }
        std::this_thread::sleep_for(2ms);
      }
      port_ = 0;
      REQUIRE_MESSAGE((generation > 0 || inc.ready), "the first worker exited before it listened; its log:\n"
                                                         << tail_of(log_path(0), 30));
      ended(inc);
      if (options_.progress && SteadyClock::now() >= next_progress) {
        next_progress += 30s;
        fmt::print(stderr, "torture: {} into the killing: {} kills, {} runs unfinished\n", millis_text(since(start)),
                   report_.kills, db_->unfinished_runs());
      }
      // Once idle, the crash points that were not reached never will be (the report shows them).
      bool enough = since(start) >= options_.duration && report_.kills >= options_.min_kills && (points_done() || idle());
      // A crash point that is never reached, or workers that die by themselves, must not keep
      // the torture going for ever (the report shows what is missing).
      bool overdue = since(start) >= 3 * options_.duration + 60s;
      if (enough || overdue) {
        next_generation_ = generation + 1;
        return;
      }
    }
  }

  void started_sending() {
    db_ = std::make_unique<Database>(database_);
    sender_.start(plan_requests(options_, rng_));
  }

  // Classifies how the incarnation ended, then reads what is committed while no worker lives.
  void ended(const Incarnation& inc) {
    std::string log = file_text(log_path(inc.generation));
    std::string point = inc.armed ? std::string(to_string(*inc.armed)) : "";
    bool at_point = inc.armed && log.find(fmt::format("durable: crash point {} reached", point)) != std::string::npos;
    bool sigkill = WIFSIGNALED(inc.status) && WTERMSIG(inc.status) == SIGKILL;
    bool killed = (at_point && sigkill) || !inc.ended_by_itself;
    if (at_point && sigkill) {
      ++report_.point_kills[point];  // by itself, or as the driver's kill arrived
      ++report_.kills;
    } else if (inc.ended_by_itself) {
      problem(fmt::format("worker incarnation {} exited by itself (wait status {}); its log ends:\n{}", inc.generation,
                          inc.status, tail_of(log_path(inc.generation), 20)));
    } else {
      ++report_.plain_kills;
      ++report_.kills;
      if (!inc.ready) ++report_.plain_kills_before_ready;
      if (inc.armed) ++report_.points_missed[point];
    }

    // Committed results never go away: every step seen committed before must still be.
    std::set<std::string> committed = db_->committed_steps();
    for (const auto& [step, generation] : first_committed_) {
      if (committed.count(step) == 0 && lost_steps_.insert(step).second) {
        problem(fmt::format("step '{}' was committed before incarnation {} started, and is not after incarnation {} ended",
                            step, generation, inc.generation));
      }
    }
    for (const auto& step : committed) first_committed_.emplace(step, inc.generation + 1);
    report_.steps_committed_at_last_kill = static_cast<int>(committed.size());
    if (killed && db_->unfinished_runs() > 0) ++report_.kills_with_unfinished_runs;
  }

  // The last incarnation, never killed: it takes the last requests and finishes every run.
  void drain() {
    const int generation = next_generation_;
    auto worker = spawn(generation, std::nullopt);
    bool listening = wait_until([&] { return read_port(port_file_).has_value() || !worker->running(); }, 30s) &&
                     worker->running();
    REQUIRE_MESSAGE(listening, "the last worker did not listen within 30 s; its log:\n" << tail_of(log_path(generation), 30));
    port_ = *read_port(port_file_);
    int acked = -1;
    auto last_ack = SteadyClock::now();
    while (!sender_.finished() && worker->running()) {
      if (sender_.progress() != acked) {
        acked = sender_.progress();
        last_ack = SteadyClock::now();
      } else if (SteadyClock::now() - last_ack > kGiveUpSending) {
        sender_.stop();  // its requests are reported as never acknowledged
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    int last = -1;
    auto last_progress = SteadyClock::now();
    while (worker->running()) {
      int unfinished = db_->unfinished_runs();
      if (unfinished == 0) break;
      if (unfinished != last) {
        last = unfinished;
        last_progress = SteadyClock::now();
      } else if (SteadyClock::now() - last_progress > kDrainStall) {
        problem(fmt::format("{} runs still unfinished after the last incarnation made no progress for {} s; its log "
                            "ends:\n{}",
                            unfinished, kDrainStall.count(), tail_of(log_path(generation), 20)));
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (!worker->running()) {
      problem(fmt::format("the last worker exited by itself (wait status {}); its log ends:\n{}",
                          worker->exit_status().value_or(0), tail_of(log_path(generation), 20)));
    }
    port_ = 0;
    worker.reset();  // SIGKILL
    sender_.join();
    report_.requests = sender_.requests_acked;
    report_.attempts_unanswered = sender_.attempts_unanswered;
    report_.resends = sender_.resends;
    for (auto& p : sender_.problems) problem(p);
    last_generation_ = generation;
  }

  // Every acknowledged event id started exactly one run, which completed with its output and
  // its 20 steps, each recorded once.
  void check_runs() {
    struct KeyRuns {
      int stored = 0;                 // event rows with this id (duplicates included)
      std::vector<std::string> runs;  // runs started
    };
    std::map<std::string, KeyRuns> keys;
    struct RunRow {
      int64_t seed;
      std::string status;
      std::string output;
    };
    std::map<std::string, RunRow> runs;
    {
      Statement s(db_->db().handle(),
                  "SELECT e.dedup_key, json_extract(e.data, '$.seed'), r.id, r.status, r.output "
                  "FROM events e LEFT JOIN runs r ON r.event_id = e.id WHERE e.name = 'crash/test'");
      while (s.step()) {
        KeyRuns& k = keys[s.get_optional_text(0).value_or("")];
        ++k.stored;
        if (s.is_null(2)) continue;
        k.runs.push_back(s.get_text(2));
        runs[s.get_text(2)] = RunRow{s.get_int(1), s.get_text(3), s.get_optional_text(4).value_or("")};
      }
    }
    int detailed = 0;
    auto detail = [&](std::string text) {
      if (++detailed <= 5) problem(std::move(text));
    };
    for (int i = 0; i < options_.runs; ++i) {
      const std::string key = fmt::format("torture-{}", i);
      const int acks = sender_.acks()[static_cast<size_t>(i)];
      KeyRuns& k = keys[key];
      report_.events_stored_unanswered += std::max(0, k.stored - acks);
      if (acks == 0) continue;  // given up by the sender, a problem already
      if (k.runs.size() > 1) {
        report_.duplicate_runs += static_cast<int>(k.runs.size()) - 1;
        detail(fmt::format("event id {} started {} runs", key, k.runs.size()));
      }
      bool completed = false;
      for (const auto& run_id : k.runs) {
        const RunRow& r = runs[run_id];
        if (r.status != "completed") continue;
        completed = true;
        const int64_t expected = r.seed * 100 * kSteps + kSteps * (kSteps - 1) / 2;
        if (r.output != std::to_string(expected)) {
          detail(fmt::format("run {} (event id {}) returned {}, not {}", run_id, key, r.output, expected));
        }
      }
      if (!completed) {
        ++report_.runs_lost;
        detail(k.runs.empty() ? fmt::format("event id {} was acknowledged and started no run", key)
                              : fmt::format("event id {} started run {}, which is {}", key, k.runs[0],
                                            runs[k.runs[0]].status));
      }
    }

    // The journals: the 20 steps in order, each once with its result; one sleep; completed.
    std::map<std::string, std::vector<std::tuple<std::string, std::string, std::string>>> journals;
    {
      Statement s(db_->db().handle(),
                  "SELECT j.run_id, j.kind, j.step_key, j.payload FROM journal j JOIN runs r ON r.id = j.run_id "
                  "WHERE r.function_id = 'crash-20' ORDER BY j.run_id, j.seq");
      while (s.step()) {
        journals[s.get_text(0)].emplace_back(s.get_text(1), s.get_optional_text(2).value_or(""),
                                             s.get_optional_text(3).value_or(""));
      }
    }
    for (const auto& [run_id, row] : runs) {
      if (row.status != "completed") continue;
      std::vector<std::string> steps, payloads;
      int naps = 0;
      const auto& journal = journals[run_id];
      for (const auto& [kind, key, payload] : journal) {
        if (kind == "step_completed") {
          steps.push_back(key);
          payloads.push_back(payload);
        }
        if (kind == "sleep_scheduled") ++naps;
      }
      // (The journal is not empty when the last test is reached: it holds the steps.)
      bool ok = steps.size() == kSteps && naps == 1 && std::get<0>(journal.back()) == "run_completed";
      for (size_t i = 0; ok && i < steps.size(); ++i) {
        ok = steps[i] == fmt::format("step-{}", i) && payloads[i] == std::to_string(row.seed * 100 + static_cast<int64_t>(i));
      }
      if (!ok) {
        detail(fmt::format("run {} (seed {}) has a journal other than its 20 steps and one sleep:\n{}", run_id, row.seed,
                           db_->describe_journal(run_id)));
      }
    }
    run_ids_.clear();
    for (const auto& [run_id, row] : runs) run_ids_.insert(run_id);
  }

  // The ledger against the journal: every step ran; none ran in an incarnation that started
  // after its result was committed; one ran twice in an incarnation only if its execution
  // was fenced there (its commit refused).
  void check_ledger() {
    std::map<std::string, std::vector<int>> generations_of;  // step -> incarnations its body ran in, in order
    std::istringstream in(file_text(ledger_));
    int malformed = 0;
    for (std::string text; std::getline(in, text);) {
      std::istringstream fields(text);
      int generation = -1;
      std::string run_id, key, rest;
      if (!(fields >> generation >> run_id >> key) || (fields >> rest) || generation < 0 ||
          generation > last_generation_) {
        if (++malformed <= 3) problem(fmt::format("malformed ledger line: '{}'", text));
        continue;
      }
      if (run_ids_.count(run_id) == 0) {
        problem(fmt::format("the ledger names a run the store does not have: {}", run_id));
        continue;
      }
      ++report_.step_executions;
      generations_of[step_id(run_id, key)].push_back(generation);
    }
    int never_ran = 0;
    for (const auto& run_id : run_ids_) {
      for (int i = 0; i < kSteps; ++i) {
        std::string step = step_id(run_id, fmt::format("step-{}", i));
        if (generations_of.count(step) == 0 && ++never_ran <= 3) problem("step '" + step + "' never ran");
      }
    }
    int detailed = 0;
    for (const auto& [step, gens] : generations_of) {
      auto committed = first_committed_.find(step);
      for (int g : gens) {
        if (committed == first_committed_.end() || g < committed->second) continue;
        ++report_.committed_steps_rerun;
        if (++detailed <= 5) {
          problem(fmt::format("step '{}' ran in incarnation {}, although its result was committed before incarnation {} "
                              "started (it ran in incarnations {})",
                              step, g, committed->second, fmt::join(gens, ",")));
        }
      }
      for (size_t i = 1; i < gens.size(); ++i) {
        if (gens[i] != gens[i - 1]) {
          ++report_.reruns_after_kill;  // ran, the worker died before the result was committed, ran again
          continue;
        }
        ++report_.reruns_within_incarnation;
        if (!commit_refused(gens[i], step.substr(0, step.find(' ')))) {
          problem(fmt::format("step '{}' ran twice in incarnation {}, whose commits for the run were never refused",
                              step, gens[i]));
        }
      }
    }
  }

  // Whether incarnation `generation` logged a refused commit of `run_id` (its execution was
  // fenced: the run was recovered from under it).
  bool commit_refused(int generation, const std::string& run_id) const {
    std::istringstream in(file_text(log_path(generation)));
    for (std::string line; std::getline(in, line);) {
      if (line.find("commit refused") != std::string::npos && line.find("run=" + run_id) != std::string::npos) return true;
    }
    return false;
  }

  std::string integrity_check() {
    Statement s(db_->db().handle(), "PRAGMA integrity_check");
    std::string out;
    while (s.step()) out += (out.empty() ? "" : "; ") + s.get_text(0);
    return out;
  }

  const TortureOptions& options_;
  std::mt19937 rng_;
  TempDir dir_;
  const std::string database_, ledger_, port_file_;
  const milliseconds max_life_;
  std::atomic<int> port_{0};  // the listening worker's port, 0 while none does
  Sender sender_;             // after port_, which it reads
  std::unique_ptr<Database> db_;  // opened once the first worker created the database
  TortureReport report_;
  // Step -> the first incarnation that started with it committed.
  std::map<std::string, int> first_committed_;
  std::set<std::string> lost_steps_;  // committed steps found missing, reported once each
  std::set<std::string> run_ids_;     // every run of crash-20
  int next_generation_ = 0;
  int last_generation_ = 0;
};

}  // namespace

bool TortureReport::ok() const {
  return runs_lost == 0 && committed_steps_rerun == 0 && duplicate_runs == 0 && problems.empty();
}

std::string TortureReport::summary() const {
  std::string points;
  for (const auto& [name, n] : point_kills) {
    if (n > 0) points += fmt::format("{}{} {}", points.empty() ? "" : ", ", name, n);
  }
  std::string missed;
  for (const auto& [name, n] : points_missed) {
    if (n > 0) missed += fmt::format("{}{} {}", missed.empty() ? "" : ", ", name, n);
  }
  int at_points = kills - plain_kills;
  std::string out = fmt::format("crash torture, seed {}: {} runs x {} steps\n", seed, steps / kSteps, kSteps);
  out += fmt::format("  time: killing {}, last incarnation {}, total {}\n", millis_text(kill_phase), millis_text(drain),
                     millis_text(total));
  out += fmt::format("  kills: {} in {} incarnations; {} SIGKILL at random moments ({} before the worker listened), "
                     "{} at crash points ({})\n",
                     kills, incarnations, plain_kills, plain_kills_before_ready, at_points, points.empty() ? "none" : points);
  if (!missed.empty()) out += fmt::format("  armed crash points not reached (killed from outside): {}\n", missed);
  out += fmt::format("  {} kills found runs unfinished; {} of {} steps committed at the last kill\n",
                     kills_with_unfinished_runs, steps_committed_at_last_kill, steps);
  out += fmt::format("  HTTP: {} requests acknowledged ({} sent again on purpose); {} attempts got no answer and were "
                     "resent; {} events were stored by an attempt whose answer was lost\n",
                     requests, resends, attempts_unanswered, events_stored_unanswered);
  out += fmt::format("  step bodies: {} runs of {} steps: {} again after a kill that came before their commit, {} again "
                     "within an incarnation after a refused commit\n",
                     step_executions, steps, reruns_after_kill, reruns_within_incarnation);
  out += fmt::format("  PRAGMA integrity_check: {}\n", integrity);
  out += fmt::format("  runs lost: {}; committed steps re-run: {}; duplicate runs per event id: {}\n", runs_lost,
                     committed_steps_rerun, duplicate_runs);
  for (const auto& p : problems) out += "  PROBLEM: " + p + "\n";
  return out;
}

TortureReport run_torture(const TortureOptions& options) { return Torture(options).run(); }

}  // namespace durable::testing
