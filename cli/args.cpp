#include "cli/args.hpp"

#include <cctype>
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

#include "engine/base/json_input.hpp"

namespace cli {

std::optional<std::string> ParsedArgs::get(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end()) return std::nullopt;
  return it->second;
}

namespace {

const OptionSpec* find_spec(const std::vector<OptionSpec>& specs, std::string_view name) {
  for (const auto& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

ParsedArgs parse_args(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs) {
  ParsedArgs parsed;
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_ended || arg == "-" || !arg.starts_with("-")) {
      parsed.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    // "--name=value" carries its value; "-h" is the one short option.
    std::string name = arg == "-h" ? "--help" : arg;
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const OptionSpec* spec = find_spec(specs, name);
    if (!spec) throw UsageError(fmt::format("unknown option '{}'", name));
    if (!spec->takes_value) {
      if (inline_value) throw UsageError(fmt::format("option '{}' takes no value", name));
      parsed.options[name] = "";
    } else if (inline_value) {
      parsed.options[name] = *inline_value;
    } else {
      if (i + 1 == args.size()) throw UsageError(fmt::format("option '{}' needs a value", name));
      parsed.options[name] = args[++i];
    }
  }
  return parsed;
}

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view option) {
  auto bad = [&] {
    return UsageError(fmt::format("{}: '{}' is not a duration; write e.g. 500ms, 30s, 15m, 1h, 7d or 1h30m",
                                  option, text));
  };
  std::chrono::milliseconds total{0};
  std::string_view rest = text;
  if (rest.empty()) throw bad();
  while (!rest.empty()) {
    int64_t number = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), number);
    if (ec != std::errc() || end == rest.data() || number < 0) throw bad();
    rest.remove_prefix(end - rest.data());
    size_t unit_length = 0;
    while (unit_length < rest.size() && std::isalpha(static_cast<unsigned char>(rest[unit_length]))) ++unit_length;
    std::string_view unit = rest.substr(0, unit_length);
    rest.remove_prefix(unit_length);
    int64_t unit_ms = unit == "ms" ? 1
                      : unit == "s" ? 1000
                      : unit == "m" ? 60'000
                      : unit == "h" ? 3'600'000
                      : unit == "d" ? 86'400'000
                                    : 0;
    if (unit_ms == 0) throw bad();
    if (number > (INT64_MAX - total.count()) / unit_ms) throw bad();
    total += std::chrono::milliseconds(number * unit_ms);
  }
  if (total.count() == 0) throw UsageError(fmt::format("{}: the duration must be more than zero", option));
  return total;
}

int64_t parse_count(std::string_view text, std::string_view option) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n <= 0) {
    throw UsageError(fmt::format("{}: '{}' is not a positive integer", option, text));
  }
  return n;
}

nlohmann::json parse_json(std::string_view text, std::string_view what) {
  try {
    return durable::parse_json_input(text, what);
  } catch (const durable::RequestError& e) {
    // Its message names `what` and the place: "--output is not valid JSON at line 1, ...".
    throw UsageError(e.what());
  }
}

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> parts;
  while (!text.empty()) {
    auto comma = text.find(',');
    if (comma != 0) parts.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return parts;
}

std::string first_env_value(const char* name) {
  const char* value = std::getenv(name);
  auto values = split_commas(value ? value : "");
  return values.empty() ? "" : values[0];
}

}  // namespace cli
