// The seam between the HIP LETKF's host code (g++: letkf_hip.cpp) and its kernels (hipcc:
// letkf_hip.hip); see ensf_hip_kernels.hpp for the conventions (plain structs, checked
// launches on the default stream, no HIP or HDF5 headers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtda::hip::detail {

// One batch of LETKF columns [c0, c1) as the kernel sees it (docs/science.md §3, eq. 7–10).
struct LetkfDeviceColumns {
  int n = 0;  // grid N
  int k = 0;  // members
  std::size_t c0 = 0, c1 = 0;
  std::size_t p = 0;  // observations
  double dx = 0, domain_m = 0, radius_m = 0;
  double v = 1;        // vertical factor (1 without localization)
  double cut = 1e-10;  // weight cut-off
  double rtps = 0;
  bool localize = true;

  const double* prior_cols = nullptr;  // [member][level][c − c0]; may alias post_cols
  double* post_cols = nullptr;
  // Per observation: Y_b row (p × k), innovation, 1/σ, position and level.
  const double* dev = nullptr;
  const double* innov = nullptr;
  const double* inv_sd = nullptr;
  const double* obs_x = nullptr;
  const double* obs_y = nullptr;
  const std::int32_t* obs_level = nullptr;
  // filters::LetkfObservationCells: per level CSR over the N² cells, and the offsets.
  const std::uint32_t* cell_start0 = nullptr;
  const std::uint32_t* cell_start1 = nullptr;
  const std::uint32_t* cell_obs0 = nullptr;
  const std::uint32_t* cell_obs1 = nullptr;
  const std::int32_t* offsets = nullptr;  // n_offsets × (a, b)
  int n_offsets = 0;
  // The largest candidate count of any column of the batch (p without localization).
  std::size_t max_candidates = 0;
  // Counters: [0] Σ local observation counts, [1] elements whose Jacobi did not converge.
  unsigned long long* counters = nullptr;
};

// Y_b, y − ȳ_b and 1/σ of every observation from hx ([member][obs]).
void letkf_observation_rows(const double* hx, std::size_t p, int k, const double* value,
                            const double* error_sd, double* dev, double* innov, double* inv_sd);
// The local analyses of the columns (eq. 7–10), one work-group per column at a time.
void letkf_columns(const LetkfDeviceColumns& batch);

}  // namespace rtda::hip::detail
