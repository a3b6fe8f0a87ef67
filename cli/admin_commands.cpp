// durable functions, unregister, verify, gc, serve.
#include <iostream>

#include <fmt/format.h>

#include <durable/engine.hpp>

#include "cli/commands.hpp"
#include "cli/table.hpp"

namespace cli {

namespace {

// A function's triggers as "a/b, c/*", or what it handles when it is a failure handler.
std::string triggers_text(const nlohmann::json& function) {
  if (auto handled = string_at(function, "failure_handler_of", ""); !handled.empty()) return "failures of " + handled;
  std::vector<std::string> events;
  for (const auto& trigger : function.value("triggers", nlohmann::json::array())) {
    events.push_back(trigger.contains("cron") ? "cron " + string_at(trigger, "cron") : string_at(trigger, "event"));
  }
  return fmt::format("{}", fmt::join(events, ", "));
}

int functions(const Invocation& inv) {
  expect_no_positionals(inv);
  auto answer = inv.api().get("/v1/functions");
  if (inv.json) {
    print_json(answer);
    return 0;
  }
  Table table({"ID", "TRIGGERS", "RETRIES", "REGISTERED (UTC)", "BY"});
  for (const auto& function : answer.value("functions", nlohmann::json::array())) {
    table.add({string_at(function, "id"), triggers_text(function), std::to_string(function.value("retries", 0)),
               time_at(function, "registered_at"), string_at(function, "registered_by")});
  }
  std::cout << (table.empty() ? "no functions\n" : table.render());
  return 0;
}

int unregister(const Invocation& inv) {
  const auto& pos = inv.args.positionals;
  if (pos.empty()) throw UsageError("missing the FUNCTION id");
  if (pos.size() > 1) throw UsageError(fmt::format("unexpected argument '{}'", pos[1]));
  const std::string& id = pos[0];
  auto answer = inv.api().post("/v1/functions/" + path_segment(id) + "/unregister", nlohmann::json::object());
  if (inv.json) {
    print_json(answer);
  } else {
    std::cout << fmt::format("unregistered {}\n", id);
  }
  return 0;
}

int verify(const Invocation& inv) {
  expect_no_positionals(inv);
  auto function = inv.args.get("--function");
  if (!function) throw UsageError("missing --function FUNCTION: the function whose runs to replay");
  std::string path = "/v1/functions/" + path_segment(*function) + "/verify";
  if (auto limit = inv.args.get("--limit")) path += "?limit=" + std::to_string(parse_count(*limit, "--limit"));
  auto answer = inv.api().post(path, nlohmann::json::object());
  auto diverged = answer.value("diverged", nlohmann::json::array());
  if (inv.json) {
    print_json(answer);
  } else if (diverged.empty()) {
    std::cout << fmt::format("{} runs of {} replay as recorded\n", answer.value("checked", 0), *function);
  } else {
    Table table({"RUN", "STATUS", "JOURNAL HAS", "CODE REACHES"});
    for (const auto& run : diverged) {
      table.add({string_at(run, "run_id"), string_at(run, "status"), string_at(run, "expected"), string_at(run, "actual")});
    }
    std::cout << table.render()
              << fmt::format("{} of {} runs of {} would fail with a NondeterminismError\n", diverged.size(),
                             answer.value("checked", 0), *function);
  }
  return diverged.empty() ? 0 : 1;
}

int gc(const Invocation& inv) {
  expect_no_positionals(inv);
  auto older_than = inv.args.get("--older-than");
  if (!older_than) throw UsageError("missing --older-than DURATION (e.g. --older-than 7d)");
  auto age = parse_duration(*older_than, "--older-than");
  auto answer = inv.api().post("/v1/gc", {{"older_than_ms", age.count()}});
  if (inv.json) {
    print_json(answer);
  } else {
    std::cout << fmt::format("deleted {} runs and {} events\n", answer.value("runs_deleted", 0), answer.value("events_deleted", 0));
  }
  return 0;
}

int serve(const Invocation& inv) {
  expect_no_positionals(inv);
  durable::ServeOptions options;
  options.host = inv.args.get("--host").value_or(options.host);
  if (auto port = inv.args.get("--port")) {
    // 0 is allowed: it picks a free port, which the engine logs.
    int64_t number = *port == "0" ? 0 : parse_count(*port, "--port");
    if (number > 65535) throw UsageError(fmt::format("--port: {} is not a TCP port", *port));
    options.port = static_cast<int>(number);
  }
  if (auto keys = inv.args.get("--event-key")) options.event_keys = split_commas(*keys);
  if (auto keys = inv.args.get("--api-key")) options.api_keys = split_commas(*keys);
  // The limits on what one client may cost (docs/security.md).
  auto size = [&](const char* flag, size_t& field) {
    if (auto text = inv.args.get(flag)) field = static_cast<size_t>(parse_count(*text, flag));
  };
  auto duration = [&](const char* flag, std::chrono::milliseconds& field) {
    if (auto text = inv.args.get(flag)) field = parse_duration(*text, flag);
  };
  size("--max-request-bytes", options.max_request_bytes);
  size("--max-event-bytes", options.max_event_bytes);
  if (auto text = inv.args.get("--max-connections")) {
    int64_t n = parse_count(*text, "--max-connections");
    if (n < 1 || n > 1000000) throw UsageError("--max-connections: give a number from 1 to 1000000");
    options.max_connections = static_cast<int>(n);
  }
  duration("--header-timeout", options.header_timeout);
  duration("--request-timeout", options.request_timeout);
  duration("--idle-timeout", options.idle_timeout);
  // The engine has no functions of its own: it serves the API over the database, and runs
  // nothing until functions are registered in it.
  durable::Engine engine({.database = inv.args.get("--database").value_or("")});
  return engine.serve(options);
}

}  // namespace

std::vector<Command> admin_commands() {
  return {
      {.name = "functions",
       .summary = "list the registered functions",
       .help = R"(Usage: durable functions [options]

Lists the functions registered in the engine's database, with their triggers and retries.

Options:
  --json            print the API's JSON
)",
       .options = {kUrlOption, kKeyOption, kJsonOption},
       .run = functions},
      {.name = "unregister",
       .summary = "forget a function removed from the code",
       .help = R"(Usage: durable unregister FUNCTION [options]

Removes FUNCTION and its triggers from the database, so that events no longer start runs
for it (workers record their functions when they start; one removed from the code stays
recorded until this). Its runs stay; cancel the queued ones with
`durable cancel --function FUNCTION --status queued`. A worker that still has the function
records it again when it starts.

Options:
  --json            print the API's JSON
)",
       .options = {kUrlOption, kKeyOption, kJsonOption},
       .run = unregister},
      {.name = "verify",
       .summary = "check that stored runs replay with the current code",
       .help = R"(Usage: durable verify --function FUNCTION [options]

Asks the engine at --url, which must register FUNCTION (a worker running the code to check),
to replay the journals of FUNCTION's stored runs against its code without running any step
body, and lists the runs whose journal the code would not follow: they would fail with a
NondeterminismError. Run it against a worker of the new version before routing runs to it.
Exit code 0: every run replays; 1: some would diverge.

Options:
  --function F      required: the function
  --limit N         replay at most N runs, newest first (default 10000)
  --json            print the API's JSON
)",
       .options = {kUrlOption, kKeyOption, kJsonOption, {"--function", true}, {"--limit", true}},
       .run = verify},
      {.name = "gc",
       .summary = "delete finished runs and old events",
       .help = R"(Usage: durable gc --older-than DURATION [options]

Deletes the runs that finished more than DURATION ago (7d, 12h, ...) and the events older
than that which no remaining run needs. Prints how many of each.

Options:
  --older-than DURATION   required: 500ms, 30s, 15m, 1h, 7d or a mix like 1d12h
  --json                  print the API's JSON
)",
       .options = {kUrlOption, kKeyOption, kJsonOption, {"--older-than", true}},
       .run = gc},
      {.name = "serve",
       .summary = "run the engine's HTTP API over a database",
       .help = R"(Usage: durable serve [--database URL] [--port N] [--host H] [--api-key K] [--event-key K]

Runs the HTTP API (events, runs, functions) over the database URL, with no functions of its
own, until Ctrl-C or SIGTERM.

Options:
  --database URL    the database: a SQLite file path (app.db, or sqlite:app.db; created if
                    missing) (default: DURABLE_DATABASE, else durable.db)
  --port N          TCP port (default 8288; 0 picks a free one)
  --host H          address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --api-key K       keys accepted by the /v1 API, comma-separated (default: DURABLE_API_KEY;
                    without any, /v1 refuses every request)
  --event-key K     keys accepted by POST /e/{key}, comma-separated (default: DURABLE_EVENT_KEY,
                    else a random key, printed at start)

Limits on each client (docs/security.md):
  --max-request-bytes N  largest request body, also once inflated (default 3145728: 3 MiB)
  --max-event-bytes N    largest event (default 524288: 512 KiB)
  --max-connections N    open connections at most (default 10000)
  --header-timeout D     a request's head must arrive within D of its first byte (default 10s)
  --request-timeout D    the whole request, body included, within D (default 60s)
  --idle-timeout D       a keep-alive connection with no request is closed after D (default 60s)

Environment: DURABLE_ALERT_URL and DURABLE_ALERT_SECRET set the failure alert webhook.
Prefer the environment variables to the key flags, which show in the process list.
)",
       .options = {{"--database", true}, {"--port", true}, {"--host", true}, {"--api-key", true}, {"--event-key", true},
                   {"--max-request-bytes", true}, {"--max-event-bytes", true}, {"--max-connections", true},
                   {"--header-timeout", true}, {"--request-timeout", true}, {"--idle-timeout", true}},
       .run = serve},
  };
}

}  // namespace cli
