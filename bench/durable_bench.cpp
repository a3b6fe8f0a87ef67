// durable_bench: measures what the engine costs against what the disk costs. Every figure is
// taken from a fresh database in a temporary directory, removed at the end.
//
//   raw      the floor: one single-row INSERT committed on its own (BEGIN IMMEDIATE; INSERT;
//            COMMIT) with the engine's SQLite settings (WAL, synchronous FULL or NORMAL)
//   w1       throughput: N runs x K trivial steps, started by batches of in-process events
//   latency  one run of M steps: the time between consecutive step starts, next to raw
//            (when both are chosen, the raw commits are made in chunks during this run)
//   w2       200 events sent one at a time over HTTP by another process: send -> first step
//   w3       500 runs sleeping 2 s: how late they wake
//   parallel one run of step.run_all with 4 bodies of 100 ms each: its wall time, against
//            the 400 ms the bodies take one after the other
//
//   ./durable_bench                      # everything, durability full and normal
//   ./durable_bench --quick --json       # a smoke run, with a JSON summary at the end
//   ./durable_bench --only w1,latency --durability full --workers 32
//
// Prints one line per figure: key, value, unit, and the engine's target when it has one.
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <durable/durable.hpp>

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

// Options

const char* const kUsage = R"(usage: durable_bench [options]

Workloads (default: all of them):
  --only LIST           comma-separated subset of: raw,w1,latency,w2,w3,parallel
  --durability D        full, normal or both (default: both; w3 runs at full unless only
                        normal is chosen)

Sizes:
  --raw-commits N       raw single-row commits per durability (default 2000); with latency
                        they are interleaved with its steps, so both see the same disk
  --runs N              w1 runs (default 1000)
  --steps N             w1 steps per run (default 10)
  --batch N             w1/w3 events per engine.send() call (default 100)
  --latency-steps N     steps of the one latency run (default 1000)
  --http-events N       w2 events sent one at a time over HTTP (default 200)
  --sleepers N          w3 sleeping runs (default 500)
  --sleep-ms N          w3 sleep length in ms (default 2000)
  --workers N           EngineOptions::workers (default 64)
  --quick               small sizes and one round, for a smoke run (set before other flags
                        to combine)
  --rounds N            run the chosen workloads N times and summarise each figure by its
                        median (default 3: this disk's fsync time swings from one second to
                        the next, and one round can land on a slow patch)

Output:
  --dir PATH            where the temporary directory is made (default: the system temp dir)
  --json                print a JSON summary of every figure at the end
  --help                this text
)";

struct Options {
  bool raw = true;
  bool w1 = true;
  bool latency = true;
  bool w2 = true;
  bool w3 = true;
  bool parallel = true;
  std::vector<durable::Durability> durabilities = {durable::Durability::full, durable::Durability::normal};

  int raw_commits = 2000;
  int runs = 1000;
  int steps = 10;
  int batch = 100;
  int latency_steps = 1000;
  int http_events = 200;
  int sleepers = 500;
  int sleep_ms = 2000;
  int workers = 64;
  int rounds = 3;

  std::string dir;  // empty: fs::temp_directory_path()
  bool json = false;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "durable_bench: " << message << " (see --help)\n";
  std::exit(2);
}

