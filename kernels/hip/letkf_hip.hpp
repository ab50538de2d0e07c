// LETKF on a HIP device (docs/science.md §3; docs/architecture.md §6): the local analyses of all
// grid columns batched on the GPU, one work-group per column, with the round-robin Jacobi
// eigensolver of filters/letkf_math.hpp in place of Eigen's QR iteration. A plain C++ header:
// g++ code includes it; the kernels live in letkf_hip.hip.
//
// Results equal the kernel's sequence replayed on the CPU (tests/hip/letkf_replay.hpp: the
// same header functions in the same summation order) to round-off, and the CPU column path
// LetkfAnalysis::analyse_columns to the accuracy of two eigensolvers and two summation orders
// (see tests/hip/letkf_hip_test.cpp). The whole-domain analysis is filters::letkf_whole_domain
// over this column path.
//
// Without a HIP device (or in a build without the backend) every analysis throws
// std::runtime_error saying so; constructing the filter does not need a device.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "filters/filter.hpp"
#include "filters/letkf.hpp"

namespace rtda::hip {

class LetkfAnalysisHip final {
 public:
  explicit LetkfAnalysisHip(filters::LetkfSettings settings = {});  // validates

  std::string_view name() const { return "letkf"; }
  const filters::LetkfSettings& settings() const { return settings_; }

  // Host ensemble in and out (same diagnostics as LetkfAnalysis::analyse). posterior may
  // alias prior.
  filters::AnalysisDiagnostics analyse(filters::ConstEnsembleView prior,
                                       const obs::ObservationSpace& obs,
                                       const filters::AnalysisContext& ctx,
                                       filters::EnsembleView posterior);

  // The MPI worker's unit (same contract as LetkfAnalysis::analyse_columns), host buffers.
  void analyse_columns(std::span<const double> prior_cols, std::span<const double> hx, int members,
                       const obs::ObservationSpace& obs, std::size_t col_begin, std::size_t col_end,
                       std::span<double> posterior_cols,
                       filters::LetkfColumnStats* stats = nullptr) const;

  // Device-resident: prior_cols_device / posterior_cols_device hold members × 2 ×
  // (col_end − col_begin) doubles ([member][level][c − col_begin]; may alias), hx_device
  // members × obs.size() ([member][obs]).
  void analyse_columns_device(const double* prior_cols_device, const double* hx_device, int members,
                              const obs::ObservationSpace& obs, std::size_t col_begin,
                              std::size_t col_end, double* posterior_cols_device,
                              filters::LetkfColumnStats* stats = nullptr) const;

  // The whole domain with the ensemble on the device (members × 2 N², [member][level][y][x];
  // may alias): h(x_b^(i)) on the device, then analyse_columns_device over all columns.
  filters::AnalysisDiagnostics analyse_device(int members, const double* prior_device,
                                              const obs::ObservationSpace& obs,
                                              double* posterior_device) const;

 private:
  filters::LetkfSettings settings_;
};

}  // namespace rtda::hip
