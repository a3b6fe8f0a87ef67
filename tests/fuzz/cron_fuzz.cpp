// libFuzzer target for cron schedules (engine/events/cron.hpp): any bytes as a schedule, with its
// optional TZ= prefix. Parsing may only throw CronError, with a message. For a schedule that
// parses, the ticks around a few instants (ordinary days, daylight-saving changes, the ends of
// the calendar) must keep the header's contract:
//   next_after(t) > t (or TimePoint::max()),   latest_at_or_before(t) <= t,
//   next_after(*latest_at_or_before(t)) == next_after(t),   latest_at_or_before(next) == next.
// Run by scripts/fuzz.sh.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "engine/events/cron.hpp"

namespace {

using durable::from_millis;
using durable::TimePoint;

const TimePoint kInstants[] = {
    from_millis(0),                   // 1970-01-01
    from_millis(1893456000000),       // 2030-01-01, the tests' clock
    from_millis(1743296400000),       // 2025-03-30T01:00Z: Europe springs forward
    from_millis(1761440400000 + 1),   // 2025-10-26T01:00:00.001Z: Europe falls back
    from_millis(1762063200000 - 1),   // 2025-11-02T05:59:59.999Z: New York falls back
    from_millis(-62135596800000),     // 0001-01-01, before the search's range
    from_millis(253402214400000),     // 9999-12-31, after it
    from_millis(253370764800000),     // 9999-01-01
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<durable::CronSchedule> schedule;
  try {
    schedule = durable::CronSchedule::parse(text);
  } catch (const durable::CronError& e) {
    if (std::string_view(e.what()).empty()) std::abort();
    return 0;
  }
  if (schedule->text() != text || schedule->time_zone_name().empty()) std::abort();
  for (TimePoint t : kInstants) {
    TimePoint next = schedule->next_after(t);
    if (next <= t) std::abort();
    std::optional<TimePoint> latest = schedule->latest_at_or_before(t);
    if (latest && *latest > t) std::abort();
    if (latest && schedule->next_after(*latest) != next) std::abort();
    if (next != TimePoint::max() && schedule->latest_at_or_before(next) != next) std::abort();
  }
  return 0;
}
