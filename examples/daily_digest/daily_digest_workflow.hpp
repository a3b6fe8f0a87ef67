// The daily digest: every morning at 08:00 Paris time, one e-mail to each user who wants it.
// A cron tick starts one run of "daily-digest", which loads the users and sends one
// digest/user.requested event per user, all in one commit; each event starts a run of
// "send-user-digest", which builds that user's digest and e-mails it. So a user whose e-mail
// fails is retried alone, and the others' digests go out meanwhile.
//
//   examples::Outbox outbox("digest_outbox.jsonl");   // declared first: the functions use it
//   durable::Engine engine({.database = "daily_digest.db"});
//   daily_digest::register_daily_digest(engine, outbox, {.users_file = "digest_users.json"});
//
// The runs, step by step:
//
//   daily-digest       load-users    the users who want a digest (users.hpp)
//                      fan-out       one digest/user.requested event per user, with the
//                                    dedup id "digest-<user id>-<local date>"
//   send-user-digest   build-digest  the user's e-mail for the date
//                      send-email    into the outbox
//
// A user gets at most one digest a day: a second digest/requested the same day, or a replay
// of "daily-digest", sends events with the same ids, which start no run.
//
// main.cpp serves it; tests/daily_digest_example_test.cpp runs it on the test kit.
#pragma once

#include <string>

#include <durable/durable.hpp>

#include "../common/outbox.hpp"
#include "users.hpp"

namespace daily_digest {

using examples::Email;
using examples::Outbox;

// The zone of the schedule and of the digests' dates.
inline constexpr const char* kTimeZone = "Europe/Paris";
// 08:00 every day in kTimeZone: 07:00 UTC in winter, 06:00 UTC in summer.
inline constexpr const char* kSchedule = "TZ=Europe/Paris 0 8 * * *";
// Sends today's digest now, besides the schedule: {"name": "digest/requested"}. Its ts (by
// default the time it is received) gives the date.
inline constexpr const char* kRequestedEvent = "digest/requested";
// One user's digest: {"user": User, "date": "2030-01-01"}.
inline constexpr const char* kUserRequestedEvent = "digest/user.requested";

struct Settings {
  // The JSON file of users (users.hpp). Required.
  std::string users_file;
  // The digests link to <news_url><topic>/<date>. Default: https://news.example.com/.
  std::string news_url = "https://news.example.com/";
};

// The date in kTimeZone at `t`: "2030-01-01".
std::string local_date(durable::TimePoint t);

// The dedup id of `user_id`'s digest of `date`: "digest-u_ada-2030-01-01".
std::string digest_event_id(const std::string& user_id, const std::string& date);

// The body of "daily-digest": the date is the local date of its event's ts (the cron tick's
// time). Its output: {"date", "time_utc": "2030-01-01T07:00:00Z", "time_local":
// "2030-01-01 08:00 CET", "users": how many, "events": the engine's ids of the events sent,
// as the fan-out step recorded them}. Throws std::invalid_argument for an empty users_file.
durable::Handler make_daily_digest_handler(Settings settings);

// The body of "send-user-digest", e-mailing through `outbox` (which must outlive the engine).
// Its output: {"user", "date", "to"}. An event without a user or a date fails its run at once.
durable::Handler make_user_digest_handler(Outbox& outbox, Settings settings);

// Registers "daily-digest" (on kSchedule and on kRequestedEvent) and "send-user-digest" (on
// kUserRequestedEvent) on `engine`: a durable::Engine or a durable::testing::TestEngine, whose
// function() methods have the same signature. Throws what they and the handlers throw.
template <class E>
void register_daily_digest(E& engine, Outbox& outbox, Settings settings) {
  engine.function({.id = "daily-digest", .name = "Send every user their daily digest", .retries = 3},
                  {durable::on_cron(kSchedule), durable::on_event(kRequestedEvent)},
                  make_daily_digest_handler(settings));
  engine.function({.id = "send-user-digest", .name = "Send one user their digest", .retries = 5},
                  durable::on_event(kUserRequestedEvent), make_user_digest_handler(outbox, settings));
}

}  // namespace daily_digest
