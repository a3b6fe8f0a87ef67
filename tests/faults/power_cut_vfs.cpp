#include "tests/faults/power_cut_vfs.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <vector>

namespace durable::testing {

namespace {

// What one write (or truncate) not yet synced replaced: the bytes that were at `offset`
// before it, as far as the file reached then.
struct Undo {
  sqlite3_int64 offset;
  std::string bytes;
};

// A database or WAL file, shared by every handle open on it (a sync through one handle makes
// the writes through all of them durable, as fsync does).
struct Tracked {
  std::string path;
  bool wal = false;
  sqlite3_int64 synced_size = 0;  // at the last sync, or when first opened
  std::vector<Undo> undo;         // since the last sync, oldest first
};

struct File {
  sqlite3_file base;  // first: SQLite sees a File as a sqlite3_file
  PowerCutVfs::State* state;
  Tracked* tracked;  // nullptr for files that need not survive (temporary ones)
  // The unix VFS's own file follows, at kRealOffset.
};

constexpr size_t kRealOffset = (sizeof(File) + 15) / 16 * 16;

sqlite3_file* real_of(sqlite3_file* f) { return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kRealOffset); }
File* file_of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }

}  // namespace

struct PowerCutVfs::State {
  Options options;
  sqlite3_vfs vfs{};
  sqlite3_vfs* base = nullptr;
  sqlite3_io_methods methods{};

  // Shared by reads, held alone by writes, syncs and the cut: a cut never lands in the
  // middle of a write, and reads after it see the reverted files or fail.
  std::shared_mutex io;
  std::map<std::string, std::unique_ptr<Tracked>> files;  // guarded by io (alone)
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> wal_syncs{0};
  std::atomic<bool> dead{false};
  std::atomic<bool> disk_full{false};
  std::atomic<int> open_files{0};
  mutable std::mutex dead_mu;
  mutable std::condition_variable dead_cv;

  // Counts a write, truncate or sync of a tracked file; true when it is the one that cuts.
  bool count_op() {
    uint64_t n = ops.fetch_add(1) + 1;
    return options.cut_at_op != 0 && n == options.cut_at_op;
  }

  // Puts every tracked file back as it was at its last sync. Holds io alone.
  void cut_locked() {
    if (dead.exchange(true)) return;
    for (auto& [path, t] : files) {
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) continue;  // deleted meanwhile
      for (auto u = t->undo.rbegin(); u != t->undo.rend(); ++u) {
        [[maybe_unused]] auto n = ::pwrite(fd, u->bytes.data(), u->bytes.size(), u->offset);
      }
      [[maybe_unused]] int rc = ::ftruncate(fd, t->synced_size);
      ::close(fd);
      t->undo.clear();
    }
    std::lock_guard lock(dead_mu);
    dead_cv.notify_all();
  }
};

namespace {

using State = PowerCutVfs::State;

State* state_of(sqlite3_vfs* vfs) { return static_cast<State*>(vfs->pAppData); }

int x_close(sqlite3_file* f) {
  sqlite3_file* real = real_of(f);
  if (real->pMethods) real->pMethods->xClose(real);
  file_of(f)->state->open_files.fetch_sub(1);
  return SQLITE_OK;
}

int x_read(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
  State* st = file_of(f)->state;
  std::shared_lock lock(st->io);
  if (st->dead) return SQLITE_IOERR_READ;
  sqlite3_file* real = real_of(f);
  return real->pMethods->xRead(real, buf, amount, offset);
}

int x_write(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
  File* file = file_of(f);
  State* st = file->state;
  std::unique_lock lock(st->io);
  if (st->dead) return SQLITE_IOERR_WRITE;
  if (st->disk_full) return SQLITE_FULL;
  sqlite3_file* real = real_of(f);
  if (Tracked* t = file->tracked) {
    if (st->count_op()) {
      st->cut_locked();
      return SQLITE_IOERR_WRITE;
    }
    sqlite3_int64 size = 0;
    int rc = real->pMethods->xFileSize(real, &size);
    if (rc != SQLITE_OK) return rc;
    if (offset < size) {
      std::string old(static_cast<size_t>(std::min<sqlite3_int64>(amount, size - offset)), '\0');
      rc = real->pMethods->xRead(real, old.data(), static_cast<int>(old.size()), offset);
      if (rc != SQLITE_OK) return rc;
      t->undo.push_back(Undo{offset, std::move(old)});
    }
  }
  return real->pMethods->xWrite(real, buf, amount, offset);
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  File* file = file_of(f);
  State* st = file->state;
  std::unique_lock lock(st->io);
  if (st->dead) return SQLITE_IOERR_TRUNCATE;
  sqlite3_file* real = real_of(f);
  if (Tracked* t = file->tracked) {
    if (st->count_op()) {
      st->cut_locked();
      return SQLITE_IOERR_TRUNCATE;
    }
    sqlite3_int64 current = 0;
    int rc = real->pMethods->xFileSize(real, &current);
    if (rc != SQLITE_OK) return rc;
    if (size < current) {
      std::string cut(static_cast<size_t>(current - size), '\0');
      rc = real->pMethods->xRead(real, cut.data(), static_cast<int>(cut.size()), size);
      if (rc != SQLITE_OK) return rc;
      t->undo.push_back(Undo{size, std::move(cut)});
    }
  }
  return real->pMethods->xTruncate(real, size);
}

int x_sync(sqlite3_file* f, int) {
  File* file = file_of(f);
  State* st = file->state;
  std::unique_lock lock(st->io);
  if (st->dead) return SQLITE_IOERR_FSYNC;
  sqlite3_file* real = real_of(f);
  Tracked* t = file->tracked;
  if (t && st->count_op()) {
    st->cut_locked();
    return SQLITE_IOERR_FSYNC;
  }
  // The simulated disk keeps what was synced, and the real one never loses power while the
  // test runs: the real fsync would only cost time.
  if (!t) return SQLITE_OK;
  sqlite3_int64 size = 0;
  int rc = real->pMethods->xFileSize(real, &size);
  if (rc != SQLITE_OK) return rc;
  t->synced_size = size;
  t->undo.clear();
  if (t->wal) st->wal_syncs.fetch_add(1);
  return SQLITE_OK;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  State* st = file_of(f)->state;
  std::shared_lock lock(st->io);
  if (st->dead) return SQLITE_IOERR_FSTAT;
  sqlite3_file* real = real_of(f);
  return real->pMethods->xFileSize(real, size);
}

// Locks are the kernel's, not the disk's: they keep working, so that connections can close.
int x_lock(sqlite3_file* f, int level) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xLock(real, level);
}

