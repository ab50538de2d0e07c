// How the worker group runs a filter: every rank analyses the grid columns it owns
// (architecture.md §5). Adapters over LETKF and EnSF implement this.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "filters/filter.hpp"
#include "hip/device.hpp"
#include "obs/observation_space.hpp"

namespace rtda::worker {

class SlabAnalysis {
 public:
  virtual ~SlabAnalysis() = default;
  virtual std::string_view name() const = 0;
  // prior_cols / post_cols: [member][level][c - c0] for columns [c0, c1); hx: [member][obs]
  // = h(x_b) of every member for every observation. Collective over `comm`: every rank calls
  // it once per analysis. Filter-specific scalars go to `extra` (same on every rank).
  virtual void analyse_columns(std::span<const double> prior_cols, std::span<const double> hx,
                               int members, const obs::ObservationSpace& obs,
                               const filters::AnalysisContext& ctx, std::size_t c0, std::size_t c1,
                               std::span<double> post_cols, MPI_Comm comm,
                               std::map<std::string, double>& extra) = 0;
  // The same analysis with the columns on this rank's HIP device (Backend::kHip; the
  // device-resident cycle): prior_cols, post_cols and hx are device pointers in the layouts
  // above, and post_cols may be prior_cols (an analysis in place). Only the filters made with
  // Backend::kHip (and "none") have it; the CPU ones throw std::logic_error.
  virtual void analyse_columns_device(const double* prior_cols, const double* hx, int members,
                                      const obs::ObservationSpace& obs,
                                      const filters::AnalysisContext& ctx, std::size_t c0,
                                      std::size_t c1, double* post_cols, MPI_Comm comm,
                                      std::map<std::string, double>& extra);
  // State a filter carries from one analysis to the next (EnSF's spread target), over the
  // whole state [level][y][x] with NaN where this rank holds nothing; empty when stateless.
  virtual std::vector<double> carried_state() const { return {}; }
  virtual void restore_carried_state(std::vector<double>) {}
};

// "letkf", "ensf" or "none", configured from cfg.letkf / cfg.ensf; with Backend::kHip the
// filter's steps run on this rank's HIP device (kernels/hip): analyse_columns_device on
// device-resident columns, or analyse_columns, which copies host columns to the device and
// back around each analysis.
std::unique_ptr<SlabAnalysis> make_slab_analysis(std::string_view filter, const config::Config& cfg,
                                                 device::Backend backend = device::Backend::kCpu);

}  // namespace rtda::worker
