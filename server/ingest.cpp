#include "server/ingest.hpp"

#include <google/protobuf/arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/format.hpp"
#include "obs/validity.hpp"
#include "server/obs_log.hpp"

namespace rtda::server {
namespace {

constexpr std::size_t kMaxListedRejections = 100;

bool valid_source(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
           c == '-';
  });
}

}  // namespace

// ---- Ingest -------------------------------------------------------------------------------

IngestLimits IngestLimits::from(const config::Config& c) {
  IngestLimits l;
  l.max_message_bytes = config::max_message_bytes(c);
  l.max_batch_observations = c.limits.max_batch_observations;
  l.grid = c.model.grid();
  l.qc = c.qc;
  l.kelvin_per_pv = c.model.kelvin_per_pv();
  l.max_windows_ahead = c.window.max_windows_ahead;
  return l;
}

Ingest::Ingest(const config::Config& cfg, CycleScheduler& scheduler)
    : limits_(IngestLimits::from(cfg)),
      scheduler_(scheduler),
      rate_(cfg.limits.source_rate_observations_per_second, cfg.limits.source_burst_observations,
            static_cast<std::size_t>(cfg.limits.max_sources)),
      sources_(static_cast<std::size_t>(cfg.server.idempotency_window),
               static_cast<std::size_t>(cfg.limits.max_sources)) {}

BatchDecision Ingest::refuse(BatchDecision d, wire::AckStatus status, const std::string& why,
                             const char* counter) const {
  d.ack.set_status(status);
  d.ack.set_error(why);
  d.counter = counter;
  d.store = false;
  return d;
}

