#include "engine/store/sqlite/group_commit.hpp"

#include <fmt/format.h>

#include "engine/base/crash_points.hpp"
#include "engine/base/log.hpp"
#include "engine/base/thread_name.hpp"
#include "engine/store/sqlite/sqlite.hpp"
#include "engine/store/sqlite/wal_checkpointer.hpp"

namespace durable {

namespace {

// In a catch block: rethrows the exception being handled if it is a fatal StoreError, which
// fails the whole batch (and the writer) instead of only the work that threw it.
void rethrow_if_fatal() {
  try {
    throw;
  } catch (const StoreError& e) {
    if (e.is_fatal()) throw;
  } catch (...) {
  }
}

}  // namespace

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
  if (failed_.load(std::memory_order_acquire)) throw failure_->unshared_copy();
  Pending pending;
  pending.work = &work;
  {
    std::unique_lock lock(mu_);
    if (!committing_ && queue_.empty()) {
      // Nobody is writing: commit right here, on the caller's thread. Handing the work to
      // the writer thread and being woken again would add two thread wake-ups to the
      // latency of every step of a lone run. Callers arriving meanwhile queue up for the
      // writer thread as usual.
      committing_ = true;
      lock.unlock();
      Pending* alone[] = {&pending};
      commit_or_fail(alone);
      lock.lock();
      committing_ = false;
      // Wake the writer thread only if it has work: an idle writer woken for nothing after
      // every inline commit would cost a context switch per step.
      bool wake = !queue_.empty() || pausers_ > 0;
      lock.unlock();
      if (wake) cv_.notify_all();
      throw_error(pending);
      return;
    }
    queue_.push_back(&pending);
    queued_.store(queue_.size(), std::memory_order_relaxed);
  }
  cv_.notify_one();
  WakeList list;
  size_t index;
  {
    // Whoever wakes us sets `done` under pending.mu and notifies while still holding it, so
    // once we see `done` nobody touches `pending` again: this frame may end.
    std::unique_lock lock(pending.mu);
    pending.cv.wait(lock, [&] { return pending.done; });
    list = std::move(pending.wake_list);
    index = pending.index;
  }
  // Waking a whole batch one by one would keep the writer busy with futex calls instead of
  // writing: it wakes only the first caller, and every woken caller wakes two more. Only
  // callers still waiting are in the list, so their frames are alive.
  for (size_t child = 2 * index + 1; child <= 2 * index + 2 && child < list->size(); ++child) wake(list, child);
  throw_error(pending);
}

void GroupCommitWriter::throw_error(const Pending& pending) {
  // A copy per caller, sharing not even its message: one exception object rethrown in
  // several threads would be destroyed by whichever released it last, ordered only by
  // libstdc++'s uninstrumented reference count (a ThreadSanitizer report).
  if (pending.store_error) throw pending.store_error->unshared_copy();
  if (pending.error) std::rethrow_exception(pending.error);
}

void GroupCommitWriter::wake(WakeList list, size_t i) {
  Pending* p = (*list)[i];
  std::lock_guard lock(p->mu);
  p->wake_list = std::move(list);
  p->index = i;
  p->done = true;
  p->cv.notify_one();
}

void GroupCommitWriter::pause_writes(const std::function<void()>& fn) {
  {
    std::unique_lock lock(mu_);
    ++pausers_;
    cv_.wait(lock, [&] { return !committing_; });
    --pausers_;
    committing_ = true;
  }
  try {
    fn();
  } catch (...) {
    {
      std::lock_guard lock(mu_);
      committing_ = false;
    }
    cv_.notify_all();
    throw;
  }
  {
    std::lock_guard lock(mu_);
    committing_ = false;
  }
  cv_.notify_all();
}

size_t GroupCommitWriter::queued() const { return queued_.load(std::memory_order_relaxed); }

std::optional<std::string> GroupCommitWriter::failure() const {
  if (!failed_.load(std::memory_order_acquire)) return std::nullopt;
  return failure_text_;  // written before failed_ was set, never again
}

void GroupCommitWriter::fail(const StoreError& cause) { fail_with(cause); }

void GroupCommitWriter::set_failure_listener(std::function<void(const std::string&)> listener) {
  std::lock_guard lock(failure_mu_);
  failure_listener_ = std::move(listener);
}

std::shared_ptr<const StoreError> GroupCommitWriter::fail_with(const StoreError& cause) {
  std::function<void(const std::string&)> listener;
  {
    std::lock_guard lock(failure_mu_);
    if (failed_.load(std::memory_order_relaxed)) return failure_;  // the first cause stands
    failure_text_ = fmt::format("the store stopped writing after an I/O error and the process must be restarted ({})",
                                cause.what());
    failure_ = std::make_shared<const StoreError>(StoreError::Kind::fatal, failure_text_, cause.code());
    failed_.store(true, std::memory_order_release);
    listener = failure_listener_;
  }
  log(LogLevel::error, "store failed: every write is refused until the process restarts",
      {{"error", cause.what()}, {"code", std::to_string(cause.code())}});
  if (listener) listener(failure_text_);
  return failure_;
}

