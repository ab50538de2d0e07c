#include "server/ingest_endpoint.hpp"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rtda::server {
namespace {

// The peer's CURVE public key ("" without CURVE).
std::string peer_key(const zmq::message_t& m) {
  try {
    const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(m.handle()), "User-Id");
    return v ? std::string(v) : std::string();
  } catch (...) {
    return {};
  }
}

}  // namespace

// Group commit: the batches waiting now (up to a byte and time budget, so control, workers
// and metrics are served during a flood) are validated and appended, one commit makes them
// durable, then they are applied and every ack goes out. A batch that closes a window ends
// the group (later batches must see the close).
void IngestEndpoint::handle_readable() {
  constexpr std::size_t kGroupBytes = 64u << 20;
  constexpr double kGroupSeconds = 0.02;
  const double t_start = wall_now();
  std::vector<std::pair<Envelope, BatchDecision>> group;
  std::size_t bytes = 0;
  bool appended = false;
  while (bytes < kGroupBytes && wall_now() - t_start < kGroupSeconds) {
    Envelope e = receive_envelope(socket_);
    if (!e.ok) break;
    bytes += e.body.size();
    const double wall = wall_now();
    BatchDecision d;
    try {
      d = intake_.decide(std::span(static_cast<const std::byte*>(e.body.data()), e.body.size()),
                         wall, peer_key(e.body));
      if (d.store) {
        journal_.append_batch(d.record, d.max_cycle);
        appended = true;
      }
    } catch (const std::exception& ex) {
      d = BatchDecision{};
      d.ack.set_version(wire::PROTOCOL_VERSION_1);
      d.ack.set_status(wire::ACK_ERROR);
      d.ack.set_error(std::string("server error: ") + ex.what());
      d.counter = "ingest_errors";
      spdlog::error("ingest: {}", ex.what());
    }
    const bool closes = d.close_cycle >= 0;
    group.emplace_back(std::move(e), std::move(d));
    if (closes) break;
  }
  if (group.empty()) return;
  const bool durable = !appended || journal_.commit_group();
  intake_.end_group();
  for (auto& [e, d] : group) {
    if (d.depends_on_commit && !durable) {
      wire::IngestAck ack;
      ack.set_version(wire::PROTOCOL_VERSION_1);
      ack.set_source(d.source);
      ack.set_seq(d.seq);
      ack.set_status(wire::ACK_UNAVAILABLE);
      ack.set_retry_after_seconds(1.0);
      ack.set_error("the observation log cannot be written (" + journal_.degraded() +
                    "): nothing stored; retry later");
      counters_.add("batches_unavailable");
      reply(socket_, e, ack.SerializeAsString());
      continue;
    }
    if (d.store) {
      intake_.apply(d, wall_now());
      counters_.add("batches_accepted");
      counters_.add("observations_accepted", d.placed.size());
      counters_.add("observations_rejected", d.rejected);
      counters_.add("observations_late", d.late);
      if (d.late_rejected) counters_.add("observations_late_rejected", d.late_rejected);
      if (d.close_cycle >= 0) counters_.add("windows_closed_by_marker");
    } else if (!d.counter.empty()) {
      counters_.add(d.counter);
    }
    reply(socket_, e, d.ack.SerializeAsString());
  }
}

}  // namespace rtda::server
