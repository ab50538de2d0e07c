#include "server/endpoints.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "net/curve.hpp"
#include "net/keys.hpp"

namespace rtda::server {
namespace fs = std::filesystem;
namespace {

// Loopback and local-only endpoints need no CURVE to be safe from the network.
bool local_endpoint(const std::string& address) {
  if (address.rfind("ipc://", 0) == 0 || address.rfind("inproc://", 0) == 0) return true;
  if (address.rfind("tcp://", 0) != 0) return false;
  const std::string host = address.substr(6, address.rfind(':') - 6);
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]" || host == "::1";
}

}  // namespace

const config::Config& Endpoints::check_exposure(const config::Config& cfg) {
  if (!cfg.security.curve && !cfg.server.insecure) {
    for (const auto& [key, address] :
         std::vector<std::pair<const char*, std::string>>{{"server.ingest", cfg.server.ingest},
                                                          {"server.publish", cfg.server.publish},
                                                          {"server.control", cfg.server.control},
                                                          {"server.workers", cfg.server.workers}}) {
      if (!local_endpoint(address)) {
        throw config::ConfigError(
            std::string(key) + " = \"" + address +
            "\": a non-loopback endpoint without CURVE; set security.curve = true (with "
            "security.server_key), or server.insecure = true for a deliberately insecure "
            "deployment");
      }
    }
  }
  if (!cfg.server.metrics.empty() && !local_endpoint(cfg.server.metrics) && !cfg.server.insecure) {
    throw config::ConfigError("server.metrics = \"" + cfg.server.metrics +
                              "\": metrics are plain HTTP; serve them on loopback, or set "
                              "server.insecure = true to expose them");
  }
  if (cfg.security.curve) {
    if (cfg.security.control_keys.empty() && !cfg.security.control_allow_any) {
      throw config::ConfigError(
          "security.control_keys = \"\": with CURVE, list the keys allowed to control the "
          "server, or set security.control_allow_any = true to let every holder of the "
          "server's public key pause, reconfigure and shut it down");
    }
    if (cfg.security.worker_keys.empty() && !cfg.security.worker_allow_any) {
      throw config::ConfigError(
          "security.worker_keys = \"\": with CURVE, list the keys allowed to join as the "
          "worker group, or set security.worker_allow_any = true to let every holder of the "
          "server's public key compute (and publish) analyses");
    }
  }
  return cfg;
}

