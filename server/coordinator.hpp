// rtda-server's event loop (docs/architecture.md §1-4): the ingest, publish, control and worker
// endpoints, the durable observation log, the cycle schedule, the worker group's lifecycle,
// the per-cycle analysis files and checkpoints. One thread owns every socket; nothing a client
// sends can stop it (bad input gets an error reply and a counter).
#pragma once

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

#include "config/config.hpp"

namespace rtda::server {

// The data directory cannot be used safely (a damaged observation log): restarting will not
// help; an operator must look (rtda-server exits with its own code).
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Coordinator {
 public:
  // Binds every endpoint, replays the observation log and finds the newest checkpoint.
  // Throws (with the endpoint or file named) when it cannot start.
  explicit Coordinator(const config::Config& cfg);
  ~Coordinator();
  // Serves until `stop` becomes true or a shutdown command arrives. When `reload` becomes true
  // (SIGHUP) the CURVE allow-lists are read again and `reload` is reset. Under systemd it
  // notifies READY=1 before serving, WATCHDOG=1 while serving (WatchdogSec=) and STOPPING=1.
  void run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtda::server
