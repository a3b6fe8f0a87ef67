// Structured logging: one line per event, in logfmt (`ts=... level=info msg="run started"
// run=01J... function=send-invoice`), to stderr. Values are quoted when needed. Never pass
// secrets (keys) as fields.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace durable {

enum class LogLevel { debug, info, warn, error, off };

// Parses "debug", "info", "warn", "error", "off"; throws durable::Error otherwise.
LogLevel parse_log_level(std::string_view text);

// Lines below `level` are dropped. Process-wide; thread-safe. Default: info.
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

using LogField = std::pair<std::string_view, std::string>;

// Writes one line if `level` is enabled. Thread-safe: lines never interleave.
void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

// Sends each line (without its newline) to `sink` instead of stderr, for tests and for
// applications that embed durable and route logs themselves; nullptr restores stderr.
// Process-wide; thread-safe. `sink` is called under a lock, one line at a time, so it must
// not log itself.
void set_log_sink(std::function<void(std::string_view line)> sink);

}  // namespace durable
