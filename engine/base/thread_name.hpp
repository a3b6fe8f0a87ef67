// Names the calling thread (at most 15 characters), so `top -H`, gdb and perf show which of
// the engine's threads is which.
#pragma once

#include <pthread.h>

namespace durable {

inline void name_this_thread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace durable
