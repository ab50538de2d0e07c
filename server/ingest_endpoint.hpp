// The ingest endpoint's socket side (docs/service.md "Ingest"): batches are received in
// groups, decided by Ingest (ingest.hpp), appended to the Journal and made durable by one
// commit, then applied and acked. While the log cannot be written, batches are answered
// ACK_UNAVAILABLE and leave no trace.
#pragma once

#include <zmq.hpp>

#include "server/ingest.hpp"
#include "server/journal.hpp"
#include "server/service_util.hpp"

namespace rtda::server {

class IngestEndpoint {
 public:
  IngestEndpoint(zmq::socket_t& socket, Ingest& intake, Journal& journal, Counters& counters)
      : socket_(socket), intake_(intake), journal_(journal), counters_(counters) {}

  // One group of the batches waiting on the socket.
  void handle_readable();

 private:
  zmq::socket_t& socket_;
  Ingest& intake_;
  Journal& journal_;
  Counters& counters_;
};

}  // namespace rtda::server
