#include "server/journal.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <span>
#include <system_error>

#include "server/coordinator.hpp"

namespace rtda::server {
Journal::Journal(const config::Config& cfg, const std::filesystem::path& data_dir,
                 CycleScheduler& scheduler, Ingest& intake, Counters& counters)
    : cfg_(cfg), data_dir_(data_dir), scheduler_(scheduler), intake_(intake), counters_(counters) {
  try {
    log_ = std::make_unique<ObservationLog>(log_options());
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const std::system_error*>(&e)) throw;
    throw DataError(e.what());
  }
  if (log_->truncated_bytes() > 0) counters_.add("log_truncated_bytes", log_->truncated_bytes());
}

Journal::~Journal() {
  if (log_) {
    try {
      log_->commit();
    } catch (const std::exception& e) {
      spdlog::error("observation log at exit: {}", e.what());
    }
  }
}

LogOptions Journal::log_options() const {
  LogOptions lo;
  lo.dir = data_dir_ / "log";
  lo.segment_bytes = static_cast<std::uint64_t>(cfg_.server.log_segment_mb) << 20;
  lo.sync = cfg_.server.log_sync;
  lo.sync_interval_seconds = cfg_.server.log_sync_interval_seconds;
  return lo;
}

std::uint64_t Journal::replay() {
  std::uint64_t batches = 0;
  log_->replay([&](const LogRecordView& r) {
    wire::LogRecord rec;
    if (!rec.ParseFromArray(r.payload.data(), static_cast<int>(r.payload.size()))) {
      throw DataError("observation log record " + std::to_string(r.index) + ": not a LogRecord");
    }
    if (rec.has_window_closed()) {
      const auto k = static_cast<std::int64_t>(rec.window_closed().cycle());
      scheduler_.close(k);
      record_cycles_.emplace_back(r.index, k);
      return;
    }
    if (rec.has_base()) {
      apply_base(rec.base());
      record_cycles_.emplace_back(r.index, kBaseRecord);
      return;
    }
    const wire::LoggedBatch& lb = rec.batch();
    const BatchDecision d = intake_.replay(lb);
    record_cycles_.emplace_back(r.index, d.max_cycle);
    // The durable counters cover the log's whole history; their _since_start twins do not
    // count what is replayed.
    counters_.replay("batches_accepted");
    counters_.replay("observations_accepted", d.placed.size());
    counters_.replay("observations_rejected", lb.rejected());
    counters_.replay("observations_late", d.late);
    counters_.replay("observations_late_rejected", d.late_rejected);
    ++batches;
  });
  if (compacted_through_ >= 0) {
    scheduler_.drop_through(compacted_through_);
    dropped_through_ = std::max(dropped_through_, compacted_through_);
  }
  return batches;
}

void Journal::apply_base(const wire::LogBase& b) {
  if (b.closed_through() >= 0) scheduler_.close(b.closed_through());
  compacted_through_ = std::max(compacted_through_, b.covered_cycle());
  for (const auto& p : b.sources())
    intake_.sources().restore(p);
  // The counters of the records before the base (deleted or not) are the base's.
  for (const auto& [name, value] : b.counters())
    counters_.set_durable(name, value);
}

void Journal::append_batch(const std::string& record, std::int64_t max_cycle) {
  const std::uint64_t index = log_->append(std::as_bytes(std::span(record.data(), record.size())));
  record_cycles_.emplace_back(index, max_cycle);
}

bool Journal::commit_group() {
  const double started = wall_now();
  if (commit_or_degrade("batches")) {
    if (commit_observer_) commit_observer_(wall_now() - started);
    return true;
  }
  // Nothing of the group is stored: its records go (the log discarded them).
  while (!record_cycles_.empty() && record_cycles_.back().first >= log_->next_index())
    record_cycles_.pop_back();
  return false;
}

