// The publish endpoint (docs/service.md "Subscribing"): an XPUB socket whose subscriptions are
// kept only for the topics this server publishes, and the publishing of an analysis, durably
// first (AnalysisStore), then on the topics rtda.summary, rtda.analysis and rtda.ensemble.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>
#include <zmq.hpp>

#include "rtda.pb.h"
#include "server/analysis_store.hpp"
#include "server/service_metrics.hpp"
#include "server/service_util.hpp"

namespace rtda::server {

class Publisher {
 public:
  Publisher(zmq::socket_t& socket, AnalysisStore& store, ServiceMetrics& metrics,
            Counters& counters)
      : socket_(socket), store_(store), metrics_(metrics), counters_(counters) {}

  // Subscribe and unsubscribe messages waiting on the socket.
  void handle_subscriptions();
  // Exactly once across crashes: `a` is made durable (store) before any subscriber can see
  // it. `received`: when its result arrived; `last_in`: when its window's last observation
  // did (latency.publish_seconds and total_seconds are set here).
  void publish(wire::Analysis& a, double received, double last_in);

  // Median and 99th percentile of the last 1000 cycles' latencies; nullopt before the first.
  std::optional<std::pair<double, double>> latency_quantiles() const;

 private:
  zmq::socket_t& socket_;
  AnalysisStore& store_;
  ServiceMetrics& metrics_;
  Counters& counters_;
  std::deque<double> latencies_;
};

}  // namespace rtda::server
