#include "engine/base/crash_points.hpp"

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace durable {

namespace {

constexpr std::string_view kNames[] = {
    "ingest_after_insert",    "before_journal_write",  "after_journal_write",
    "before_commit",          "after_commit",          "recovery_before_commit",
    "recovery_after_commit",  "replay_after_load",     "replay_after_memo_hit",
};
static_assert(std::size(kNames) == std::size(kCrashPoints), "a name for every crash point");

long crash_at_hit = 0;           // the n of DURABLE_CRASH_AT; written before main()
std::atomic<long> hits{0};       // hits of the armed point so far

[[noreturn]] void refuse(const char* value, const char* why) {
  std::fprintf(stderr, "durable: DURABLE_CRASH_AT=%s: %s; expected <point>:<n> with n >= 1, a point being one of:",
               value, why);
  for (std::string_view name : kNames) std::fprintf(stderr, " %.*s", static_cast<int>(name.size()), name.data());
  std::fprintf(stderr, "\n");
  std::exit(2);
}

// Reads DURABLE_CRASH_AT when the program starts, before any thread can reach a point.
struct ArmFromEnvironment {
  ArmFromEnvironment() {
    const char* value = std::getenv("DURABLE_CRASH_AT");
    if (!value || !*value) return;
    std::string_view text = value;
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) refuse(value, "no ':<n>'");
    std::optional<CrashPoint> point = parse_crash_point(text.substr(0, colon));
    if (!point) refuse(value, "no such crash point");
    std::string_view count = text.substr(colon + 1);
    long n = 0;
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec != std::errc() || end != count.data() + count.size() || n < 1) refuse(value, "n is not a whole number >= 1");
    crash_at_hit = n;
    crash_points_detail::armed.store(static_cast<int>(*point), std::memory_order_relaxed);
  }
} arm_from_environment;

}  // namespace

std::string_view to_string(CrashPoint point) { return kNames[static_cast<int>(point)]; }

std::optional<CrashPoint> parse_crash_point(std::string_view name) {
  for (CrashPoint p : kCrashPoints) {
    if (to_string(p) == name) return p;
  }
  return std::nullopt;
}

namespace crash_points_detail {

std::atomic<int> armed{-1};

void reached(CrashPoint point) {
  if (hits.fetch_add(1, std::memory_order_relaxed) + 1 != crash_at_hit) return;
  // write(2) and kill(2) only: another thread may hold any lock (the allocator's too), and
  // nothing may run after this point that a real crash would not run.
  char line[128];
  std::string_view name = to_string(point);
  int n = std::snprintf(line, sizeof(line), "durable: crash point %.*s reached (%ld), SIGKILL\n",
                        static_cast<int>(name.size()), name.data(), crash_at_hit);
  if (n > 0) {
    ssize_t written = write(STDERR_FILENO, line, static_cast<size_t>(n));
    (void)written;  // nothing to do about a failed write: the kill below is what matters
  }
  kill(getpid(), SIGKILL);
  _exit(137);  // not reached: SIGKILL cannot be caught
}

}  // namespace crash_points_detail

}  // namespace durable
