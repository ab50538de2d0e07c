// The analysis archive (docs/architecture.md §7), streamed one cycle at a time:
//   mean, spread  (cycle, level, y, x)  m s-1   ensemble mean and standard deviation (n-1)
//   q             (cycle, member, level, y, x)  optional, every member
//   time          (cycle)  s               valid time of each analysis
//   <diagnostic>  (cycle)  per-cycle scalars (RMSE and spread in K, innovation statistics,
//                          observation counts, seconds per stage, ...), each with units
// `cycle` is an unlimited coordinate 0, 1, ...; root attributes carry the model
// configuration and provenance (io/conventions.hpp) plus file_kind = "analysis_archive".
// Written into <path>.partial, flushed after every cycle, renamed on close().
#pragma once

#include <cstdint>

#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "io/conventions.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

struct Diagnostic {
  double value;
  std::string units;      // e.g. "K", "1", "s"
  std::string long_name;  // one line of meaning
};

class ArchiveWriter {
 public:
  // members > 0 also stores every member's analysis in `q`. The `cycle` coordinate counts
  // from first_cycle (the service writes one file per cycle, numbered like its cycles, so
  // xarray.open_mfdataset(..., combine="by_coords") joins them into one archive).
  ArchiveWriter(const std::filesystem::path& path, const FieldModel& model,
                int members_to_store = 0, const Provenance& provenance = {},
                std::int64_t first_cycle = 0);
  ~ArchiveWriter();
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  // One cycle. The diagnostics' names must be the same every cycle.
  void append(double time_seconds, std::span<const double> mean, std::span<const double> spread,
              const std::map<std::string, Diagnostic>& diagnostics,
              std::span<const double> members = {});
  std::size_t cycles() const;
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtda::io
