#include "engine/exec/cron_triggers.hpp"

#include <algorithm>

#include "engine/base/log.hpp"
#include "engine/base/thread_name.hpp"

namespace durable {

CronTriggers::CronTriggers(std::vector<std::pair<std::string, CronSchedule>> schedules, Store& store, Clock& clock,
                           IdGenerator& ids, std::function<void()> notify)
    : store_(store), clock_(clock), ids_(ids), notify_(std::move(notify)) {
  for (auto& [id, schedule] : schedules) entries_.push_back(Entry{id, std::move(schedule)});
}

CronTriggers::~CronTriggers() { stop(); }

void CronTriggers::start() {
  {
    std::lock_guard lock(mu_);
    if (started_ || entries_.empty()) return;
    started_ = true;
  }
  {
    std::lock_guard lock(fire_mu_);
    TimePoint now = clock_.now();
    for (Entry& e : entries_) {
      // Catch-up: the latest tick at or before now, if the schedule has run before and has
      // not fired it. A new schedule records it as its last tick, firing nothing: a function
      // deployed at 15:00 with a daily 08:00 schedule first runs tomorrow.
      e.next = e.schedule.next_after(now);
      std::optional<TimePoint> latest = e.schedule.latest_at_or_before(now);
      if (!latest) continue;
      try {
        if (store_.last_cron_tick(e.function_id, e.schedule.text())) {
          fire(e, *latest);
        } else {
          store_.record_cron_tick(e.function_id, e.schedule.text(), *latest, std::nullopt, now);
        }
      } catch (const std::exception& ex) {
        log(LogLevel::error, "cron catch-up failed", {{"function", e.function_id}, {"error", ex.what()}});
      }
    }
  }
  if (clock_.advances_by_itself()) {
    thread_ = std::thread([this] { loop(); });
  } else {
    clock_subscription_ = clock_.subscribe([this] { fire_due(); });
  }
}

void CronTriggers::stop() {
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (clock_subscription_) clock_.unsubscribe(clock_subscription_);
}

TimePoint CronTriggers::fire_due() {
  std::lock_guard lock(fire_mu_);
  TimePoint now = clock_.now();
  TimePoint next = TimePoint::max();
  for (Entry& e : entries_) {
    if (e.next <= now) {
      // Ticks that passed while this process could not fire them (a busy or paused machine, a
      // clock moved by hours in a test) collapse into the latest, as after downtime.
      TimePoint tick = e.schedule.latest_at_or_before(now).value_or(e.next);
      try {
        fire(e, tick);
        e.next = e.schedule.next_after(now);
      } catch (const std::exception& ex) {
        log(LogLevel::error, "cron tick failed; retrying", {{"function", e.function_id}, {"error", ex.what()}});
        e.next = now + std::chrono::seconds(1);
      }
    }
    next = std::min(next, e.next);
  }
  return next;
}

void CronTriggers::fire(const Entry& e, TimePoint tick) {
  TimePoint now = clock_.now();
  std::string event_id = ids_.next(now);
  IngestStore::Item item{event_id,
                         Event{.name = kCronEvent,
                               .data = {{"cron", e.schedule.text()}, {"function_id", e.function_id}},
                               .ts = tick},
                         {NewRun{.id = ids_.next(now), .function_id = e.function_id, .event_id = event_id}}};
  if (!store_.record_cron_tick(e.function_id, e.schedule.text(), tick, item, now)) return;  // another process's
  log(LogLevel::info, "cron tick", {{"function", e.function_id}, {"cron", e.schedule.text()},
                                    {"tick", std::to_string(to_millis(tick))}, {"event", event_id}});
  notify_();
}

void CronTriggers::loop() {
  name_this_thread("durable-cron");
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    // (At least hourly: a far time point would overflow the system clock's nanoseconds.)
    TimePoint next = std::min(fire_due(), clock_.now() + std::chrono::hours(1));
    lock.lock();
    // The system clock's time point: the wait ends at the tick even if the machine slept.
    cv_.wait_until(lock, std::chrono::system_clock::time_point(next), [&] { return stopping_; });
  }
}

}  // namespace durable
