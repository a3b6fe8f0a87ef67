#include "daily_digest_workflow.hpp"

#include <chrono>
#include <stdexcept>
#include <vector>

#include <date/tz.h>
#include <fmt/format.h>

namespace daily_digest {

namespace {

// The local time of `t` in kTimeZone.
date::zoned_time<std::chrono::milliseconds> in_zone(durable::TimePoint t) {
  // locate_zone() reads the tz database once per process and throws std::runtime_error for an
  // unknown zone (then the run is retried; the schedule itself was checked at registration).
  return date::zoned_time<std::chrono::milliseconds>(date::locate_zone(kTimeZone), t);
}

Email build_digest(const User& user, const std::string& date, const Settings& s) {
  std::string body = fmt::format("Good morning {},\n\nhere is your digest for {}:\n\n",
                                 user.name.empty() ? user.email : user.name, date);
  if (user.topics.empty()) body += "- nothing yet: choose your topics at " + s.news_url + "settings\n";
  for (const std::string& topic : user.topics) body += fmt::format("- {}: {}{}/{}\n", topic, s.news_url, topic, date);
  body += fmt::format("\nYou get this e-mail every day at 08:00 ({}). Unsubscribe: {}settings\n", kTimeZone, s.news_url);
  return {.to = user.email, .subject = "Your daily digest for " + date, .body = body, .tag = "digest"};
}

}  // namespace

std::string local_date(durable::TimePoint t) { return date::format("%F", in_zone(t)); }

std::string digest_event_id(const std::string& user_id, const std::string& date) {
  return "digest-" + user_id + "-" + date;
}

durable::Handler make_daily_digest_handler(Settings settings) {
  if (settings.users_file.empty()) throw std::invalid_argument("daily digest settings: users_file is required");
  return [s = std::move(settings)](durable::Context& ctx) -> nlohmann::json {
    // The event's ts is the tick's time: the same on every replay, whenever the run executes
    // (a tick fired late after downtime still sends the digest of the tick's day).
    const durable::TimePoint at = ctx.event.ts;
    const std::string date = local_date(at);

    // The users are read inside a step: a replay uses the list recorded the first time, so it
    // sends the same events even if the file changed meanwhile.
    std::vector<User> users = ctx.step.run("load-users", [&] {
      std::vector<User> wanted;
      for (User& u : load_users(s.users_file)) {
        if (u.digest) wanted.push_back(std::move(u));
      }
      return wanted;
    });

    std::vector<durable::Event> events;
    for (const User& u : users) {
      events.push_back({.id = digest_event_id(u.id, date),
                        .name = kUserRequestedEvent,
                        .data = {{"user", u}, {"date", date}}});
    }
    // Sent exactly once, with the step's record: a replay returns the recorded ids and sends
    // nothing. The dedup ids also make a second run for the same day (digest/requested, a
    // replay from the API) send nobody a second digest within 24 hours.
    std::vector<std::string> ids = ctx.step.send_event("fan-out", std::move(events));

    return {{"date", date},
            {"time_utc", date::format("%FT%TZ", std::chrono::time_point_cast<std::chrono::seconds>(at))},
            {"time_local", date::format("%F %R %Z", in_zone(at))},
            {"users", users.size()},
            {"events", ids}};
  };
}

durable::Handler make_user_digest_handler(Outbox& outbox, Settings settings) {
  return [&outbox, s = std::move(settings)](durable::Context& ctx) -> nlohmann::json {
    const nlohmann::json& data = ctx.event.data;
    if (!data.contains("user") || !data["user"].is_object() || !data.contains("date") || !data["date"].is_string()) {
      throw durable::NonRetriableError("a digest/user.requested event needs {\"user\": {...}, \"date\": \"YYYY-MM-DD\"}");
    }
    User user;
    try {
      user = data["user"].get<User>();
    } catch (const nlohmann::json::exception& e) {
      throw durable::NonRetriableError(std::string("the event's user is invalid: ") + e.what());
    }
    const std::string date = data["date"].get<std::string>();

    // In a real application this step queries what is new in the user's topics; its result
    // is recorded, so a retry of send-email sends the very same e-mail.
    Email email = ctx.step.run("build-digest", [&] { return build_digest(user, date, s); });
    ctx.step.run("send-email", [&] { outbox.send(email); });
    return {{"user", user.id}, {"date", date}, {"to", email.to}};
  };
}

}  // namespace daily_digest