int positive_int(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    int n = std::stoi(value, &used);
    if (used == value.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  usage_error(flag + " needs a positive number, not '" + value + "'");
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag == "--json") {
      o.json = true;
      continue;
    }
    if (flag == "--quick") {
      o.raw_commits = 200;
      o.runs = 100;
      o.steps = 5;
      o.latency_steps = 100;
      o.http_events = 20;
      o.sleepers = 50;
      o.sleep_ms = 500;
      o.rounds = 1;
      continue;
    }
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    std::string value = argv[++i];
    if (flag == "--only") {
      o.raw = o.w1 = o.latency = o.w2 = o.w3 = o.parallel = false;
      std::stringstream list(value);
      std::string name;
      while (std::getline(list, name, ',')) {
        if (name == "raw") o.raw = true;
        else if (name == "w1") o.w1 = true;
        else if (name == "latency") o.latency = true;
        else if (name == "w2") o.w2 = true;
        else if (name == "w3") o.w3 = true;
        else if (name == "parallel") o.parallel = true;
        else usage_error("unknown workload '" + name + "'");
      }
    } else if (flag == "--durability") {
      if (value == "full") o.durabilities = {durable::Durability::full};
      else if (value == "normal") o.durabilities = {durable::Durability::normal};
      else if (value == "both") o.durabilities = {durable::Durability::full, durable::Durability::normal};
      else usage_error("--durability is full, normal or both, not '" + value + "'");
    } else if (flag == "--raw-commits") o.raw_commits = positive_int(flag, value);
    else if (flag == "--runs") o.runs = positive_int(flag, value);
    else if (flag == "--steps") o.steps = positive_int(flag, value);
    else if (flag == "--batch") o.batch = positive_int(flag, value);
    else if (flag == "--latency-steps") o.latency_steps = positive_int(flag, value);
    else if (flag == "--http-events") o.http_events = positive_int(flag, value);
    else if (flag == "--sleepers") o.sleepers = positive_int(flag, value);
    else if (flag == "--sleep-ms") o.sleep_ms = positive_int(flag, value);
    else if (flag == "--workers") o.workers = positive_int(flag, value);
    else if (flag == "--rounds") o.rounds = positive_int(flag, value);
    else if (flag == "--dir") o.dir = value;
    else usage_error("unknown option " + flag);
  }
  return o;
}

std::string name_of(durable::Durability d) { return d == durable::Durability::full ? "full" : "normal"; }

// Measuring

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

double seconds_between(steady_clock::time_point a, steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Distribution {
  size_t count = 0;
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

// Nearest-rank percentiles of `values`, divided by `scale` (1e6 turns ns into ms).
Distribution distribution(std::vector<int64_t> values, double scale) {
  Distribution d;
  d.count = values.size();
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  auto rank = [&](double p) {
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(values.size()) + 0.999999);
    return static_cast<double>(values[std::clamp<size_t>(i, 1, values.size()) - 1]) / scale;
  };
  d.p50 = rank(50);
  d.p99 = rank(99);
  d.max = static_cast<double>(values.back()) / scale;
  return d;
}

// Values recorded by step bodies on the engine's worker threads, read by the main thread.
class Samples {
 public:
  void add(int64_t value) {
    {
      std::lock_guard lock(mu_);
      values_.push_back(value);
    }
    cv_.notify_all();
  }

  // Waits until at least `n` values were added; false on timeout.
  bool wait_for_count(size_t n, milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return values_.size() >= n; });
  }

  std::vector<int64_t> values() const {
    std::lock_guard lock(mu_);
    return values_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> values_;  // guarded by mu_
};

// Collects the figures: prints each as one line as it arrives, and keeps them for --json.
class Report {
 public:
  void add(const std::string& key, double value, const std::string& unit, const std::string& note = "") {
    int decimals = unit == "ms" ? 3 : (value >= 100 ? 0 : 2);
    std::string line = fmt::format("{:<34} {:>12.{}f} {:<8}", key, value, decimals, unit);
    if (!note.empty()) line += "  " + note;
    fmt::print("{}\n", line);
    std::fflush(stdout);
    rounds_[key].push_back(value);
    units_[key] = unit;
    notes_[key] = note;
  }

  // Prints every figure's median over the rounds (with its range), in the order of the
  // first round.
  void print_medians(int rounds) const {
    fmt::print("\nmedians of {} rounds (min .. max):\n", rounds);
    for (const auto& [key, values] : rounds_) {
      std::string unit = units_.at(key);
      int decimals = unit == "ms" ? 3 : (median(values) >= 100 ? 0 : 2);
      std::vector<double> sorted = values;
      std::sort(sorted.begin(), sorted.end());
      fmt::print("{:<34} {:>12.{}f} {:<8}  ({:.{}f} .. {:.{}f}) {}\n", key, median(values), decimals, unit, sorted.front(),
                 decimals, sorted.back(), decimals, notes_.at(key));
    }
  }