BatchDecision Ingest::decide(std::span<const std::byte> body, double wall,
                             const std::string& peer_key) {
  BatchDecision d;
  d.ack.set_version(wire::PROTOCOL_VERSION_1);
  if (body.size() > limits_.max_message_bytes) {
    return refuse(std::move(d), wire::ACK_ERROR,
                  "message of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                      std::to_string(limits_.max_message_bytes) +
                      " bytes (limits.max_message_mb; 0 derives it from "
                      "limits.max_batch_observations)",
                  "messages_oversize");
  }
  const BatchShape shape = scan_batch(body);
  if (!shape.readable) {
    return refuse(std::move(d), wire::ACK_ERROR,
                  "not an ObservationBatch: protobuf parse failed on " +
                      std::to_string(body.size()) + " bytes (garbage or truncated message)",
                  "messages_malformed");
  }
  if (shape.observations > static_cast<std::size_t>(limits_.max_batch_observations)) {
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "observations: " + std::to_string(shape.observations) +
                      " in one batch, limits.max_batch_observations = " +
                      std::to_string(limits_.max_batch_observations),
                  "batches_rejected");
  }
  if (shape.unknown_bytes > limits_.max_unknown_bytes) {
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "unknown fields: " + std::to_string(shape.unknown_bytes) +
                      " bytes of fields this server's protocol does not have (at most " +
                      std::to_string(limits_.max_unknown_bytes) + " are skipped)",
                  "batches_rejected");
  }
  // An arena makes the thousands of Observation sub-messages of a batch one allocation.
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 * 1024;
  arena_options.max_block_size = 8 << 20;
  google::protobuf::Arena arena(arena_options);
  wire::ObservationBatch& b =
      *google::protobuf::Arena::CreateMessage<wire::ObservationBatch>(&arena);
  if (!b.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return refuse(std::move(d), wire::ACK_ERROR,
                  "not an ObservationBatch: protobuf parse failed on " +
                      std::to_string(body.size()) + " bytes (garbage or truncated message)",
                  "messages_malformed");
  }
  d.ack.set_seq(b.seq());
  if (valid_source(b.source())) d.ack.set_source(b.source());
  if (b.version() != wire::PROTOCOL_VERSION_1) {
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "version = " + std::to_string(b.version()) +
                      ": this server speaks protocol version 1 (PROTOCOL_VERSION_1)",
                  "batches_wrong_version");
  }
  if (!valid_source(b.source())) {
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "source = \"" + quote_client_text(b.source()) +
                      "\": expected 1..64 characters of [A-Za-z0-9._:-]",
                  "batches_rejected");
  }
  d.source = b.source();
  d.seq = b.seq();
  d.ack.set_source(d.source);
  d.ack.set_seq(d.seq);
  if (const auto* s = sources_.find(d.source); s && s->high_seq)
    d.ack.set_durable_seq(*s->high_seq);
  if (!peer_key.empty()) {
    if (const std::string why = grants_.check(peer_key, d.source); !why.empty())
      return refuse(std::move(d), wire::ACK_REJECTED, why, "batches_source_denied");
  }
  const BatchObservations all(b);
  const std::size_t n = all.size();
  // Every batch costs at least one token (of the key's bucket with CURVE, else the source's).
  if (!rate_.try_take(peer_key.empty() ? d.source : peer_key,
                      static_cast<double>(std::max<std::size_t>(1, n)), wall)) {
    d.ack.set_retry_after_seconds(
        rate_.retry_after(peer_key.empty() ? d.source : peer_key,
                          static_cast<double>(std::max<std::size_t>(1, n)), wall));
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "source \"" + d.source +
                      "\" exceeds limits.source_rate_observations_per_second (retry after " +
                      core::format_double(d.ack.retry_after_seconds()) + " s)",
                  "batches_rate_limited");
  }
  if (b.position_query()) {
    if (n > 0 || b.has_end_of_window_seconds() || b.has_truth()) {
      return refuse(std::move(d), wire::ACK_REJECTED,
                    "position_query = true: a position query carries nothing else (it has "
                    "observations, a marker or a truth)",
                    "batches_rejected");
    }
    d.ack.set_status(wire::ACK_POSITION);
    d.counter = "position_queries";
    return d;
  }
  if (n == 0 && !b.has_end_of_window_seconds() && !b.has_truth()) {
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "empty batch: expected observations, an end_of_window_seconds marker or a "
                  "truth",
                  "batches_rejected");
  }
  if (const std::string bad = all.check_columns(); !bad.empty())
    return refuse(std::move(d), wire::ACK_REJECTED, bad, "batches_rejected");

  // What is stored is what was validated, without unknown fields: the bytes as received when
  // they hold none (they parse to exactly the validated message), else re-encoded.
  std::string reencoded;
  std::span<const std::byte> stored = body;
  if (has_unknown_fields(b)) {
    b.DiscardUnknownFields();
    b.SerializeToString(&reencoded);
    stored = std::as_bytes(std::span(reencoded.data(), reencoded.size()));
  }
  d.hash = batch_content_hash(stored);
  const auto conflict = [&](const char* where) {
    return refuse(std::move(d), wire::ACK_CONFLICT,
                  "seq = " + std::to_string(d.seq) + " of source \"" + d.source + "\" is " + where +
                      " with different content: a sequence number names one batch (send new "
                      "data with a new seq)",
                  "batches_conflict");
  };
  if (const auto p = pending_.find({d.source, d.seq}); p != pending_.end()) {
    if (p->second.first != d.hash) return conflict("being stored");
    d.ack.set_status(wire::ACK_DUPLICATE);
    d.ack.set_accepted(p->second.second.accepted());
    d.ack.set_rejected(p->second.second.rejected());
    d.counter = "batches_duplicate";
    d.depends_on_commit = true;
    return d;
  }
  SourceBook::SeqRecord found;
  switch (sources_.lookup(d.source, d.seq, d.hash, &found)) {
    case SourceBook::Lookup::kDuplicate:
      d.ack.set_status(wire::ACK_DUPLICATE);
      d.ack.set_accepted(found.accepted);
      d.ack.set_rejected(found.rejected);
      d.counter = "batches_duplicate";
      return d;
    case SourceBook::Lookup::kConflict:
      return conflict("durable");
    case SourceBook::Lookup::kStale:
      return refuse(std::move(d), wire::ACK_REJECTED,
                    "seq = " + std::to_string(d.seq) + " of source \"" + d.source +
                        "\" is older than the newest server.idempotency_window sequence numbers "
                        "remembered (highest durable seq " +
                        std::to_string(d.ack.durable_seq()) +
                        "): a retry cannot be told from new data",
                    "batches_stale");
    case SourceBook::Lookup::kNew:
      break;
  }
  if (!sources_.can_add(d.source)) {
    return refuse(std::move(d), wire::ACK_REJECTED,
                  "source \"" + d.source + "\": the server already keeps records of " +
                      "limits.max_sources sources",
                  "batches_rejected");
  }

  const std::int64_t closed = scheduler_.closed_through();
  const std::int64_t front = closed + 1 + limits_.max_windows_ahead;
  const auto window_range = [&] {
    return "an open window in [" + std::to_string(closed + 1) + ", " + std::to_string(front) +
           "] (window.max_windows_ahead = " + std::to_string(limits_.max_windows_ahead) +
           " after the oldest open one)";
  };
  if (b.has_end_of_window_seconds()) {
    std::int64_t k = 0;
    if (!scheduler_.analysis_cycle(b.end_of_window_seconds(), k)) {
      return refuse(std::move(d), wire::ACK_REJECTED,
                    "end_of_window_seconds = " + core::format_double(b.end_of_window_seconds()) +
                        ": not an analysis time t0 + k * " +
                        core::format_double(scheduler_.settings().cycle_seconds) + " s",
                    "batches_rejected");
    }
    if (k > front) {
      return refuse(std::move(d), wire::ACK_REJECTED,
                    "end_of_window_seconds = " + core::format_double(b.end_of_window_seconds()) +
                        " (window " + std::to_string(k) + "): expected " + window_range(),
                    "batches_rejected");
    }
    // A marker for a window already closed changes nothing (a slow feeder's last batch).
    d.close_cycle = k > closed ? k : -1;
  }
  if (b.has_truth()) {
    const auto& t = b.truth();
    const std::size_t want = limits_.grid.state_size();
    std::int64_t k = 0;
    std::string bad;
    if (t.grid_n() != static_cast<std::uint32_t>(limits_.grid.nx)) {
      bad = "truth.grid_n = " + std::to_string(t.grid_n()) + ": expected " +
            std::to_string(limits_.grid.nx);
    } else if (static_cast<std::size_t>(t.q_size()) != want) {
      bad = "truth.q: " + std::to_string(t.q_size()) + " values, expected a state of " +
            std::to_string(want);
    } else if (!scheduler_.analysis_cycle(t.time_seconds(), k)) {
      bad = "truth.time_seconds = " + core::format_double(t.time_seconds()) +
            ": not an analysis time";
    } else if (k <= closed || k > front) {
      bad = "truth.time_seconds = " + core::format_double(t.time_seconds()) + " (window " +
            std::to_string(k) + "): expected " + window_range();
    } else if (!std::all_of(t.q().begin(), t.q().end(),
                            [](double v) { return std::isfinite(v); })) {
      bad = "truth.q: non-finite values";
    }
    if (!bad.empty()) return refuse(std::move(d), wire::ACK_REJECTED, bad, "batches_rejected");
    d.truth.emplace(k, t);
  }

  // Per observation: refused ones are listed, the rest placed.
  wire::LoggedBatch lb;
  const obs::ValidityRules rules{
      limits_.grid,
      obs::PlausibilityLimits{limits_.qc.max_abs_kelvin, limits_.qc.max_error_sd_kelvin},
      limits_.kelvin_per_pv};
  d.placed.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const StoredObservation o = all[i];
    std::string field, why;
    const auto num = [&](const char* f, double v, const std::string& expected) {
      field = f;
      why = std::string(f) + " = " + core::format_double(v) + ": expected " + expected;
    };
    if (obs::ObservationProblem bad = obs::check_observation(
            {o.time_seconds, o.level, o.x_m, o.y_m, o.value, o.error_sd, o.op}, rules);
        !bad.empty()) {
      field = std::move(bad.field);
      why = std::move(bad.reason);
    } else {
      const auto p = scheduler_.place(o.time_seconds, closed);
      using P = CycleScheduler::Placement;
      if (p.kind == P::kBeforeFirstWindow) {
        num("time_seconds", o.time_seconds,
            "a time after the first window's start t0 - dt/2 = " +
                core::format_double(scheduler_.time_of(0) -
                                    scheduler_.settings().cycle_seconds / 2));
      } else if (p.kind == P::kTooFarAhead) {
        num("time_seconds", o.time_seconds,
            "a window at most window.max_windows_ahead = " +
                std::to_string(limits_.max_windows_ahead) + " after the oldest open one");
      } else if (p.kind == P::kLateRejected) {
        num("time_seconds", o.time_seconds,
            "an open window (window " + std::to_string(p.cycle) +
                " is closed; window.late_policy = \"reject\")");
        ++d.late_rejected;
      } else {
        if (p.kind == P::kLate) {
          ++d.late;
          lb.add_late_index(static_cast<std::uint32_t>(i));
        }
        d.placed.push_back({p.cycle, p.kind == P::kLate, o});
        d.max_cycle = std::max(d.max_cycle, p.cycle);
      }
    }
    if (!why.empty()) {
      ++d.rejected;
      lb.add_rejected_index(static_cast<std::uint32_t>(i));
      if (static_cast<std::size_t>(d.ack.rejections_size()) < kMaxListedRejections) {
        auto* r = d.ack.add_rejections();
        r->set_index(static_cast<std::uint32_t>(i));
        r->set_id(o.id);
        r->set_field(field);
        r->set_reason(why);
      }
    }
  }
  // Only a batch that is stored names its source for good (a flood of refused batches under
  // new names must not grow the table).
  const std::uint32_t source_index = sources_.intern(d.source);
  for (auto& p : d.placed)
    p.observation.source = source_index;
  if (d.truth) d.max_cycle = std::max(d.max_cycle, d.truth->first);
  d.max_cycle = std::max(d.max_cycle, d.close_cycle);
  lb.set_rejected(d.rejected);
  lb.set_received_unix_seconds(wall);
  lb.set_content_hash(d.hash);
  lb.set_closed_through(closed);
  lb.set_batch(reinterpret_cast<const char*>(stored.data()), stored.size());
  wire::LogRecord rec;
  *rec.mutable_batch() = std::move(lb);
  rec.SerializeToString(&d.record);
  d.store = true;
  d.depends_on_commit = true;
  d.ack.set_status(wire::ACK_ACCEPTED);
  d.ack.set_accepted(static_cast<std::uint32_t>(n) - d.rejected);
  d.ack.set_rejected(d.rejected);
  d.ack.set_late(d.late);
  pending_[{d.source, d.seq}] = {d.hash, d.ack};
  return d;
}

