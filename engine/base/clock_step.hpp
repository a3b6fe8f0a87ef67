// Clock steps: the wall clock jumping (an operator's `date -s`, an NTP step, a virtual machine
// resumed or restored from a snapshot) rather than time passing. The engine stores wall-clock
// times, so a step changes what looks due and which leases look expired; the scheduler notices
// steps with a ClockStepDetector and reacts (docs/operations.md, "Clock steps"):
//
//   ClockStepDetector steps(clock.advances_by_itself());
//   for (;;) {
//     TimePoint now = clock.now();
//     if (auto step = steps.observe(now); step != 0ms) ...;  // renew leases at once, ...
//   }
#pragma once

#include <chrono>

#include <durable/clock.hpp>

namespace durable {

// Differences smaller than this are not told apart from ordinary clock behaviour (NTP slewing,
// the skew between hosts that share a database, a thread preempted between two readings): they
// are not steps, and the engine corrects nothing for them.
inline constexpr std::chrono::milliseconds kClockStepTolerance{1000};

// Notices steps of an engine Clock between successive readings. Not thread-safe: one thread
// (the scheduler's) observes.
class ClockStepDetector {
 public:
  // `advances_by_itself`: the clock's Clock::advances_by_itself().
  explicit ClockStepDetector(bool advances_by_itself) : advances_by_itself_(advances_by_itself) {}

  // Takes a reading `now` of the clock, and `steady` of the monotonic clock taken with it.
  // Returns how far the clock stepped since the previous reading, forward (> 0) or back (< 0),
  // or 0 when it moved as time passes, within kClockStepTolerance. The first call returns 0.
  //
  // A clock that advances by itself is compared with the monotonic clock, so steps both ways
  // are seen. A clock moved by hand (tests) moves forward whenever time is meant to pass:
  // only a move back is a step.
  std::chrono::milliseconds observe(TimePoint now,
                                    std::chrono::steady_clock::time_point steady = std::chrono::steady_clock::now());

 private:
  const bool advances_by_itself_;
  bool started_ = false;
  TimePoint last_now_{};
  std::chrono::steady_clock::time_point last_steady_{};
};

}  // namespace durable
