// The coordinator's Prometheus metrics (docs/service.md "Metrics"): one prometheus-cpp registry
// with every family registered when the server starts, so each counter exists at 0 from the
// first scrape and the label sets known at start (endpoints, stages, states) are there too.
// Counters mirror Status.counters as rtda_<name>_total; degraded states and positions are
// gauges; latencies are histograms in seconds. The metrics endpoint (metrics.hpp) renders it.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "rtda.pb.h"

namespace rtda::server {

// CURVE handshakes per ZAP domain (endpoint): accepted, refused.
using HandshakeCounts = std::map<std::string, std::pair<std::uint64_t, std::uint64_t>>;

class ServiceMetrics {
 public:
  // `version`: rtda_build_info's label; `started`: the process start (Unix seconds).
  ServiceMetrics(const std::string& version, double started);
  ServiceMetrics(const ServiceMetrics&) = delete;
  ServiceMetrics& operator=(const ServiceMetrics&) = delete;

  const prometheus::Registry& registry() const { return *registry_; }

  // One published cycle: its latencies (StageLatency) into the histograms, and when.
  void observe_cycle(const wire::StageLatency& latency, double published_unix_seconds);
  // One commit (write and sync) of the observation log that made batches durable.
  void observe_log_commit(double seconds);
  // Before a scrape: the counters and gauges from the status, the handshakes from ZAP.
  void update(const wire::Status& status, const HandshakeCounts& handshakes);

  // The histogram buckets of the cycle latencies, seconds.
  static const prometheus::Histogram::BucketBoundaries& latency_buckets();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::map<std::string, prometheus::Counter*> counters_;  // Status counter name -> series
  std::map<std::string, prometheus::Gauge*> gauges_;      // metric name -> series
  std::map<std::string, prometheus::Gauge*> states_;      // Status.state -> rtda_state series
  std::map<std::string, prometheus::Histogram*> stages_;  // stage -> series
  prometheus::Histogram* latency_ = nullptr;
  prometheus::Histogram* overhead_ = nullptr;
  prometheus::Histogram* log_commit_ = nullptr;
  prometheus::Family<prometheus::Counter>* handshakes_ = nullptr;
  prometheus::Family<prometheus::Counter>* source_accepted_ = nullptr;
  prometheus::Family<prometheus::Counter>* source_refused_qc_ = nullptr;
  double last_publish_ = 0;
};

}  // namespace rtda::server
