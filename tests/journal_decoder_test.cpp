// Decoding a journal into what a replay reads (engine/exec/journal_decoder.hpp): the memo tables of
// a well-formed journal, run_resumed's fresh attempts, and one error type, naming the entry,
// for every malformed payload.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/exec/journal_decoder.hpp"

using namespace durable;
using nlohmann::json;

namespace {

// The journal `entries` numbered from 0.
std::vector<JournalEntry> journal(std::vector<JournalEntry> entries) {
  for (size_t i = 0; i < entries.size(); ++i) entries[i].seq = static_cast<int64_t>(i);
  return entries;
}

JournalEntry entry(JournalKind kind, std::string key, std::string payload, std::optional<int> attempt = std::nullopt) {
  return JournalEntry{.kind = kind, .step_key = std::move(key), .attempt = attempt, .payload = std::move(payload)};
}

const JournalEntry kStarted = entry(JournalKind::run_started, "", "{}");

// The message of the CorruptJournalError that decoding `entries` (after run_started) throws.
std::string corruption(std::vector<JournalEntry> entries) {
  entries.insert(entries.begin(), kStarted);
  try {
    decode_journal(journal(entries));
  } catch (const CorruptJournalError& e) {
    CHECK(e.seq() == static_cast<int64_t>(entries.size()) - 1);
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("journal_decoder") {
  TEST_CASE("a journal decodes into outputs, errors, attempts, sleeps, waits and the order of its steps") {
    JournalMemo memo = decode_journal(journal({
        entry(JournalKind::run_started, "", R"({"replay_of":"r0","from_step":"b","copied":1})"),
        entry(JournalKind::step_completed, "a", R"({"n":1})"),
        entry(JournalKind::step_failed, "b", R"({"error":{"name":"E","message":"m"},"retry_at":5})", 0),
        entry(JournalKind::step_failed, "b", R"({"error":{"name":"E","message":"m"},"final":true})", 1),
        entry(JournalKind::sleep_scheduled, "nap", R"({"until":1893456000000})"),
        entry(JournalKind::wait_started, "w", R"({"event":"x","match":"","if":"","since":1,"until":2})"),
        entry(JournalKind::wait_resolved, "w", R"({"event_id":"e1","event":{"name":"x","data":{"status":3}}})"),
        entry(JournalKind::wait_started, "child",
              R"({"invoke":{"function":"f","run_id":"r2"},"event":"durable/function.finished","since":1,"until":2})"),
        entry(JournalKind::wait_resolved, "child", R"({"timeout":true})"),
        entry(JournalKind::body_failed, "", R"({"error":{"name":"E","message":"m"},"retry_at":9})", 0),
    }));
    CHECK(memo.started["replay_of"] == "r0");
    CHECK(memo.copied == 1);
    CHECK(memo.outputs.at("a") == json{{"n", 1}});
    CHECK(memo.failed_attempts.at("b") == 2);
    CHECK(memo.final_errors.at("b") == json{{"name", "E"}, {"message", "m"}});
    CHECK(memo.sleeps.at("nap") == from_millis(1893456000000));
    CHECK(memo.waits.at("w")["since"] == 1);
    CHECK(memo.resolved.at("w")["event_id"] == "e1");
    CHECK(memo.resolved.at("child")["timeout"] == true);
    CHECK(memo.body_failures == 1);
    CHECK_FALSE(memo.finished);
    CHECK(memo.order == std::vector<std::string>{"a", "b", "nap", "w", "child"});
    CHECK(memo.kinds.at("b") == StepKind::run);
    CHECK(memo.kinds.at("nap") == StepKind::sleep);
    CHECK(memo.kinds.at("w") == StepKind::wait_for_event);
    CHECK(memo.kinds.at("child") == StepKind::invoke);
  }

  TEST_CASE("run_resumed clears final errors, attempts and body failures, and unfinishes the run") {
    std::vector<JournalEntry> entries{
        kStarted,
        entry(JournalKind::step_completed, "a", "1"),
        entry(JournalKind::step_failed, "b", R"({"error":{"name":"E","message":"m"},"final":true})", 3),
        entry(JournalKind::run_failed, "", R"({"name":"E","message":"m","step":"b"})"),
    };
    JournalMemo failed = decode_journal(journal(entries));
    CHECK(failed.finished);
    CHECK(failed.final_errors.count("b") == 1);
    entries.push_back(entry(JournalKind::run_resumed, "", "{}"));
    JournalMemo resumed = decode_journal(journal(entries));
    CHECK_FALSE(resumed.finished);
    CHECK(resumed.final_errors.empty());
    CHECK(resumed.failed_attempts.empty());
    CHECK(resumed.outputs.at("a") == 1);
  }

  TEST_CASE("a malformed entry throws CorruptJournalError naming it and what is wrong") {
    CHECK(corruption({entry(JournalKind::step_completed, "a", "{nope")}) ==
          "corrupt journal entry 1 (step 'a'): the payload is not JSON");
    CHECK(corruption({entry(JournalKind::step_completed, "", "1")}) ==
          "corrupt journal entry 1: a step entry without a step key");
    CHECK(corruption({entry(JournalKind::sleep_scheduled, "nap", R"({"until":"soon"})")}) ==
          R"(corrupt journal entry 1 (step 'nap'): "until" must be an integer)");
    CHECK(corruption({entry(JournalKind::sleep_scheduled, "nap", R"({"until":1e300})")}).ends_with("must be an integer"));
    CHECK(corruption({entry(JournalKind::sleep_scheduled, "nap", "[1]")}).ends_with("the payload is not a JSON object"));
    CHECK(corruption({entry(JournalKind::step_failed, "b", R"({"final":"yes"})", 0)})
              .ends_with(R"("final" must be true or false)"));
    CHECK(corruption({entry(JournalKind::step_failed, "b", R"({"final":true})", 0)})
              .ends_with(R"(a final failure without "error")"));
    CHECK(corruption({entry(JournalKind::step_failed, "b", R"({"error":"boom","final":true})", 0)})
              .ends_with(R"("error" must be a JSON object)"));
    CHECK(corruption({entry(JournalKind::step_failed, "b", R"({"error":{"name":7},"final":true})", 0)})
              .ends_with(R"("error.name" must be a string)"));
    CHECK(corruption({entry(JournalKind::step_failed, "b", "{}", 2147483647)}).ends_with("attempt 2147483647 is out of range"));
    CHECK(corruption({entry(JournalKind::step_failed, "b", "{}", -1)}).ends_with("attempt -1 is out of range"));
    CHECK(corruption({entry(JournalKind::wait_started, "w", R"({"since":1})")}).ends_with(R"("until" must be an integer)"));
    CHECK(corruption({entry(JournalKind::wait_started, "w", R"({"since":1,"until":2,"invoke":{"function":"f"}})")})
              .ends_with(R"("invoke" needs "function" and "run_id")"));
    CHECK(corruption({entry(JournalKind::wait_resolved, "w", R"({"timeout":true})")})
              .ends_with("the wait is resolved but never started"));
    JournalEntry invoke = entry(JournalKind::wait_started, "c", R"({"invoke":{"function":"f","run_id":"r"},"since":1,"until":2})");
    CHECK(corruption({invoke, entry(JournalKind::wait_resolved, "c", R"({"event":{"name":"x"}})")})
              .ends_with(R"("event.data" is missing)"));
    CHECK(corruption({invoke, entry(JournalKind::wait_resolved, "c", R"({"event":{"data":{"status":1}}})")})
              .ends_with(R"("event.data.status" must be a string)"));
    CHECK(corruption({invoke, entry(JournalKind::wait_resolved, "c", R"({"event":{"data":{"error":[]}}})")})
              .ends_with(R"("event.data.error" must be a JSON object)"));
    CHECK(corruption({invoke, entry(JournalKind::wait_resolved, "c", R"({"timeout":1})")})
              .ends_with(R"("timeout" must be true or false)"));
    CHECK(corruption({invoke, entry(JournalKind::wait_resolved, "c", R"({"event":null})")})
              .ends_with(R"("event" must be a JSON object)"));
    CHECK_THROWS_AS(decode_journal(journal({entry(JournalKind::run_started, "", R"({"copied":5})")})),
                    CorruptJournalError);
    CHECK_THROWS_AS(decode_journal(journal({entry(JournalKind::run_started, "", R"({"copied":-1})")})),
                    CorruptJournalError);
    CHECK_THROWS_AS(decode_journal(journal({entry(JournalKind::run_started, "", R"({"failure":{"step":1}})")})),
                    CorruptJournalError);
    CHECK_THROWS_AS(decode_journal(journal({entry(JournalKind::run_started, "", "null")})), CorruptJournalError);
  }

  TEST_CASE("payloads the replay does not read are not decoded") {
    JournalMemo memo = decode_journal(journal({kStarted, entry(JournalKind::run_completed, "", "not json"),
                                               entry(JournalKind::body_failed, "", "")}));
    CHECK(memo.finished);
    CHECK(memo.body_failures == 1);
  }
}
