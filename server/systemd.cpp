#include "server/systemd.hpp"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace rtda::server {

void notify_systemd(const std::string& state) {
  sd_notify(0, state.c_str());
}

bool journal_stream_matches(const char* journal_stream, dev_t dev, ino_t ino) {
  if (journal_stream == nullptr || *journal_stream == '\0') return false;
  std::uintmax_t want_dev = 0;
  std::uintmax_t want_ino = 0;
  char tail = 0;
  if (std::sscanf(journal_stream, "%" SCNuMAX ":%" SCNuMAX "%c", &want_dev, &want_ino, &tail) != 2)
    return false;
  return static_cast<std::uintmax_t>(dev) == want_dev &&
         static_cast<std::uintmax_t>(ino) == want_ino;
}

bool stderr_is_journal() {
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return journal_stream_matches(std::getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
}

Watchdog::Watchdog() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) interval_ = static_cast<double>(usec) / 2e6;
}

void Watchdog::tick(double now) {
  if (interval_ <= 0 || now - last_ < interval_) return;
  sd_notify(0, "WATCHDOG=1");
  last_ = now;
}

}  // namespace rtda::server
