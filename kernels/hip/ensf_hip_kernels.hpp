// The seam between the filters' HIP host code (g++: ensf_hip.cpp, letkf_hip.cpp) and their
// kernels (hipcc: ensf_hip.hip, letkf_hip.hip): plain structs of sizes and device pointers,
// and launch functions. No HIP header and nothing heavier than the standard library here,
// because hipcc compiles the kernels without the project's other dependencies (HDF5, Eigen).
//
// Every function throws std::runtime_error naming the failed hip* call and hipGetErrorString
// (launches are checked with hipGetLastError). Launches go to the default stream; the
// copies to and from the host synchronise with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hip/device_memory.hpp"

namespace rtda::hip::detail {

// ---- EnSF (docs/science.md §4) ----

// One slab analysis as the kernels see it: sizes, settings and device arrays. Layouts follow
// ensf.cpp: ensembles members × dim, member-major; local element e is [level][c − c0]; the
// global state index of e is level·N² + c0 + (e mod nc).
struct EnsfDeviceSlab {
  std::size_t n2 = 0, c0 = 0, nc = 0, dim = 0, members = 0;
  bool paper = true, normalize = true, has_arctan = false;
  double s_k = 0, inv_members = 0;
  double arctan_sigma_factor = 5, arctan_clip_sigmas = 3, rtps = 0;
  // NormalBatchStream key words and counters of the EnSF noise (member i uses member word i).
  std::uint32_t key0 = 0, key1 = 0, cycle = 0;

  const double* prior = nullptr;  // members × dim, physical units
  double* post = nullptr;         // members × dim
  double* mu = nullptr;           // dim: prior mean, spread, 1/spread (0 without spread)
  double* sd = nullptr;
  double* inv_sd = nullptr;
  double* x = nullptr;  // members × dim: prior in working coordinates
  double* z = nullptr;  // members × dim: the particles

  // Observations: value, error sd and obs::ObsOperator code per observation of the whole set.
  const double* obs_value = nullptr;
  const double* obs_sd = nullptr;
  const std::int8_t* obs_kind = nullptr;
  // Grid-point observations of each local element, in observation order (CSR: dim + 1).
  const std::uint32_t* elem_obs_start = nullptr;
  const std::uint32_t* elem_obs = nullptr;
  // Off-grid observations (standard mode): off_count of them; per off-grid observation kk
  // its 4 stencil weights and local elements (−1 where another slab owns the point), and
  // per element the (kk, weight) entries it receives, in (kk, stencil point) order (CSR).
  std::size_t off_count = 0;
  const double* off_weight = nullptr;      // off_count × 4
  const std::int64_t* off_elem = nullptr;  // off_count × 4
  const std::int32_t* off_points = nullptr;
  const std::uint32_t* off_obs = nullptr;  // off_count: observation index
  const std::uint32_t* elem_off_start = nullptr;
  const std::uint32_t* elem_off_kk = nullptr;
  const double* elem_off_weight = nullptr;
  const std::int32_t* off_owner = nullptr;  // off_count: 1 when this slab owns point 0

  // Paper mode's per-dimension likelihood coefficients (dim each; atan_* with has_arctan).
  double* lin_a = nullptr;
  double* lin_b = nullptr;
  double* atan_a = nullptr;
  double* atan_b = nullptr;
};

// The step's coefficients (filters::EnsfStepCoefficients, as plain doubles).
struct EnsfDeviceStep {
  double alpha, inv_beta2, beta2, drift, sigma2, damp, dt, noise;
};

// mu, sd, inv_sd and x from prior (eq. per docs/science.md §4 normalisation).
void ensf_prior_statistics(const EnsfDeviceSlab& s);
// Paper mode's lin_*/atan_* from the grid-point observations of each element.
void ensf_paper_terms(const EnsfDeviceSlab& s);
// y − mean_i h(x_b^(i)) into innovation[o] for the grid-point observations this slab owns
// (other entries untouched; the caller zeroes them). Off-grid ones need off_values
// (members × off_count × 4, gathered from the prior by ensf_gather_off_grid).
void ensf_innovations(const EnsfDeviceSlab& s, const double* off_values, double* innovation);
// Stencil values of every member: off_values[(i off_count + kk) 4 + p] = source value of the
// local point (physical units: from `prior` when from_prior, else μ + s z), +0.0 elsewhere.
void ensf_gather_off_grid(const EnsfDeviceSlab& s, bool from_prior, double* off_values);
// z(1) ~ N(0, I): row 0 of the noise.
void ensf_initial_particles(const EnsfDeviceSlab& s);
// Standard mode, eq. 13: row_d2[((row0 + r) k + i) k + j] = Σ over both levels and the
// row's columns of (z_i − α x_j)², for the slab's rows r (zeroing first).
void ensf_row_distances(const EnsfDeviceSlab& s, double alpha, std::size_t n, std::size_t row0,
                        std::size_t rows, std::size_t rows_total, double* row_d2);
// Softmax weights (k × k) from the summed distances; ess_min[i] = min(ess_min[i], 1/Σw²),
// ess_last[i] = 1/Σw².
void ensf_softmax(const EnsfDeviceSlab& s, const double* row_d2, std::size_t rows_total,
                  double beta2, double* weights, double* ess_min, double* ess_last);
// The off-grid observations' likelihood slopes per member: dlogp[i off_count + kk].
void ensf_off_grid_slopes(const EnsfDeviceSlab& s, const double* off_values, double* dlogp);
// weighted[i][e] = Σ_j w_ij x_j,e and grad[i][e] = the likelihood gradient (eq. 14) in
// working coordinates.
void ensf_weighted_prior_and_gradient(const EnsfDeviceSlab& s, const double* weights,
                                      const double* off_dlogp, double* weighted, double* grad);
// One Euler–Maruyama step (eq. 15) of every particle and element with the noise of `row`;
// standard mode passes weighted and grad, paper mode nullptr.
void ensf_step(const EnsfDeviceSlab& s, const EnsfDeviceStep& c, std::uint32_t row,
               const double* weighted, const double* grad);
// The member mean m of z per element into history[slot]; with compare, the maximum over the
// slab of |m − history[old_slot]| into *drift_bits (as the bits of a non-negative double,
// which order like the doubles; NaN ignored as std::max ignores it). Zero *drift_bits first.
void ensf_member_mean(const EnsfDeviceSlab& s, double* history, std::size_t slot,
                      std::size_t old_slot, bool compare, unsigned long long* drift_bits);
// post = μ + s z, then RTPS and the spread target (target == nullptr: none).
void ensf_finish(const EnsfDeviceSlab& s, const double* target);

}  // namespace rtda::hip::detail