void GroupCommitWriter::set_wal_checkpointer(WalCheckpointer* checkpointer) {
  std::unique_lock lock(mu_);
  ++pausers_;  // so that whoever is committing wakes us when done
  cv_.wait(lock, [&] { return !committing_; });
  --pausers_;
  wal_ = checkpointer;
}

void GroupCommitWriter::loop() {
  name_this_thread("durable-writer");
  std::vector<Pending*> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !committing_ && (stopping_ || !queue_.empty()); });
      if (queue_.empty()) return;  // stopping, and nothing left to write
      committing_ = true;
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      queued_.store(queue_.size(), std::memory_order_relaxed);
    }
    commit_or_fail(batch);
    bool pausers;
    {
      std::lock_guard lock(mu_);
      committing_ = false;
      pausers = pausers_ > 0;
    }
    if (pausers) cv_.notify_all();  // a pause_writes() waiting for its turn
    wake(std::make_shared<std::vector<Pending*>>(batch.begin(), batch.end()), 0);
    batch.clear();
  }
}

void GroupCommitWriter::commit_or_fail(std::span<Pending*> batch) {
  std::unique_lock<std::mutex> shared;
  if (db_mu_) shared = std::unique_lock(*db_mu_);
  if (failed_.load(std::memory_order_acquire)) {
    // Work queued before the failure: refused like every write after it. Its callers have
    // not been answered yet, so nothing is acknowledged after the failure.
    for (Pending* p : batch) p->store_error = failure_;
    return;
  }
  try {
    // Back-pressure: the WAL's bound is checked before each transaction (one atomic load),
    // and enforced by checkpointing here, with every writer of this process waiting, when
    // the checkpoint thread has not kept up.
    if (wal_ && wal_->over_limit()) wal_->make_room();
    commit_batch(batch);
  } catch (...) {
    // BEGIN, COMMIT or a savepoint failed (busy past every retry, I/O error, disk full), or
    // work hit a fatal error: nothing in this batch committed.
    auto error = std::current_exception();
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
      // No transaction was open, or SQLite already rolled it back.
    }
    std::shared_ptr<const StoreError> store_error;
    try {
      std::rethrow_exception(error);
    } catch (const StoreError& e) {
      // Set before any caller of this batch is woken: a caller that learns of the failure
      // can never see a later write acknowledged.
      store_error = e.is_fatal() ? fail_with(e) : std::make_shared<const StoreError>(e.unshared_copy());
    } catch (...) {
    }
    for (Pending* p : batch) {
      if (store_error) {
        p->store_error = store_error;
      } else {
        p->error = error;
      }
    }
  }
}

void GroupCommitWriter::commit_batch(std::span<Pending*> batch) {
  // Fast path: every caller's work straight into one transaction. Work that throws usually
  // throws before it changes anything (a refused fencing check is a return value, not an
  // exception), but not always, so one failure sends the whole batch down the slow path:
  // roll back, and run each caller's work again inside its own savepoint, so that only the
  // failing work is lost. Every piece of work may run twice; each sets its results afresh.
  begin();
  bool failed = false;
  for (Pending* p : batch) {
    try {
      (*p->work)(db_);
    } catch (...) {
      rethrow_if_fatal();
      failed = true;
      break;
    }
  }
  size_t succeeded = batch.size();
  if (failed) {
    db_.cached("ROLLBACK").exec();
    begin();
    succeeded = 0;
    for (Pending* p : batch) {
      db_.cached("SAVEPOINT work").exec();
      try {
        (*p->work)(db_);
        db_.cached("RELEASE work").exec();
        ++succeeded;
      } catch (...) {
        rethrow_if_fatal();
        p->error = std::current_exception();
        db_.cached("ROLLBACK TO work").exec();
        db_.cached("RELEASE work").exec();
      }
    }
  }
  crash_point(CrashPoint::before_commit);
  db_.cached("COMMIT").exec();
  crash_point(CrashPoint::after_commit);  // durable, and no caller told yet
  commits_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(succeeded, std::memory_order_relaxed);
}

void GroupCommitWriter::begin() {
  // The busy timeout already waits for other processes; a few more tries cover a writer
  // elsewhere that holds the lock for longer than that.
  for (int tries = 0;; ++tries) {
    try {
      db_.cached("BEGIN IMMEDIATE").exec();
      return;
    } catch (const StoreError& e) {
      if (!is_sqlite_busy(e) || tries == 2) throw;
    }
  }
}

}  // namespace durable
