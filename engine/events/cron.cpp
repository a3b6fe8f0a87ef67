#include "engine/events/cron.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <limits>
#include <vector>

#include <date/tz.h>
#include <fmt/format.h>

#include "engine/base/printable.hpp"

namespace durable {

namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using LocalMinutes = date::local_time<minutes>;

// ---------------------------------------------------------------------------------------------
// Parsing.

struct FieldSpec {
  std::string_view name;
  int min;
  int max;
  const std::string_view* names;  // three-letter names of min, min + 1, ...; nullptr: none
  int name_count;
  std::string_view names_hint;  // how the message describes them
};

constexpr std::string_view kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::string_view kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

// Day of week goes to 7 so that `7` and `5-7` mean Sunday, as in Vixie cron; `*` therefore
// covers 0-7 too, which selects the same days (bit 7 is folded into bit 0 afterwards).
constexpr FieldSpec kFields[5] = {
    {"minute", 0, 59, nullptr, 0, ""},
    {"hour", 0, 23, nullptr, 0, ""},
    {"day-of-month", 1, 31, nullptr, 0, ""},
    {"month", 1, 12, kMonthNames, 12, "a month name (JAN-DEC)"},
    {"day-of-week", 0, 7, kDayNames, 7, "a day name (SUN-SAT)"},
};
constexpr std::string_view kFieldList = "minute hour day-of-month month day-of-week";

// Messages quote user text: its first 40 bytes, printable.
std::string quoted(std::string_view text) { return printable(text, 40); }

[[noreturn]] void fail(const FieldSpec& field, const std::string& message) {
  throw CronError(fmt::format("{} field: {}", field.name, message));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'a' && x <= 'z' ? x - 'a' + 'A' : x) == y;
         });
}

// A non-negative decimal, or nullopt if `token` is not all digits. Values too big for an int
// come back as INT_MAX, so that they are reported as out of range rather than as not numbers.
std::optional<int> parse_number(std::string_view token) {
  if (token.empty() || !std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int n = 0;
  auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), n);
  if (error == std::errc::result_out_of_range) return std::numeric_limits<int>::max();
  return n;
}

// One end of a range: a number in the field's range or, in month and day-of-week, a name.
int parse_value(const FieldSpec& field, std::string_view token, std::string_view item) {
  if (token.empty()) fail(field, fmt::format("missing number in '{}'", quoted(item)));
  if (auto n = parse_number(token)) {
    if (*n < field.min || *n > field.max)
      fail(field, fmt::format("{} is out of range {}-{}", quoted(token), field.min, field.max));
    return *n;
  }
  if (field.names != nullptr) {
    for (int i = 0; i < field.name_count; ++i)
      if (equals_ignoring_case(token, field.names[i])) return field.min + i;
    fail(field, fmt::format("'{}' is not a number or {}", quoted(token), field.names_hint));
  }
  fail(field, fmt::format("'{}' is not a number", quoted(token)));
}

// The values `text` selects, as a bit set. Grammar: item (',' item)*, where
// item := '*' ['/' step] | value ['-' value ['/' step]].
uint64_t parse_field(const FieldSpec& field, std::string_view text) {
  uint64_t bits = 0;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) fail(field, fmt::format("empty item in list '{}'", quoted(text)));

    std::string_view range = item;
    int step = 1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      range = item.substr(0, slash);
      std::string_view step_text = item.substr(slash + 1);
      auto n = parse_number(step_text);
      if (!n) fail(field, fmt::format("step '{}' in '{}' is not a number", quoted(step_text), quoted(item)));
      if (*n == 0) fail(field, fmt::format("step in '{}' must be at least 1", quoted(item)));
      step = *n;
    }
    int lo = field.min;
    int hi = field.max;
    if (range != "*") {
      size_t dash = range.find('-');
      lo = parse_value(field, range.substr(0, dash), item);
      if (dash != std::string_view::npos) {
        hi = parse_value(field, range.substr(dash + 1), item);
        if (lo > hi)
          fail(field, fmt::format("range '{}' goes backwards ({} > {}); ranges do not wrap around, use a list",
                                  quoted(range), lo, hi));
      } else if (range.size() != item.size()) {
        // Vixie cron rejects `5/15`; other crons read it as 5-max/15. Asking for the range keeps
        // the meaning unambiguous.
        fail(field, fmt::format("a step needs a range: write '{}-{}/{}' or '*/{}'", quoted(range), field.max,
                                step, step));
      } else {
        hi = lo;
      }
    }
    // lo <= hi <= 59, so every value fits the bits; but a step may be up to INT_MAX, and
    // v + step would overflow (`5-10/2147483646` fired at 1, 3, 5): stop before adding a
    // step that passes hi.
    for (int v = lo;; v += step) {
      bits |= uint64_t{1} << v;
      if (step > hi - v) break;
    }

    if (comma == std::string_view::npos) return bits;
    start = comma + 1;
  }
}

