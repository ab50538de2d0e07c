// The control endpoint (docs/service.md "Control"): status, pause and resume, checkpoint
// requests, the filter of the next cycles, shutdown, and the latest analysis (rate limited per
// peer with fields); and the same status as Prometheus gauges for the metrics endpoint.
#pragma once

#include <cstdint>
#include <string>
#include <zmq.hpp>

#include "config/config.hpp"
#include "rtda.pb.h"
#include "server/analysis_store.hpp"
#include "server/cycle_scheduler.hpp"
#include "server/endpoints.hpp"
#include "server/ingest.hpp"
#include "server/journal.hpp"
#include "server/publisher.hpp"
#include "server/rate_limit.hpp"
#include "server/service_metrics.hpp"
#include "server/service_util.hpp"
#include "server/worker_group.hpp"

namespace rtda::server {

class Control {
 public:
  // What the requests act on (the worker group's dispatching) and what the status reports.
  struct Parts {
    WorkerGroup& workers;
    const AnalysisStore& store;
    const Publisher& publisher;
    const Journal& journal;
    const CycleScheduler& scheduler;
    const Ingest& intake;
    const Endpoints& endpoints;  // the ZAP handler's handshake counts
  };
  Control(const config::Config& cfg, std::string config_hash, zmq::socket_t& socket, Parts parts,
          Counters& counters);

  // The requests waiting on the socket, each answered.
  void handle_readable();
  // A shutdown was requested.
  bool stopping() const { return stopping_; }
  wire::Status status() const;
  // The metrics from the status, before the metrics endpoint answers.
  void update_metrics(ServiceMetrics& metrics) const;

 private:
  void execute(const wire::ControlRequest& q, wire::ControlReply& r);

  const config::Config& cfg_;
  std::string config_hash_;
  zmq::socket_t& socket_;
  Parts parts_;
  Counters& counters_;
  PerSourceRateLimiter latest_rate_;  // LATEST_ANALYSIS with fields, per control peer
  double started_ = wall_now();
  bool stopping_ = false;
};

}  // namespace rtda::server
