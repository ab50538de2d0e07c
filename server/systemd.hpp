// The server under systemd (docs/deployment.md §4): readiness and stopping notifications
// (Type=notify), the watchdog keep-alive, and whether stderr is connected to the journal (so log
// lines go to journald with their priority). Outside systemd every call does nothing.
#pragma once

#include <sys/types.h>

#include <string>

namespace rtda::server {

// sd_notify(3) with `state` (e.g. "READY=1"); nothing without $NOTIFY_SOCKET.
void notify_systemd(const std::string& state);

// True when $JOURNAL_STREAM ("DEVICE:INODE", set by systemd for a unit whose output goes to the
// journal) names the file `dev`/`ino`, i.e. stderr still is that journal stream.
bool journal_stream_matches(const char* journal_stream, dev_t dev, ino_t ino);
// journal_stream_matches for this process's stderr.
bool stderr_is_journal();

// WATCHDOG=1 at half the interval systemd asks for (WatchdogSec= gives $WATCHDOG_USEC); the event
// loop calls tick() on every pass, so a loop that stops turning stops the keep-alives and
// systemd restarts the server. Disabled without $WATCHDOG_USEC (or for another $WATCHDOG_PID).
class Watchdog {
 public:
  Watchdog();
  bool enabled() const { return interval_ > 0; }
  // Seconds between keep-alives (0 when disabled).
  double interval() const { return interval_; }
  void tick(double now);

 private:
  double interval_ = 0;
  double last_ = 0;
};

}  // namespace rtda::server
