// A progress bar on stderr for bulk operations, drawn over itself on one line. Drawn only when
// stderr is a terminal; otherwise (a pipe, a file, a test) it prints nothing at all.
//
//   cli::Progress progress("replayed");
//   progress.update(120, 1000);   // [======>             ] 120/1000 replayed
//   progress.finish();
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cli {

class Progress {
 public:
  explicit Progress(std::string verb);
  // Redraws the bar: `done` of `total` (unknown total: just the count).
  void update(int64_t done, std::optional<int64_t> total);
  // Ends the line, if a bar was drawn.
  void finish();

 private:
  std::string verb_;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace cli
