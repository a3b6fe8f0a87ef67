// Command-line parsing for the durable CLI: options and positional arguments, and the values
// they hold (durations, JSON, counts). Every problem with what the user typed is a UsageError,
// which the CLI reports with exit code 2.
//
//   auto args = cli::parse_args({"--status", "failed", "01J..."}, {{"--status", true}});
//   args.get("--status");   // "failed"
//   args.positionals;       // {"01J..."}
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cli {

// Something wrong with the command line: an unknown command or option, a missing or malformed
// value. The message says what, in words the user typed.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One option a command accepts: its long name with the dashes ("--status"), and whether it
// takes a value ("--status failed" or "--status=failed") or is a flag ("--json").
struct OptionSpec {
  std::string name;
  bool takes_value = false;
};

struct ParsedArgs {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> options;  // by long name; flags hold ""

  bool has(const std::string& name) const { return options.contains(name); }
  std::optional<std::string> get(const std::string& name) const;
};

// Parses `args` against `specs`. "-h" means "--help" (which must be in `specs` to be
// accepted); "--" ends the options; a lone "-" is a positional (stdin). A repeated option keeps
// its last value. Throws UsageError for an unknown option, a value missing, or a value given
// to a flag.
ParsedArgs parse_args(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs);

// "500ms", "30s", "15m", "1h", "7d", or several of them in a row ("1h30m"). Throws UsageError
// naming `option` for anything else, zero included.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view option);

// A positive integer. Throws UsageError naming `option` otherwise.
int64_t parse_count(std::string_view text, std::string_view option);

// JSON text, as the engine would take it in a request (engine/base/json_input.hpp: nested at most
// kMaxJsonDepth deep, numbers in a double's range). Throws UsageError naming `what` and the
// place otherwise.
nlohmann::json parse_json(std::string_view text, std::string_view what);

// "a,b" as {"a", "b"}, leaving out empty parts.
std::vector<std::string> split_commas(std::string_view text);

// The first of the comma-separated values of environment variable `name` (the engine reads
// DURABLE_API_KEY and DURABLE_EVENT_KEY as lists), or "" when it is unset or empty.
std::string first_env_value(const char* name);

}  // namespace cli