  static double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  }

  void fail(const std::string& workload, const std::string& message) {
    fmt::print("{:<34} FAILED: {}\n", workload, message);
    std::fflush(stdout);
    failures_[workload] = message;
  }

  bool failed() const { return !failures_.empty(); }

  nlohmann::json json() const {
    nlohmann::json figures = nlohmann::json::object();
    for (const auto& [key, values] : rounds_) figures[key] = median(values);
    nlohmann::json failures = nlohmann::json::object();
    for (const auto& [key, message] : failures_) failures[key] = message;
    return {{"figures", figures}, {"failures", failures}};
  }

  // The raw commit p50 per durability, for the latency workload's ratio.
  std::map<std::string, double> raw_p50_ms;

 private:
  std::map<std::string, std::vector<double>> rounds_;  // every round's value of each figure
  std::map<std::string, std::string> units_;
  std::map<std::string, std::string> notes_;
  std::map<std::string, std::string> failures_;
};

// A directory of our own under `base`, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& base) {
    fs::path parent = base.empty() ? fs::temp_directory_path() : fs::path(base);
    std::string pattern = (parent / "durable_bench.XXXXXX").string();
    if (!mkdtemp(pattern.data())) {
      throw std::runtime_error(fmt::format("cannot create a directory in {}: {}", parent.string(), std::strerror(errno)));
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw; at worst a directory is left behind
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // A path inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

durable::EngineOptions engine_options(const Options& o, std::string database, durable::Durability d) {
  return durable::EngineOptions{
      .database = std::move(database), .durability = d, .workers = o.workers, .log_level = "warn"};
}

// drain() returns when nothing is executing or due; a generous limit, since a slow disk
// shared with a compiler can make the default 30 s too short for the large sizes.
constexpr milliseconds kDrainTimeout = std::chrono::minutes(2);

// raw: the commit floor, with the sqlite3 C API directly

void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    throw std::runtime_error(fmt::format("sqlite {}: {}", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
}

// One connection committing single-row transactions with the engine's SQLite settings.
// Owns its statements and closes them even when a commit throws.
class RawCommitter {
 public:
  RawCommitter(const std::string& path, durable::Durability d) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      throw std::runtime_error("cannot open " + path + ": " + message);
    }
    try {
      // The settings SqliteStore gives its writer connection.
      exec("PRAGMA journal_mode = WAL");
      exec(d == durable::Durability::full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
      // Shaped like a journal entry, so the row costs what a step's row costs.
      exec("CREATE TABLE entries (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, payload TEXT NOT NULL, "
           "recorded_at INTEGER NOT NULL)");
      begin_ = prepare("BEGIN IMMEDIATE");
      insert_ = prepare("INSERT INTO entries (run_id, payload, recorded_at) VALUES (?1, ?2, ?3)");
      commit_ = prepare("COMMIT");
      // Grow the WAL to the engine's size, then start it over: commits that only overwrite
      // WAL space are the fastest plain SQLite can do (one that extends the file also
      // flushes its size), and the engine's WAL is made that way when it opens
      // (SqliteStore), so the baseline gets the same advantage.
      exec("BEGIN");
      std::string filler(4000, 'f');
      for (int i = 0; i < 4500; ++i) {
        std::string sql = "INSERT INTO entries (run_id, payload, recorded_at) VALUES ('fill', '" + filler + "', 0)";
        exec(sql.c_str());
      }
      exec("COMMIT");
      exec("DELETE FROM entries");
      exec("PRAGMA wal_checkpoint(RESTART)");
      // A few unmeasured commits first.
      for (int i = 0; i < 20; ++i) commit_one();
    } catch (...) {
      close();
      throw;
    }
  }
  ~RawCommitter() { close(); }
  RawCommitter(const RawCommitter&) = delete;
  RawCommitter& operator=(const RawCommitter&) = delete;

  // BEGIN IMMEDIATE; INSERT one row; COMMIT. Returns how long that took, in ns.
  int64_t commit_one() {
    auto t0 = steady_clock::now();
    step(begin_, "BEGIN");
    check(db_, sqlite3_bind_text(insert_, 1, "01JBENCHRAWRUN0000000000000", -1, SQLITE_STATIC), "bind");
    check(db_, sqlite3_bind_text(insert_, 2, "42", -1, SQLITE_STATIC), "bind");
    check(db_, sqlite3_bind_int64(insert_, 3, ++rows_), "bind");
    step(insert_, "INSERT");
    step(commit_, "COMMIT");
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now() - t0).count();
  }

 private:
  void exec(const char* sql) { check(db_, sqlite3_exec(db_, sql, nullptr, nullptr, nullptr), sql); }

  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    check(db_, sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr), sql);
    statements_.push_back(s);
    return s;
  }

  void step(sqlite3_stmt* s, const char* what) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    check(db_, rc, what);
  }

  void close() {
    for (sqlite3_stmt* s : statements_) sqlite3_finalize(s);
    statements_.clear();
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  int64_t rows_ = 0;
};

