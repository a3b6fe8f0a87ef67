#include "cli/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace cli {

Progress::Progress(std::string verb) : verb_(std::move(verb)), enabled_(isatty(STDERR_FILENO) == 1) {}

void Progress::update(int64_t done, std::optional<int64_t> total) {
  if (!enabled_) return;
  std::string line;
  if (total && *total > 0) {
    constexpr int kWidth = 30;
    int filled = static_cast<int>(std::min<int64_t>(kWidth, done * kWidth / *total));
    line = fmt::format("[{}{}] {}/{} {}", std::string(filled, '='), std::string(kWidth - filled, ' '), done,
                       *total, verb_);
  } else {
    line = fmt::format("{} {}", done, verb_);
  }
  // "\r" returns to the start of the line; "\033[K" clears what a longer line left behind.
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace cli