int x_unlock(sqlite3_file* f, int level) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xUnlock(real, level);
}

int x_check_reserved_lock(sqlite3_file* f, int* out) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xCheckReservedLock(real, out);
}

int x_file_control(sqlite3_file* f, int op, void* arg) {
  State* st = file_of(f)->state;
  sqlite3_file* real = real_of(f);
  if (op == SQLITE_FCNTL_SIZE_HINT) {
    // Grows the file with writes of its own, past its end: a cut's truncation to the synced
    // size takes them back.
    std::unique_lock lock(st->io);
    if (st->dead) return SQLITE_IOERR_TRUNCATE;
    return real->pMethods->xFileControl(real, op, arg);
  }
  return real->pMethods->xFileControl(real, op, arg);
}

int x_sector_size(sqlite3_file* f) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xSectorSize(real);
}

int x_device_characteristics(sqlite3_file* f) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xDeviceCharacteristics(real);
}

int x_shm_map(sqlite3_file* f, int page, int page_size, int extend, void volatile** out) {
  State* st = file_of(f)->state;
  if (st->dead) return SQLITE_IOERR_SHMMAP;
  sqlite3_file* real = real_of(f);
  return real->pMethods->xShmMap(real, page, page_size, extend, out);
}

int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xShmLock(real, offset, n, flags);
}

void x_shm_barrier(sqlite3_file* f) {
  sqlite3_file* real = real_of(f);
  real->pMethods->xShmBarrier(real);
}

int x_shm_unmap(sqlite3_file* f, int delete_flag) {
  sqlite3_file* real = real_of(f);
  return real->pMethods->xShmUnmap(real, delete_flag);
}

int x_open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  State* st = state_of(vfs);
  File* file = file_of(f);
  file->base.pMethods = nullptr;  // until the real file is open: then SQLite does not close it
  if (st->dead) return SQLITE_CANTOPEN;
  sqlite3_file* real = real_of(f);
  int rc = st->base->xOpen(st->base, name, real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (real->pMethods) real->pMethods->xClose(real);
    return rc;
  }
  file->state = st;
  file->tracked = nullptr;
  if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL))) {
    std::unique_lock lock(st->io);
    auto& t = st->files[name];
    if (!t) {
      t = std::make_unique<Tracked>();
      t->path = name;
      t->wal = (flags & SQLITE_OPEN_WAL) != 0;
      real->pMethods->xFileSize(real, &t->synced_size);  // what was there before is on disk
    }
    file->tracked = t.get();
  }
  st->open_files.fetch_add(1);
  file->base.pMethods = &st->methods;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  State* st = state_of(vfs);
  std::unique_lock lock(st->io);
  if (st->dead) return SQLITE_IOERR_DELETE;
  auto it = st->files.find(name);
  if (it != st->files.end()) {
    it->second->undo.clear();
    it->second->synced_size = 0;
  }
  return st->base->xDelete(st->base, name, sync_dir);
}

int x_access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  State* st = state_of(vfs);
  if (st->dead) return SQLITE_IOERR_ACCESS;
  return st->base->xAccess(st->base, name, flags, out);
}

