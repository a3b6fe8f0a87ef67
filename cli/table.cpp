#include "cli/table.hpp"

#include <ctime>

#include <fmt/format.h>

namespace cli {

namespace {

// Characters, not bytes: a UTF-8 continuation byte (10xxxxxx) does not start a character.
// Wide characters (CJK, emoji) still count as one; tables of them may be a little off.
bool starts_character(char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }

size_t display_width(std::string_view text) {
  size_t n = 0;
  for (char c : text) n += starts_character(c);
  return n;
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

std::string Table::render() const {
  std::vector<size_t> widths(headers_.size());
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  };
  measure(headers_);
  for (const auto& row : rows_) measure(row);

  std::string out;
  auto write = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - display_width(row[i]) + 2, ' ');
    }
    // An empty last cell would leave the padding of the one before it.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  write(headers_);
  for (const auto& row : rows_) write(row);
  return out;
}

std::string truncate(std::string_view text, size_t width) {
  if (display_width(text) <= width) return std::string(text);
  size_t keep = width > 3 ? width - 3 : 0;
  size_t characters = 0, end = 0;
  for (; end < text.size(); ++end) {
    if (starts_character(text[end]) && characters++ == keep) break;
  }
  return std::string(text.substr(0, end)) + "...";
}

std::string preview(const nlohmann::json& value, size_t width) {
  return truncate(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), width);
}

std::string error_text(const nlohmann::json& error) {
  if (!error.is_object()) return error.is_null() ? "" : preview(error, 1000);
  std::string name = string_at(error, "name", "");
  std::string message = string_at(error, "message", "");
  return name.empty() ? message : name + ": " + message;
}

std::string format_duration(int64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", ms / 1000.0);
  int64_t s = ms / 1000;
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

std::string format_time(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

std::optional<int64_t> int_at(const nlohmann::json& object, const char* key) {
  const auto& value = member(object, key);
  if (!value.is_number_integer()) return std::nullopt;
  return value.get<int64_t>();
}

std::string time_at(const nlohmann::json& object, const char* key) {
  auto ms = int_at(object, key);
  return ms ? format_time(*ms) : "-";
}

std::string duration_between(const nlohmann::json& object, const char* start_key, const char* end_key) {
  auto start = int_at(object, start_key);
  auto end = int_at(object, end_key);
  return start && end ? format_duration(std::max<int64_t>(0, *end - *start)) : "-";
}

const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json null;
  if (!object.is_object()) return null;
  auto it = object.find(key);
  return it == object.end() ? null : *it;
}

std::string string_at(const nlohmann::json& object, const char* key, std::string_view fallback) {
  const auto& value = member(object, key);
  return value.is_string() ? value.get<std::string>() : std::string(fallback);
}

}  // namespace cli
