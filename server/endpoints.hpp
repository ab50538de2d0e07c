// The coordinator's four ZeroMQ endpoints and the metrics endpoint (docs/service.md,
// docs/security.md): least privilege at start, CURVE with a ZAP policy per endpoint, message
// size and queue limits, and binding. The parts of the coordinator each serve one socket.
#pragma once

#include <cstddef>
#include <memory>
#include <zmq.hpp>

#include "config/config.hpp"
#include "server/ingest.hpp"
#include "server/metrics.hpp"
#include "server/security.hpp"

namespace rtda::server {

class Endpoints {
 public:
  // Least privilege: no endpoint reachable from the network without CURVE unless the
  // deployment says so (server.insecure), and with CURVE no role open to every key holder
  // unless it says so. Throws config::ConfigError naming the key. Returns `cfg`.
  static const config::Config& check_exposure(const config::Config& cfg);

  // Sets up and binds every endpoint of `cfg.server`. With CURVE the feeder keys' source
  // grants go into `grants`. `max_message_bytes` is the ingest limit. Throws naming the
  // endpoint that cannot be bound or the key file that cannot be read.
  Endpoints(const config::Config& cfg, std::size_t max_message_bytes, MetricsRegistry& metrics,
            SourceGrants& grants);
  ~Endpoints();
  Endpoints(const Endpoints&) = delete;
  Endpoints& operator=(const Endpoints&) = delete;

  zmq::socket_t& ingest() { return ingest_; }
  zmq::socket_t& publish() { return publish_; }
  zmq::socket_t& control() { return control_; }
  zmq::socket_t& workers() { return workers_; }
  // nullptr without server.metrics.
  MetricsHttpEndpoint* metrics_http() { return metrics_http_.get(); }

 private:
  zmq::context_t ctx_{1};
  std::unique_ptr<ZapAuthenticator> zap_;  // before the sockets, after the context
  zmq::socket_t ingest_{ctx_, zmq::socket_type::router};
  zmq::socket_t publish_{ctx_, zmq::socket_type::xpub};
  zmq::socket_t control_{ctx_, zmq::socket_type::router};
  zmq::socket_t workers_{ctx_, zmq::socket_type::router};
  std::unique_ptr<MetricsHttpEndpoint> metrics_http_;
};

}  // namespace rtda::server
