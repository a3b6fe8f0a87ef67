// Cron schedules (docs/cron.md): the syntax, the day-of-month/day-of-week rule, the errors
// malformed text gets, and the ticks across month ends, leap years and daylight-saving changes.
// Every instant is written in UTC, so nothing depends on the machine's time zone.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "engine/events/cron.hpp"

using namespace durable;

namespace {

// The instant "YYYY-MM-DDTHH:MM[:SS]Z" (UTC).
TimePoint utc(std::string_view iso) {
  auto number = [&](size_t pos, size_t len) { return std::stoi(std::string(iso.substr(pos, len))); };
  using namespace std::chrono;
  auto day = sys_days(year{number(0, 4)} / month(unsigned(number(5, 2))) / unsigned(number(8, 2)));
  auto t = sys_time<milliseconds>(day) + hours(number(11, 2)) + minutes(number(14, 2));
  if (iso.size() > 17) t += seconds(number(17, 2));
  return t;
}

// `t` as "YYYY-MM-DDTHH:MMZ", with seconds and milliseconds only when it has them.
std::string iso(TimePoint t) {
  using namespace std::chrono;
  if (t == TimePoint::max()) return "max";
  auto day = floor<days>(t);
  year_month_day ymd(day);
  auto ms = (t - day).count();
  std::string text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}", int(ymd.year()), unsigned(ymd.month()),
                                 unsigned(ymd.day()), ms / 3600000, ms / 60000 % 60);
  if (ms % 60000 != 0) text += fmt::format(":{:02}.{:03}", ms / 1000 % 60, ms % 1000);
  return text + "Z";
}

std::string next(std::string_view schedule, std::string_view after) {
  return iso(CronSchedule::parse(schedule).next_after(utc(after)));
}

std::string latest(std::string_view schedule, std::string_view at) {
  auto tick = CronSchedule::parse(schedule).latest_at_or_before(utc(at));
  return tick ? iso(*tick) : "none";
}

// The first `n` ticks after `after`, each found by next_after from the one before.
std::vector<std::string> ticks(std::string_view schedule, std::string_view after, int n) {
  auto s = CronSchedule::parse(schedule);
  std::vector<std::string> out;
  TimePoint t = utc(after);
  for (int i = 0; i < n; ++i) out.push_back(iso(t = s.next_after(t)));
  return out;
}

// The ticks in [from, to), found by next_after from one tick to the next.
std::vector<TimePoint> ticks_between(const CronSchedule& s, TimePoint from, TimePoint to) {
  std::vector<TimePoint> out;
  for (TimePoint t = s.next_after(from - std::chrono::milliseconds(1)); t < to; t = s.next_after(t)) out.push_back(t);
  return out;
}

