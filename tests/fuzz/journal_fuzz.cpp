// libFuzzer target for the journal payload decoder (engine/exec/journal_decoder.hpp). The input is
// a journal, one entry per line: its kind (the JournalKind's value as a hex digit: '0'
// run_started to 'a' wait_resolved; 'b'-'f' and any other character, kinds no engine writes),
// its attempt ('_' none, '^' INT_MAX, 'v' INT_MIN, else the character minus '0'), its step key
// up to a tab, then its payload. decode_journal may only throw CorruptJournalError; what it
// returns must be readable the way RunExecution reads it (at(), value(), get<>) without any
// exception. Run by scripts/fuzz.sh.
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/exec/journal_decoder.hpp"

namespace {

using durable::JournalEntry;
using durable::JournalKind;
using nlohmann::json;

std::vector<JournalEntry> journal_from(std::string_view text) {
  std::vector<JournalEntry> journal;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.size() < 2) continue;
    JournalEntry e;
    e.seq = static_cast<int64_t>(journal.size());
    char kind = line[0];
    e.kind = static_cast<JournalKind>(kind >= '0' && kind <= '9' ? kind - '0' : kind >= 'a' && kind <= 'f' ? kind - 'a' + 10 : 99);
    char attempt = line[1];
    if (attempt == '^') e.attempt = INT_MAX;
    else if (attempt == 'v') e.attempt = INT_MIN;
    else if (attempt != '_') e.attempt = attempt - '0';
    line.remove_prefix(2);
    size_t tab = line.find('\t');
    e.step_key = std::string(line.substr(0, tab));
    e.payload = tab == std::string_view::npos ? "" : std::string(line.substr(tab + 1));
    journal.push_back(std::move(e));
  }
  return journal;
}

// Reads the memo as RunExecution does; any exception escapes to the harness.
void read_as_replay(const durable::JournalMemo& memo, size_t entries) {
  const json& f = memo.started.value("failure", json::object());
  for (const char* field : {"run_id", "function_id", "step", "name", "message"}) (void)f.value(field, "");
  if (memo.copied < 0 || static_cast<size_t>(memo.copied) >= std::max<size_t>(entries, 1)) std::abort();
  for (const auto& [key, error] : memo.final_errors) {
    (void)error.value("name", "");
    (void)error.value("message", "");
  }
  for (const auto& [key, failures] : memo.failed_attempts) {
    if (failures < 1) std::abort();
  }
  for (const auto& [key, wait] : memo.waits) {
    (void)wait.at("since").get<int64_t>();
    (void)wait.at("until").get<int64_t>();
    if (wait.contains("invoke")) {
      (void)wait.at("invoke").at("run_id").get<std::string>();
      (void)wait.at("invoke").value("function", std::string());
    }
  }
  for (const auto& [key, result] : memo.resolved) {
    if (!memo.waits.count(key)) std::abort();
    if (result.value("timeout", false)) continue;
    (void)result.at("event").get<durable::Event>();
    if (!memo.waits.at(key).contains("invoke")) continue;
    const json& data = result.at("event").at("data");
    if (data.value("status", "") == "completed") (void)data.value("output", json());
    const json& error = data.value("error", json::object());
    (void)error.value("name", "Error");
    (void)error.value("message", "the invoked run failed");
  }
  if (memo.order.size() != memo.kinds.size()) std::abort();
  for (const std::string& key : memo.order) {
    if (!memo.kinds.count(key)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<JournalEntry> journal = journal_from(std::string_view(reinterpret_cast<const char*>(data), size));
  durable::JournalMemo memo;
  try {
    memo = durable::decode_journal(journal);
  } catch (const durable::CorruptJournalError& e) {
    if (e.seq() < 0 || static_cast<size_t>(e.seq()) >= journal.size() || std::string_view(e.what()).empty()) std::abort();
    return 0;
  }
  try {
    read_as_replay(memo, journal.size());
  } catch (const std::exception&) {
    std::abort();
  }
  return 0;
}
