#include "engine/wal_checkpointer.hpp"

#include <sqlite3.h>

#include "engine/log.hpp"
#include "engine/sqlite.hpp"
#include "engine/thread_name.hpp"

namespace durable {

WalCheckpointer::WalCheckpointer(SqliteDb& writer, const std::string& path,
                                 std::function<void(const std::function<void()>&)> pause_writes, int threshold_frames)
    : writer_(writer), path_(path), pause_writes_(std::move(pause_writes)), threshold_frames_(threshold_frames) {
  thread_ = std::thread([this] { loop(); });
  // Replaces the automatic checkpoint, which SQLite implements with this same hook.
  sqlite3_wal_hook(writer_.handle(), &WalCheckpointer::on_commit, this);
}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_hook(writer_.handle(), nullptr, nullptr);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

uint64_t WalCheckpointer::checkpoints() const {
  std::lock_guard lock(mu_);
  return checkpoints_;
}

int WalCheckpointer::on_commit(void* self, sqlite3*, const char*, int frames) {
  // Runs on the writer thread inside COMMIT: only signal.
  auto* c = static_cast<WalCheckpointer*>(self);
  if (frames >= c->threshold_frames_) {
    {
      std::lock_guard lock(c->mu_);
      c->wanted_ = true;
    }
    c->cv_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::loop() {
  name_this_thread("durable-ckpt");
  std::unique_ptr<SqliteDb> db;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return wanted_ || stopping_; });
      if (stopping_ && !wanted_) break;
      wanted_ = false;
    }
    try {
      if (!db) {
        db = std::make_unique<SqliteDb>(path_, std::chrono::seconds(5));
        // A connection finds out the database is in WAL mode only when it first reads it;
        // until then a checkpoint on it does nothing at all.
        db->exec("SELECT count(*) FROM sqlite_master");
      }
      // PASSIVE copies what it can without waiting for readers or blocking the writer.
      int log_frames = 0, done_frames = 0;
      auto passive = [&] {
        check(db->handle(), sqlite3_wal_checkpoint_v2(db->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                                     &log_frames, &done_frames));
      };
      passive();
      // A pause costs every writer of this process the catch-up's copy and fsync, so it is
      // kept for when the WAL keeps growing: in a lull between commits, the next write
      // after a complete pass starts the WAL over by itself. (That the pass copied every
      // frame it saw says nothing: frames keep arriving while it runs.)
      if (log_frames >= kPauseFactor * threshold_frames_) pause_writes_(passive);
      std::lock_guard lock(mu_);
      ++checkpoints_;
    } catch (const StoreError& e) {
      // Busy: another process sharing the database is checkpointing it right now.
      if (!e.is_busy()) log(LogLevel::warn, "WAL checkpoint failed; will try again after the next commits", {{"error", e.what()}});
    } catch (const std::exception& e) {
      log(LogLevel::warn, "WAL checkpoint failed; will try again after the next commits", {{"error", e.what()}});
    }
  }
}

}  // namespace durable
