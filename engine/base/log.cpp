#include "engine/base/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <durable/errors.hpp>

namespace durable {

namespace {

std::atomic<LogLevel> g_level{LogLevel::info};

std::mutex g_sink_mu;
std::function<void(std::string_view)> g_sink;  // guarded by g_sink_mu; empty: stderr

constexpr std::string_view kNames[] = {"debug", "info", "warn", "error", "off"};

void append_value(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < ' ') {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

LogLevel parse_log_level(std::string_view text) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (text == kNames[i]) return static_cast<LogLevel>(i);
  }
  throw Error("unknown log level '" + std::string(text) + "' (use debug, info, warn, error or off)");
}

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

bool log_enabled(LogLevel level) {
  return level != LogLevel::off && level >= g_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!log_enabled(level)) return;
  auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::string line = fmt::format("ts={:%Y-%m-%dT%H:%M:%S}Z level={} msg=", now, kNames[static_cast<int>(level)]);
  append_value(line, message);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    append_value(line, value);
  }
  std::lock_guard lock(g_sink_mu);
  if (g_sink) {
    g_sink(line);
    return;
  }
  line += '\n';
  // One fwrite per line: stdio locks the stream for the call, so lines never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void set_log_sink(std::function<void(std::string_view line)> sink) {
  std::lock_guard lock(g_sink_mu);
  g_sink = std::move(sink);
}

}  // namespace durable
