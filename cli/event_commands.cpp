// durable send, durable events.
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/table.hpp"

namespace cli {

namespace {

// The text of `source`: "-" is stdin, "@path" a file, anything else the JSON itself.
std::string read_data_argument(const std::string& source) {
  if (source == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (source.starts_with("@")) {
    std::ifstream file(source.substr(1), std::ios::binary);
    if (!file) throw UsageError(fmt::format("cannot read the data file '{}'", source.substr(1)));
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
  }
  return source;
}

int send(const Invocation& inv) {
  const auto& pos = inv.args.positionals;
  if (pos.empty()) throw UsageError("missing the event NAME");
  if (pos.size() > 2) throw UsageError(fmt::format("unexpected argument '{}'", pos[2]));
  // Checked before the data is read: with "-", a missing key would otherwise be found only
  // after the user has typed the data.
  if (inv.event_key.empty()) throw UsageError("no event key: pass --event-key or set DURABLE_EVENT_KEY");

  nlohmann::json data = nlohmann::json::object();
  if (pos.size() == 2) {
    data = parse_json(read_data_argument(pos[1]), "the event data");
    if (!data.is_object()) throw UsageError("the event data must be a JSON object, like '{\"id\":1}'");
  }
  auto answer = inv.api().post("/e/" + path_segment(inv.event_key), {{"name", pos[0]}, {"data", data}});
  if (inv.json) {
    print_json(answer);
  } else {
    for (const auto& id : answer.value("ids", nlohmann::json::array())) std::cout << id.get<std::string>() << "\n";
  }
  return 0;
}

int events(const Invocation& inv) {
  if (!inv.args.positionals.empty()) throw UsageError(fmt::format("unexpected argument '{}'", inv.args.positionals[0]));
  Query query{{"name", inv.args.get("--name").value_or("")}, {"cursor", inv.args.get("--cursor").value_or("")}};
  if (auto limit = inv.args.get("--limit")) query["limit"] = std::to_string(parse_count(*limit, "--limit"));

  auto answer = inv.api().get("/v1/events", query);
  if (inv.json) {
    print_json(answer);
    return 0;
  }
  Table table({"ID", "NAME", "RECEIVED (UTC)", "DATA"});
  for (const auto& event : answer.value("events", nlohmann::json::array())) {
    std::string name = string_at(event, "name");
    if (event.value("duplicate", false)) name += " (duplicate)";
    table.add({string_at(event, "id"), name, time_at(event, "received_at"), preview(event.value("data", nlohmann::json()))});
  }
  std::cout << (table.empty() ? "no events\n" : table.render());
  print_next_page_hint(answer, "events");
  return 0;
}

}  // namespace

std::vector<Command> event_commands() {
  return {
      {.name = "send",
       .summary = "send an event",
       .help = R"(Usage: durable send NAME [DATA] [options]

Sends the event NAME with DATA, a JSON object given as:
  '{"id":1}'    the JSON itself
  @file.json    the contents of a file
  -             standard input
(no DATA: {}). Prints the event's id.

Options:
  --event-key KEY   an event key the engine accepts (default: the first key in DURABLE_EVENT_KEY)
  --json            print the engine's answer as JSON
)",
       .options = {kUrlOption, kKeyOption, kJsonOption, kEventKeyOption},
       .run = send},
      {.name = "events",
       .summary = "list events, newest first",
       .help = R"(Usage: durable events [options]

Lists the events the engine received, newest first.

Options:
  --name NAME       only events with this name
  --limit N         at most N events (default 50)
  --cursor C        the next page of an earlier listing
  --json            print the API's JSON
)",
       .options = {kUrlOption, kKeyOption, kJsonOption, {"--name", true}, {"--limit", true}, {"--cursor", true}},
       .run = events},
  };
}

}  // namespace cli
