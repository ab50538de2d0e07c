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
#include "server/service_metrics.hpp"

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
  Endpoints(const config::Config& cfg, std::size_t max_message_bytes,
            const prometheus::Registry& metrics, SourceGrants& grants);
  ~Endpoints();
  Endpoints(const Endpoints&) = delete;
  Endpoints& operator=(const Endpoints&) = delete;

  zmq::socket_t& ingest() { return ingest_; }
  zmq::socket_t& publish() { return publish_; }
  zmq::socket_t& control() { return control_; }
  zmq::socket_t& workers() { return workers_; }
  // nullptr without server.metrics.
  MetricsHttpEndpoint* metrics_http() { return metrics_http_.get(); }

  // CURVE handshakes so far per endpoint (accepted, refused); empty without CURVE.
  HandshakeCounts handshakes() const;

  // SIGHUP: reads security.feeder_keys, control_keys and worker_keys again. Every list is read
  // before any is applied: when one cannot be read, nothing changes and the error is thrown
  // (naming the file). Connections already made stay; the new lists decide every handshake
  // from now on, so a removed key is refused when it next connects. The feeder keys' source
  // grants are replaced too. Returns a one-line summary; without CURVE there is nothing to read.
  std::string reload_keys(const config::Config& cfg, SourceGrants& grants);

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
