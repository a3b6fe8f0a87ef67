// durable runs, run, cancel, resume, replay: reading runs and acting on one run or on every
// run that matches a filter (bulk).
#include <chrono>
#include <iostream>

#include <fmt/format.h>

#include <durable/errors.hpp>
#include <durable/run.hpp>

#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "cli/table.hpp"

namespace cli {

namespace {

// The statuses of --status a,b, each checked against the run statuses, so that a typo is a
// usage error rather than an empty listing.
std::vector<std::string> status_filter(const ParsedArgs& args) {
  auto statuses = split_commas(args.get("--status").value_or(""));
  for (const auto& word : statuses) {
    try {
      durable::parse_run_status(word);
    } catch (const durable::Error&) {
      throw UsageError(fmt::format("--status: '{}' is not a run status (queued, running, sleeping, waiting, completed, "
                                   "failed, cancelled)",
                                   word));
    }
  }
  return statuses;
}

// --since DURATION as the API's started_after time (which filters on the runs' creation):
// that long before now, on this machine's clock.
std::optional<int64_t> since_filter(const ParsedArgs& args) {
  auto text = args.get("--since");
  if (!text) return std::nullopt;
  auto since = parse_duration(*text, "--since");
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  return (now - since).count();
}

// The one run id a single-run command takes.
std::string run_id_argument(const Invocation& inv) {
  const auto& pos = inv.args.positionals;
  if (pos.empty()) throw UsageError("missing the run ID");
  if (pos.size() > 1) throw UsageError(fmt::format("unexpected argument '{}'", pos[1]));
  return pos[0];
}

std::string run_path(const std::string& id) { return "/v1/runs/" + path_segment(id); }

int runs(const Invocation& inv) {
  expect_no_positionals(inv);
  auto statuses = status_filter(inv.args);
  Query query{{"status", fmt::format("{}", fmt::join(statuses, ","))},
              {"function", inv.args.get("--function").value_or("")},
              {"event", inv.args.get("--event").value_or("")},
              {"cursor", inv.args.get("--cursor").value_or("")}};
  if (auto since = since_filter(inv.args)) query["started_after"] = std::to_string(*since);
  if (auto limit = inv.args.get("--limit")) query["limit"] = std::to_string(parse_count(*limit, "--limit"));

  auto answer = inv.api().get("/v1/runs", query);
  if (inv.json) {
    print_json(answer);
    return 0;
  }
  Table table({"ID", "FUNCTION", "STATUS", "CREATED (UTC)", "DURATION"});
  for (const auto& run : answer.value("runs", nlohmann::json::array())) {
    table.add({string_at(run, "id"), string_at(run, "function_id"), string_at(run, "status"),
               time_at(run, "created_at"), duration_between(run, "started_at", "ended_at")});
  }
  std::cout << (table.empty() ? "no runs\n" : table.render());
  print_next_page_hint(answer, "runs");
  return 0;
}

// What the OUTPUT column says about a step: its output, its error, or when it will go on.
std::string step_outcome(const nlohmann::json& step) {
  std::string status = string_at(step, "status", "");
  const auto& error = member(step, "error");
  if (status == "failed") return error_text(error);
  if (status == "retrying") return fmt::format("retry at {}: {}", time_at(step, "retry_at"), error_text(error));
  std::string kind = string_at(step, "kind", "");
  if (kind == "sleep") return "until " + time_at(step, "until");
  if (kind == "invoke" && status == "waiting") {
    return fmt::format("run {} of {}, until {}", string_at(step, "invoked_run_id", "?"),
                       string_at(step, "invoked_function", "?"), time_at(step, "until"));
  }
  if (kind == "wait_for_event" && status == "waiting") {
    return fmt::format("for {}, until {}", string_at(member(step, "waiting_for"), "event", "?"), time_at(step, "until"));
  }
  if (kind == "wait_for_event" && step.value("timed_out", false)) return "timed out";
  if (kind == "wait_for_event") return preview(member(member(step, "output"), "event"));
  return preview(member(step, "output"));
}

void print_run(const nlohmann::json& run) {
  auto field = [](std::string_view label, const std::string& value) {
    if (!value.empty()) std::cout << fmt::format("{:<10} {}\n", label, value);
  };
  field("run", string_at(run, "id"));
  field("function", string_at(run, "function_id"));
  std::string status = string_at(run, "status");
  int attempt = run.value("attempt", 0);
  if (attempt > 0 && (status == "queued" || status == "running")) status += fmt::format(" (retry {})", attempt);
  field("status", status);
  std::string event = string_at(run, "event_id");
  if (member(run, "event").is_object()) event += " " + string_at(run["event"], "name", "");
  field("event", event);
  field("created", time_at(run, "created_at") + " UTC");
  if (int_at(run, "started_at")) field("started", time_at(run, "started_at") + " UTC");
  if (int_at(run, "ended_at")) {
    field("ended", fmt::format("{} UTC (took {})", time_at(run, "ended_at"), duration_between(run, "started_at", "ended_at")));
  }
  field("replay of", string_at(run, "replay_of", ""));
  field("invoked by", string_at(run, "parent_run_id", ""));
  if (const auto& replays = member(run, "replays"); replays.is_array() && !replays.empty()) {
    // A run replayed in bulk again and again would fill the screen: the first few, then a count.
    constexpr size_t kShown = 3;
    std::vector<std::string> shown;
    for (size_t i = 0; i < std::min(kShown, replays.size()); ++i) shown.push_back(replays[i].get<std::string>());
    std::string text = fmt::format("{}", fmt::join(shown, ", "));
    if (replays.size() > kShown) text += fmt::format(" and {} more", replays.size() - kShown);
    field("replays", text);
  }
  if (const auto& error = member(run, "error"); !error.is_null()) {
    std::string step = string_at(error, "step", "");
    field("error", error_text(error) + (step.empty() ? "" : " (step " + step + ")"));
  }
  if (status == "completed") field("output", preview(member(run, "output"), 200));

  Table steps({"STEP", "STATUS", "ATTEMPTS", "DURATION", "OUTPUT"});
  for (const auto& step : run.value("steps", nlohmann::json::array())) {
    bool sleep = string_at(step, "kind", "") == "sleep";  // a sleep has no attempts
    steps.add({string_at(step, "key"), string_at(step, "status"), sleep ? "-" : std::to_string(step.value("attempts", 0)),
               duration_between(step, "started_at", "ended_at"), step_outcome(step)});
  }
  std::cout << "\n" << (steps.empty() ? "no steps yet\n" : steps.render());

  // Failures of the function's own code, outside any step (it is retried like a step).
  Table body_errors({"BODY ATTEMPT", "FAILED AT (UTC)", "ERROR"});
  for (const auto& failure : run.value("body_errors", nlohmann::json::array())) {
    body_errors.add({std::to_string(failure.value("attempt", 0)), time_at(failure, "at"),
                     error_text(member(failure, "error"))});
  }
  if (!body_errors.empty()) std::cout << "\n" << body_errors.render();
}

int run(const Invocation& inv) {
  auto answer = inv.api().get(run_path(run_id_argument(inv)));
  if (inv.json) {
    print_json(answer);
  } else {
    print_run(answer);
  }
  return 0;
}

// The filter of a bulk cancel or replay (--function, --status, --since), or null when the
// command line has none: it is then about one run.
nlohmann::json bulk_filter(const ParsedArgs& args) {
  nlohmann::json filter = nlohmann::json::object();
  if (auto function = args.get("--function")) filter["function"] = *function;
  if (auto statuses = status_filter(args); !statuses.empty()) filter["status"] = statuses;
  if (auto since = since_filter(args)) filter["started_after"] = *since;
  return filter.empty() ? nlohmann::json() : filter;
}

// Works through every run `filter` matches, a page (one request) at a time, following
// next_cursor, with a progress bar. Returns the pages' answers merged: {"count", "run_ids",
// "total"?, "replayed"?}.
nlohmann::json run_bulk(const Invocation& inv, const std::string& path, nlohmann::json filter, const std::string& verb) {
  ApiClient api = inv.api();
  Progress progress(verb);
  int64_t count = 0;
  std::optional<int64_t> total;  // only the first answer (without a cursor) counts the matches
  nlohmann::json merged = {{"run_ids", nlohmann::json::array()}};
  while (true) {
    nlohmann::json page;
    try {
      page = api.post(path, filter);
    } catch (const ApiError& e) {
      progress.finish();
      // Earlier pages are done and stay done: say how far it got.
      if (count == 0) throw;
      throw ApiError(e.status(), fmt::format("{} ({} runs {} before this)", e.what(), count, verb));
    }
    if (!total) total = int_at(page, "total");
    count += int_at(page, "count").value_or(0);
    for (const char* list : {"run_ids", "replayed"}) {
      const auto& items = member(page, list);
      if (!items.is_array()) continue;
      for (const auto& item : items) merged[list].push_back(item);  // a missing list becomes an array
    }
    progress.update(count, total);
    if (!member(page, "next_cursor").is_string()) break;
    filter["cursor"] = page["next_cursor"];
  }
  progress.finish();
  merged["count"] = count;
  if (total) merged["total"] = *total;
  return merged;
}

void print_bulk_result(const Invocation& inv, const nlohmann::json& result, const std::string& verb) {
  if (inv.json) {
    print_json(result);
    return;
  }
  int64_t count = result["count"].get<int64_t>();
  if (count == 0) {
    std::cout << "no runs matched\n";
  } else {
    std::cout << fmt::format("{} {} run{}\n", verb, count, count == 1 ? "" : "s");
  }
}

int cancel(const Invocation& inv) {
  auto filter = bulk_filter(inv.args);
  if (!filter.is_null()) {
    expect_no_positionals(inv);
    print_bulk_result(inv, run_bulk(inv, "/v1/cancellations", filter, "cancelled"), "cancelled");
    return 0;
  }
  auto answer = inv.api().post(run_path(run_id_argument(inv)) + "/cancel", nlohmann::json::object());
  if (inv.json) {
    print_json(answer);
  } else {
    std::cout << fmt::format("cancelled {}\n", string_at(answer["run"], "id"));
  }
  return 0;
}

int resume(const Invocation& inv) {
  auto answer = inv.api().post(run_path(run_id_argument(inv)) + "/resume", nlohmann::json::object());
  if (inv.json) {
    print_json(answer);
  } else {
    std::cout << fmt::format("resumed {} (now {})\n", string_at(answer["run"], "id"), string_at(answer["run"], "status"));
  }
  return 0;
}

int replay(const Invocation& inv) {
  auto filter = bulk_filter(inv.args);
  auto from = inv.args.get("--from");
  auto output = inv.args.get("--output");
  if (!filter.is_null()) {
    expect_no_positionals(inv);
    if (from || output) throw UsageError("--from and --output replay one run; a bulk replay replays whole runs");
    print_bulk_result(inv, run_bulk(inv, "/v1/replays", filter, "replayed"), "replayed");
    return 0;
  }
  std::string id = run_id_argument(inv);
  nlohmann::json body = nlohmann::json::object();
  if (from) body["from_step"] = *from;
  if (output) {
    if (!from) throw UsageError("--output replaces the output of the --from step: give --from too");
    body["output"] = parse_json(*output, "--output");
  }
  auto answer = inv.api().post(run_path(id) + "/replay", body);
  if (inv.json) {
    print_json(answer);
  } else {
    // Only the new run's id, so that scripts can take it: new=$(durable replay ID).
    std::cout << string_at(answer["run"], "id") << "\n";
  }
  return 0;
}

const char* const kBulkOptionsHelp = R"(  --function F      runs of function F
  --status S[,S]    runs with one of these statuses
  --since DURATION  runs created within DURATION before now (30s, 15m, 1h, 7d, 1h30m))";

}  // namespace