void report_raw(durable::Durability d, std::vector<int64_t> latencies, const std::string& how, Report& report) {
  std::string key = "raw_commit." + name_of(d);
  Distribution dist = distribution(std::move(latencies), 1e6);
  report.raw_p50_ms[name_of(d)] = dist.p50;
  report.add(key + ".p50", dist.p50, "ms", fmt::format("({} commits{})", dist.count, how));
  report.add(key + ".p99", dist.p99, "ms");
}

// The raw baseline on its own, when the step-latency run is not there to interleave it with.
void bench_raw(const Options& o, const TempDir& dir, durable::Durability d, Report& report) {
  std::vector<int64_t> latencies;
  {
    RawCommitter raw(dir.file("raw-" + name_of(d) + ".db"), d);
    for (int i = 0; i < o.raw_commits; ++i) latencies.push_back(raw.commit_one());
  }
  report_raw(d, std::move(latencies), "", report);
}

// w1: throughput of many short runs

void bench_w1(const Options& o, const TempDir& dir, durable::Durability d, Report& report) {
  std::string key = "w1." + name_of(d);
  std::atomic<int64_t> steps_run{0};
  durable::Engine engine(engine_options(o, dir.file("w1-" + name_of(d) + ".db"), d));
  const int steps = o.steps;
  engine.function({.id = "w1"}, durable::on_event("bench/w1"), [&steps_run, steps](durable::Context& ctx) {
    int sum = 0;
    for (int k = 0; k < steps; ++k) {
      sum += ctx.step.run("step", [&] {
        steps_run.fetch_add(1, std::memory_order_relaxed);
        return k;
      });
    }
    return sum;
  });
  engine.start();

  // Built before the clock starts: the benchmark measures the engine, not Event construction.
  std::vector<std::vector<durable::Event>> batches;
  for (int i = 0; i < o.runs; i += o.batch) {
    std::vector<durable::Event> batch;
    for (int j = i; j < std::min(o.runs, i + o.batch); ++j) {
      batch.push_back(durable::Event{.name = "bench/w1", .data = {{"i", j}}});
    }
    batches.push_back(std::move(batch));
  }

  std::vector<std::string> event_ids;
  event_ids.reserve(o.runs);
  auto t0 = steady_clock::now();
  for (const auto& batch : batches) {
    auto ids = engine.send(batch);
    event_ids.insert(event_ids.end(), ids.begin(), ids.end());
  }
  auto t_sent = steady_clock::now();
  bool drained = engine.drain(kDrainTimeout);
  auto t1 = steady_clock::now();
  engine.stop();
  if (!drained) throw std::runtime_error("drain() timed out");

  // drain() says nothing is left to do; check that this means every run completed.
  int completed = 0;
  for (const auto& id : event_ids) {
    for (const durable::Run& run : engine.runs_for_event(id)) {
      if (run.status == durable::RunStatus::completed) ++completed;
    }
  }
  if (completed != o.runs) {
    throw std::runtime_error(fmt::format("{} of {} runs completed after drain()", completed, o.runs));
  }

  double elapsed = seconds_between(t0, t1);
  int64_t total_steps = static_cast<int64_t>(o.runs) * o.steps;
  std::string note = fmt::format("({} runs x {} steps in {:.2f} s, sends {:.0f} ms)", o.runs, o.steps, elapsed,
                                 seconds_between(t0, t_sent) * 1e3);
  report.add(key + ".runs_per_s", o.runs / elapsed, "runs/s", note);
  report.add(key + ".steps_per_s", static_cast<double>(total_steps) / elapsed, "steps/s",
             d == durable::Durability::full ? "(target >= 50000 at full)" : "");
  if (steps_run.load() != total_steps) {
    report.add(key + ".step_bodies_run", static_cast<double>(steps_run.load()), "steps",
               fmt::format("(expected {}: some bodies ran twice)", total_steps));
  }
}