void Ingest::apply(const BatchDecision& d, double wall) {
  for (const auto& p : d.placed)
    scheduler_.add(p.cycle, p.observation, wall, p.late);
  if (d.truth) scheduler_.set_truth(d.truth->first, d.truth->second);
  sources_.record(d.source, d.seq,
                  {d.hash, static_cast<std::uint32_t>(d.placed.size()), d.rejected});
  if (d.close_cycle >= 0) scheduler_.close(d.close_cycle, wall);
}

void Ingest::place_all(const wire::ObservationBatch& b, std::int64_t closed_through,
                       const std::vector<std::uint32_t>& refused, BatchDecision& d) {
  const BatchObservations all(b);
  const std::uint32_t source_index = sources_.intern(b.source());
  std::size_t next_refused = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (next_refused < refused.size() && refused[next_refused] == i) {
      ++next_refused;
      continue;
    }
    StoredObservation o = all[i];
    o.source = source_index;
    const auto p = scheduler_.place(o.time_seconds, closed_through);
    const bool late = p.kind == CycleScheduler::Placement::kLate;
    if (p.kind == CycleScheduler::Placement::kWindow || late) {
      d.placed.push_back({p.cycle, late, o});
      d.max_cycle = std::max(d.max_cycle, p.cycle);
      if (late) ++d.late;
    }
  }
}