std::vector<Command> run_commands() {
  std::vector<OptionSpec> connection = {kUrlOption, kKeyOption, kJsonOption};
  auto with = [&](std::vector<OptionSpec> more) {
    more.insert(more.begin(), connection.begin(), connection.end());
    return more;
  };
  std::vector<OptionSpec> bulk = {{"--function", true}, {"--status", true}, {"--since", true}};
  return {
      {.name = "runs",
       .summary = "list runs, newest first",
       .help = R"(Usage: durable runs [options]

Lists runs, newest first.

Options:
  --status S[,S]    only runs with one of these statuses: queued, running, sleeping, waiting,
                    completed, failed, cancelled
  --function F      only runs of function F
  --event ID        only runs the event ID started
  --since DURATION  only runs created within DURATION before now (30s, 15m, 1h, 7d, 1h30m)
  --limit N         at most N runs (default 50, at most 1000)
  --cursor C        the next page of an earlier listing
  --json            print the API's JSON
)",
       .options = with({{"--status", true}, {"--function", true}, {"--event", true}, {"--since", true},
                        {"--limit", true}, {"--cursor", true}}),
       .run = runs},
      {.name = "run",
       .summary = "show a run and its steps",
       .help = R"(Usage: durable run ID [options]

Shows run ID: its function, status, event, times, output or error, and its steps in the order
they ran, each with its status, attempts, duration and output (or error).

Options:
  --json            print the API's JSON (with every step's attempts)
)",
       .options = connection,
       .run = run},
      {.name = "cancel",
       .summary = "cancel a run, or every run that matches a filter",
       .help = fmt::format(R"(Usage: durable cancel ID [options]
       durable cancel [--function F] [--status S] [--since DURATION] [options]

Cancels run ID, or every run that matches the filter (at least one of the options below).
A finished run cannot be cancelled.

Options:
{}
  --json            print the API's JSON
)",
                           kBulkOptionsHelp),
       .options = with(bulk),
       .run = cancel},
      {.name = "resume",
       .summary = "resume a failed or cancelled run",
       .help = R"(Usage: durable resume ID [options]

Resumes run ID, which must be failed or cancelled: it goes on from its journal, retrying the
step that failed with a fresh count of attempts.

Options:
  --json            print the API's JSON
)",
       .options = connection,
       .run = resume},
      {.name = "replay",
       .summary = "replay a run, or every run that matches a filter",
       .help = fmt::format(R"(Usage: durable replay ID [--from STEP [--output JSON]] [options]
       durable replay [--function F] [--status S] [--since DURATION] [options]

Starts a new run of run ID's function for the same event and prints the new run's id. With
--from, the steps before STEP keep their recorded results and STEP and every step after it
run again; --output gives STEP a result instead of running it.
With a filter (at least one of --function, --status, --since), replays every run that
matches it.

Options:
  --from STEP       the key of the first step to run again (see durable run ID)
  --output JSON     the result STEP records instead of running
{}
  --json            print the API's JSON
)",
                           kBulkOptionsHelp),
       .options = with({bulk[0], bulk[1], bulk[2], {"--from", true}, {"--output", true}}),
       .run = replay},
  };
}

}  // namespace cli
