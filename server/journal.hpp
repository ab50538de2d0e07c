// The observation log as the coordinator keeps it (docs/architecture.md §2-3, docs/service.md
// "Durability"): accepted batches, window closes and compaction bases as LogRecords; group
// commits and the degraded state while the log cannot be written; replay on start; and
// compaction once a checkpoint makes old windows unnecessary.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "rtda.pb.h"
#include "server/cycle_scheduler.hpp"
#include "server/ingest.hpp"
#include "server/obs_log.hpp"
#include "server/service_util.hpp"

namespace rtda::server {

class Journal {
 public:
  // Opens (or creates) the log under `data_dir`/log. Throws DataError for a damaged log and
  // std::system_error for an I/O error.
  Journal(const config::Config& cfg, const std::filesystem::path& data_dir,
          CycleScheduler& scheduler, Ingest& intake, Counters& counters);
  ~Journal();  // commits what is appended
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // On start: the same placement decisions, closes and idempotency records as live, and the
  // counters the log's history rebuilds. Returns the batches replayed.
  std::uint64_t replay();

  // Appends an accepted batch's record (`max_cycle`: the newest window it touches); durable
  // with the next commit_group().
  void append_batch(const std::string& record, std::int64_t max_cycle);
  // Makes the batches appended since the last commit durable; false (the log discarded them,
  // and ingest is degraded) when it cannot.
  bool commit_group();
  // Called with the seconds each successful commit_group() took (the metrics' histogram).
  void on_commit(std::function<void(double)> observer) { commit_observer_ = std::move(observer); }
  // Closes the window the deadline or grace rule closes now, if any (durably first).
  void close_due_windows();
  // After a durable checkpoint of cycle `usable` (<= last published): windows through it are
  // not needed again, in memory or in the log.
  void compact(std::int64_t usable);
  // server.log_sync = "interval": the fdatasync that is due (a failure degrades ingest).
  void sync_if_due();
  // The final commit of a shutdown (a failure is logged).
  void commit_at_shutdown();

  // The windows through this cycle are gone from memory (-1: none).
  std::int64_t dropped_through() const { return dropped_through_; }
  // Why ingest cannot make batches durable (disk full, I/O error); "" when healthy.
  const std::string& degraded() const { return degraded_; }
  std::uint64_t bytes() const { return log_->bytes(); }
  std::size_t segments() const { return log_->segments(); }

 private:
  LogOptions log_options() const;
  // Commits what is appended; false (and the degraded state) when the log cannot.
  bool commit_or_degrade(const char* what);
  void close_window(std::int64_t k, const std::string& reason);
  // A compaction base: what the deleted segments held that replay still needs.
  void apply_base(const wire::LogBase& b);

  const config::Config& cfg_;
  std::filesystem::path data_dir_;
  CycleScheduler& scheduler_;
  Ingest& intake_;
  Counters& counters_;
  std::unique_ptr<ObservationLog> log_;
  std::string degraded_;
  double degraded_logged_ = 0;
  // Log compaction: (record index, newest window it touches), oldest first; compaction bases
  // are marked kBaseRecord (each is superseded by the next).
  std::deque<std::pair<std::uint64_t, std::int64_t>> record_cycles_;
  static constexpr std::int64_t kBaseRecord = std::numeric_limits<std::int64_t>::max();
  std::int64_t compacted_through_ = -1;
  std::int64_t dropped_through_ = -1;
  std::function<void(double)> commit_observer_;
};

}  // namespace rtda::server
