// EnSF on a HIP device (docs/science.md §4; docs/architecture.md §6): the same filter as
// filters::EnsfAnalysis, both modes, with every pseudo-time step on the GPU. A plain C++
// header: g++ code includes it; the kernels live in ensf_hip.hip.
//
// Results: the device draws exactly the CPU filter's normals (NormalBatchStream, reproduced
// by core/philox_hd.hpp) and runs the CPU's arithmetic (filters/ensf_math.hpp) in the CPU's
// summation order, so paper mode with linear observations agrees with the CPU to the last
// bits the device's √ and ÷ allow; exp/tan/atan (standard mode, arctan observations) come from
// the device's math library and agree to round-off (see tests/hip/ensf_hip_test.cpp).
//
// Without a HIP device (or in a build without the backend) every analysis throws
// std::runtime_error saying so; constructing the filter does not need a device.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "filters/ensf.hpp"
#include "filters/filter.hpp"

namespace rtda::hip {

class EnsfAnalysisHip {
 public:
  // Throws std::invalid_argument (settings.validate()).
  explicit EnsfAnalysisHip(filters::EnsfSettings settings);

  std::string_view name() const { return "ensf"; }
  const filters::EnsfSettings& settings() const { return settings_; }

  // Host ensemble in and out: copies the prior to the device, analyses, copies the posterior
  // back. posterior may alias prior.
  filters::AnalysisDiagnostics analyse(filters::ConstEnsembleView prior,
                                       const obs::ObservationSpace& obs,
                                       const filters::AnalysisContext& ctx,
                                       filters::EnsembleView posterior);

  // The slab analysis of the MPI worker (same contract as EnsfAnalysis::analyse_slab: the
  // columns [col_begin, col_end), [member][level][c − col_begin], collective through the
  // reducer), with host buffers.
  filters::AnalysisDiagnostics analyse_slab(std::size_t col_begin, std::size_t col_end,
                                            filters::ConstEnsembleView prior,
                                            const obs::ObservationSpace& obs,
                                            const filters::AnalysisContext& ctx,
                                            filters::EnsembleView posterior,
                                            const filters::EnsfReducer& reducer);

  // Device-resident ensembles: prior_device and posterior_device are device pointers to
  // members × 2·(col_end − col_begin) doubles in the slab layout (the whole state,
  // [member][level][y][x], for col_begin = 0, col_end = N²); they may alias. Nothing but the
  // observations, a few per-dimension vectors and the reducers' vectors crosses to the host,
  // so a caller can keep the ensemble on the device between forecast and analysis.
  filters::AnalysisDiagnostics analyse_slab_device(std::size_t col_begin, std::size_t col_end,
                                                   int members, const double* prior_device,
                                                   const obs::ObservationSpace& obs,
                                                   const filters::AnalysisContext& ctx,
                                                   double* posterior_device,
                                                   const filters::EnsfReducer& reducer = {});
  filters::AnalysisDiagnostics analyse_device(int members, const double* prior_device,
                                              const obs::ObservationSpace& obs,
                                              const filters::AnalysisContext& ctx,
                                              double* posterior_device);

  // The spread target of spread_target = "initial" (as EnsfAnalysis::initial_spread).
  const std::vector<double>& initial_spread() const { return initial_spread_; }
  void set_initial_spread(std::vector<double> spread) { initial_spread_ = std::move(spread); }

 private:
  filters::EnsfSettings settings_;
  std::vector<double> initial_spread_;
};

}  // namespace rtda::hip
