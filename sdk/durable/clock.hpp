// The engine's source of wall-clock time. Every timestamp the engine records (event times,
// sleep deadlines, retry times, lease expiries) is read through a Clock, so tests can move
// time by hand instead of waiting for it.
//
//   auto clock = std::make_shared<durable::ManualClock>();
//   durable::Engine engine({.database = "t.db", .clock = clock});
//   ...                                   // a run sleeps for 5 minutes
//   clock->advance(std::chrono::minutes(5));  // the sleep is now due; the engine wakes up
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>

namespace durable {

// Milliseconds since the Unix epoch, UTC: the resolution of everything the engine stores.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// Milliseconds since the Unix epoch of `t`.
inline int64_t to_millis(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint from_millis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

class Clock {
 public:
  virtual ~Clock() = default;

  // The current time. Thread-safe.
  virtual TimePoint now() const = 0;

  // True when time passes by itself: the clock then reads the system clock's time, and the
  // engine waits for its deadlines on the system clock. When false, the engine never waits
  // in real time for a deadline on this clock; it waits until the clock is moved.
  virtual bool advances_by_itself() const = 0;

  // Calls `listener` (on the thread that moved the clock) after every manual move. Returns an
  // id for unsubscribe(). A clock that advances by itself never calls it. Thread-safe.
  virtual int subscribe(std::function<void()> listener) = 0;
  virtual void unsubscribe(int id) = 0;
};

// The real time of the system clock. The default clock of an Engine.
class SystemClock final : public Clock {
 public:
  TimePoint now() const override;
  bool advances_by_itself() const override { return true; }
  int subscribe(std::function<void()>) override { return 0; }
  void unsubscribe(int) override {}
};

// A clock that moves only when told to. Starts at `start` (default 2030-01-01T00:00:00Z, so
// tests read the same numbers every time).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = from_millis(1893456000000));

  TimePoint now() const override;
  bool advances_by_itself() const override { return false; }
  int subscribe(std::function<void()> listener) override;
  void unsubscribe(int id) override;

  // Moves time forward by `d` (negative durations are ignored: time never goes back), then
  // tells every subscriber. Thread-safe.
  void advance(std::chrono::milliseconds d);

  // Moves time to `t` if it is later than now, then tells every subscriber.
  void set(TimePoint t);

 private:
  void notify();

  std::mutex calls_mu_;  // held while listeners run; unsubscribe() waits on it
  mutable std::mutex mu_;
  TimePoint now_;                                     // guarded by mu_
  int next_id_ = 1;                                   // guarded by mu_
  std::map<int, std::function<void()>> listeners_;    // guarded by mu_
};

}  // namespace durable