// The message of the CronError that parsing `text` throws, or "" if it parses.
std::string error(std::string_view text) {
  try {
    CronSchedule::parse(text);
  } catch (const CronError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("cron") {
  TEST_CASE("the issue's every-15-minutes schedule fires on the quarter hours, in UTC by default") {
    auto s = CronSchedule::parse("*/15 * * * *");
    CHECK(s.text() == "*/15 * * * *");
    CHECK(s.time_zone_name() == "UTC");
    CHECK(next("*/15 * * * *", "2025-06-10T10:07") == "2025-06-10T10:15Z");
    CHECK(next("*/15 * * * *", "2025-06-10T10:15") == "2025-06-10T10:30Z");  // strictly after
    CHECK(next("*/15 * * * *", "2025-06-10T10:14:59") == "2025-06-10T10:15Z");
    CHECK(next("*/15 * * * *", "2025-06-10T23:45") == "2025-06-11T00:00Z");
    CHECK(iso(s.next_after(utc("2025-06-10T10:45") + std::chrono::milliseconds(1))) == "2025-06-10T11:00Z");
    // No prefix means UTC: 08:00 is 08:00Z whatever zone the machine is in.
    CHECK(next("0 8 * * *", "2025-06-10T09:00") == "2025-06-11T08:00Z");
  }

  TEST_CASE("lists, ranges, steps and stepped ranges select exactly their values") {
    CHECK(ticks("1,5 * * * *", "2025-06-10T10:00", 4) ==
          std::vector<std::string>{"2025-06-10T10:01Z", "2025-06-10T10:05Z", "2025-06-10T11:01Z", "2025-06-10T11:05Z"});
    CHECK(ticks("1-3 * * * *", "2025-06-10T10:00", 4) ==
          std::vector<std::string>{"2025-06-10T10:01Z", "2025-06-10T10:02Z", "2025-06-10T10:03Z", "2025-06-10T11:01Z"});
    CHECK(ticks("10-40/15 * * * *", "2025-06-10T10:00", 4) ==
          std::vector<std::string>{"2025-06-10T10:10Z", "2025-06-10T10:25Z", "2025-06-10T10:40Z", "2025-06-10T11:10Z"});
    CHECK(ticks("10-40/5 * * * *", "2025-06-10T10:38", 3) ==
          std::vector<std::string>{"2025-06-10T10:40Z", "2025-06-10T11:10Z", "2025-06-10T11:15Z"});
    CHECK(ticks("0 */6 * * *", "2025-06-10T00:00", 4) ==
          std::vector<std::string>{"2025-06-10T06:00Z", "2025-06-10T12:00Z", "2025-06-10T18:00Z", "2025-06-11T00:00Z"});
    CHECK(ticks("30 9-17/4,23 * * *", "2025-06-10T00:00", 4) ==
          std::vector<std::string>{"2025-06-10T09:30Z", "2025-06-10T13:30Z", "2025-06-10T17:30Z", "2025-06-10T23:30Z"});
    CHECK(ticks("0 0 1,15 */3 *", "2025-01-01T00:00", 4) ==
          std::vector<std::string>{"2025-01-15T00:00Z", "2025-04-01T00:00Z", "2025-04-15T00:00Z", "2025-07-01T00:00Z"});
    // A step larger than the range selects its start only.
    CHECK(ticks("*/90 * * * *", "2025-06-10T10:00", 2) ==
          std::vector<std::string>{"2025-06-10T11:00Z", "2025-06-10T12:00Z"});
    // Whitespace around and between fields is free.
    CHECK(next("  0\t8  *  * *  ", "2025-06-10T09:00") == "2025-06-11T08:00Z");
  }

  TEST_CASE("a step near INT_MAX selects the start of its range only, without overflowing") {
    // Stepping from 5 by 2147483646 overflowed an int and wrapped to 1 and 3 (the fuzz
    // corpus keeps this input: tests/fuzz/corpus/cron/step_overflow).
    CHECK(ticks("5-10/2147483646 * * * *", "2025-06-10T10:00", 3) ==
          std::vector<std::string>{"2025-06-10T10:05Z", "2025-06-10T11:05Z", "2025-06-10T12:05Z"});
    CHECK(ticks("*/2147483647 * * * *", "2025-06-10T10:00", 2) ==
          std::vector<std::string>{"2025-06-10T11:00Z", "2025-06-10T12:00Z"});
    CHECK(ticks("0 0 1-31/99999999999 * *", "2025-06-10T10:00", 2) ==
          std::vector<std::string>{"2025-07-01T00:00Z", "2025-08-01T00:00Z"});
  }

  TEST_CASE("month and day names are case-insensitive and work in lists and ranges") {
    CHECK(ticks("0 0 1 jan,Jul,OCT *", "2025-01-01T00:00", 3) ==
          std::vector<std::string>{"2025-07-01T00:00Z", "2025-10-01T00:00Z", "2026-01-01T00:00Z"});
    CHECK(ticks("0 0 1 FEB-apr *", "2025-01-01T00:00", 4) ==
          std::vector<std::string>{"2025-02-01T00:00Z", "2025-03-01T00:00Z", "2025-04-01T00:00Z", "2026-02-01T00:00Z"});
    // 2025-06-13 is a Friday.
    CHECK(ticks("0 9 * * mon-FRI", "2025-06-13T00:00", 3) ==
          std::vector<std::string>{"2025-06-13T09:00Z", "2025-06-16T09:00Z", "2025-06-17T09:00Z"});
    CHECK(ticks("0 9 * * Sat,sun", "2025-06-13T00:00", 3) ==
          std::vector<std::string>{"2025-06-14T09:00Z", "2025-06-15T09:00Z", "2025-06-21T09:00Z"});
  }

  TEST_CASE("day of week 7 is Sunday, like 0 and SUN") {
    // 2025-06-15 is a Sunday.
    for (const char* sunday : {"0 0 * * 0", "0 0 * * 7", "0 0 * * SUN"}) {
      CAPTURE(sunday);
      CHECK(ticks(sunday, "2025-06-10T00:00", 2) == std::vector<std::string>{"2025-06-15T00:00Z", "2025-06-22T00:00Z"});
    }
    CHECK(ticks("0 0 * * 5-7", "2025-06-10T00:00", 4) ==
          std::vector<std::string>{"2025-06-13T00:00Z", "2025-06-14T00:00Z", "2025-06-15T00:00Z", "2025-06-20T00:00Z"});
    CHECK(ticks("0 0 * * 0,7", "2025-06-14T00:00", 2) ==  // one tick per Sunday, not two
          std::vector<std::string>{"2025-06-15T00:00Z", "2025-06-22T00:00Z"});
  }

  TEST_CASE("when both day fields are restricted a day matches either; otherwise it must match both") {
    // The 13th or any Friday: 2025-06-13 is both, 2025-06-20 and 27 are Fridays, 2025-07-13 a Sunday.
    CHECK(ticks("0 0 13 * FRI", "2025-06-12T00:00", 5) ==
          std::vector<std::string>{"2025-06-13T00:00Z", "2025-06-20T00:00Z", "2025-06-27T00:00Z", "2025-07-04T00:00Z",
                                   "2025-07-11T00:00Z"});
    CHECK(next("0 0 13 * FRI", "2025-07-11T00:00") == "2025-07-13T00:00Z");
    // Only one restricted: the other field is `*` and every day passes it.
    CHECK(ticks("0 0 13 * *", "2025-06-12T00:00", 2) == std::vector<std::string>{"2025-06-13T00:00Z", "2025-07-13T00:00Z"});
    CHECK(ticks("0 0 * * FRI", "2025-06-12T00:00", 2) == std::vector<std::string>{"2025-06-13T00:00Z", "2025-06-20T00:00Z"});
    // Vixie cron's test is the first character: `*/2` counts as unrestricted, so both must match:
    // odd days that are Mondays (2025-06-09 is a Monday, 2025-06-23 too; 2025-06-16 is even).
    CHECK(ticks("0 0 */2 * MON", "2025-06-01T00:00", 3) ==
          std::vector<std::string>{"2025-06-09T00:00Z", "2025-06-23T00:00Z", "2025-07-07T00:00Z"});
    // Feb 30 never exists, but with a restricted day of week the schedule fires on Mondays of February.
    CHECK(ticks("0 0 30 2 MON", "2025-01-01T00:00", 2) == std::vector<std::string>{"2025-02-03T00:00Z", "2025-02-10T00:00Z"});
  }

  TEST_CASE("malformed schedules are rejected with the field and the reason") {
    CHECK(error("61 * * * *") == "minute field: 61 is out of range 0-59");
    CHECK(error("* 24 * * *") == "hour field: 24 is out of range 0-23");
    CHECK(error("* * 0 * *") == "day-of-month field: 0 is out of range 1-31");
    CHECK(error("* * 32 * *") == "day-of-month field: 32 is out of range 1-31");
    CHECK(error("* * * 13 *") == "month field: 13 is out of range 1-12");
    CHECK(error("* * * 0 *") == "month field: 0 is out of range 1-12");
    CHECK(error("* * * * 8") == "day-of-week field: 8 is out of range 0-7");
    CHECK(error("99999999999 * * * *") == "minute field: 99999999999 is out of range 0-59");
    CHECK(error("* * * FOO *") == "month field: 'FOO' is not a number or a month name (JAN-DEC)");
    CHECK(error("* * * MON *") == "month field: 'MON' is not a number or a month name (JAN-DEC)");
    CHECK(error("* * * * JAN") == "day-of-week field: 'JAN' is not a number or a day name (SUN-SAT)");
    CHECK(error("* * * * MONDAY") == "day-of-week field: 'MONDAY' is not a number or a day name (SUN-SAT)");
    CHECK(error("* MON * * *") == "hour field: 'MON' is not a number");
    CHECK(error("1.5 * * * *") == "minute field: '1.5' is not a number");
    CHECK(error("* * L * *") == "day-of-month field: 'L' is not a number");
    CHECK(error("* * ? * *") == "day-of-month field: '?' is not a number");
    CHECK(error("-1 * * * *") == "minute field: missing number in '-1'");
    CHECK(error("1- * * * *") == "minute field: missing number in '1-'");
    CHECK(error("1-2-3 * * * *") == "minute field: '2-3' is not a number");
    CHECK(error("30-10 * * * *") ==
          "minute field: range '30-10' goes backwards (30 > 10); ranges do not wrap around, use a list");
    CHECK(error("* * * * SAT-SUN") ==
          "day-of-week field: range 'SAT-SUN' goes backwards (6 > 0); ranges do not wrap around, use a list");
    CHECK(error("*/0 * * * *") == "minute field: step in '*/0' must be at least 1");
    CHECK(error("*/x * * * *") == "minute field: step 'x' in '*/x' is not a number");
    CHECK(error("*/ * * * *") == "minute field: step '' in '*/' is not a number");
    CHECK(error("5/15 * * * *") == "minute field: a step needs a range: write '5-59/15' or '*/15'");
    CHECK(error("1,,2 * * * *") == "minute field: empty item in list '1,,2'");
    CHECK(error("* * * 1, *") == "month field: empty item in list '1,'");
    CHECK(error("* * * *") == "expected 5 fields (minute hour day-of-month month day-of-week), found 4");
    CHECK(error("") == "expected 5 fields (minute hour day-of-month month day-of-week), found 0");
    CHECK(error("   ") == "expected 5 fields (minute hour day-of-month month day-of-week), found 0");
    CHECK(error("0 0 * * * *") == "expected 5 fields (minute hour day-of-month month day-of-week), found 6 "
                                  "(seconds and year fields are not supported)");
    CHECK(error("@daily") ==
          "'@daily' is not supported; write the 5 fields (minute hour day-of-month month day-of-week), "
          "e.g. '0 0 * * *' for daily");
    CHECK(error("TZ=Europe/Paris") == "expected 5 fields (minute hour day-of-month month day-of-week), found 0");
    CHECK(error("0 \x01 * * *") == "hour field: '\\x01' is not a number");
    CHECK_THROWS_AS(CronSchedule::parse("61 * * * *"), CronError);
    CHECK_THROWS_AS(CronSchedule::parse("61 * * * *"), Error);  // a durable::Error like every error durable throws
  }

  TEST_CASE("unknown and empty time zones are rejected") {
    CHECK(error("TZ=Europe/Pariss 0 8 * * *") ==
          "unknown time zone 'Europe/Pariss' (not in the tz database, /usr/share/zoneinfo)");
    CHECK(error("CRON_TZ=Mars/Olympus 0 8 * * *") ==
          "unknown time zone 'Mars/Olympus' (not in the tz database, /usr/share/zoneinfo)");
    CHECK(error("TZ=../../etc/passwd 0 8 * * *") ==
          "unknown time zone '../../etc/passwd' (not in the tz database, /usr/share/zoneinfo)");
    CHECK(error("TZ= 0 8 * * *") == "empty time zone after 'TZ='");
    CHECK(error("CRON_TZ= 0 8 * * *") == "empty time zone after 'CRON_TZ='");
    CHECK(error("tz=Europe/Paris 0 8 * * *") ==
          "'tz=Europe/Paris' is not a field; a time zone is written 'TZ=Area/City' or 'CRON_TZ=Area/City' "
          "before the fields");
    CHECK(error("0 8 * * * TZ=Europe/Paris") ==
          "'TZ=Europe/Paris' is not a field; a time zone is written 'TZ=Area/City' or 'CRON_TZ=Area/City' "
          "before the fields");
  }

  TEST_CASE("schedules that can never fire are rejected; rare ones are accepted") {
    CHECK(error("0 0 30 2 *") == "the schedule never fires: no day in day-of-month '30' exists in month '2'");
    CHECK(error("0 0 31 4,6,9,11 *") ==
          "the schedule never fires: no day in day-of-month '31' exists in month '4,6,9,11'");
    CHECK(error("0 0 30-31 FEB */7") ==  // `*/7`: both day fields must match, and Feb 30 never exists
          "the schedule never fires: no day in day-of-month '30-31' exists in month 'FEB'");
    CHECK(error("0 0 29 2 *").empty());
    CHECK(error("0 0 31 1-12 *").empty());
    CHECK(error("0 0 30 2 1").empty());  // Mondays in February (either day field matches)
  }

  TEST_CASE("next_after crosses month and year ends and skips months without the day") {
    CHECK(next("0 0 1 * *", "2025-12-15T00:00") == "2026-01-01T00:00Z");
    CHECK(next("59 23 31 12 *", "2025-12-31T23:59") == "2026-12-31T23:59Z");
    CHECK(next("59 23 31 12 *", "2025-12-31T23:58:59") == "2025-12-31T23:59Z");
    CHECK(next("* * * * *", "2025-12-31T23:59") == "2026-01-01T00:00Z");
    CHECK(ticks("0 12 31 * *", "2025-01-31T12:00", 4) ==
          std::vector<std::string>{"2025-03-31T12:00Z", "2025-05-31T12:00Z", "2025-07-31T12:00Z", "2025-08-31T12:00Z"});
  }

  TEST_CASE("February 29 fires only in leap years, and 2100 is not one") {
    CHECK(ticks("0 12 29 2 *", "2025-01-01T00:00", 3) ==
          std::vector<std::string>{"2028-02-29T12:00Z", "2032-02-29T12:00Z", "2036-02-29T12:00Z"});
    CHECK(next("0 12 29 2 *", "2097-01-01T00:00") == "2104-02-29T12:00Z");
    CHECK(next("0 0 * 2 *", "2024-02-28T00:00") == "2024-02-29T00:00Z");
    CHECK(next("0 0 * 2 *", "2025-02-28T00:00") == "2026-02-01T00:00Z");
    CHECK(latest("0 12 29 2 *", "2027-06-01T00:00") == "2024-02-29T12:00Z");
    // Feb 29 that is also a Sunday (`*/7` is Sunday; both fields must match): 2004, 2032, 2060.
    CHECK(next("0 0 29 2 */7", "2004-03-01T00:00") == "2032-02-29T00:00Z");
    CHECK(next("0 0 29 2 */7", "2032-03-01T00:00") == "2060-02-29T00:00Z");
    CHECK(latest("0 0 29 2 */7", "2031-12-31T00:00") == "2004-02-29T00:00Z");
  }

  TEST_CASE("a TZ or CRON_TZ prefix reads the fields as local wall-clock time") {
    auto paris = CronSchedule::parse("TZ=Europe/Paris 0 8 * * *");
    CHECK(paris.time_zone_name() == "Europe/Paris");
    CHECK(paris.text() == "TZ=Europe/Paris 0 8 * * *");
    CHECK(next("TZ=Europe/Paris 0 8 * * *", "2025-01-10T12:00") == "2025-01-11T07:00Z");  // CET, +01:00
    CHECK(next("TZ=Europe/Paris 0 8 * * *", "2025-07-10T12:00") == "2025-07-11T06:00Z");  // CEST, +02:00
    CHECK(next("CRON_TZ=Europe/Paris 0 8 * * *", "2025-07-10T12:00") == "2025-07-11T06:00Z");
    CHECK(next("TZ=America/New_York 0 8 * * *", "2025-01-10T12:00") == "2025-01-10T13:00Z");  // EST, -05:00
    CHECK(next("TZ=America/New_York 0 8 * * *", "2025-07-10T13:00") == "2025-07-11T12:00Z");  // EDT, -04:00
    // Days are local days: 23:30 Monday in New York (EDT) is 03:30Z on Tuesday, and at
    // 00:00Z on Tuesday it is still Monday there.
    CHECK(next("TZ=America/New_York 30 23 * * MON", "2025-06-10T00:00") == "2025-06-10T03:30Z");
    CHECK(next("TZ=America/New_York 30 23 * * MON", "2025-06-10T12:00") == "2025-06-17T03:30Z");
    CHECK(next("TZ=Asia/Kolkata 0 0 1 1 *", "2025-06-01T00:00") == "2025-12-31T18:30Z");  // +05:30
  }

  TEST_CASE("a local time skipped by a spring-forward fires once, when the gap ends") {
    // Europe/Paris, 2025-03-30: 02:00 CET jumps to 03:00 CEST at 01:00Z.
    CHECK(ticks("TZ=Europe/Paris 30 2 * * *", "2025-03-28T12:00", 3) ==
          std::vector<std::string>{"2025-03-29T01:30Z", "2025-03-30T01:00Z", "2025-03-31T00:30Z"});
    // America/New_York, 2025-03-09: 02:00 EST jumps to 03:00 EDT at 07:00Z.
    CHECK(ticks("TZ=America/New_York 30 2 * * *", "2025-03-07T12:00", 3) ==
          std::vector<std::string>{"2025-03-08T07:30Z", "2025-03-09T07:00Z", "2025-03-10T06:30Z"});
    // Several ticks in the gap and one at its end are the same instant: one tick.
    CHECK(ticks("TZ=Europe/Paris 0,30 2,3 * * *", "2025-03-30T00:00", 3) ==
          std::vector<std::string>{"2025-03-30T01:00Z", "2025-03-30T01:30Z", "2025-03-31T00:00Z"});
    CHECK(latest("TZ=Europe/Paris 30 2 * * *", "2025-03-30T01:00") == "2025-03-30T01:00Z");
    CHECK(latest("TZ=Europe/Paris 30 2 * * *", "2025-03-30T00:59") == "2025-03-29T01:30Z");
  }

  TEST_CASE("a local time repeated by a fall-back fires once, at its first occurrence") {
    // America/New_York, 2025-11-02: 02:00 EDT falls back to 01:00 EST at 06:00Z; 01:30 is
    // 05:30Z (EDT) and again 06:30Z (EST).
    CHECK(ticks("TZ=America/New_York 30 1 * * *", "2025-11-01T00:00", 3) ==
          std::vector<std::string>{"2025-11-01T05:30Z", "2025-11-02T05:30Z", "2025-11-03T06:30Z"});
    CHECK(next("TZ=America/New_York 30 1 * * *", "2025-11-02T06:00") == "2025-11-03T06:30Z");
    // Europe/Paris, 2025-10-26: 03:00 CEST falls back to 02:00 CET at 01:00Z.
    CHECK(ticks("TZ=Europe/Paris 30 2 * * *", "2025-10-25T00:00", 3) ==
          std::vector<std::string>{"2025-10-25T00:30Z", "2025-10-26T00:30Z", "2025-10-27T01:30Z"});
    // During the second pass through the repeated hour, the latest tick is its first pass.
    CHECK(latest("TZ=America/New_York 45 1 * * *", "2025-11-02T06:30") == "2025-11-02T05:45Z");
    CHECK(latest("TZ=America/New_York 45 1 * * *", "2025-11-02T05:50") == "2025-11-02T05:45Z");
    CHECK(latest("TZ=America/New_York 45 1 * * *", "2025-11-02T05:44") == "2025-11-01T05:45Z");
    CHECK(latest("TZ=America/New_York 15 1 * * *", "2025-11-02T06:30") == "2025-11-02T05:15Z");
    CHECK(latest("TZ=America/New_York 0 2 * * *", "2025-11-02T06:30") == "2025-11-01T06:00Z");
  }

  TEST_CASE("every 15 minutes across daylight-saving changes: increasing, no instant twice") {
    struct Day {
      const char* schedule;
      const char* from;  // local midnight, in UTC
      const char* to;    // the next local midnight, in UTC
      size_t ticks;      // 96 quarter hours; a spring-forward day loses the 4 in its gap
    };
    for (const Day& day : {
             Day{"TZ=Europe/Paris */15 * * * *", "2025-03-29T23:00", "2025-03-30T22:00", 92},
             Day{"TZ=Europe/Paris */15 * * * *", "2025-10-25T22:00", "2025-10-26T23:00", 96},
             Day{"TZ=America/New_York */15 * * * *", "2025-03-09T05:00", "2025-03-10T04:00", 92},
             Day{"TZ=America/New_York */15 * * * *", "2025-11-02T04:00", "2025-11-03T05:00", 96},
             Day{"*/15 * * * *", "2025-03-30T00:00", "2025-03-31T00:00", 96},
         }) {
      CAPTURE(day.schedule);
      CAPTURE(day.from);
      auto all = ticks_between(CronSchedule::parse(day.schedule), utc(day.from), utc(day.to));
      CHECK(all.size() == day.ticks);
      for (size_t i = 1; i < all.size(); ++i) CHECK(all[i] > all[i - 1]);
    }
    // Around the Paris spring-forward the ticks stay 15 minutes apart in UTC: 02:00-02:45 local
    // do not exist and collapse with 03:00 into 01:00Z.
    CHECK(ticks("TZ=Europe/Paris */15 * * * *", "2025-03-30T00:30", 4) ==
          std::vector<std::string>{"2025-03-30T00:45Z", "2025-03-30T01:00Z", "2025-03-30T01:15Z", "2025-03-30T01:30Z"});
    // Around the fall-back the repeated hour fires once: 02:45 CEST (00:45Z), then 03:00 CET (02:00Z).
    CHECK(ticks("TZ=Europe/Paris */15 * * * *", "2025-10-26T00:30", 3) ==
          std::vector<std::string>{"2025-10-26T00:45Z", "2025-10-26T02:00Z", "2025-10-26T02:15Z"});
    CHECK(next("TZ=Europe/Paris */15 * * * *", "2025-10-26T01:20") == "2025-10-26T02:00Z");
  }

  TEST_CASE("latest_at_or_before returns the most recent tick, the instant itself included") {
    CHECK(latest("0 8 * * *", "2025-06-10T09:00") == "2025-06-10T08:00Z");
    CHECK(latest("0 8 * * *", "2025-06-10T08:00") == "2025-06-10T08:00Z");
    CHECK(latest("0 8 * * *", "2025-06-10T07:59:59") == "2025-06-09T08:00Z");
    CHECK(latest("*/15 * * * *", "2025-06-10T10:14:59") == "2025-06-10T10:00Z");
    CHECK(latest("0 0 1 1 *", "2025-06-10T00:00") == "2025-01-01T00:00Z");
    CHECK(latest("0 0 1 1 *", "2025-01-01T00:00") == "2025-01-01T00:00Z");
    CHECK(latest("0 0 31 * *", "2025-03-15T00:00") == "2025-01-31T00:00Z");
    CHECK(latest("0 0 13 * FRI", "2025-07-12T00:00") == "2025-07-11T00:00Z");
    CHECK(latest("TZ=Europe/Paris 0 8 * * MON-FRI", "2025-06-15T12:00") == "2025-06-13T06:00Z");
    CHECK(latest("0 0 * * *", "0001-01-01T12:00") == "none");
  }

  TEST_CASE("latest_at_or_before and next_after agree around any instant") {
    const char* schedules[] = {
        "*/15 * * * *", "0 8 * * *", "30 2 * * *", "0 0 13 * FRI", "0 12 29 2 *", "5-40/7 1-3 * * 0,3",
        "TZ=Europe/Paris */15 * * * *", "TZ=Europe/Paris 30 2 * * *", "TZ=America/New_York 30 1 * * *",
        "TZ=America/New_York 0,30 0-3 * 3,11 SUN", "TZ=Australia/Lord_Howe */10 1-2 * * *",
    };
    uint64_t state = 42;  // a fixed LCG: the same instants on every run
    auto random_instant = [&] {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      // Within 2024-2027, to the millisecond, half of them in the days around the 2025 DST changes.
      int64_t base = (state >> 63) ? to_millis(utc("2025-03-08T00:00")) : to_millis(utc("2024-01-01T00:00"));
      int64_t span = (state >> 63) ? 10LL * 86400000 : 4LL * 365 * 86400000;
      return from_millis(base + int64_t((state >> 11) % uint64_t(span)));
    };
    for (const char* text : schedules) {
      CAPTURE(text);
      auto s = CronSchedule::parse(text);
      for (int i = 0; i < 300; ++i) {
        TimePoint t = random_instant();
        std::string at = iso(t);
        CAPTURE(at);
        auto before = s.latest_at_or_before(t);
        REQUIRE(before.has_value());
        TimePoint after = s.next_after(t);
        CHECK(*before <= t);
        CHECK(after > t);
        CHECK(s.next_after(*before) == after);  // nothing between the two
        CHECK(s.latest_at_or_before(after) == after);
        CHECK(s.latest_at_or_before(after - std::chrono::milliseconds(1)) == before);
      }
    }
  }

  TEST_CASE("next_after finds the same ticks as a minute-by-minute scan") {
    struct Minute {
      unsigned month, day, hour, minute, weekday;  // weekday: 0 Sunday
    };
    struct Case {
      const char* schedule;
      bool (*matches)(const Minute&);
    };
    const Case cases[] = {
        {"5-40/7 1-3 * * 0,3",
         [](const Minute& m) { return m.minute % 7 == 5 && m.minute <= 40 && m.hour >= 1 && m.hour <= 3 &&
                                      (m.weekday == 0 || m.weekday == 3); }},
        {"0 0 13 * FRI", [](const Minute& m) { return m.minute == 0 && m.hour == 0 && (m.day == 13 || m.weekday == 5); }},
        {"*/20 */5 */2 * MON",
         [](const Minute& m) { return m.minute % 20 == 0 && m.hour % 5 == 0 && m.day % 2 == 1 && m.weekday == 1; }},
        {"0,30 12 29 2 *", [](const Minute& m) { return m.minute % 30 == 0 && m.hour == 12 && m.day == 29 && m.month == 2; }},
        {"15 10 1-7 MAR 2",
         [](const Minute& m) { return m.minute == 15 && m.hour == 10 && m.month == 3 && (m.day <= 7 || m.weekday == 2); }},
    };
    const TimePoint from = utc("2024-01-20T00:00");
    const TimePoint to = utc("2024-04-10T00:00");
    for (const Case& c : cases) {
      CAPTURE(c.schedule);
      std::vector<TimePoint> scanned;
      for (TimePoint t = from; t < to; t += std::chrono::minutes(1)) {
        auto day = std::chrono::floor<std::chrono::days>(t);
        std::chrono::year_month_day ymd(day);
        auto minute_of_day = std::chrono::duration_cast<std::chrono::minutes>(t - day).count();
        Minute m{unsigned(ymd.month()), unsigned(ymd.day()), unsigned(minute_of_day / 60), unsigned(minute_of_day % 60),
                 std::chrono::weekday(day).c_encoding()};
        if (c.matches(m)) scanned.push_back(t);
      }
      CHECK(!scanned.empty());
      CHECK(ticks_between(CronSchedule::parse(c.schedule), from, to) == scanned);
    }
  }

  TEST_CASE("the ends of the calendar are handled, not overflowed") {
    CHECK(CronSchedule::parse("* * * * *").next_after(TimePoint::max()) == TimePoint::max());
    CHECK(CronSchedule::parse("* * * * *").latest_at_or_before(TimePoint::min()) == std::nullopt);
    CHECK(CronSchedule::parse("TZ=Europe/Paris 0 0 1 1 *").latest_at_or_before(TimePoint::max()).has_value());
    CHECK(next("0 0 1 1 *", "9998-06-01T00:00") == "9999-01-01T00:00Z");
  }

  TEST_CASE("a parsed schedule is a value: copies answer the same") {
    auto a = CronSchedule::parse("TZ=Europe/Paris 0 8 * * *");
    CronSchedule b = a;
    CHECK(b.text() == a.text());
    CHECK(b.next_after(utc("2025-06-10T00:00")) == a.next_after(utc("2025-06-10T00:00")));
  }
}
