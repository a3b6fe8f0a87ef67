// Group commit: one thread owns a database's write connection and commits the work of many
// callers together. A caller hands over its work and blocks until the transaction that holds
// it has committed; while one transaction commits (and fsyncs), the work arriving meanwhile
// queues up and goes into the next one. The fsync cost is shared by everyone in a batch, so
// throughput grows with the number of concurrent callers. When nothing is being written, a
// caller commits its work itself, which spares a lone caller two thread wake-ups.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <condition_variable>
#include <thread>
#include <vector>

namespace durable {

class SqliteDb;

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
  void write(const std::function<void(SqliteDb&)>& work);

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

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  std::thread thread_;          // last: starts after everything above is ready
};

}  // namespace durable
