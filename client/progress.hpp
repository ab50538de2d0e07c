// Progress reporting for long commands: a redrawn bar with ETA on a terminal, plain
// periodic lines otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace rtda::cli {

class Progress {
 public:
  // `total` units of work; output goes to stderr.
  Progress(std::string label, long total);
  void update(long done, const std::string& note = "");
  void finish(const std::string& note = "");

 private:
  std::string label_;
  long total_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

std::string format_duration(double seconds);

}  // namespace rtda::cli
