// An LD_PRELOAD shim for tests/fail_stop_test.cpp: makes one fsync/fdatasync of a regular file
// fail with EIO, the way a disk that cannot write back a page reports it, and writes down when.
// Debian's libsqlite3 syncs through the libc's fdatasync (it imports the symbol), so a program
// started with this library preloaded goes through it; the test checks the report, so a SQLite
// that synced some other way would fail the test rather than pass it for nothing.
//
//   LD_PRELOAD=libfsync_fault.so DURABLE_FSYNC_FAIL_AT=150 DURABLE_FSYNC_FAIL_SUFFIX=-wal \
//     DURABLE_FSYNC_FAULT_REPORT=/tmp/report durable ...
//
// DURABLE_FSYNC_FAIL_AT=N: the Nth call (counting from 1, fsync and fdatasync together, on
// regular files whose path ends with DURABLE_FSYNC_FAIL_SUFFIX, if set) fails without syncing;
// every other call is passed on. Without it the shim changes nothing.
// DURABLE_FSYNC_FAULT_REPORT=F: when it fails that call, the shim appends to F one line:
// "<N> <CLOCK_MONOTONIC ns> <path>".
// Written in C++ only because the project builds no C; it uses nothing but libc.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

namespace {

std::atomic<long> g_calls{0};

// Whether this call on `fd` is the one to fail (and then reports it).
bool should_fail(int fd) {
  const char* at = getenv("DURABLE_FSYNC_FAIL_AT");
  if (!at) return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  char link[64];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  char path[4096];
  ssize_t n = readlink(link, path, sizeof(path) - 1);
  path[n > 0 ? n : 0] = '\0';
  const char* suffix = getenv("DURABLE_FSYNC_FAIL_SUFFIX");
  if (suffix) {
    size_t len = strlen(path), slen = strlen(suffix);
    if (len < slen || strcmp(path + len - slen, suffix) != 0) return false;
  }
  long call = g_calls.fetch_add(1) + 1;
  if (call != atol(at)) return false;
  if (const char* report = getenv("DURABLE_FSYNC_FAULT_REPORT")) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char line[4200];
    int len = snprintf(line, sizeof(line), "%ld %lld %s\n", call,
                       static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec, path);
    int out = open(report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out >= 0) {
      [[maybe_unused]] ssize_t written = write(out, line, static_cast<size_t>(len));
      close(out);
    }
  }
  return true;
}

template <class Fn>
Fn next_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fdatasync(int fd) {
  static auto real = next_symbol<int (*)(int)>("fdatasync");
  if (should_fail(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}

extern "C" int fsync(int fd) {
  static auto real = next_symbol<int (*)(int)>("fsync");
  if (should_fail(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
