// The daily-digest example (examples/daily_digest/), run on the test kit: the cron tick at
// 08:00 Paris time (07:00 UTC in winter, 06:00 UTC in summer), the fan-out of one run per
// user, one e-mail per user and day, and the dedup ids that keep a second digest of the same
// day from e-mailing anyone twice. Nothing is mocked: the steps read a real users file and
// write a real outbox file.
#include <durable/testing.hpp>

#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include <doctest/doctest.h>
#include <httplib.h>

#include "examples/daily_digest/daily_digest_workflow.hpp"
#include "examples/common/outbox.hpp"
#include "examples/daily_digest/users.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApiKey = "test-api-key";

// 2030-01-01T05:00:00Z: 06:00 in Paris (CET, UTC+1), two hours before the first digest.
constexpr int64_t kJan1At0500Z = 1893474000000;
// 2030-03-30T05:00:00Z: 06:00 in Paris on the Saturday before summer time (2030-03-31 02:00).
constexpr int64_t kMar30At0500Z = 1901077200000;

std::vector<daily_digest::User> test_users() {
  return {
      {.id = "u_ada", .name = "Ada", .email = "ada@example.com", .topics = {"cpp", "sqlite"}},
      {.id = "u_grace", .name = "Grace", .email = "grace@example.com", .topics = {"compilers"}},
      {.id = "u_alan", .name = "", .email = "alan@example.com", .topics = {}},
      {.id = "u_linus", .name = "Linus", .email = "linus@example.com", .topics = {"git"}, .digest = false},
  };
}
constexpr size_t kDigestUsers = 3;  // Linus does not want one

// The test kit with the example's two functions, a users file and an outbox in a fresh
// directory.
struct Newsletter {
  testing::TempDir dir;
  std::string users_file = dir.file("users.json");
  examples::Outbox outbox;
  testing::TestEngine t;

  explicit Newsletter(int64_t start_ms, const std::string& outbox_name = "outbox.jsonl")
      : outbox(dir.file(outbox_name)), t({.start = from_millis(start_ms)}) {
    daily_digest::save_users(users_file, test_users());
    daily_digest::register_daily_digest(t, outbox, {.users_file = users_file});
  }

  // The runs of `function_id`, oldest first.
  std::vector<testing::TestRun> runs_of(const std::string& function_id) { return t.runs_of(function_id); }

  // GET `path` of the REST API (served from the first call on), for what the test kit does not
  // show: a stored event's sender id and duplicate flag.
  nlohmann::json api_get(const std::string& path) {
    if (api_port == 0) api_port = t.engine().listen({.port = 0, .event_keys = {"test-event-key"}, .api_keys = {kApiKey}});
    httplib::Client client("127.0.0.1", api_port);
    auto res = client.Get(path.c_str(), httplib::Headers{{"Authorization", std::string("Bearer ") + kApiKey}});
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 200, res->body);
    return nlohmann::json::parse(res->body);
  }
  int api_port = 0;

  // How many e-mails each address got.
  std::map<std::string, int> emails_per_address() const {
    std::map<std::string, int> out;
    for (const auto& e : outbox.emails()) ++out[e.to];
    return out;
  }
};

std::vector<std::string> ids_in(const nlohmann::json& array) { return array.get<std::vector<std::string>>(); }

}  // namespace