Endpoints::Endpoints(const config::Config& cfg, std::size_t max_message_bytes,
                     const prometheus::Registry& metrics, SourceGrants& grants) {
  const auto max_bytes = static_cast<std::int64_t>(max_message_bytes);
  if (cfg.security.curve) {
    const net::CurveKeyPair server_key = net::load_keypair(cfg.security.server_key);
    zap_ = std::make_unique<ZapAuthenticator>(ctx_);
    const auto policy = [&](const std::string& domain, const std::string& keys) {
      if (keys.empty()) {
        zap_->allow_any(domain);
      } else {
        zap_->allow_keys(domain, load_allowed_keys(keys));
      }
    };
    policy("ingest", cfg.security.feeder_keys);
    policy("control", cfg.security.control_keys);
    policy("workers", cfg.security.worker_keys);
    zap_->allow_any("publish");
    if (!cfg.security.feeder_keys.empty()) {
      for (const auto& [key, sources] : load_source_grants(cfg.security.feeder_keys))
        grants.grant(key, sources);
    }
    net::make_curve_server(ingest_, server_key, "ingest");
    net::make_curve_server(control_, server_key, "control");
    net::make_curve_server(workers_, server_key, "workers");
    net::make_curve_server(publish_, server_key, "publish");
  }
  // Twice the accepted size: libzmq drops a connection past ZMQ_MAXMSGSIZE without a
  // word, so messages between the limit and this cap get an error reply instead.
  for (zmq::socket_t* s : {&ingest_, &control_, &workers_}) {
    s->set(zmq::sockopt::maxmsgsize, 2 * max_bytes);
    s->set(zmq::sockopt::router_mandatory, false);
    s->set(zmq::sockopt::linger, 1000);
    s->set(zmq::sockopt::sndhwm, 1000);
    s->set(zmq::sockopt::rcvhwm, 1000);
  }
  // Control requests are small; worker messages are too, except results: a whole analysis
  // (mean and spread, and every member with server.publish_members).
  control_.set(zmq::sockopt::maxmsgsize, std::int64_t{1} << 20);
  {
    const auto n = static_cast<std::int64_t>(cfg.model.grid().state_size());
    const std::int64_t fields = 2 + (cfg.server.publish_members ? cfg.ensemble.members : 0);
    const std::int64_t result = fields * n * 8 + (std::int64_t{1} << 20);
    workers_.set(zmq::sockopt::maxmsgsize, std::max(2 * max_bytes, result + result / 8));
  }
  // A reconnecting worker group keeps its routing id (rtda-worker sets one): the new
  // connection takes it over instead of being ignored.
  workers_.set(zmq::sockopt::router_handover, true);
  // Subscriptions are handled by hand (Publisher::handle_subscriptions): only prefixes of the
  // topics this server publishes are kept, so a subscriber cannot grow the server's memory.
  publish_.set(zmq::sockopt::sndhwm, 1000);
  // 1 KiB: a subscription is a topic prefix, but with CURVE the client's INITIATE command (its
  // vouch and metadata, over 256 bytes) passes the same limit, and a smaller one dropped every
  // CURVE subscriber during the handshake.
  publish_.set(zmq::sockopt::maxmsgsize, std::int64_t{1024});
  publish_.set(zmq::sockopt::xpub_manual, 1);
  const auto bind = [](zmq::socket_t& s, const std::string& address, const char* what) {
    try {
      if (address.rfind("ipc://", 0) == 0) fs::remove(address.substr(6));
      s.bind(address);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error(std::string("server.") + what + " = \"" + address +
                               "\": cannot bind: " + e.what());
    }
  };
  bind(ingest_, cfg.server.ingest, "ingest");
  bind(publish_, cfg.server.publish, "publish");
  bind(control_, cfg.server.control, "control");
  bind(workers_, cfg.server.workers, "workers");
  if (!cfg.server.metrics.empty()) {
    metrics_http_ = std::make_unique<MetricsHttpEndpoint>(ctx_, cfg.server.metrics, metrics);
  }
  spdlog::info("listening: ingest {} publish {} control {} workers {}{}{}", cfg.server.ingest,
               cfg.server.publish, cfg.server.control, cfg.server.workers,
               cfg.server.metrics.empty() ? "" : " metrics ", cfg.server.metrics);
}

HandshakeCounts Endpoints::handshakes() const {
  HandshakeCounts out;
  if (!zap_) return out;
  for (const char* domain : {"ingest", "publish", "control", "workers"})
    out[domain] = {zap_->allowed(domain), zap_->denied(domain)};
  return out;
}

std::string Endpoints::reload_keys(const config::Config& cfg, SourceGrants& grants) {
  if (!zap_) return "security.curve = false: no allow-lists to read";
  struct List {
    const char* domain;
    const char* key;
    const std::string& path;
    std::vector<std::string> keys;
  };
  std::vector<List> lists = {{"ingest", "security.feeder_keys", cfg.security.feeder_keys, {}},
                             {"control", "security.control_keys", cfg.security.control_keys, {}},
                             {"workers", "security.worker_keys", cfg.security.worker_keys, {}}};
  std::map<std::string, std::vector<std::string>> new_grants;
  for (List& l : lists) {
    if (l.path.empty()) continue;
    try {
      l.keys = load_allowed_keys(l.path);
      if (l.domain == std::string("ingest")) new_grants = load_source_grants(l.path);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(l.key) + " = \"" + l.path + "\": " + e.what());
    }
  }
  std::string summary;
  for (const List& l : lists) {
    if (l.path.empty()) continue;  // allow_any stays
    zap_->allow_keys(l.domain, l.keys);
    summary += fmt::format("{}{} {} keys", summary.empty() ? "" : ", ", l.domain, l.keys.size());
  }
  grants.clear();
  for (const auto& [key, sources] : new_grants)
    grants.grant(key, sources);
  return summary.empty() ? "no allow-lists configured (every endpoint admits any key)" : summary;
}

Endpoints::~Endpoints() {
  for (zmq::socket_t* s : {&ingest_, &publish_, &control_, &workers_})
    s->set(zmq::sockopt::linger, 0);
  metrics_http_.reset();
  zap_.reset();
}

}  // namespace rtda::server