bool Journal::commit_or_degrade(const char* what) {
  try {
    log_->commit();
    if (!degraded_.empty()) {
      spdlog::info("observation log writable again: ingest resumes");
      degraded_.clear();
      counters_.add("log_recoveries");
    }
    return true;
  } catch (const std::exception& e) {
    const double now = wall_now();
    // A rollback that failed too leaves the tail unknown: reopen (which verifies the files
    // again) before the next try.
    if (log_->needs_reopen()) {
      try {
        LogOptions lo = log_options();
        log_.reset();
        log_ = std::make_unique<ObservationLog>(lo);
      } catch (const std::exception& again) {
        spdlog::error("observation log reopen: {}", again.what());
        if (!log_) throw;
      }
    }
    if (degraded_.empty() || now - degraded_logged_ > 60) {
      spdlog::error(
          "observation log: {} not durable: {}; ingest answers ACK_UNAVAILABLE until "
          "the log is writable again (control and publish go on)",
          what, e.what());
      degraded_logged_ = now;
    }
    if (degraded_.empty()) counters_.add("log_degraded_episodes");
    degraded_ = e.what();
    counters_.add("log_write_errors");
    return false;
  }
}

void Journal::close_due_windows() {
  std::string reason;
  const std::int64_t k = scheduler_.due_closure(wall_now(), reason);
  if (k < 0) return;
  close_window(k, reason);
}

void Journal::close_window(std::int64_t k, const std::string& reason) {
  wire::LogRecord rec;
  rec.mutable_window_closed()->set_cycle(static_cast<std::uint64_t>(k));
  rec.mutable_window_closed()->set_reason(reason);
  rec.mutable_window_closed()->set_unix_seconds(wall_now());
  const std::string bytes = rec.SerializeAsString();
  const std::uint64_t index = log_->append(std::as_bytes(std::span(bytes.data(), bytes.size())));
  // A close that is not durable does not happen: replay must see what was dispatched.
  if (!commit_or_degrade("window close")) return;
  record_cycles_.emplace_back(index, k);
  scheduler_.close(k, wall_now());
  counters_.add("windows_closed_by_" +
                std::string(reason == "deadline" ? "deadline" : "later_window"));
  spdlog::info("window {} closed ({})", k, reason);
}

// The log gets a base record (closed windows and idempotency records) at the start of a fresh
// segment, then every segment whose records all concern windows through `usable` is deleted.
void Journal::compact(std::int64_t usable) {
  if (usable <= dropped_through_ || usable > scheduler_.closed_through()) return;
  scheduler_.drop_through(usable);
  dropped_through_ = usable;
  wire::LogRecord rec;
  auto* base = rec.mutable_base();
  base->set_closed_through(scheduler_.closed_through());
  base->set_covered_cycle(usable);
  for (auto& p : intake_.sources().positions())
    *base->add_sources() = std::move(p);
  for (const std::string& name : Counters::durable_names())
    if (auto it = counters_.all().find(name); it != counters_.all().end())
      (*base->mutable_counters())[name] = it->second;
  const std::string bytes = rec.SerializeAsString();
  log_->roll();
  const std::uint64_t index = log_->append(std::as_bytes(std::span(bytes.data(), bytes.size())));
  if (!commit_or_degrade("compaction base")) return;
  compacted_through_ = usable;
  std::uint64_t first_kept = index;
  for (const auto& [i, kc] : record_cycles_) {
    if (i >= index) break;
    if (kc == kBaseRecord) continue;  // an older base: superseded by the new one
    if (kc > usable) {
      first_kept = i;
      break;
    }
  }
  const std::uint64_t before = log_->bytes();
  log_->remove_segments_before(first_kept);
  while (!record_cycles_.empty() && record_cycles_.front().first < log_->first_index())
    record_cycles_.pop_front();
  record_cycles_.emplace_back(index, kBaseRecord);
  if (log_->bytes() < before) {
    counters_.add("log_bytes_compacted", before - log_->bytes());
    spdlog::info("observation log compacted through cycle {}: {} -> {} bytes", usable, before,
                 log_->bytes());
  }
}

void Journal::sync_if_due() {
  try {
    log_->sync_if_due();
  } catch (const std::exception& e) {
    commit_or_degrade("interval sync");
  }
}

void Journal::commit_at_shutdown() {
  try {
    log_->commit();
  } catch (const std::exception& e) {
    spdlog::error("observation log at shutdown: {}", e.what());
  }
}

}  // namespace rtda::server
