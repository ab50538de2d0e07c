// The ingest endpoint's decisions (docs/service.md "Ingest", docs/security.md): what a batch
// costs, whether it is new, a retry, a conflict or refused, and where each observation goes.
// No sockets and no files: the coordinator hands in the bytes, appends what `decide` says to
// the observation log, and calls `apply` once the log is durable, so a batch the disk refused
// leaves no trace in memory. Replaying the log calls `replay` with the same records, which
// rebuilds the same windows and idempotency records.
//
// Within one group of batches committed together, `decide` sees the state before the group:
// the caller ends a group after a batch that closes a window (the only decision that changes
// where later observations go), and `decide` remembers the (source, seq) pairs of the group.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "rtda.pb.h"
#include "server/batch_wire.hpp"
#include "server/cycle_scheduler.hpp"
#include "server/rate_limit.hpp"
#include "server/source_book.hpp"

namespace rtda::server {

// What to do with one batch.
struct BatchDecision {
  wire::IngestAck ack;
  std::string counter;  // the counter to add one to for a batch not stored
  bool store = false;   // accepted: append `record` to the log, then apply()
  // Accepted, or a duplicate of a batch in the same uncommitted group: the ack holds only if
  // the group's commit succeeds.
  bool depends_on_commit = false;
  std::string record;  // the LogRecord bytes
  std::string source;
  std::uint64_t seq = 0;
  std::uint64_t hash = 0;
  struct Placed {
    std::int64_t cycle;  // the window it goes to
    bool late;           // moved there from a closed window
    StoredObservation observation;
  };
  std::vector<Placed> placed;
  std::optional<std::pair<std::int64_t, wire::TruthState>> truth;
  std::int64_t close_cycle = -1;  // the marker closes windows through this one
  std::int64_t max_cycle = -1;    // the newest window this record touches (log compaction)
  std::uint32_t rejected = 0, late = 0, late_rejected = 0;
};

// The limits a batch is held to, from the configuration.
struct IngestLimits {
  std::size_t max_message_bytes = 0;
  int max_batch_observations = 0;
  std::size_t max_unknown_bytes = 64 << 10;
  core::Grid grid{};  // the model's (config::ModelConfig::grid)
  config::QcConfig qc;
  double kelvin_per_pv = 0;  // f theta0 / g of the grid
  int max_windows_ahead = 0;
  static IngestLimits from(const config::Config& c);
};

class Ingest {
 public:
  Ingest(const config::Config& cfg, CycleScheduler& scheduler);

  // Validates one message from a feeder whose CURVE key is `peer_key` ("" without CURVE).
  // Takes rate tokens; never throws for client input.
  BatchDecision decide(std::span<const std::byte> body, double wall, const std::string& peer_key);
  // The group committed (or failed): its (source, seq) pairs are no longer pending.
  void end_group() { pending_.clear(); }
  // A stored decision is durable: place its observations, truth and marker; record the seq.
  void apply(const BatchDecision& d, double wall);
  // One batch record of the log, on restart. Returns the decision it amounts to (counters).
  BatchDecision replay(const wire::LoggedBatch& lb);

  SourceBook& sources() { return sources_; }
  const SourceBook& sources() const { return sources_; }
  SourceGrants& grants() { return grants_; }
  const IngestLimits& limits() const { return limits_; }

 private:
  BatchDecision refuse(BatchDecision d, wire::AckStatus status, const std::string& why,
                       const char* counter) const;
  // Places every observation of `b` (skipping `skip`, the indices refused at ingest) as the
  // scheduler would with windows closed through `closed_through`.
  void place_all(const wire::ObservationBatch& b, std::int64_t closed_through,
                 const std::vector<std::uint32_t>& refused, BatchDecision& d);

  IngestLimits limits_;
  CycleScheduler& scheduler_;
  PerSourceRateLimiter rate_;
  SourceBook sources_;
  SourceGrants grants_;
  std::map<std::pair<std::string, std::uint64_t>, std::pair<std::uint64_t, wire::IngestAck>>
      pending_;
};

}  // namespace rtda::server
