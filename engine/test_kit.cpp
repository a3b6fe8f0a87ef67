// The test kit (sdk/durable/testing.hpp): an Engine on ":memory:" with a ManualClock, plus
// reads of its store through EngineAccess.
#include <durable/testing.hpp>

#include <algorithm>

#include <fmt/format.h>

#include "engine/engine_access.hpp"
#include "engine/http/api_json.hpp"

namespace durable::testing {

namespace {

// How long settle() lets runs go on in real time before it reports them stuck.
constexpr std::chrono::seconds kSettleTimeout{30};

}  // namespace

TestEngine::TestEngine(TestOptions options) : clock_(std::make_shared<ManualClock>(options.start)) {
  engine_ = std::make_unique<Engine>(EngineOptions{.database = ":memory:",
                                                   .durability = Durability::normal,
                                                   .workers = options.workers,
                                                   .clock = clock_,
                                                   .log_level = options.log_level,
                                                   .retention = std::chrono::milliseconds(0)});
}

TestEngine::~TestEngine() { engine_->stop(std::chrono::seconds(5)); }

void TestEngine::mock_step(std::string function_id, std::string step_key, nlohmann::json output) {
  EngineAccess::mocks(*engine_).set(std::move(function_id), std::move(step_key), std::move(output));
}

void TestEngine::start_if_needed() {
  if (started_) return;
  engine_->start();
  started_ = true;
}

void TestEngine::settle() {
  if (!engine_->drain(kSettleTimeout)) {
    throw Error("the test engine did not become idle within 30 s of real time: a step body blocks?");
  }
}

TestRun TestEngine::trigger(const Event& event) {
  std::string event_id = send(event);
  std::vector<Run> runs = engine_->runs_for_event(event_id);
  if (runs.size() != 1) {
    throw Error(fmt::format("event '{}' started {} runs, not one: use send() and runs_for_event()", event.name, runs.size()));
  }
  return TestRun(*this, runs[0].id);
}

std::string TestEngine::send(const Event& event) { return send(std::vector<Event>{event}).at(0); }

std::vector<std::string> TestEngine::send(const std::vector<Event>& events) {
  start_if_needed();
  std::vector<std::string> ids = engine_->send(events);
  settle();
  return ids;
}

void TestEngine::advance(std::chrono::milliseconds d) {
  start_if_needed();
  clock_->advance(d);
  settle();
}

std::vector<TestRun> TestEngine::runs_for_event(std::string_view event_id) {
  std::vector<TestRun> out;
  for (const Run& r : engine_->runs_for_event(event_id)) out.push_back(TestRun(*this, r.id));
  return out;
}

std::vector<TestRun> TestEngine::runs_of(std::string_view function_id) {
  std::vector<TestRun> out;
  std::string before;
  Store& store = EngineAccess::store(*engine_);
  for (;;) {
    std::vector<Run> page = store.list_runs(RunFilter{.function_id = std::string(function_id)}, 1000, before);
    if (page.empty()) break;
    for (const Run& r : page) out.push_back(TestRun(*this, r.id));
    before = page.back().id;
  }
  std::reverse(out.begin(), out.end());  // listings are newest first
  return out;
}

TestRun TestEngine::run(std::string_view run_id) {
  if (!engine_->get_run(run_id)) throw Error(fmt::format("no run with id '{}'", run_id));
  return TestRun(*this, std::string(run_id));
}

Run TestRun::snapshot() const {
  std::optional<Run> run = t_->engine_->get_run(id_);
  if (!run) throw Error(fmt::format("run '{}' no longer exists", id_));
  return *run;
}

Event TestRun::event() const {
  std::optional<StoredEvent> stored = EngineAccess::store(*t_->engine_).find_event(snapshot().event_id);
  if (!stored) throw Error(fmt::format("the event of run '{}' no longer exists", id_));
  return stored->event;
}

std::vector<StepRecord> TestRun::steps() const {
  std::vector<StepRecord> out;
  auto journal = EngineAccess::store(*t_->engine_).load_journal(id_);
  for (const nlohmann::json& s : steps_json(journal, t_->now())) {
    out.push_back(StepRecord{.key = s.at("key"),
                             .kind = s.at("kind"),
                             .status = s.at("status").is_string() ? s.at("status").get<std::string>() : "",
                             .output = s.value("output", nlohmann::json()),
                             .error = s.value("error", nlohmann::json()),
                             .attempts = s.value("attempts", 0),
                             .details = s});
  }
  return out;
}

StepRecord TestRun::step(std::string_view key) const {
  for (StepRecord& s : steps()) {
    if (s.key == key) return s;
  }
  throw Error(fmt::format("run '{}' has no step '{}'", id_, key));
}

nlohmann::json TestRun::journal() const {
  nlohmann::json out = nlohmann::json::array();
  for (const JournalEntry& e : EngineAccess::store(*t_->engine_).load_journal(id_)) {
    out.push_back({{"seq", e.seq},
                   {"kind", to_string(e.kind)},
                   {"step", e.step_key.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.step_key)},
                   {"attempt", e.attempt ? nlohmann::json(*e.attempt) : nlohmann::json(nullptr)},
                   {"payload", nlohmann::json::parse(e.payload, nullptr, false)},
                   {"recorded_at", to_millis(e.recorded_at)}});
  }
  return out;
}

}  // namespace durable::testing
