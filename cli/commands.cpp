#include "cli/commands.hpp"

#include <iostream>

#include "cli/table.hpp"

namespace cli {

const std::vector<Command>& all_commands() {
  static const std::vector<Command> commands = [] {
    std::vector<Command> all;
    for (auto group : {event_commands, run_commands, admin_commands}) {
      for (auto& command : group()) all.push_back(std::move(command));
    }
    return all;
  }();
  return commands;
}

void expect_no_positionals(const Invocation& inv) {
  if (!inv.args.positionals.empty()) throw UsageError("unexpected argument '" + inv.args.positionals[0] + "'");
}

void print_json(const nlohmann::json& value) {
  std::cout << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void print_next_page_hint(const nlohmann::json& answer, const std::string& what) {
  // On stderr, so that the table on stdout stays a clean table for pipes.
  if (auto cursor = string_at(answer, "next_cursor", ""); !cursor.empty()) {
    std::cerr << "more " << what << ": repeat with --cursor " << cursor << "\n";
  }
}

}  // namespace cli
