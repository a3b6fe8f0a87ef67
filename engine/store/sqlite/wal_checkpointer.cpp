#include "engine/store/sqlite/wal_checkpointer.hpp"

#include <sqlite3.h>

#include <fmt/format.h>

#include "engine/base/log.hpp"
#include "engine/base/thread_name.hpp"
#include "engine/store/sqlite/group_commit.hpp"
#include "engine/store/sqlite/sqlite.hpp"

namespace durable {

WalCheckpointer::WalCheckpointer(SqliteDb& writer_db, GroupCommitWriter& writer, const std::string& path,
                                 WalCheckpointerOptions options)
    : writer_db_(writer_db), writer_(writer), path_(path), options_(std::move(options)) {
  thread_ = std::thread([this] { loop(); });
  // Replaces the automatic checkpoint, which SQLite implements with this same hook.
  sqlite3_wal_hook(writer_db_.handle(), &WalCheckpointer::on_commit, this);
  writer_.set_wal_checkpointer(this);
}

WalCheckpointer::~WalCheckpointer() {
  writer_.set_wal_checkpointer(nullptr);  // waits for a transaction in progress
  sqlite3_wal_hook(writer_db_.handle(), nullptr, nullptr);
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
  // Runs on the writer thread inside COMMIT: only record and signal.
  auto* c = static_cast<WalCheckpointer*>(self);
  c->frames_.store(frames, std::memory_order_relaxed);
  if (frames >= c->options_.threshold_frames) {
    {
      std::lock_guard lock(c->mu_);
      c->wanted_ = true;
    }
    c->cv_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::make_room() {
  // The writer connection has no transaction open, and every other write of this process
  // waits for this one, so RESTART only ever waits for other connections: another process's
  // write and readers whose snapshot still needs the WAL, through the connection's busy
  // handler; and a checkpoint in progress, for which SQLite does not call the busy handler
  // (it answers SQLITE_BUSY at once, without a frame count): this thread's pass is waited for
  // through pass_mu_, another process's by trying again.
  std::lock_guard pass(pass_mu_);
  const auto give_up = std::chrono::steady_clock::now() + kOtherCheckpointWait;
  int rc;
  int log_frames = -1, done_frames = -1;
  for (;;) {
    rc = sqlite3_wal_checkpoint_v2(writer_db_.handle(), nullptr, SQLITE_CHECKPOINT_RESTART, &log_frames, &done_frames);
    if ((rc & 0xff) != SQLITE_BUSY || log_frames >= 0 || std::chrono::steady_clock::now() > give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if ((rc & 0xff) == SQLITE_BUSY) {
    // frames_ stays over the limit: the next transaction waits again.
    throw sqlite_error(rc, fmt::format("the WAL is at its bound ({} frames) and cannot be checkpointed: a read "
                                     "transaction still uses it (another process?); writes are refused until it ends",
                                     frames_.load(std::memory_order_relaxed)));
  }
  check(writer_db_.handle(), rc);
  // Every frame is in the database and no reader needs the WAL: the next write starts it over
  // (its commit's hook then reports the real count).
  frames_.store(0, std::memory_order_relaxed);
  forced_.fetch_add(1, std::memory_order_relaxed);
  log(LogLevel::info, "WAL at its bound: writes waited for a checkpoint", {{"frames", std::to_string(log_frames)}});
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
    if (options_.before_pass) options_.before_pass();
    // Fail-stop: after an I/O error nothing more is written to the file, checkpoints included.
    if (writer_.failed()) break;
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
        // Never held while waiting for pause_writes (make_room holds it with the writes held).
        std::lock_guard pass(pass_mu_);
        check(db->handle(), sqlite3_wal_checkpoint_v2(db->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                                     &log_frames, &done_frames));
      };
      passive();
      // A pause costs every writer of this process the catch-up's copy and fsync, so it is
      // kept for when the WAL keeps growing: in a lull between commits, the next write
      // after a complete pass starts the WAL over by itself. (That the pass copied every
      // frame it saw says nothing: frames keep arriving while it runs.)
      if (log_frames >= kPauseFactor * options_.threshold_frames) {
        writer_.pause_writes([&] {
          if (!writer_.failed()) passive();
        });
      }
      std::lock_guard lock(mu_);
      ++checkpoints_;
    } catch (const StoreError& e) {
      if (e.is_fatal()) {
        // The database file's fsync failed (or worse): the pages it copied may be lost, and the
        // next write would start the WAL over on top of them.
        writer_.fail(e);
        break;
      }
      // Busy: another process sharing the database is checkpointing it right now.
      if (!is_sqlite_busy(e)) log(LogLevel::warn, "WAL checkpoint failed; will try again after the next commits", {{"error", e.what()}});
    } catch (const std::exception& e) {
      log(LogLevel::warn, "WAL checkpoint failed; will try again after the next commits", {{"error", e.what()}});
    }
  }
}

}  // namespace durable
