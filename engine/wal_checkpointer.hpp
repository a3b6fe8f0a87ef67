// Moves WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the
// COMMIT that pushes the WAL past its threshold, so that one commit (and every caller waiting
// on it) pays for copying the WAL into the database and fsyncing it: a stall of many
// milliseconds. Instead the writer connection only reports the WAL's size after each commit,
// and this thread checkpoints on its own connection: a PASSIVE pass copies the bulk while
// writes go on. Only a complete checkpoint lets the next write start the WAL over from its
// beginning, and under writes that never pause the passes never quite complete, so once the
// WAL has grown to kPauseFactor times the threshold, a second, short pass runs with this
// process's writes held back: it copies the few frames written meanwhile and completes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace durable {

class SqliteDb;

class WalCheckpointer {
 public:
  // Checkpoints the database at `path` whenever a commit on `writer` leaves at least
  // `threshold_frames` frames in the WAL. Installs a WAL hook on `writer` (replacing SQLite's
  // automatic checkpoint); `writer` must outlive this object.
  // `pause_writes(fn)` runs fn with this process's writes held back (GroupCommitWriter).
  WalCheckpointer(SqliteDb& writer, const std::string& path,
                  std::function<void(const std::function<void()>&)> pause_writes, int threshold_frames = 2000);
  // Runs a last checkpoint and stops the thread.
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  uint64_t checkpoints() const;

 private:
  static constexpr int kPauseFactor = 2;
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
  void loop();

  SqliteDb& writer_;
  const std::string path_;
  const std::function<void(const std::function<void()>&)> pause_writes_;
  const int threshold_frames_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;      // guarded by mu_: the WAL passed the threshold
  bool stopping_ = false;    // guarded by mu_
  uint64_t checkpoints_ = 0; // guarded by mu_
  std::thread thread_;
};

}  // namespace durable
