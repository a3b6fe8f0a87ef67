// The commands of the `durable` CLI. Each has a name, its help text and its options; main.cpp
// finds the command, parses its arguments and runs it.
//
// A command returns the process exit code (0), throws UsageError for a bad command line (exit
// 2) and ApiError or durable::Error when the work fails (exit 1).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/api_client.hpp"
#include "cli/args.hpp"

namespace cli {

// The default of --url.
inline constexpr const char* kDefaultUrl = "http://127.0.0.1:8288";

// A parsed command line, with the connection settings resolved from options and environment.
struct Invocation {
  ParsedArgs args;
  std::string url;        // --url, DURABLE_URL, or kDefaultUrl
  std::string api_key;    // --key, or the first of DURABLE_API_KEY; may be empty
  std::string event_key;  // --event-key, or the first of DURABLE_EVENT_KEY; may be empty
  bool json = false;      // --json: print the API's JSON instead of text

  // A client for `url` with `api_key`.
  ApiClient api() const { return ApiClient(url, api_key); }
};

struct Command {
  std::string name;
  std::string summary;  // one line, for `durable --help`
  std::string help;     // `durable NAME --help`: usage, what it does, its own options
  std::vector<OptionSpec> options;  // every option it accepts except --help
  int (*run)(const Invocation&);
};

// Options shared by the commands that talk to the engine.
inline const OptionSpec kUrlOption{"--url", true};
inline const OptionSpec kKeyOption{"--key", true};
inline const OptionSpec kJsonOption{"--json", false};
inline const OptionSpec kEventKeyOption{"--event-key", true};

// Every command, in the order `durable --help` lists them.
const std::vector<Command>& all_commands();

// The commands, by group (event_commands.cpp, run_commands.cpp, admin_commands.cpp).
std::vector<Command> event_commands();
std::vector<Command> run_commands();
std::vector<Command> admin_commands();

// Throws UsageError if the command line has a positional argument.
void expect_no_positionals(const Invocation& inv);

// Prints `value` to stdout as indented JSON (--json).
void print_json(const nlohmann::json& value);

// After a page of a listing: tells (on stderr) how to get the next page when the answer has a
// `next_cursor`.
void print_next_page_hint(const nlohmann::json& answer, const std::string& what);

}  // namespace cli
