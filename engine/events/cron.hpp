// Cron schedules: the times of `on_cron` triggers (docs/cron.md), in the standard 5-field
// syntax with an optional time zone, e.g.
//
//   auto schedule = CronSchedule::parse("TZ=Europe/Paris 0 8 * * MON-FRI");  // 08:00 on weekdays
//   TimePoint next = schedule.next_after(clock.now());
//
// Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week
// (0-7 or SUN-SAT, 0 and 7 both Sunday). Each is `*` or a comma list of `n`, `a-b`, `*/s` or
// `a-b/s`; names are case-insensitive. When both day fields are restricted (neither begins
// with `*`), a day matches if either does (Vixie cron); otherwise it must match both.
//
// Ticks are local wall-clock minutes in the zone of the `TZ=` (or `CRON_TZ=`) prefix, UTC
// without one. Daylight saving: a tick whose local time is skipped by a spring-forward fires at
// the instant the gap ends (a daily 02:30 in Europe/Paris fires at 03:00 local that day), and
// ticks that land on the same instant that way are one tick; a local time that occurs twice at a
// fall-back fires once, at its first occurrence. Zones come from the system tz database
// (/usr/share/zoneinfo) through Howard Hinnant's date/tz, which applies the rules listed in the
// zone files: DST transitions through 2037 (see docs/cron.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <durable/clock.hpp>
#include <durable/errors.hpp>

// A zone of date/tz. Forward-declared so that includers need neither its headers nor the
// compile definitions (USE_OS_TZDB) the library was built with: only cron.cpp uses it.
namespace date {
class time_zone;
}

namespace durable {

// A malformed schedule. The message names the field and the problem:
// "minute field: 61 is out of range 0-59", "unknown time zone 'Europe/Pariss'".
class CronError : public Error {
 public:
  using Error::Error;
};

// A parsed schedule: a small value, cheap to copy. Every method is const, and calling them
// concurrently from several threads is safe.
class CronSchedule {
 public:
  // Throws CronError for malformed text, an unknown time zone, or a schedule that can never
  // fire ("0 0 30 2 *": February has no 30th). Leading and trailing whitespace is ignored.
  static CronSchedule parse(std::string_view text);

  // The first tick strictly after `t`: a whole minute of local time, as an instant. Several
  // ticks in a spring-forward gap map to one instant, the end of the gap; it is returned once.
  // Every schedule that parses fires at least once in any 400 years (the Gregorian calendar
  // repeats every 400 years), so this returns TimePoint::max() only near the end of the range
  // both searches cover: when no tick exists from `t` to 9999-12-30T00:00Z.
  TimePoint next_after(TimePoint t) const;

  // The latest tick at or before `t` (at or before 9999-12-30T00:00Z for a later `t`), or
  // nullopt when there is none in the 400 years before `t` or `t` is before the year 1 (so, in
  // practice, never). next_after(*latest_at_or_before(t)) is the first tick after `t`.
  std::optional<TimePoint> latest_at_or_before(TimePoint t) const;

  // The text it was parsed from, as given.
  const std::string& text() const { return text_; }

  // The IANA name of the zone ticks are read in: "Europe/Paris", or "UTC" without a prefix.
  std::string time_zone_name() const;

 private:
  CronSchedule() = default;

  std::string text_;
  // The allowed values of each field as bit sets: bit n set when value n matches. Days of the
  // week are 0-6 from Sunday (7 is folded into 0).
  uint64_t minutes_ = 0;        // bits 0-59
  uint32_t hours_ = 0;          // bits 0-23
  uint32_t days_of_month_ = 0;  // bits 1-31
  uint16_t months_ = 0;         // bits 1-12
  uint8_t days_of_week_ = 0;    // bits 0-6
  bool either_day_ = false;     // true: a day matches if either day field does (both restricted)
  const date::time_zone* zone_ = nullptr;  // from date's tz database, alive until exit; null: UTC

  friend class CronSearch;  // the searches behind next_after and latest_at_or_before (cron.cpp)
};

}  // namespace durable
