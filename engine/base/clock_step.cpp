#include "engine/base/clock_step.hpp"

namespace durable {

std::chrono::milliseconds ClockStepDetector::observe(TimePoint now, std::chrono::steady_clock::time_point steady) {
  using std::chrono::milliseconds;
  milliseconds step{0};
  if (started_) {
    if (advances_by_itself_) {
      // Where the wall clock should be had it only run since the last reading: the monotonic
      // clock is never set, only the wall clock is. Each reading is compared with the one before
      // only, so a slow drift (NTP slewing, at most 0.5 ms/s) never adds up to a step.
      TimePoint expected = last_now_ + std::chrono::duration_cast<milliseconds>(steady - last_steady_);
      step = now - expected;
    } else if (now < last_now_) {
      step = now - last_now_;
    }
  }
  started_ = true;
  last_now_ = now;
  last_steady_ = steady;
  return step > kClockStepTolerance || step < -kClockStepTolerance ? step : milliseconds(0);
}

}  // namespace durable