// latency: one run, one step at a time, so every step pays a whole commit.
//
// With `with_raw`, the raw baseline is measured inside the same run: a step body now and then
// makes a chunk of raw commits before it returns. The disk's fsync time drifts by 10x within
// seconds when other programs share it, so a baseline taken a few seconds earlier says
// little; interleaved, both see the same disk. The gaps that contain a chunk are left out of
// the step figures.
void bench_latency(const Options& o, const TempDir& dir, durable::Durability d, bool with_raw, Report& report) {
  std::string key = "step_latency." + name_of(d);
  const int steps = o.latency_steps;
  std::optional<RawCommitter> raw;
  std::map<int, int> raw_chunks;  // step index -> raw commits made at the end of its body
  if (with_raw) {
    raw.emplace(dir.file("raw-" + name_of(d) + ".db"), d);
    int chunks = std::max(1, std::min(10, steps - 1));
    for (int i = 0; i < chunks; ++i) {
      int at = std::max(0, (i + 1) * steps / (chunks + 1) - 1);
      raw_chunks[at] += o.raw_commits / chunks + (i < o.raw_commits % chunks ? 1 : 0);
    }
  }

  Samples starts;        // steady_clock ns at the start of each step body
  Samples raw_commits;   // ns per raw commit
  durable::Engine engine(engine_options(o, dir.file("latency-" + name_of(d) + ".db"), d));
  engine.function({.id = "latency"}, durable::on_event("bench/latency"), [&](durable::Context& ctx) {
    for (int k = 0; k < steps; ++k) {
      ctx.step.run("step", [&] {
        starts.add(steady_now_ns());
        if (auto chunk = raw_chunks.find(k); raw && chunk != raw_chunks.end()) {
          for (int i = 0; i < chunk->second; ++i) raw_commits.add(raw->commit_one());
        }
        return k;
      });
    }
  });
  engine.start();
  engine.send(durable::Event{.name = "bench/latency"});
  bool all = starts.wait_for_count(steps, kDrainTimeout);
  bool drained = engine.drain(kDrainTimeout);
  engine.stop();
  if (!all || !drained) throw std::runtime_error("the run did not finish in time");
  if (raw) report_raw(d, raw_commits.values(), ", interleaved with the step-latency run", report);

  std::vector<int64_t> t = starts.values();
  // Step k+1 starts once step k's record is durable: the gap is one step's full cost.
  std::vector<int64_t> gaps;
  for (size_t k = 0; k + 1 < t.size(); ++k) {
    if (!raw_chunks.count(static_cast<int>(k))) gaps.push_back(t[k + 1] - t[k]);
  }
  Distribution dist = distribution(std::move(gaps), 1e6);

  std::string note = fmt::format("({} steps)", steps);
  if (auto base = report.raw_p50_ms.find(name_of(d)); base != report.raw_p50_ms.end() && base->second > 0) {
    double ratio = dist.p50 / base->second;
    report.add(key + ".p50", dist.p50, "ms",
               fmt::format("(raw commit p50 {:.3f} ms; ratio {:.2f}x, target <= 1.3x)", base->second, ratio));
    report.add(key + ".p50_over_raw_p50", ratio, "x");
  } else {
    report.add(key + ".p50", dist.p50, "ms", note + " (add 'raw' for the ratio)");
  }
  report.add(key + ".p99", dist.p99, "ms");
}

