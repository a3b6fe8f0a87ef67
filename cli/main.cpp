// durable: the command line of the durable engine. It talks to a running engine over its HTTP
// API (send events, list and inspect runs, cancel, resume, replay, gc), or serves that API
// over a database itself (durable serve). See docs/cli.md.
//
// Exit codes: 0 done, 1 the work failed (the engine refused, or could not be reached), 2 the
// command line is wrong.
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"

namespace {

using cli::Command;
using cli::UsageError;

constexpr const char* kConnectionHelp = R"(  --url URL         the engine (default: DURABLE_URL, else http://127.0.0.1:8288)
  --key KEY         an API key, sent as a bearer token (default: the first key in
                    DURABLE_API_KEY)
)";
constexpr const char* kHelpHelp = "  -h, --help        this help\n";

void print_top_help(std::ostream& out) {
  out << "durable: send events to a durable engine and inspect, cancel, resume and replay its runs.\n\n"
         "Usage: durable COMMAND [ARGUMENTS] [OPTIONS]\n\nCommands:\n";
  for (const auto& command : cli::all_commands()) out << fmt::format("  {:<10} {}\n", command.name, command.summary);
  out << "\nOptions:\n"
      << kConnectionHelp << "  --json            print the API's JSON instead of text\n"
      << kHelpHelp
      << "\n'durable COMMAND --help' tells more about a command.\n"
         "Exit codes: 0 done, 1 failed (the engine refused or could not be reached), 2 bad command line.\n";
}

void print_command_help(const Command& command) {
  std::cout << command.help;
  bool connects = false;
  for (const auto& option : command.options) connects |= option.name == cli::kUrlOption.name;
  if (connects) std::cout << kConnectionHelp;
  std::cout << kHelpHelp;
}

const Command* find_command(const std::string& name) {
  for (const auto& command : cli::all_commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

// Runs the command line `args`. Sets `command` as soon as it is known, for the hint after a
// usage error.
int run(const std::vector<std::string>& args, const Command*& command) {
  // The command is the first argument that is neither an option nor an option's value:
  // connection options may come before it ("durable --url X runs").
  size_t at = 0;
  while (at < args.size() && args[at].starts_with("-") && args[at] != "-") {
    bool takes_value = false;
    for (const auto* option : {&cli::kUrlOption, &cli::kKeyOption, &cli::kEventKeyOption}) takes_value |= args[at] == option->name;
    at += takes_value ? 2 : 1;
  }
  std::vector<std::string> options(args.begin(), args.begin() + std::min(at, args.size()));
  if (at >= args.size()) {
    bool help = std::find(options.begin(), options.end(), "--help") != options.end() ||
                std::find(options.begin(), options.end(), "-h") != options.end();
    if (!help) throw UsageError(options.empty() ? "missing a COMMAND" : "missing a COMMAND after the options");
    print_top_help(std::cout);
    return 0;
  }
  if (args[at] == "help") {  // durable help [COMMAND]
    if (at + 1 >= args.size()) {
      print_top_help(std::cout);
      return 0;
    }
    const Command* asked = find_command(args[at + 1]);
    if (!asked) throw UsageError(fmt::format("unknown command '{}'", args[at + 1]));
    print_command_help(*asked);
    return 0;
  }
  command = find_command(args[at]);
  if (!command) throw UsageError(fmt::format("unknown command '{}'", args[at]));

  options.insert(options.end(), args.begin() + at + 1, args.end());
  auto specs = command->options;
  specs.push_back({"--help", false});
  cli::Invocation inv{.args = cli::parse_args(options, specs)};
  if (inv.args.has("--help")) {
    print_command_help(*command);
    return 0;
  }
  const char* url = std::getenv("DURABLE_URL");
  inv.url = inv.args.get("--url").value_or(url && *url ? url : cli::kDefaultUrl);
  inv.api_key = inv.args.get("--key").value_or(cli::first_env_value("DURABLE_API_KEY"));
  inv.event_key = inv.args.get("--event-key").value_or(cli::first_env_value("DURABLE_EVENT_KEY"));
  inv.json = inv.args.has("--json");
  return command->run(inv);
}

}  // namespace

int main(int argc, char** argv) {
  const Command* command = nullptr;
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc), command);
  } catch (const UsageError& e) {
    std::cerr << "durable: " << e.what() << "\n";
    if (command) {
      std::cerr << "Run 'durable " << command->name << " --help' for its usage.\n";
    } else {
      std::cerr << "Run 'durable --help' for the commands.\n";
    }
    return 2;
  } catch (const std::exception& e) {
    // cli::ApiError (the engine refused, or could not be reached) and durable::Error (serve).
    std::cerr << "durable: " << e.what() << "\n";
    return 1;
  }
}