int x_full_pathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  State* st = state_of(vfs);
  return st->base->xFullPathname(st->base, name, n, out);
}

void* x_dl_open(sqlite3_vfs* vfs, const char* name) { return state_of(vfs)->base->xDlOpen(state_of(vfs)->base, name); }
void x_dl_error(sqlite3_vfs* vfs, int n, char* out) { state_of(vfs)->base->xDlError(state_of(vfs)->base, n, out); }
void (*x_dl_sym(sqlite3_vfs* vfs, void* handle, const char* name))(void) {
  return state_of(vfs)->base->xDlSym(state_of(vfs)->base, handle, name);
}
void x_dl_close(sqlite3_vfs* vfs, void* handle) { state_of(vfs)->base->xDlClose(state_of(vfs)->base, handle); }
int x_randomness(sqlite3_vfs* vfs, int n, char* out) { return state_of(vfs)->base->xRandomness(state_of(vfs)->base, n, out); }
int x_sleep(sqlite3_vfs* vfs, int us) { return state_of(vfs)->base->xSleep(state_of(vfs)->base, us); }
int x_current_time(sqlite3_vfs* vfs, double* out) { return state_of(vfs)->base->xCurrentTime(state_of(vfs)->base, out); }
int x_get_last_error(sqlite3_vfs* vfs, int n, char* out) {
  return state_of(vfs)->base->xGetLastError(state_of(vfs)->base, n, out);
}
int x_current_time_int64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return state_of(vfs)->base->xCurrentTimeInt64(state_of(vfs)->base, out);
}

}  // namespace

PowerCutVfs::PowerCutVfs(Options options) : state_(std::make_unique<State>()) {
  State& st = *state_;
  st.options = options;
  st.base = sqlite3_vfs_find("unix");
  assert(st.base && "no unix VFS");
  // Version 2: the shared-memory methods, not xFetch, so SQLite never maps the file in memory
  // past this VFS.
  st.methods.iVersion = 2;
  st.methods.xClose = x_close;
  st.methods.xRead = x_read;
  st.methods.xWrite = x_write;
  st.methods.xTruncate = x_truncate;
  st.methods.xSync = x_sync;
  st.methods.xFileSize = x_file_size;
  st.methods.xLock = x_lock;
  st.methods.xUnlock = x_unlock;
  st.methods.xCheckReservedLock = x_check_reserved_lock;
  st.methods.xFileControl = x_file_control;
  st.methods.xSectorSize = x_sector_size;
  st.methods.xDeviceCharacteristics = x_device_characteristics;
  st.methods.xShmMap = x_shm_map;
  st.methods.xShmLock = x_shm_lock;
  st.methods.xShmBarrier = x_shm_barrier;
  st.methods.xShmUnmap = x_shm_unmap;

  st.vfs.iVersion = 2;
  st.vfs.szOsFile = static_cast<int>(kRealOffset) + st.base->szOsFile;
  st.vfs.mxPathname = st.base->mxPathname;
  st.vfs.zName = "durable-power-cut";
  st.vfs.pAppData = &st;
  st.vfs.xOpen = x_open;
  st.vfs.xDelete = x_delete;
  st.vfs.xAccess = x_access;
  st.vfs.xFullPathname = x_full_pathname;
  st.vfs.xDlOpen = x_dl_open;
  st.vfs.xDlError = x_dl_error;
  st.vfs.xDlSym = x_dl_sym;
  st.vfs.xDlClose = x_dl_close;
  st.vfs.xRandomness = x_randomness;
  st.vfs.xSleep = x_sleep;
  st.vfs.xCurrentTime = x_current_time;
  st.vfs.xGetLastError = x_get_last_error;
  st.vfs.xCurrentTimeInt64 = x_current_time_int64;
  sqlite3_vfs_register(&st.vfs, 1);
}

PowerCutVfs::~PowerCutVfs() {
  assert(state_->open_files.load() == 0 && "a file is still open on the power-cut VFS");
  sqlite3_vfs_unregister(&state_->vfs);
}

void PowerCutVfs::cut() {
  std::unique_lock lock(state_->io);
  state_->cut_locked();
}

bool PowerCutVfs::dead() const { return state_->dead.load(); }

bool PowerCutVfs::wait_dead(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->dead_mu);
  return state_->dead_cv.wait_for(lock, timeout, [&] { return state_->dead.load(); });
}

uint64_t PowerCutVfs::ops() const { return state_->ops.load(); }

uint64_t PowerCutVfs::wal_syncs() const { return state_->wal_syncs.load(); }

void PowerCutVfs::set_disk_full(bool full) { state_->disk_full.store(full); }

void PowerCutVfs::reboot(const std::string& db_path) {
  std::error_code ec;
  std::filesystem::remove(db_path + "-shm", ec);
}

}  // namespace durable::testing
