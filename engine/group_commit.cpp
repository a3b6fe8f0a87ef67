#include "engine/group_commit.hpp"

#include "engine/sqlite.hpp"

namespace durable {

GroupCommitWriter::GroupCommitWriter(SqliteDb& db, std::mutex* db_mu, size_t max_batch)
    : db_(db), db_mu_(db_mu), max_batch_(max_batch), thread_([this] { loop(); }) {}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void GroupCommitWriter::write(const std::function<void(SqliteDb&)>& work) {
  Pending pending{&work, nullptr};
  {
    std::lock_guard lock(mu_);
    queue_.push_back(&pending);
  }
  cv_.notify_one();
  // The writer sets `done` after the commit and never touches `pending` again: it may then
  // leave this stack frame.
  pending.done.wait(0, std::memory_order_acquire);
  if (pending.error) std::rethrow_exception(pending.error);
}

void GroupCommitWriter::loop() {
  std::deque<Pending*> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to write
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    {
      std::unique_lock<std::mutex> shared;
      if (db_mu_) shared = std::unique_lock(*db_mu_);
      try {
        commit_batch(batch);
      } catch (...) {
        // A savepoint statement itself failed (I/O error, disk full): nothing in this batch
        // can be trusted to have committed.
        auto error = std::current_exception();
        try {
          db_.exec("ROLLBACK");
        } catch (...) {
        }
        for (Pending* p : batch) p->error = error;
      }
    }
    for (Pending* p : batch) {
      p->done.store(1, std::memory_order_release);
      p->done.notify_one();
    }
    batch.clear();
  }
}

void GroupCommitWriter::commit_batch(std::deque<Pending*>& batch) {
  try {
    // The busy timeout already waits for other processes; a few more tries cover a writer
    // elsewhere that holds the lock for longer than that.
    for (int tries = 0;; ++tries) {
      try {
        db_.cached("BEGIN IMMEDIATE").exec();
        break;
      } catch (const StoreError& e) {
        if (!e.is_busy() || tries == 2) throw;
      }
    }
  } catch (...) {
    for (Pending* p : batch) p->error = std::current_exception();
    return;
  }
  size_t succeeded = 0;
  for (Pending* p : batch) {
    db_.cached("SAVEPOINT work").exec();
    try {
      (*p->work)(db_);
      db_.cached("RELEASE work").exec();
      ++succeeded;
    } catch (...) {
      p->error = std::current_exception();
      db_.cached("ROLLBACK TO work").exec();
      db_.cached("RELEASE work").exec();
    }
  }
  try {
    db_.cached("COMMIT").exec();
  } catch (...) {
    auto error = std::current_exception();
    try {
      db_.cached("ROLLBACK").exec();
    } catch (...) {
      // The transaction is already gone (SQLite rolls back on some commit failures).
    }
    for (Pending* p : batch) p->error = error;
    return;
  }
  commits_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(succeeded, std::memory_order_relaxed);
}

}  // namespace durable