// w2: events over HTTP from another process

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // 0: the other end closed
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The sending process. It is forked before any engine exists, while this process still has
// one thread: a fork taken while engine threads hold locks (the allocator's, the logger's)
// could leave the child deadlocked. It then waits for rounds: the parent writes a port, the
// child sends `events` events to it one at a time and answers with the time each send took
// to be acknowledged. Port 0 (or a closed pipe) ends it.
class SenderProcess {
 public:
  explicit SenderProcess(int events) {
    int to_child[2];
    int from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) throw std::runtime_error("pipe() failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error(fmt::format("fork() failed: {}", std::strerror(errno)));
    if (pid_ == 0) {
      close(to_child[1]);
      close(from_child[0]);
      // _exit: the parent's atexit handlers and buffered output are not the child's to run.
      _exit(child_main(to_child[0], from_child[1], events));
    }
    close(to_child[0]);
    close(from_child[1]);
    to_child_ = to_child[1];
    from_child_ = from_child[0];
  }

  ~SenderProcess() {
    int32_t stop = 0;
    write_all(to_child_, &stop, sizeof stop);
    close(to_child_);
    close(from_child_);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  SenderProcess(const SenderProcess&) = delete;
  SenderProcess& operator=(const SenderProcess&) = delete;

  // Has the child send its events to `port`; returns the ack latencies in ns. Throws when the
  // child failed (it has said why on stderr).
  std::vector<int64_t> round(int port) {
    int32_t p = port;
    if (!write_all(to_child_, &p, sizeof p)) throw std::runtime_error("the sender process is gone");
    int32_t count = 0;
    if (!read_all(from_child_, &count, sizeof count)) throw std::runtime_error("the sender process is gone");
    if (count < 0) throw std::runtime_error("the sender process could not send its events");
    std::vector<int64_t> acks(static_cast<size_t>(count));
    if (count > 0 && !read_all(from_child_, acks.data(), acks.size() * sizeof(int64_t))) {
      throw std::runtime_error("the sender process is gone");
    }
    return acks;
  }

 private:
  static int child_main(int in, int out, int events) {
    for (;;) {
      int32_t port = 0;
      if (!read_all(in, &port, sizeof port) || port == 0) return 0;
      std::vector<int64_t> acks;
      int32_t count = -1;
      try {
        durable::Client client(fmt::format("http://127.0.0.1:{}", port), "bench");
        for (int i = 0; i < events; ++i) {
          durable::Event e{.name = "bench/w2", .data = {{"i", i}}};
          // steady_clock is CLOCK_MONOTONIC on Linux: the engine process reads the same clock.
          int64_t sent = steady_now_ns();
          e.data["sent_ns"] = sent;
          client.send(e);
          acks.push_back(steady_now_ns() - sent);
        }
        count = static_cast<int32_t>(acks.size());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "durable_bench sender: %s\n", e.what());
      }
      if (!write_all(out, &count, sizeof count)) return 1;
      if (count > 0 && !write_all(out, acks.data(), acks.size() * sizeof(int64_t))) return 1;
    }
  }

  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
};

void bench_w2(const Options& o, const TempDir& dir, durable::Durability d, SenderProcess& sender,
              Report& report) {
  std::string key = "w2." + name_of(d);
  Samples delays;  // ns from just before the client's send to the start of the first step
  durable::Engine engine(engine_options(o, dir.file("w2-" + name_of(d) + ".db"), d));
  engine.function({.id = "w2"}, durable::on_event("bench/w2"), [&delays](durable::Context& ctx) {
    int64_t sent = ctx.event.data.at("sent_ns").get<int64_t>();
    ctx.step.run("receive", [&] {
      int64_t delay = steady_now_ns() - sent;
      delays.add(delay);
      return delay;
    });
  });
  int port = engine.listen({.port = 0, .event_keys = {"bench"}});
  std::vector<int64_t> acks = sender.round(port);
  bool all = delays.wait_for_count(static_cast<size_t>(o.http_events), std::chrono::seconds(30));
  bool drained = engine.drain(kDrainTimeout);
  engine.stop();
  if (!all || !drained) {
    throw std::runtime_error(fmt::format("{} of {} runs started their step", delays.values().size(), o.http_events));
  }

  Distribution start = distribution(delays.values(), 1e6);
  Distribution ack = distribution(std::move(acks), 1e6);
  report.add(key + ".send_to_step.p50", start.p50, "ms",
             fmt::format("({} events one at a time{})", start.count,
                         d == durable::Durability::full ? "; target <= 0.5 ms at full" : ""));
  report.add(key + ".send_to_step.p99", start.p99, "ms");
  report.add(key + ".http_ack.p50", ack.p50, "ms", "(the client's send() round trip)");
  report.add(key + ".http_ack.p99", ack.p99, "ms");
}

