// An ensemble spread over the ranks of an MPI communicator (docs/architecture.md §5).
//
// Members are block-distributed for the forecast: rank r holds members [m0_r, m1_r), each a
// full state on the model's core::Grid. The analysis works on grid columns (c = j nx + i,
// every level): rank r
// owns columns [c0_r, c1_r) of every member. `to_columns` / `from_columns` move between the
// two layouts with one all-to-all each (columns are split by whole grid rows); nothing about the
// result depends on the number of ranks, so 1 and R ranks give bitwise identical analyses.
#pragma once

#include "comm.hpp"

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/grid.hpp"
#include "obs/observation_space.hpp"

namespace rtda::worker {

// [begin, end) of block `index` when `total` items are split into `parts` blocks; the first
// total % parts blocks get one extra item.
std::pair<std::size_t, std::size_t> block_range(std::size_t total, int parts, int index);

// The grid columns of rank `index`: whole grid rows (EnSF's standard mode sums its member
// distances per row), so [row0 nx, row1 nx). A ring is one row: one rank analyses it.
std::pair<std::size_t, std::size_t> column_range(const core::Grid& grid, int parts, int index);

// model.threads for the ranks of a worker group: `requested` > 0 as given; 0 = OMP_NUM_THREADS
// when it is set (its first positive integer), else max(1, cores / ranks on this node), so R
// ranks sharing a node share its cores instead of each taking all of them; and never more
// than the CPUs this process may run on (a rank that mpiexec binds to one core gets one).
// cores = std::thread::hardware_concurrency, the CPUs this process may run on from
// sched_getaffinity, ranks on this node from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
// `reason` says what was chosen and why, e.g. "model.threads = 0: 1 thread per rank (2 cores,
// 2 ranks on this node)". Collective over `comm`.
struct ThreadChoice {
  int threads = 1;
  std::string reason;
};
ThreadChoice resolve_threads(const Comm& comm, int requested);
// The arithmetic of resolve_threads without MPI or the environment: omp_num_threads = the value
// of OMP_NUM_THREADS (nullopt when unset), allowed_cores = the affinity count (0 = unknown).
ThreadChoice resolve_threads(int requested, const std::optional<std::string>& omp_num_threads,
                             int cores, int ranks_on_node, int allowed_cores = 0);

class DistributedEnsemble {
 public:
  DistributedEnsemble(Comm comm, int members, const core::Grid& grid);

  const Comm& comm() const { return comm_; }

  int rank() const { return rank_; }
  int ranks() const { return size_; }
  int members() const { return members_; }
  const core::Grid& grid() const { return grid_; }
  std::size_t levels() const { return static_cast<std::size_t>(grid_.levels); }
  std::size_t state_size() const { return grid_.state_size(); }
  std::size_t columns_total() const { return grid_.columns(); }

  // Members held here for the forecast, [first, first + count).
  int first_member() const { return static_cast<int>(members_range_.first); }
  int local_members() const {
    return static_cast<int>(members_range_.second - members_range_.first);
  }
  std::span<double> local_states() { return states_; }
  std::span<const double> local_states() const { return states_; }

  // Columns owned here for the analysis.
  std::pair<std::size_t, std::size_t> columns() const { return columns_range_; }
  std::size_t local_columns() const { return columns_range_.second - columns_range_.first; }

  // Member layout -> column layout: cols = [member][level][c - c0] for this rank's columns.
  void to_columns(std::vector<double>& cols) const;
  // Column layout -> member layout (the inverse of to_columns).
  void from_columns(std::span<const double> cols);

  // h(x) of every member for every observation, on every rank: [member][obs].
  std::vector<double> observe_all(const obs::ObservationSpace& space) const;

  // The whole ensemble ([member][state]) on `root` (empty elsewhere), and back.
  std::vector<double> gather(int root = 0) const;
  void scatter(std::span<const double> all, int root = 0);

 private:
  Comm comm_;
  int rank_ = 0, size_ = 1;
  int members_;
  core::Grid grid_;
  std::pair<std::size_t, std::size_t> members_range_;
  std::pair<std::size_t, std::size_t> columns_range_;
  std::vector<double> states_;  // local members, [member][level][y][x]
};

}  // namespace rtda::worker
