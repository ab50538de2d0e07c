// Model fields on disk (docs/architecture.md §7): a state `q` (level, y, x), an ensemble or
// checkpoint `q` (member, level, y, x), and a nature run `q` (time, level, y, x) with `time`.
// PV is float64 in m s-1, laid out as the model holds it: [member][level][y][x], x fastest.
// Root attributes and coordinates follow io/conventions.hpp.
//
// State and ensemble files are written whole under a temporary name and renamed into place.
// A nature run is streamed into `<path>.partial` and renamed on close(); a run that dies
// leaves the .partial file holding every state appended (and flushed) so far. The writer takes
// no HDF5 file lock, so other processes (xarray, h5py) can read the .partial file meanwhile.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "io/conventions.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

void write_state(const std::filesystem::path& path, const FieldModel& model, double time_seconds,
                 std::span<const double> q, const Provenance& provenance = {});

void write_ensemble(const std::filesystem::path& path, const FieldModel& model, double time_seconds,
                    int members, std::span<const double> q, const Provenance& provenance = {});

// A state or ensemble file as read back.
struct FieldFile {
  sqg::SqgParams params;                   // the SQG model's (defaults in a Lorenz-96 file)
  std::optional<l96::Lorenz96Params> l96;  // set in a Lorenz-96 file
  FieldModel model() const {
    FieldModel m(params);
    m.l96 = l96;
    return m;
  }
  double time_seconds = 0;
  int members = 0;  // 0 for a state file (q has no member dimension)
  std::vector<double> q;
  Provenance provenance;

  // Member m of an ensemble (m = 0 for a state file).
  std::span<const double> member(int m) const {
    const std::size_t n = model().grid().state_size();
    return std::span<const double>(q).subspan(std::size_t(m) * n, n);
  }
};

// Reads a state (q of rank 3) or an ensemble (rank 4) file, checking q's shape against the
// file's own N and its units.
// With `run`, a file made by another tool may leave out the model attributes (the run's are
// assumed, with one warning) and give its time as a scalar variable `time` in any CF time
// units, converted to seconds since the run's epoch.
FieldFile read_fields(const std::filesystem::path& path, const RunDefaults* run = nullptr);

// Fails when the file's grid differs from the run's: `file "X": q has N = 32, expected 64`.
void check_compatible(const FieldFile& file, const FieldModel& expected,
                      const std::filesystem::path& path);

// Streams the states of a nature run into extendable datasets, flushing after each append
// so that the .partial file can be inspected while a long run progresses.
class NatureWriter {
 public:
  NatureWriter(const std::filesystem::path& path, const FieldModel& model,
               const Provenance& provenance = {});
  ~NatureWriter();
  NatureWriter(const NatureWriter&) = delete;
  NatureWriter& operator=(const NatureWriter&) = delete;
  NatureWriter(NatureWriter&&) noexcept;
  NatureWriter& operator=(NatureWriter&&) noexcept;

  // Appends one state (2·N·N values); times must increase strictly.
  void append(double time_seconds, std::span<const double> q);
  std::size_t size() const;
  // Closes the file and renames it to its final path.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// States [begin, end) of a nature run.
struct IndexRange {
  std::size_t begin = 0;
  std::size_t end = 0;
};

struct NatureRun {
  sqg::SqgParams params;
  std::optional<l96::Lorenz96Params> l96;  // a Lorenz-96 run (made in memory, never a file)
  FieldModel model() const {
    FieldModel m(params);
    m.l96 = l96;
    return m;
  }
  std::size_t first_index = 0;  // index in the file of times_seconds[0]
  std::vector<double> times_seconds;
  std::vector<double> q;  // times_seconds.size() states of the model's grid
  Provenance provenance;

  std::size_t size() const { return times_seconds.size(); }
  std::span<const double> state(std::size_t i) const {
    const std::size_t n = model().grid().state_size();
    return std::span<const double>(q).subspan(i * n, n);
  }
};

// Reads all states, or only `range`, of a nature run.
// Times are seconds since the run's epoch when `run` is given, else since the file's own.
NatureRun read_nature(const std::filesystem::path& path,
                      std::optional<IndexRange> range = std::nullopt,
                      const RunDefaults* run = nullptr);
// Only the time axis: cheap, for choosing a range.
std::vector<double> read_nature_times(const std::filesystem::path& path);

}  // namespace rtda::io
