// A daily digest e-mail, served over HTTP: at 08:00 Paris time every day, "daily-digest" loads
// the users and fans out one digest/user.requested event per user; each starts a run of
// "send-user-digest", which e-mails that user (the workflow is in daily_digest_workflow.cpp).
// Every user gets one digest a day, however many processes share the database and whatever
// crashes or retries happen.
//
//   ./daily_digest
//
// Environment (all optional):
//   DURABLE_PORT                        where durable's API listens (8288, on 127.0.0.1)
//   DURABLE_EVENT_KEY, DURABLE_API_KEY  keys of durable's API (local development ones)
//
// The users are in digest_users.json (created with demo users if missing; edit it at will),
// e-mails go to digest_outbox.jsonl, the engine's database is daily_digest.db, all in the
// working directory. It prints the curl command that sends today's digest now.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>

#include <date/tz.h>
#include <fmt/format.h>

#include <durable/durable.hpp>

#include "../common/env.hpp"
#include "daily_digest_workflow.hpp"
#include "../common/outbox.hpp"
#include "users.hpp"

namespace {

constexpr const char* kUsersFile = "digest_users.json";

using examples::env_or;
using examples::env_port;

// When the schedule fires next, "2030-01-02 08:00 CET (07:00 UTC)": 08:00 local today if that
// is still ahead, else tomorrow. (Good enough for a hint; the engine's cron handles the days
// where 08:00 does not exist or occurs twice, which do not happen in Europe/Paris.)
std::string next_digest_time() {
  const date::time_zone* zone = date::locate_zone(daily_digest::kTimeZone);
  auto now = std::chrono::system_clock::now();
  auto local_now = zone->to_local(now);
  auto eight = date::floor<date::days>(local_now) + std::chrono::hours(8);
  if (eight <= local_now) eight += date::days(1);
  auto when = date::make_zoned(zone, eight);
  return fmt::format("{} ({} UTC)", date::format("%F %R %Z", when), date::format("%R", when.get_sys_time()));
}

}  // namespace

int main() {
  try {
    int port = env_port("DURABLE_PORT", 8288);
    std::string event_key = env_or("DURABLE_EVENT_KEY", "local-dev-key");
    std::string api_key = env_or("DURABLE_API_KEY", "local-dev-api-key");
    if (!std::filesystem::exists(kUsersFile)) daily_digest::save_users(kUsersFile, daily_digest::demo_users());

    examples::Outbox outbox("digest_outbox.jsonl");  // declared first: the engine's functions use it
    durable::Engine engine({.database = "daily_digest.db"});
    daily_digest::register_daily_digest(engine, outbox, {.users_file = kUsersFile});

    std::cout << fmt::format(
                     "\ndaily_digest: every day at 08:00 Paris time ({}) each user in {} who wants it gets a digest.\n"
                     "Next: {}.\n\n"
                     "Send today's digest now with\n\n"
                     "  curl -d '{{\"name\":\"digest/requested\"}}' http://127.0.0.1:{}/e/{}\n\n"
                     "Send it again: nobody gets a second e-mail today (each user's event has the id\n"
                     "digest-<user>-<date>, and a repeated id starts no run).\n"
                     "E-mails are appended to {} (tail -f {}). Watch the runs with\n\n"
                     "  curl -H 'Authorization: Bearer {}' 'http://127.0.0.1:{}/v1/runs?function=send-user-digest'\n"
                     "  DURABLE_API_KEY={} build/durable --url http://127.0.0.1:{} runs\n\n"
                     "Ctrl-C stops.\n",
                     daily_digest::kSchedule, kUsersFile, next_digest_time(), port, event_key, outbox.path(),
                     outbox.path(), api_key, port, api_key, port)
              << std::flush;
    return engine.serve({.port = port, .event_keys = {event_key}, .api_keys = {api_key}});
  } catch (const std::exception& e) {
    std::cerr << "daily_digest: " << e.what() << "\n";
    return 1;
  }
}
