// Group commit: one thread owns a database's write connection and commits the work of many
// callers together. A caller hands over its work and blocks until the transaction that holds
// it has committed; while one transaction commits (and fsyncs), the work arriving meanwhile
// queues up and goes into the next one. The fsync cost is shared by everyone in a batch, so
// throughput grows with the number of concurrent callers.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <condition_variable>
#include <thread>

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
  // back (it runs inside a savepoint), the others' are kept, and the exception is rethrown
  // here. If the transaction cannot begin or commit, every caller in it gets the StoreError.
  // Thread-safe; must not be called from inside `work`.
  void write(const std::function<void(SqliteDb&)>& work);

  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    const std::function<void(SqliteDb&)>* work;
    std::exception_ptr error;
    std::atomic<int> done{0};
  };

  void loop();
  void commit_batch(std::deque<Pending*>& batch);

  SqliteDb& db_;
  std::mutex* db_mu_;
  const size_t max_batch_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  std::thread thread_;          // last: starts after everything above is ready
};

}  // namespace durable
