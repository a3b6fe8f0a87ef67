// A SQLite VFS for tests that loses power on demand. It wraps the default ("unix") VFS and,
// while it exists, is the default VFS of the process, so an Engine or SqliteStore opened
// meanwhile uses it without knowing. For every write to a database or WAL file it keeps what
// the write overwrote (an undo log, the file's size at its last sync included) until the file
// is synced. A power cut puts every file back as it was at its last sync: what was never
// synced is gone, as after a real power loss that kept nothing the disk had not been told to
// keep (writes are not torn: SQLite assumes powersafe overwrite on Linux). From then on every
// I/O call fails, as on a dead machine, so the engine fails stop. (Syncs are simulated only: the
// real disk is never asked to flush, since it never loses power during the test.)
//
//   {
//     PowerCutVfs vfs({.cut_at_op = 1234});  // the 1234th write, truncate or sync cuts power
//     Engine engine(...);                    // runs on the VFS
//     ...load...
//     vfs.wait_dead(10s);                    // or vfs.cut()
//   }                                        // engine closed first, then the VFS
//   PowerCutVfs::reboot(db_path);            // the -shm file is memory, not disk: gone
//   SqliteStore store({.path = db_path});    // recovers with the plain unix VFS
//
// One at a time per process. Files must all be closed before it is destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace durable::testing {

class PowerCutVfs {
 public:
  struct Options {
    // The write, truncate or sync (counted from 1, on database and WAL files) that cuts the
    // power instead of happening; 0: only cut() does.
    uint64_t cut_at_op = 0;
  };

  // Registers the VFS as the process's default.
  explicit PowerCutVfs(Options options);
  // Unregisters it: the default is the plain unix VFS again.
  ~PowerCutVfs();
  PowerCutVfs(const PowerCutVfs&) = delete;
  PowerCutVfs& operator=(const PowerCutVfs&) = delete;

  // Cuts the power now, unless it is already off. Thread-safe.
  void cut();
  bool dead() const;
  // Waits (real time) until the power is cut; returns whether it was.
  bool wait_dead(std::chrono::milliseconds timeout) const;

  // Writes, truncates and syncs so far (the count that cut_at_op refers to).
  uint64_t ops() const;
  // Syncs of a WAL file that completed: whatever was written to the WAL before one started
  // survives a cut that comes after it completed. Thread-safe.
  uint64_t wal_syncs() const;

  // While set, every write fails with SQLITE_FULL and changes nothing (a disk with no room).
  void set_disk_full(bool full);

  // After a cut, once every connection is closed: removes `db_path`-shm, which lived in
  // memory (SQLite rebuilds it from the WAL, as after a reboot).
  static void reboot(const std::string& db_path);

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace durable::testing