TEST_SUITE("daily_digest_example") {
  TEST_CASE("at 08:00 Paris time one daily-digest run fans out one send-user-digest run per user, one e-mail each") {
    Newsletter n(kJan1At0500Z);
    n.t.advance(2h - 1ms);
    CHECK(n.runs_of("daily-digest").empty());
    CHECK(n.outbox.emails().empty());

    n.t.advance(1ms);  // 2030-01-01T07:00:00Z
    auto digests = n.runs_of("daily-digest");
    REQUIRE(digests.size() == 1);
    const testing::TestRun& run = digests[0];
    REQUIRE(run.status() == RunStatus::completed);
    CHECK(run.snapshot().created_at == from_millis(kJan1At0500Z) + 2h);  // at the tick
    nlohmann::json output = run.output();
    CHECK(output["date"] == "2030-01-01");
    CHECK(output["time_utc"] == "2030-01-01T07:00:00Z");
    CHECK(output["time_local"] == "2030-01-01 08:00 CET");
    CHECK(output["users"] == kDigestUsers);

    // The ids the function got from send_event are the ones its fan-out step recorded, and
    // each started exactly one run.
    std::vector<std::string> ids = ids_in(run.step("fan-out").output);
    REQUIRE(ids.size() == kDigestUsers);
    CHECK(ids_in(output["events"]) == ids);
    std::vector<std::string> expected_keys = {"digest-u_ada-2030-01-01", "digest-u_grace-2030-01-01",
                                              "digest-u_alan-2030-01-01"};
    for (size_t i = 0; i < ids.size(); ++i) {
      CAPTURE(i);
      CHECK(n.api_get("/v1/events/" + ids[i]).at("sender_id") == expected_keys[i]);
      auto runs = n.t.runs_for_event(ids[i]);
      REQUIRE(runs.size() == 1);
      CHECK(runs[0].snapshot().function_id == "send-user-digest");
      CHECK(runs[0].status() == RunStatus::completed);
      CHECK(runs[0].output()["date"] == "2030-01-01");
    }
    CHECK(n.runs_of("send-user-digest").size() == kDigestUsers);
    int fan_outs = 0;
    for (const auto& entry : run.journal()) fan_outs += entry["step"] == "fan-out";
    CHECK(fan_outs == 1);  // one record: the events and the step's result in one commit

    CHECK(n.emails_per_address() ==
          std::map<std::string, int>{{"ada@example.com", 1}, {"alan@example.com", 1}, {"grace@example.com", 1}});
    for (const auto& e : n.outbox.emails()) {
      CAPTURE(e.to);
      CHECK(e.subject == "Your daily digest for 2030-01-01");
      CHECK(e.tag == "digest");
      if (e.to == "ada@example.com") {
        CHECK(e.body ==
              "Good morning Ada,\n\nhere is your digest for 2030-01-01:\n\n"
              "- cpp: https://news.example.com/cpp/2030-01-01\n"
              "- sqlite: https://news.example.com/sqlite/2030-01-01\n\n"
              "You get this e-mail every day at 08:00 (Europe/Paris). Unsubscribe: https://news.example.com/settings\n");
      }
      if (e.to == "alan@example.com") {
        CHECK(e.body.find("Good morning alan@example.com,") == 0);
        CHECK(e.body.find("- nothing yet: choose your topics at https://news.example.com/settings\n") != std::string::npos);
      }
    }
  }

  TEST_CASE("every morning sends that day's digest: e-mails are users x days, and earlier fan-outs stay as recorded") {
    Newsletter n(kJan1At0500Z);
    n.t.advance(2h);
    std::vector<std::string> first_ids = ids_in(n.runs_of("daily-digest").at(0).step("fan-out").output);

    for (int day = 2; day <= 4; ++day) {
      CAPTURE(day);
      n.t.advance(24h - 1ms);
      CHECK(n.runs_of("daily-digest").size() == static_cast<size_t>(day - 1));
      n.t.advance(1ms);
      auto digests = n.runs_of("daily-digest");
      REQUIRE(digests.size() == static_cast<size_t>(day));
      std::string date = fmt::format("2030-01-0{}", day);
      CHECK(digests.back().output()["date"] == date);
      CHECK(digests.back().output()["time_utc"] == date + "T07:00:00Z");
      CHECK(n.outbox.emails().size() == kDigestUsers * day);
      CHECK(n.runs_of("send-user-digest").size() == kDigestUsers * day);
      for (const auto& [to, count] : n.emails_per_address()) {
        CAPTURE(to);
        CHECK(count == day);
      }
      // The first day's run is finished: its fan-out reads the same ids, and started no more runs.
      CHECK(ids_in(digests.front().step("fan-out").output) == first_ids);
      for (const auto& id : first_ids) CHECK(n.t.runs_for_event(id).size() == 1);
    }
  }

  TEST_CASE("a second digest of the same day e-mails nobody twice") {
    Newsletter n(kJan1At0500Z);
    SUBCASE("requested by hand after the 08:00 digest") {
      n.t.advance(3h);  // 09:00 in Paris
      REQUIRE(n.outbox.emails().size() == kDigestUsers);
      auto again = n.t.trigger({.name = daily_digest::kRequestedEvent});
      REQUIRE(again.status() == RunStatus::completed);
      CHECK(again.output()["date"] == "2030-01-01");
      std::vector<std::string> ids = ids_in(again.step("fan-out").output);
      REQUIRE(ids.size() == kDigestUsers);
      for (const auto& id : ids) {
        CHECK(n.api_get("/v1/events/" + id).at("duplicate") == true);
        CHECK(n.t.runs_for_event(id).empty());
      }
    }
    SUBCASE("requested by hand at 06:30, before the 08:00 digest") {
      n.t.advance(30min);
      auto early = n.t.trigger({.name = daily_digest::kRequestedEvent});
      CHECK(early.output()["date"] == "2030-01-01");
      CHECK(early.output()["time_local"] == "2030-01-01 06:30 CET");
      REQUIRE(n.outbox.emails().size() == kDigestUsers);
      n.t.advance(90min);  // the tick
      auto digests = n.runs_of("daily-digest");
      REQUIRE(digests.size() == 2);
      CHECK(digests.back().status() == RunStatus::completed);
      for (const auto& id : ids_in(digests.back().output()["events"])) CHECK(n.t.runs_for_event(id).empty());
    }
    CHECK(n.runs_of("send-user-digest").size() == kDigestUsers);
    CHECK(n.outbox.emails().size() == kDigestUsers);

    n.t.advance(24h);  // the next day is a new digest
    CHECK(n.outbox.emails().size() == 2 * kDigestUsers);
  }

  TEST_CASE("the tick stays at 08:00 in Paris across the switch to summer time: 07:00 UTC, then 06:00 UTC") {
    Newsletter n(kMar30At0500Z);
    n.t.advance(2h);
    auto digests = n.runs_of("daily-digest");
    REQUIRE(digests.size() == 1);
    CHECK(digests[0].output()["time_utc"] == "2030-03-30T07:00:00Z");
    CHECK(digests[0].output()["time_local"] == "2030-03-30 08:00 CET");

    n.t.advance(23h - 1ms);  // 2030-03-31T05:59:59.999Z, 07:59:59.999 in Paris (CEST, UTC+2)
    CHECK(n.runs_of("daily-digest").size() == 1);
    n.t.advance(1ms);
    digests = n.runs_of("daily-digest");
    REQUIRE(digests.size() == 2);
    CHECK(digests[1].output()["date"] == "2030-03-31");
    CHECK(digests[1].output()["time_utc"] == "2030-03-31T06:00:00Z");
    CHECK(digests[1].output()["time_local"] == "2030-03-31 08:00 CEST");
    CHECK(n.outbox.emails().size() == 2 * kDigestUsers);
  }

  TEST_CASE("the users file is read at each digest, and a user who opts out gets no more e-mails") {
    Newsletter n(kJan1At0500Z);
    n.t.advance(2h);
    auto users = test_users();
    users[0].digest = false;                                                        // Ada opts out
    users[3].digest = true;                                                         // Linus opts in
    users.push_back({.id = "u_barbara", .name = "Barbara", .email = "barbara@example.com", .topics = {"clu"}});  // new
    daily_digest::save_users(n.users_file, users);
    n.t.advance(24h);
    CHECK(n.emails_per_address() == std::map<std::string, int>{{"ada@example.com", 1},
                                                              {"alan@example.com", 2},
                                                              {"barbara@example.com", 1},
                                                              {"grace@example.com", 2},
                                                              {"linus@example.com", 1}});
  }

  TEST_CASE("with nobody wanting a digest, the run sends no event and no e-mail") {
    Newsletter n(kJan1At0500Z);
    auto users = test_users();
    for (auto& u : users) u.digest = false;
    daily_digest::save_users(n.users_file, users);
    n.t.advance(2h);
    auto digests = n.runs_of("daily-digest");
    REQUIRE(digests.size() == 1);
    CHECK(digests[0].status() == RunStatus::completed);
    CHECK(digests[0].output()["users"] == 0);
    CHECK(digests[0].step("fan-out").output == nlohmann::json::array());
    CHECK(n.runs_of("send-user-digest").empty());
    CHECK(n.outbox.emails().empty());
  }

  TEST_CASE("while the mail server is down each user's send-email is retried, and each user still gets one e-mail") {
    // The outbox's directory does not exist yet: every send fails, as with a mail server down.
    Newsletter n(kJan1At0500Z, "mail/outbox.jsonl");
    n.t.advance(2h);
    REQUIRE(n.runs_of("daily-digest").at(0).status() == RunStatus::completed);  // the fan-out is done
    auto per_user = n.runs_of("send-user-digest");
    REQUIRE(per_user.size() == kDigestUsers);
    for (const auto& run : per_user) {
      CHECK(run.status() == RunStatus::queued);  // awaiting its retry
      CHECK(run.step("send-email").status == "retrying");
      CHECK(run.step("send-email").error["message"].get<std::string>().find("cannot append to") != std::string::npos);
    }

    std::filesystem::create_directory(n.dir.file("mail"));  // the mail server is back
    n.t.advance(1min);  // past the first retry (15 s, plus up to 30 s of jitter)
    for (const auto& run : per_user) {
      CHECK(run.status() == RunStatus::completed);
      CHECK(run.step("build-digest").attempts == 1);  // the retry replayed it from the journal
      CHECK(run.step("send-email").attempts == 2);
    }
    CHECK(n.emails_per_address() ==
          std::map<std::string, int>{{"ada@example.com", 1}, {"alan@example.com", 1}, {"grace@example.com", 1}});
  }
}
