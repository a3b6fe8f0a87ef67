// Text output of the CLI: aligned tables, one-line previews of JSON values, durations and
// times for people to read.
//
//   cli::Table t({"ID", "STATUS"});
//   t.add({"01J...", "completed"});
//   std::cout << t.render();
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cli {

// Columns padded to their widest cell (in characters, not bytes), two spaces apart; the last
// column is not padded. Cells must not hold newlines (preview() never makes any).
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // A row with as many cells as there are headers (missing cells are empty).
  void add(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  // The header line and the rows, each ending with a newline.
  std::string render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// `value` as compact JSON on one line, cut to `width` characters with "..." at the end when
// longer. Strings show with their quotes, as JSON.
std::string preview(const nlohmann::json& value, size_t width = 60);

// `text` cut to `width` characters with "..." at the end when longer. Counts UTF-8 characters
// and never splits one.
std::string truncate(std::string_view text, size_t width);

// An error object {"name", "message", "step"?} as "Name: message", or "" for null.
std::string error_text(const nlohmann::json& error);

// A duration for people: "850ms", "4.2s", "3m05s", "2h03m", "3d04h".
std::string format_duration(int64_t ms);

// A time (ms since the Unix epoch) in UTC: "2030-01-01 00:00:00".
std::string format_time(int64_t ms);

// The integer at `key` in `object`, or nullopt when it is missing or not an integer.
std::optional<int64_t> int_at(const nlohmann::json& object, const char* key);

// format_time() of the time at `key` in `object`, or "-" when there is none.
std::string time_at(const nlohmann::json& object, const char* key);

// How long from `start_key` to `end_key` in `object` (format_duration), or "-" unless both
// are there.
std::string duration_between(const nlohmann::json& object, const char* start_key, const char* end_key);

// The member `key` of `object`, or a null JSON value when there is none.
const nlohmann::json& member(const nlohmann::json& object, const char* key);

// The string at `key` in `object`, or `fallback` when it is missing or not a string.
std::string string_at(const nlohmann::json& object, const char* key, std::string_view fallback = "-");

}  // namespace cli