unsigned days_in_month(int year, unsigned month) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && date::year{year}.is_leap() ? 29 : kDays[month - 1];
}

// ---------------------------------------------------------------------------------------------
// Searching. Candidates are local wall-clock minutes, held as calendar fields so that a field
// that does not match skips to the next value that might: a month not in the set jumps to the
// next month that is, an hour not in the set to the next hour that is, and so on. A call then
// costs a few steps per unit skipped (days, at worst), never one step per minute.

struct Civil {
  int year;
  unsigned month;   // 1-12
  unsigned day;     // 1-days_in_month
  unsigned hour;    // 0-23
  unsigned minute;  // 0-59
};

// The lowest set bit at or above `from`, or -1.
int next_bit(uint64_t bits, unsigned from) {
  if (from >= 64) return -1;
  uint64_t rest = bits & (~uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

// The highest set bit at or below `from`, or -1.
int prev_bit(uint64_t bits, int from) {
  if (from < 0) return -1;
  uint64_t rest = from >= 63 ? bits : bits & ((uint64_t{1} << (from + 1)) - 1);
  return rest == 0 ? -1 : 63 - std::countl_zero(rest);
}

bool has(uint64_t bits, unsigned n) { return (bits >> n) & 1; }

void next_day(Civil& c) {
  c.hour = 0;
  c.minute = 0;
  if (++c.day <= days_in_month(c.year, c.month)) return;
  c.day = 1;
  if (++c.month <= 12) return;
  c.month = 1;
  ++c.year;
}

void prev_day(Civil& c) {
  c.hour = 23;
  c.minute = 59;
  if (--c.day >= 1) return;
  if (--c.month < 1) {
    c.month = 12;
    --c.year;
  }
  c.day = days_in_month(c.year, c.month);
}

Civil to_civil(LocalMinutes t) {
  auto day = date::floor<days>(t);
  date::year_month_day ymd(day);
  auto minute_of_day = (t - day).count();
  return {int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()), unsigned(minute_of_day / 60),
          unsigned(minute_of_day % 60)};
}

LocalMinutes to_local_minutes(const Civil& c) {
  return date::local_days(date::year{c.year} / date::month{c.month} / date::day{c.day}) + hours(c.hour) +
         minutes(c.minute);
}

// The range the search works in. Years are bounded so that calendar arithmetic cannot
// overflow (date::year stops at 32767) and so that every search ends.
constexpr int kFirstYear = 1;
constexpr int kLastYear = 9999;
// Every schedule that parses fires at least once in any 400 consecutive years: the Gregorian
// calendar (leap years and weekdays together) repeats every 400 years.
constexpr int kSearchYears = 400;
const TimePoint kEarliest = date::sys_days(date::year{kFirstYear} / 1 / 2);  // a day inside, for offsets
const TimePoint kLatest = date::sys_days(date::year{kLastYear} / 12 / 30);

}  // namespace

// The search, with access to the schedule's fields.
class CronSearch {
 public:
  explicit CronSearch(const CronSchedule& s) : s_(s) {}

  bool day_matches(const Civil& c) const {
    bool by_month_day = has(s_.days_of_month_, c.day);
    unsigned weekday = date::weekday(date::sys_days(date::year{c.year} / date::month{c.month} / date::day{c.day}))
                           .c_encoding();
    bool by_week_day = has(s_.days_of_week_, weekday);
    return s_.either_day_ ? by_month_day || by_week_day : by_month_day && by_week_day;
  }

  // The first matching local minute at or after `c`, or nullopt past the end of `last_year`.
  std::optional<Civil> first_match_from(Civil c, int last_year) const {
    for (;;) {
      if (c.year > last_year) return std::nullopt;
      if (!has(s_.months_, c.month)) {
        int month = next_bit(s_.months_, c.month + 1);
        if (month < 0) {
          ++c.year;
          month = next_bit(s_.months_, 1);
        }
        c = {c.year, unsigned(month), 1, 0, 0};
        continue;
      }
      if (!day_matches(c)) {
        next_day(c);
        continue;
      }
      int hour = next_bit(s_.hours_, c.hour);
      if (hour < 0) {
        next_day(c);
        continue;
      }
      if (unsigned(hour) != c.hour) c = {c.year, c.month, c.day, unsigned(hour), 0};
      int minute = next_bit(s_.minutes_, c.minute);
      if (minute < 0) {
        if (++c.hour == 24)
          next_day(c);
        else
          c.minute = 0;
        continue;
      }
      c.minute = unsigned(minute);
      return c;
    }
  }

