// Cron triggers at run time: fires the ticks of this process's on_cron schedules. Every process
// that registers a cron function fires its ticks; the store lets one of them start the tick's
// run (CronStore::record_cron_tick), so each tick starts one run however many processes run.
// A schedule first seen by the database starts from the next tick; one that was fired before
// catches up once after downtime: its most recent missed tick runs, the earlier ones do not.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/base/ids.hpp"
#include "engine/events/cron.hpp"
#include "engine/store/store.hpp"

namespace durable {

class CronTriggers {
 public:
  // `schedules`: (function id, schedule) pairs. `notify` is told after a tick created a run.
  CronTriggers(std::vector<std::pair<std::string, CronSchedule>> schedules, Store& store, Clock& clock,
               IdGenerator& ids, std::function<void()> notify);
  // Stops (see stop()).
  ~CronTriggers();
  CronTriggers(const CronTriggers&) = delete;
  CronTriggers& operator=(const CronTriggers&) = delete;

  // Fires the ticks missed while no process ran (see above), then every tick when it comes:
  // on a thread of its own with a clock that advances by itself, else whenever the clock is
  // moved (within the move, so a test's drain() after it sees the runs). Does nothing without
  // schedules. A store failure is logged; the tick is tried again on the next round.
  void start();
  // Stops firing; joins the thread. Idempotent.
  void stop();

 private:
  struct Entry {
    std::string function_id;
    CronSchedule schedule;
    TimePoint next{};  // the next tick to fire
  };
  // Fires what is due at the clock's time; returns when the next tick is due.
  TimePoint fire_due();
  // Starts the run of `tick` unless another process (or an earlier start) did.
  void fire(const Entry& entry, TimePoint tick);
  void loop();

  std::vector<Entry> entries_;  // guarded by fire_mu_
  Store& store_;
  Clock& clock_;
  IdGenerator& ids_;
  std::function<void()> notify_;
  std::mutex fire_mu_;  // one round at a time: the thread's or a clock move's
  int clock_subscription_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // guarded by mu_
  std::thread thread_;
};

}  // namespace durable