BatchDecision Ingest::replay(const wire::LoggedBatch& lb) {
  BatchDecision d;
  wire::ObservationBatch b;
  if (!b.ParseFromString(lb.batch()))
    throw std::runtime_error("observation log: a batch record is not an ObservationBatch");
  d.source = b.source();
  d.seq = b.seq();
  d.hash = lb.content_hash() != 0
               ? lb.content_hash()
               : batch_content_hash(std::as_bytes(std::span(lb.batch().data(), lb.batch().size())));
  d.rejected = lb.rejected();
  const std::int64_t closed =
      lb.has_closed_through() ? lb.closed_through() : scheduler_.closed_through();
  std::vector<std::uint32_t> refused(lb.rejected_index().begin(), lb.rejected_index().end());
  std::sort(refused.begin(), refused.end());
  place_all(b, closed, refused, d);
  std::int64_t k = 0;
  if (b.has_truth() && scheduler_.analysis_cycle(b.truth().time_seconds(), k) && k > closed)
    d.truth.emplace(k, b.truth());
  if (b.has_end_of_window_seconds() && scheduler_.analysis_cycle(b.end_of_window_seconds(), k))
    d.close_cycle = k;
  d.store = true;
  apply(d, lb.received_unix_seconds());
  return d;
}

}  // namespace rtda::server
