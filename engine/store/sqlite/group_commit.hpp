// Group commit: one thread owns a database's write connection and commits the work of many
// callers together. A caller hands over its work and blocks until the transaction that holds
// it has committed; while one transaction commits (and fsyncs), the work arriving meanwhile
// queues up and goes into the next one. The fsync cost is shared by everyone in a batch, so
// throughput grows with the number of concurrent callers. When nothing is being written, a
// caller commits its work itself, which spares a lone caller two thread wake-ups.
//
// Fail-stop: the first fatal StoreError (StoreError::is_fatal: a failed fsync, any I/O error)
// in a transaction, or reported by fail(), puts the writer in a failed state for good: that
// transaction's callers and every later write get a StoreError saying the store stopped and
// the process must be restarted. After a failed fsync the kernel may have dropped the pages
// it could not write, so nothing written afterwards could be trusted to be on disk; recovery
// after a restart reads only what is.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <condition_variable>
#include <thread>
#include <vector>

namespace durable {

class SqliteDb;
class StoreError;
class WalCheckpointer;

class GroupCommitWriter {
 public:
  // Writes to `db`, which the writer thread uses exclusively, except that it holds `db_mu`
  // (when given) during each transaction, for connections shared with readers (":memory:").
  // At most `max_batch` callers' work goes into one transaction.
  GroupCommitWriter(SqliteDb& db, std::mutex* db_mu, size_t max_batch = 512);
  // Finishes the work already handed over, then stops the thread.
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Runs `work` inside a write transaction (BEGIN IMMEDIATE) shared with other callers, and
  // returns once that transaction has committed. If `work` throws, its own changes are rolled
  // back, the others' are kept, and the exception is rethrown here. `work` may be run more
  // than once (after another caller's work threw, the batch is redone): it must set its
  // results afresh each time. If the transaction cannot begin or commit, every caller in it
  // gets the StoreError. Thread-safe; must not be called from inside `work`.
  // Once the writer has failed (see failure()), throws that StoreError without running
  // `work`. May wait for a checkpoint first when the WAL is at its bound (WalCheckpointer).
  void write(const std::function<void(SqliteDb&)>& work);

  // Why the writer stopped ("the store stopped writing after an I/O error ..."), or nullopt
  // while it works. Thread-safe; one atomic load while it works.
  std::optional<std::string> failure() const;
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Puts the writer in the failed state because of `cause` (which must be fatal), unless it
  // failed already; for failures found beside it (a checkpoint's fsync). Thread-safe.
  void fail(const StoreError& cause);
  // Called once, on the thread that found the failure, after the state is set: the engine
  // stops the process. Set before the first write.
  void set_failure_listener(std::function<void(const std::string& failure)> listener);

  // Before each transaction, while `checkpointer->over_limit()`, the thread about to commit
  // runs `checkpointer->make_room()` (back-pressure: the WAL does not grow past its bound).
  // Waits for a transaction in progress to end; nullptr detaches. The checkpointer must stay
  // alive until it is detached.
  void set_wal_checkpointer(WalCheckpointer* checkpointer);

  // Runs `fn` while no write of this writer is in progress, holding new ones back until it
  // returns (the WAL checkpointer's catch-up). Thread-safe; `fn` must not call write().
  void pause_writes(const std::function<void()>& fn);

  // Work handed over and not yet taken into a transaction.
  size_t queued() const;

  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  // One caller's work, on the caller's stack until `done`. A mutex and condition variable
  // per caller, not std::atomic::wait: libstdc++ spins with sched_yield before it sleeps,
  // and dozens of waiting workers spinning starve the writer thread of CPU.
  struct Pending;
  using WakeList = std::shared_ptr<std::vector<Pending*>>;
  struct Pending {
    const std::function<void(SqliteDb&)>* work;
    // What the caller throws: a StoreError of the whole batch (each caller throws its own
    // copy), or the exception its own work threw.
    std::shared_ptr<const StoreError> store_error;
    std::exception_ptr error;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;    // guarded by mu
    WakeList wake_list;   // guarded by mu: the committed batch, set with done
    size_t index = 0;     // guarded by mu: this caller's place in wake_list
  };

  // Sets (*list)[i] done and wakes it; it then wakes its children 2i+1 and 2i+2.
  static void wake(WakeList list, size_t i);

  void loop();
  // Commits the batch's work; sets `error` on work that threw, and on all of it when the
  // transaction fails. Only the holder of committing_ calls it.
  void commit_or_fail(std::span<Pending*> batch);
  // Commits the batch's work; sets `error` on work that threw. Throws when the transaction
  // itself fails.
  void commit_batch(std::span<Pending*> batch);
  void begin();
  // Sets the failed state from `cause` (fatal) if not set yet; returns the error every caller
  // gets from now on.
  std::shared_ptr<const StoreError> fail_with(const StoreError& cause);
  // Throws what `pending` failed with, if anything.
  static void throw_error(const Pending& pending);

  SqliteDb& db_;
  std::mutex* db_mu_;
  const size_t max_batch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // work queued, stopping, or committing_ cleared
  std::deque<Pending*> queue_;  // guarded by mu_
  std::atomic<size_t> queued_{0};  // queue_.size(), readable without mu_ (written under it)
  bool committing_ = false;     // guarded by mu_: a thread (the writer, or a caller) is using db_
  int pausers_ = 0;             // guarded by mu_: pause_writes() calls waiting for their turn
  bool stopping_ = false;       // guarded by mu_
  WalCheckpointer* wal_ = nullptr;  // set under mu_ while !committing_; read by the committer

  // The failed state. failure_ is written once, under failure_mu_, before failed_ becomes
  // true (release); it is read only after failed_ was seen true (acquire).
  std::atomic<bool> failed_{false};
  std::mutex failure_mu_;
  std::shared_ptr<const StoreError> failure_;
  std::string failure_text_;
  std::function<void(const std::string&)> failure_listener_;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  std::thread thread_;          // last: starts after everything above is ready
};

}  // namespace durable
