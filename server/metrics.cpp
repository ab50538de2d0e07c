#include "server/metrics.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.h>

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <stdexcept>

namespace rtda::server {

std::string render_metrics(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

// ---------------------------------------------------------------------------------------------
// MetricsHttpEndpoint

MetricsHttpEndpoint::MetricsHttpEndpoint(zmq::context_t& context, const std::string& address,
                                         const prometheus::Registry& registry)
    : registry_(registry), socket_(context, zmq::socket_type::stream) {
  socket_.set(zmq::sockopt::linger, 0);
  try {
    socket_.bind(address);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(
        fmt::format("metrics endpoint: cannot bind {}: {}", address, e.what()));
  }
}

std::string MetricsHttpEndpoint::bound_endpoint() const {
  return socket_.get(zmq::sockopt::last_endpoint);
}

void MetricsHttpEndpoint::handle_readable() {
  for (int handled = 0; handled < 1024; ++handled) {
    zmq::message_t identity;
    zmq::message_t data;
    try {
      if (!socket_.recv(identity, zmq::recv_flags::dontwait)) return;  // EAGAIN: drained
      if (!identity.more()) continue;  // a ZMQ_STREAM message always has two frames
      if (!socket_.recv(data, zmq::recv_flags::none)) continue;
      while (data.more()) {  // not expected on ZMQ_STREAM; keep frame boundaries in sync
        zmq::message_t extra;
        if (!socket_.recv(extra, zmq::recv_flags::none)) break;
        data = std::move(extra);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) throw;
      spdlog::warn("metrics endpoint: receive failed: {}", e.what());
      return;
    }
    const std::string id = identity.to_string();
    if (data.size() == 0) {
      // Connect or disconnect notification: either way no request is in progress yet/any more.
      pending_.erase(id);
      continue;
    }
    try {
      on_data(id, data.to_string());
    } catch (const std::exception& e) {  // e.g. bad_alloc while rendering: drop this client only
      spdlog::warn("metrics endpoint: request failed: {}", e.what());
      pending_.erase(id);
    }
  }
}

void MetricsHttpEndpoint::on_data(const std::string& identity, const std::string& data) {
  auto it = pending_.find(identity);
  if (it == pending_.end()) {
    if (pending_.size() >= kMaxPendingConnections) {
      respond(identity, 503, "Service Unavailable", "too many connections\n", false);
      return;
    }
    it = pending_.emplace(identity, std::string()).first;
  }
  std::string& request = it->second;
  request += data;
  const auto header_end = request.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    if (request.size() > kMaxRequestBytes) {
      pending_.erase(it);
      respond(identity, 400, "Bad Request", "request headers too large\n", false);
    }
    return;
  }
  if (header_end + 4 > kMaxRequestBytes) {
    pending_.erase(it);
    respond(identity, 400, "Bad Request", "request headers too large\n", false);
    return;
  }

  // Request line: METHOD SP TARGET SP HTTP/x.y
  const std::string line = request.substr(0, request.find("\r\n"));
  pending_.erase(it);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  const bool well_formed = sp1 != std::string::npos && sp2 != std::string::npos && sp1 > 0 &&
                           sp2 > sp1 + 1 && line.find(' ', sp2 + 1) == std::string::npos &&
                           line.compare(sp2 + 1, 5, "HTTP/") == 0 &&
                           std::all_of(line.begin(), line.begin() + static_cast<long>(sp1),
                                       [](char c) { return c >= 'A' && c <= 'Z'; });
  if (!well_formed) {
    respond(identity, 400, "Bad Request", "malformed request line\n", false);
    return;
  }
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") {
    respond(identity, 404, "Not Found", "not found; metrics are at /metrics\n", false);
  } else if (method != "GET" && method != "HEAD") {
    respond(identity, 405, "Method Not Allowed", "only GET and HEAD\n", false);
  } else {
    respond(identity, 200, "OK", render_metrics(registry_), method == "HEAD");
  }
}

void MetricsHttpEndpoint::respond(const std::string& identity, int status,
                                  const std::string& reason, const std::string& body,
                                  bool head_only) {
  const char* content_type =
      status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8";
  std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
      status, reason, content_type, body.size(), status == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (!head_only) response += body;
  try {
    // Data queued before the empty frame is written out before libzmq closes the connection.
    // A vanished peer is not an error: ZMQ_STREAM drops messages for unknown identities.
    // On ZMQ_STREAM every message is [identity (SNDMORE), data]; an empty data frame closes.
    const bool sent =
        socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
        socket_.send(zmq::buffer(response), zmq::send_flags::dontwait);
    if (!sent) spdlog::debug("metrics endpoint: client's send queue is full; closing it");
    if (socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      socket_.send(zmq::message_t(), zmq::send_flags::dontwait);
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) throw;
    spdlog::debug("metrics endpoint: reply to a client failed: {}", e.what());
  }
}

}  // namespace rtda::server
