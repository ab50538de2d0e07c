// The metrics endpoint: the text exposition of a prometheus-cpp registry (its core library: the
// registry, the metric types and the serializer) served by a minimal HTTP endpoint over a
// ZMQ_STREAM socket, so the server's single zmq_poll loop drives it (no HTTP server thread).
#pragma once

#include <prometheus/registry.h>

#include <cstddef>
#include <map>
#include <string>
#include <zmq.hpp>

namespace rtda::server {

// The text exposition (format 0.0.4) of everything registered in `registry`, by
// prometheus-cpp's TextSerializer.
std::string render_metrics(const prometheus::Registry& registry);

// Serves `GET /metrics` from a prometheus::Registry over raw TCP (a ZMQ_STREAM socket), one request
// per connection ("Connection: close"). The owner polls socket() for ZMQ_POLLIN and calls
// handle_readable(); nothing here blocks or throws on client input:
//  - GET or HEAD /metrics (any query string) -> 200, Content-Type text/plain; version=0.0.4
//  - another path -> 404; another method -> 405; a malformed request line -> 400
//  - more than 8 KiB without the end of the headers -> 400
//  - more than 256 connections with incomplete requests -> the new one gets 503
// Binding: libzmq resolves both "tcp://127.0.0.1:0" and "tcp://127.0.0.1:*" to a free port for
// ZMQ_STREAM (checked with libzmq 4.3.4); bound_endpoint() reports the actual port.
class MetricsHttpEndpoint {
 public:
  static constexpr std::size_t kMaxRequestBytes = 8 * 1024;
  static constexpr std::size_t kMaxPendingConnections = 256;

  MetricsHttpEndpoint(zmq::context_t& context, const std::string& address,
                      const prometheus::Registry& registry);

  zmq::socket_t& socket() { return socket_; }
  // Handles every message queued on the socket (at most 1024 per call, to keep the event loop
  // fair). Throws only if the context is terminated (ETERM).
  void handle_readable();
  // The resolved address, e.g. "tcp://127.0.0.1:41234".
  std::string bound_endpoint() const;

 private:
  void on_data(const std::string& identity, const std::string& data);
  void respond(const std::string& identity, int status, const std::string& reason,
               const std::string& body, bool head_only);

  const prometheus::Registry& registry_;
  zmq::socket_t socket_;
  std::map<std::string, std::string> pending_;  // connection identity -> request bytes so far
};

}  // namespace rtda::server