// w3: many runs sleeping, how late they wake

void bench_w3(const Options& o, const TempDir& dir, durable::Durability d, Report& report) {
  std::string key = "w3." + name_of(d);
  Samples lateness;   // us past the deadline when the step after the sleep starts
  Samples deadlines;  // the deadlines, ms since the epoch: how tightly the wake-ups bunch
  durable::Engine engine(engine_options(o, dir.file("w3-" + name_of(d) + ".db"), d));
  const int sleep_ms = o.sleep_ms;
  engine.function({.id = "w3"}, durable::on_event("bench/w3"), [&lateness, &deadlines, sleep_ms](durable::Context& ctx) {
    // In a step: on the replay after the sleep it returns the recorded deadline.
    int64_t deadline_ms = ctx.step.run("deadline", [&] {
      auto now = std::chrono::time_point_cast<milliseconds>(system_clock::now());
      deadlines.add(now.time_since_epoch().count() + sleep_ms);
      return now.time_since_epoch().count() + sleep_ms;
    });
    system_clock::time_point deadline{milliseconds(deadline_ms)};
    ctx.step.sleep_until("wait", deadline);
    ctx.step.run("late", [&] {
      int64_t late = std::chrono::duration_cast<std::chrono::microseconds>(system_clock::now() - deadline).count();
      lateness.add(late);
      return late;
    });
  });
  engine.start();

  std::vector<durable::Event> batch;
  for (int i = 0; i < o.sleepers; ++i) {
    batch.push_back(durable::Event{.name = "bench/w3", .data = {{"i", i}}});
    if (static_cast<int>(batch.size()) == o.batch || i + 1 == o.sleepers) {
      engine.send(batch);
      batch.clear();
    }
  }
  // drain() would return while the runs sleep (none is due): wait for the last step instead.
  bool all = lateness.wait_for_count(static_cast<size_t>(o.sleepers), milliseconds(sleep_ms) + kDrainTimeout);
  bool drained = engine.drain(kDrainTimeout);
  engine.stop();
  if (!all || !drained) {
    throw std::runtime_error(fmt::format("{} of {} runs woke up", lateness.values().size(), o.sleepers));
  }

  Distribution dist = distribution(lateness.values(), 1e3);
  int64_t early = 0;
  for (int64_t v : lateness.values()) early += v < 0 ? 1 : 0;
  report.add(key + ".lateness.p50", dist.p50, "ms", fmt::format("({} runs sleeping {} ms)", dist.count, sleep_ms));
  report.add(key + ".lateness.p99", dist.p99, "ms", "(target <= 5 ms)");
  report.add(key + ".lateness.max", dist.max, "ms");
  std::vector<int64_t> all_deadlines = deadlines.values();
  auto [first, last] = std::minmax_element(all_deadlines.begin(), all_deadlines.end());
  report.add(key + ".deadline_spread", static_cast<double>(*last - *first), "ms",
             "(from the first deadline to the last: the wake-ups come this close together)");
  if (early > 0) report.add(key + ".woke_early", static_cast<double>(early), "runs", "(sleeps must never wake early)");
}

