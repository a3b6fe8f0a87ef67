// Moves WAL checkpoints off the writer thread, and bounds the WAL. SQLite's automatic
// checkpoint runs inside the COMMIT that pushes the WAL past its threshold, so that one commit
// (and every caller waiting on it) pays for copying the WAL into the database and fsyncing it:
// a stall of many milliseconds. Instead the writer connection only reports the WAL's size
// after each commit, and this thread checkpoints on its own connection: a PASSIVE pass copies
// the bulk while writes go on. Only a complete checkpoint lets the next write start the WAL
// over from its beginning, and under writes that never pause the passes never quite complete,
// so once the WAL has grown to kPauseFactor times the threshold, a second, short pass runs with
// this process's writes held back: it copies the few frames written meanwhile and completes.
//
// That keeps the WAL small only while this thread gets CPU. The bound itself is enforced on
// the writer's side: before each transaction the writer checks the WAL's size (one atomic
// load), and at `limit_frames` it checkpoints itself (make_room), with every write of this
// process waiting, before it adds anything. So the WAL never holds more than
// limit_frames - 1 frames plus those of one transaction, whatever this thread does.
//
//   GroupCommitWriter writer(db, nullptr);
//   WalCheckpointer checkpointer(db, writer, "app.db");  // attaches itself to the writer
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace durable {

class GroupCommitWriter;
class SqliteDb;

struct WalCheckpointerOptions {
  // A background pass starts once a commit leaves this many frames in the WAL. Default: 2000.
  int threshold_frames = 2000;
  // The WAL's bound, in frames (a frame is one 4 KiB page plus a 24-byte header): no
  // transaction begins while the WAL holds this many; the writer checkpoints first. Default:
  // 8000, i.e. 32,960,032 bytes of WAL (its 32-byte header included), plus one transaction.
  int limit_frames = 8000;
  // Tests only: called on the checkpoint thread before each pass (a test stalls it there to
  // show that the bound does not depend on this thread). Default: none.
  std::function<void()> before_pass;
};

class WalCheckpointer {
 public:
  // Checkpoints the database at `path` whenever a commit on `writer_db` (the connection that
  // `writer` writes with) leaves at least `threshold_frames` frames in the WAL. Installs a WAL
  // hook on `writer_db` (replacing SQLite's automatic checkpoint) and attaches itself to
  // `writer` (GroupCommitWriter::set_wal_checkpointer); both must outlive this object. Once
  // `writer` has failed (fail-stop), checkpoints stop: the file is not touched again. A fatal
  // error of a checkpoint (its fsync failed) fails `writer`.
  WalCheckpointer(SqliteDb& writer_db, GroupCommitWriter& writer, const std::string& path,
                  WalCheckpointerOptions options = {});
  // Detaches from the writer and stops the thread (after the pass in progress, if any).
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Whether the WAL held at least `limit_frames` frames after the last commit of the writer
  // connection (or its last make_room failed). Thread-safe: one relaxed atomic load.
  bool over_limit() const { return frames_.load(std::memory_order_relaxed) >= options_.limit_frames; }

  // Checkpoints the whole WAL on the writer connection (SQLITE_CHECKPOINT_RESTART), so that the
  // next write starts it over. Waits for this object's background pass in progress; for up to
  // 5 s for another process's checkpoint; and for up to the connection's busy timeout for
  // another process's write and for readers still using the WAL. A reader that outlasts that
  // (a read transaction held open, in another process) makes it throw a busy StoreError: the
  // writes waiting fail rather than grow the WAL, and every later write tries again.
  // Throws StoreError (fatal for an I/O error). Only on the thread that holds the writer
  // connection, between transactions (GroupCommitWriter calls it).
  void make_room();

  // Background passes completed.
  uint64_t checkpoints() const;
  // make_room() calls that reset the WAL: how often the writers had to wait for the bound.
  uint64_t forced_checkpoints() const { return forced_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kPauseFactor = 2;
  // How long make_room() tries again while another process's checkpoint holds the lock.
  static constexpr std::chrono::seconds kOtherCheckpointWait{5};
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
  void loop();

  SqliteDb& writer_db_;
  GroupCommitWriter& writer_;
  const std::string path_;
  const WalCheckpointerOptions options_;

  std::atomic<int> frames_{0};         // the WAL's frames after the writer's last commit
  std::atomic<uint64_t> forced_{0};
  // Held by each checkpoint of this object, background pass or make_room(): SQLite lets one
  // run at a time and refuses a second without waiting.
  std::mutex pass_mu_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;      // guarded by mu_: the WAL passed the threshold
  bool stopping_ = false;    // guarded by mu_
  uint64_t checkpoints_ = 0; // guarded by mu_
  std::thread thread_;
};

}  // namespace durable
