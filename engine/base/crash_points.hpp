// Crash points: named places in the engine where a test can make the process die, to check
// that recovery from a crash at exactly that place loses and repeats nothing. A process started
// with DURABLE_CRASH_AT=<point>:<n> kills itself with SIGKILL the n-th time (from 1) any of its
// threads reaches `crash_point(<point>)`; every other point, and every point of a process
// started without it, costs one relaxed atomic load.
//
//   DURABLE_CRASH_AT=after_commit:25 ./crash_worker ...   # dies right after its 25th COMMIT
//
// Before dying it writes "durable: crash point <point> reached (<n>), SIGKILL" to stderr, so
// that whoever started it can tell the crash from a kill of its own. A malformed value, or a
// name that is not a point, stops the process at start with a message (a typo would otherwise
// make a crash test pass without crashing anything). Used by the crash torture
// (tests/torture/, docs/operations.md "Crash torture"); never set it in production.
#pragma once

#include <atomic>
#include <optional>
#include <string_view>

namespace durable {

// The points, in the order a commit meets them. Enumerators equal their names.
enum class CrashPoint {
  // SqliteStore::ingest: the events of a request and the runs they start are inserted in the
  // write transaction, which has not committed; nobody has been answered.
  ingest_after_insert,
  // SqliteStore::commit/commit_wait: in the write transaction, before a run's journal entries
  // (and its status change) are written.
  before_journal_write,
  // The same, after they are written; the transaction has not committed.
  after_journal_write,
  // GroupCommitWriter, every write transaction (claims, renewals, ingests, commits): just
  // before COMMIT.
  before_commit,
  // Just after COMMIT returned: the transaction is durable, but none of its callers has been
  // told (no HTTP answer, no step told its result is safe).
  after_commit,
  // SqliteStore::recover_expired_leases: expired leases have been requeued (new epochs) in the
  // write transaction, which has not committed. Reached only when some lease had expired.
  recovery_before_commit,
  // Scheduler: the recovery above committed; the recovered runs are queued and not claimed.
  recovery_after_commit,
  // RunExecution::load: a run's journal and event were read from the store (a replay after a
  // recovery, a sleep's end in another incarnation), before the function is called.
  replay_after_load,
  // RunExecution::begin_step: a replay returned a recorded step's result without running its
  // body, i.e. the execution is in the middle of replaying its journal.
  replay_after_memo_hit,
};

inline constexpr CrashPoint kCrashPoints[] = {
    CrashPoint::ingest_after_insert,    CrashPoint::before_journal_write,  CrashPoint::after_journal_write,
    CrashPoint::before_commit,          CrashPoint::after_commit,          CrashPoint::recovery_before_commit,
    CrashPoint::recovery_after_commit,  CrashPoint::replay_after_load,     CrashPoint::replay_after_memo_hit,
};

std::string_view to_string(CrashPoint point);
// The point named `name`, or nullopt.
std::optional<CrashPoint> parse_crash_point(std::string_view name);

namespace crash_points_detail {
// The armed point's index, or -1. Set once, before main(), from DURABLE_CRASH_AT.
extern std::atomic<int> armed;
// Counts a hit of the armed point; on the n-th, writes the message and SIGKILLs the process.
void reached(CrashPoint point);
}  // namespace crash_points_detail

// Dies here if this is the armed point's n-th hit (see above); otherwise does nothing.
// Thread-safe: exactly one hit is the n-th.
inline void crash_point(CrashPoint point) {
  if (crash_points_detail::armed.load(std::memory_order_relaxed) == static_cast<int>(point)) [[unlikely]] {
    crash_points_detail::reached(point);
  }
}

}  // namespace durable