void bench_parallel(const Options& o, const TempDir& dir, durable::Durability d, Report& report) {
  std::string key = "parallel." + name_of(d);
  durable::Engine engine(engine_options(o, dir.file("parallel-" + name_of(d) + ".db"), d));
  static constexpr milliseconds kBody{100};
  Samples wall;  // us from the group's start to its end, as the function sees it
  engine.function({.id = "parallel"}, durable::on_event("bench/parallel"), [&wall](durable::Context& ctx) {
    auto body = [] {
      std::this_thread::sleep_for(kBody);  // stands for 100 ms of I/O
      return 1;
    };
    auto began = steady_clock::now();
    ctx.step.run_all("work", body, body, body, body);
    wall.add(std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - began).count());
  });
  engine.start();
  constexpr int kRuns = 5;
  for (int i = 0; i < kRuns; ++i) {
    engine.send(durable::Event{.name = "bench/parallel"});
    if (!wall.wait_for_count(static_cast<size_t>(i + 1), kDrainTimeout)) throw std::runtime_error("a run did not finish");
  }
  engine.stop();
  Distribution dist = distribution(wall.values(), 1e3);
  report.add(key + ".wall.p50", dist.p50, "ms", fmt::format("(4 bodies of 100 ms at once, {} runs; one after the other: 400 ms)", kRuns));
  report.add(key + ".wall.max", dist.max, "ms");
}

// Runs one workload; a failure is reported and the others still run.
void attempt(Report& report, const std::string& name, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    report.fail(name, e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  // A sender that died must turn into an error from write(), not kill us.
  std::signal(SIGPIPE, SIG_IGN);

  try {
    std::optional<SenderProcess> sender;
    if (o.w2) sender.emplace(o.http_events);  // first: before any thread exists
    Report report;

    std::string durabilities;
    for (auto d : o.durabilities) durabilities += (durabilities.empty() ? "" : ",") + name_of(d);
    fmt::print("durable_bench: durability {}, workers {}, {} cores, {} round(s)\n", durabilities, o.workers,
               std::thread::hardware_concurrency(), o.rounds);
    std::fflush(stdout);

    for (int round = 1; round <= o.rounds; ++round) {
      TempDir dir(o.dir);  // fresh databases every round
      fmt::print("\nround {} of {} in {}\n", round, o.rounds, dir.path().string());
      for (auto d : o.durabilities) {
        if (o.latency) {
          attempt(report, "step_latency." + name_of(d), [&] { bench_latency(o, dir, d, o.raw, report); });
        } else if (o.raw) {
          attempt(report, "raw." + name_of(d), [&] { bench_raw(o, dir, d, report); });
        }
      }
      for (auto d : o.durabilities) {
        if (o.w1) attempt(report, "w1." + name_of(d), [&] { bench_w1(o, dir, d, report); });
      }
      for (auto d : o.durabilities) {
        if (o.w2) attempt(report, "w2." + name_of(d), [&] { bench_w2(o, dir, d, *sender, report); });
      }
      if (o.parallel) {
        durable::Durability d = o.durabilities.front();
        attempt(report, "parallel." + name_of(d), [&] { bench_parallel(o, dir, d, report); });
      }
      if (o.w3) {
        // The sleep workload is about the scheduler, not the disk: one durability is enough.
        durable::Durability d = o.durabilities.front();
        attempt(report, "w3." + name_of(d), [&] { bench_w3(o, dir, d, report); });
      }
    }
    if (o.rounds > 1) report.print_medians(o.rounds);

    if (o.json) {
      nlohmann::json summary = report.json();
      summary["config"] = {{"durability", durabilities}, {"workers", o.workers},
                           {"raw_commits", o.raw_commits}, {"runs", o.runs},
                           {"steps", o.steps}, {"batch", o.batch},
                           {"latency_steps", o.latency_steps}, {"http_events", o.http_events},
                           {"sleepers", o.sleepers}, {"sleep_ms", o.sleep_ms}, {"rounds", o.rounds},
                           {"summary", "each figure is the median of the rounds"}};
      fmt::print("{}\n", summary.dump(2));
    }
    return report.failed() ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "durable_bench: " << e.what() << "\n";
    return 1;
  }
}
