// Client side of the service's wire contract (proto/rtda.proto): feeding observation files,
// subscribing to analyses, control requests. Used by `rtda feed|watch|status|...` and the demo.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <zmq.hpp>

#include "io/field_model.hpp"
#include "rtda.pb.h"

namespace rtda::cli {

// CURVE settings of a client: the server's public key (file or Z85) and optionally our own
// .key_secret; both empty = plain TCP/IPC.
struct ClientSecurity {
  std::string server_key;
  std::string client_key;
  void apply(zmq::socket_t& s) const;
};

struct FeedOptions {
  std::string obs_file;
  std::string server;  // ingest endpoint
  std::string source;  // "" = "rtda-feed:" + file stem
  std::uint64_t first_seq = 0;
  int batch = 10000;
  int cycles = 0;          // 0 = every window in the file
  std::string truth_file;  // nature run: attach the truth of each window
  double rate = 0;         // observations per second; 0 = as fast as acks allow
  bool realtime = false;   // pace windows by their model time
  double speedup = 1.0;    // model seconds per wall second with realtime
  double ack_timeout_seconds = 5;
  int retries = 20;
  int in_flight = 8;  // batches sent before waiting for acks
  // Ask the server where the source stands first and send only the batches after its newest
  // durable seq (a restarted feeder resumes instead of re-sending everything).
  bool resume = true;
  ClientSecurity security;
  // The service's windows (window.t0_seconds, experiment.cycle_hours), used when the file
  // has no cycle_time of its own: window k analyses t0 + k cycle and holds the observations
  // in (t - cycle/2, t + cycle/2]. `run` stands in for the model attributes and epoch of a
  // file made by another tool.
  double window_t0_seconds = 0;
  double cycle_seconds = 12 * 3600.0;
  io::RunDefaults run;
};

struct FeedSummary {
  // accepted/rejected/late count what this run stored (duplicates store nothing new);
  // skipped: batches not sent because the server already held them (resume).
  std::uint64_t batches = 0, accepted = 0, rejected = 0, late = 0, duplicates = 0, retries = 0;
  std::uint64_t skipped = 0;
  std::int64_t durable_seq_at_start = -1;  // -1: the server knew nothing of the source
  std::string first_error;
};

// Streams the file window by window (each window's last batch carries the end-of-window
// marker), retrying a batch until it is acked. `on_window(cycle)` after each window is acked.
FeedSummary feed_observations(const FeedOptions& o, const std::atomic<bool>* stop = nullptr,
                              const std::function<void(int)>& on_window = {});

// One request to the control endpoint; throws on timeout or an unreadable reply.
wire::ControlReply control_request(const std::string& server, const wire::ControlRequest& q,
                                   const ClientSecurity& sec, double timeout_seconds = 5);

// One line per published analysis: time, filter, observations, RMSE, spread, latency.
std::string format_analysis_line(const wire::Analysis& a);

}  // namespace rtda::cli