  // The last matching local minute at or before `c`, or nullopt before the start of `first_year`.
  std::optional<Civil> last_match_until(Civil c, int first_year) const {
    for (;;) {
      if (c.year < first_year) return std::nullopt;
      if (!has(s_.months_, c.month)) {
        int month = prev_bit(s_.months_, int(c.month) - 1);  // bit 0 is never set: -1 below January
        if (month < 0) {
          --c.year;
          month = prev_bit(s_.months_, 12);
        }
        c = {c.year, unsigned(month), days_in_month(c.year, unsigned(month)), 23, 59};
        continue;
      }
      if (!day_matches(c)) {
        prev_day(c);
        continue;
      }
      int hour = prev_bit(s_.hours_, int(c.hour));
      if (hour < 0) {
        prev_day(c);
        continue;
      }
      if (unsigned(hour) != c.hour) c = {c.year, c.month, c.day, unsigned(hour), 59};
      int minute = prev_bit(s_.minutes_, int(c.minute));
      if (minute < 0) {
        if (c.hour == 0) {
          prev_day(c);
        } else {
          --c.hour;
          c.minute = 59;
        }
        continue;
      }
      c.minute = unsigned(minute);
      return c;
    }
  }

  // The instant of local time `t`: the tick rule of the header. date/tz's to_sys returns the end
  // of the gap for a nonexistent local time, whichever `choose`; `earliest` picks the first
  // occurrence of an ambiguous one. The map is non-decreasing, which the searches rely on.
  TimePoint to_instant(LocalMinutes t) const {
    if (s_.zone_ == nullptr) return TimePoint(t.time_since_epoch());
    return std::chrono::time_point_cast<milliseconds>(s_.zone_->to_sys(t, date::choose::earliest));
  }

  date::local_time<milliseconds> to_local(TimePoint t) const {
    if (s_.zone_ == nullptr) return date::local_time<milliseconds>(t.time_since_epoch());
    return s_.zone_->to_local(t);
  }

  // If `t` lies in the second occurrence of a fall-back overlap, the local time at which the
  // overlap ends (local times before it last occurred before `t`); otherwise nullopt.
  std::optional<date::local_time<milliseconds>> end_of_overlap_containing(TimePoint t) const {
    if (s_.zone_ == nullptr) return std::nullopt;
    auto info = s_.zone_->get_info(date::floor<seconds>(to_local(t)));
    if (info.result != date::local_info::ambiguous || t < info.second.begin) return std::nullopt;
    return date::local_time<milliseconds>((info.first.end + info.first.offset).time_since_epoch());
  }

 private:
  const CronSchedule& s_;
};

CronSchedule CronSchedule::parse(std::string_view text) {
  CronSchedule schedule;
  schedule.text_ = std::string(text);

  std::vector<std::string_view> words;
  for (size_t i = 0; i < text.size();) {
    if (is_space(text[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    words.push_back(text.substr(start, i - start));
  }

  size_t first = 0;
  if (!words.empty()) {
    std::string_view word = words[0];
    std::string_view zone_name;
    bool prefixed = false;
    for (std::string_view prefix : {"TZ=", "CRON_TZ="}) {
      if (word.substr(0, prefix.size()) == prefix) {
        zone_name = word.substr(prefix.size());
        prefixed = true;
        if (zone_name.empty()) throw CronError(fmt::format("empty time zone after '{}'", prefix));
      }
    }
    if (prefixed) {
      try {
        schedule.zone_ = date::locate_zone(zone_name);
      } catch (const std::exception&) {
        // date/tz says only "X not found in timezone database"; name the database it read.
        throw CronError(fmt::format("unknown time zone '{}' (not in the tz database, /usr/share/zoneinfo)",
                                    quoted(zone_name)));
      }
      first = 1;
    }
  }

  for (size_t i = first; i < words.size(); ++i)
    if (words[i].find('=') != std::string_view::npos)
      throw CronError(fmt::format("'{}' is not a field; a time zone is written 'TZ=Area/City' or 'CRON_TZ=Area/City' "
                                  "before the fields",
                                  quoted(words[i])));
  size_t found = words.size() - first;
  if (found == 1 && words[first].front() == '@')
    throw CronError(fmt::format("'{}' is not supported; write the 5 fields ({}), e.g. '0 0 * * *' for daily",
                                quoted(words[first]), kFieldList));
  if (found != 5)
    throw CronError(fmt::format("expected 5 fields ({}), found {}{}", kFieldList, found,
                                found == 6 ? " (seconds and year fields are not supported)" : ""));

  std::array<uint64_t, 5> bits{};
  for (size_t i = 0; i < 5; ++i) bits[i] = parse_field(kFields[i], words[first + i]);
  schedule.minutes_ = bits[0];
  schedule.hours_ = static_cast<uint32_t>(bits[1]);
  schedule.days_of_month_ = static_cast<uint32_t>(bits[2]);
  schedule.months_ = static_cast<uint16_t>(bits[3]);
  schedule.days_of_week_ = static_cast<uint8_t>((bits[4] | (bits[4] >> 7)) & 0x7f);  // 7 is Sunday, 0

  // Vixie cron's rule, including its test: a day field is unrestricted when it begins with
  // `*`, so `*/2` in day-of-month with `MON` in day-of-week means odd days that are Mondays.
  std::string_view month_days = words[first + 2];
  std::string_view week_days = words[first + 4];
  schedule.either_day_ = month_days.front() != '*' && week_days.front() != '*';

  // When both day fields must match, every (month, day) that exists falls on every weekday
  // within 400 years, so the schedule fires unless no selected month has a selected day.
  // (When either may match, the day-of-week field alone fires every week.)
  if (!schedule.either_day_) {
    bool possible = false;
    for (unsigned month = 1; month <= 12; ++month) {
      uint32_t days = (uint32_t{2} << days_in_month(2000, month)) - 2;  // 2000: a leap year, Feb 29 exists
      if (has(schedule.months_, month) && (schedule.days_of_month_ & days) != 0) possible = true;
    }
    if (!possible)
      throw CronError(fmt::format("the schedule never fires: no day in day-of-month '{}' exists in month '{}'",
                                  quoted(month_days), quoted(words[first + 3])));
  }
  return schedule;
}

TimePoint CronSchedule::next_after(TimePoint t) const {
  if (t >= kLatest) return TimePoint::max();
  if (t < kEarliest) t = kEarliest;
  CronSearch search(*this);
  // Invariant: every local minute before `from` maps to an instant at or before `t`.
  auto from = date::floor<minutes>(search.to_local(t)) + minutes(1);
  if (auto end = search.end_of_overlap_containing(t)) from = std::max(from, date::ceil<minutes>(*end));
  Civil c = to_civil(from);
  int last_year = std::min(c.year + kSearchYears, kLastYear);
  for (;;) {
    auto tick = search.first_match_from(c, last_year);
    if (!tick) return TimePoint::max();
    TimePoint instant = search.to_instant(to_local_minutes(*tick));
    // By the invariant this holds at once; the check keeps odd zone data (offsets with seconds)
    // from returning an instant that is not after `t`. Ticks after kLatest are out of range
    // for latest_at_or_before too, so that both searches see the same ticks (found by fuzzing:
    // the 9999-12-31 tick of `59 23 31 12 *` was found from 9998 but not looked back at).
    if (instant > t) return instant > kLatest ? TimePoint::max() : instant;
    c = to_civil(to_local_minutes(*tick) + minutes(1));
  }
}

std::optional<TimePoint> CronSchedule::latest_at_or_before(TimePoint t) const {
  if (t < kEarliest) return std::nullopt;
  if (t > kLatest) t = kLatest;
  CronSearch search(*this);
  // Local minutes after `until` map to instants after `t`. In the second occurrence of an
  // overlap, local times up to the end of the overlap first occurred before `t`.
  auto until = date::floor<minutes>(search.to_local(t));
  if (auto end = search.end_of_overlap_containing(t)) until = date::floor<minutes>(*end - milliseconds(1));
  Civil c = to_civil(until);
  int first_year = std::max(c.year - kSearchYears, kFirstYear);
  for (;;) {
    auto tick = search.last_match_until(c, first_year);
    if (!tick) return std::nullopt;
    TimePoint instant = search.to_instant(to_local_minutes(*tick));
    if (instant <= t) return instant;
    c = to_civil(to_local_minutes(*tick) - minutes(1));
  }
}

std::string CronSchedule::time_zone_name() const {
  return zone_ == nullptr ? std::string("UTC") : std::string(zone_->name());
}

}  // namespace durable
