// GPU kernels (HIP or CUDA, gpu_runtime.hpp) of the EnSF reverse SDE (docs/science.md §4, eq.
// 11–15). Each kernel is a thin loop around the shared arithmetic of filters/ensf_math.hpp and
// core/philox_hd.hpp, which the CPU filter runs too.
//
// Parallel layout (docs/architecture.md §5: EnSF is element-wise except the Monte-Carlo score's
// member distances):
//   - element-wise work: one thread per (member, element) or per element; reductions over
//     the members (means, spreads, the stopping rule's member mean) run inside one thread in
//     member order, the order of the CPU loops, so both give the same bits;
//   - the noise: one thread per (member, Philox block of 4 global columns): one Philox4x32
//     call gives the 4 normals the CPU's NormalBatchStream gives those columns;
//   - the Monte-Carlo distances: one thread per (grid row, member i, member j), summing the
//     row's 2 N terms in the CPU's order; the rows are then summed in ascending order by one
//     thread per member (ensf_softmax), again as on the CPU;
//   - the stopping rule's maximum over elements: a block-level tree in shared memory, then an
//     atomicMax on the bits of the (non-negative) block maximum.
// Contraction is off for the whole file so that a × b + c rounds twice, as on the CPU.
#if defined(__HIP__)
#pragma clang fp contract(off)  // nvcc: -fmad=false on its command line
#endif

#include <atomic>
#include <stdexcept>
#include <string>

#include "core/philox_hd.hpp"
#include "filters/ensf_math.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/gpu_runtime.hpp"

namespace rtda::hip::detail {

namespace {

constexpr int kThreads = 256;  // 4 AMD wavefronts or 8 NVIDIA warps; barriers are explicit

using gpu::check;
using gpu::check_launch;

unsigned grid_for(std::size_t work) {
  const std::size_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

__device__ inline std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

using ObsKind = obs::ObsOperator;

// ---------------------------------------------------------------- prior statistics

__global__ __launch_bounds__(kThreads) void prior_statistics_kernel(EnsfDeviceSlab s) {
  const std::size_t e = thread_index();
  if (e >= s.dim) return;
  double mean, spread;
  filters::ensf_mean_spread(s.prior + e, s.dim, s.members, s.inv_members, mean, spread);
  s.mu[e] = mean;
  s.sd[e] = spread;
  const double inv = spread > 0 ? 1.0 / spread : 0.0;  // a dimension without spread stays at μ
  s.inv_sd[e] = inv;
  for (std::size_t i = 0; i < s.members; ++i)
    s.x[i * s.dim + e] = filters::ensf_to_working(s.prior[i * s.dim + e], mean, inv, s.normalize);
}

__global__ __launch_bounds__(kThreads) void paper_terms_kernel(EnsfDeviceSlab s) {
  const std::size_t e = thread_index();
  if (e >= s.dim) return;
  filters::EnsfPaperTerms terms{0.0, 0.0, 0.0, 0.0};
  const double sd = s.sd[e];
  if (sd > 0) {  // a dimension without prior spread cannot move and gets no score
    for (std::uint32_t k = s.elem_obs_start[e]; k < s.elem_obs_start[e + 1]; ++k) {
      const std::uint32_t o = s.elem_obs[k];
      filters::ensf_add_paper_observation(static_cast<ObsKind>(s.obs_kind[o]), s.obs_value[o],
                                          s.obs_sd[o], s.mu[e], sd, s.s_k, s.arctan_sigma_factor,
                                          s.arctan_clip_sigmas, terms);
    }
  }
  s.lin_a[e] = terms.lin_a;
  s.lin_b[e] = terms.lin_b;
  if (s.has_arctan) {
    s.atan_a[e] = terms.atan_a;
    s.atan_b[e] = terms.atan_b;
  }
}

// ---------------------------------------------------------------- observations

__global__ __launch_bounds__(kThreads) void innovations_kernel(EnsfDeviceSlab s,
                                                               const double* off_values,
                                                               double* innovation) {
  const std::size_t e = thread_index();
  if (e < s.dim) {
    for (std::uint32_t k = s.elem_obs_start[e]; k < s.elem_obs_start[e + 1]; ++k) {
      const std::uint32_t o = s.elem_obs[k];
      double hbar = 0;
      for (std::size_t i = 0; i < s.members; ++i)
        hbar +=
            obs::operator_value(static_cast<ObsKind>(s.obs_kind[o]), s.prior[i * s.dim + e], s.s_k);
      innovation[o] = s.obs_value[o] - hbar * s.inv_members;
    }
  }
  // Off-grid observations: owned by the slab of stencil point 0 (as on the CPU).
  if (e < s.off_count && s.off_owner[e]) {
    const std::uint32_t o = s.off_obs[e];
    double hbar = 0;
    for (std::size_t i = 0; i < s.members; ++i) {
      double q = 0;
      for (int p = 0; p < s.off_points[e]; ++p)
        q += s.off_weight[e * 4 + p] * off_values[(i * s.off_count + e) * 4 + p];
      hbar += obs::operator_value(static_cast<ObsKind>(s.obs_kind[o]), q, s.s_k);
    }
    innovation[o] = s.obs_value[o] - hbar * s.inv_members;
  }
}

__global__ __launch_bounds__(kThreads) void gather_off_grid_kernel(EnsfDeviceSlab s,
                                                                   bool from_prior,
                                                                   double* off_values) {
  const std::size_t w = thread_index();  // (i, kk, p)
  if (w >= s.members * s.off_count * 4) return;
  const std::size_t p = w % 4, kk = (w / 4) % s.off_count, i = w / (4 * s.off_count);
  const std::int64_t e = s.off_elem[kk * 4 + p];
  double v = 0.0;
  if (e >= 0 && static_cast<int>(p) < s.off_points[kk]) {
    const std::size_t le = static_cast<std::size_t>(e);
    v = from_prior
            ? s.prior[i * s.dim + le] + 0.0
            : filters::ensf_to_physical(s.z[i * s.dim + le], s.mu[le], s.sd[le], s.normalize) + 0.0;
  }
  off_values[w] = v;
}

__global__ __launch_bounds__(kThreads) void off_grid_slopes_kernel(EnsfDeviceSlab s,
                                                                   const double* off_values,
                                                                   double* dlogp) {
  const std::size_t w = thread_index();  // (i, kk)
  if (w >= s.members * s.off_count) return;
  const std::size_t kk = w % s.off_count;
  const std::uint32_t o = s.off_obs[kk];
  double q = 0;
  for (int p = 0; p < s.off_points[kk]; ++p)
    q += s.off_weight[kk * 4 + p] * off_values[w * 4 + p];
  dlogp[w] = obs::log_likelihood_slope(static_cast<ObsKind>(s.obs_kind[o]), q, s.obs_value[o],
                                       s.obs_sd[o], s.s_k);
}

// ---------------------------------------------------------------- the particles

__global__ __launch_bounds__(kThreads) void initial_particles_kernel(EnsfDeviceSlab s,
                                                                     std::size_t blocks_per_level) {
  const std::size_t w = thread_index();  // (member, level, block)
  if (w >= s.members * 2 * blocks_per_level) return;
  const std::size_t b = w % blocks_per_level, level = (w / blocks_per_level) % 2;
  const std::size_t i = w / (2 * blocks_per_level);
  const std::size_t lo = level * s.n2 + s.c0, hi = lo + s.nc;  // global range of the level
  const std::size_t block = (lo / 4) + b;
  double xi[4];
  philox_hd::normal_block(s.key0, s.key1, s.cycle, static_cast<std::uint32_t>(i), 0u,
                          static_cast<std::uint32_t>(block), xi);
  for (std::size_t j = 0; j < 4; ++j) {
    const std::size_t g = 4 * block + j;
    if (g < lo || g >= hi) continue;
    s.z[i * s.dim + level * s.nc + (g - lo)] = xi[j];
  }
}

__global__ __launch_bounds__(kThreads) void step_kernel(EnsfDeviceSlab s, EnsfDeviceStep c,
                                                        std::uint32_t row,
                                                        std::size_t blocks_per_level,
                                                        const double* weighted,
                                                        const double* grad) {
  const std::size_t w = thread_index();  // (member, level, Philox block)
  if (w >= s.members * 2 * blocks_per_level) return;
  const std::size_t b = w % blocks_per_level, level = (w / blocks_per_level) % 2;
  const std::size_t i = w / (2 * blocks_per_level);
  const std::size_t lo = level * s.n2 + s.c0, hi = lo + s.nc;
  const std::size_t block = (lo / 4) + b;
  double xi[4];
  philox_hd::normal_block(s.key0, s.key1, s.cycle, static_cast<std::uint32_t>(i), row,
                          static_cast<std::uint32_t>(block), xi);
  const filters::EnsfStepCoefficients sc{0.0,      c.alpha, c.inv_beta2, c.beta2, c.drift,
                                         c.sigma2, c.damp,  c.dt,        c.noise};
  for (std::size_t j = 0; j < 4; ++j) {
    const std::size_t g = 4 * block + j;
    if (g < lo || g >= hi) continue;
    const std::size_t e = level * s.nc + (g - lo);
    const std::size_t ie = i * s.dim + e;
    const double zd = s.z[ie];
    double xbar, lik;
    if (s.paper) {
      // Paired score (particle i uses prior member i) and the per-dimension likelihood.
      xbar = s.x[ie];
      lik = s.has_arctan ? filters::ensf_paper_likelihood(zd, s.lin_a[e], s.lin_b[e], s.atan_a[e],
                                                          s.atan_b[e], s.s_k)
                         : filters::ensf_paper_linear_likelihood(zd, s.lin_a[e], s.lin_b[e]);
    } else {
      xbar = weighted[ie];  // Monte-Carlo score: Σ_j w_ij x_j
      lik = grad[ie];
    }
    s.z[ie] = filters::ensf_euler_maruyama(sc, zd, xbar, lik, xi[j]);
  }
}

__global__ __launch_bounds__(kThreads) void member_mean_kernel(EnsfDeviceSlab s, double* history,
                                                               std::size_t slot,
                                                               std::size_t old_slot, bool compare,
                                                               unsigned long long* drift_bits) {
  __shared__ double block_max[kThreads];
  const std::size_t e = thread_index();
  double drift = 0;
  if (e < s.dim) {
    double msum = 0;
    for (std::size_t i = 0; i < s.members; ++i)
      msum += s.z[i * s.dim + e];
    const double m = msum * s.inv_members;
    if (compare) {
      const double d = std::fabs(m - history[old_slot * s.dim + e]);
      drift = d > drift ? d : drift;  // NaN ignored, as std::max(drift, NaN) keeps drift
    }
    history[slot * s.dim + e] = m;
  }
  if (!compare) return;  // uniform across the block: no barrier is skipped by some threads
  block_max[threadIdx.x] = drift;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const double other = block_max[threadIdx.x + half];
      if (other > block_max[threadIdx.x]) block_max[threadIdx.x] = other;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    // Non-negative doubles order like their bit patterns.
    atomicMax(drift_bits, static_cast<unsigned long long>(__double_as_longlong(block_max[0])));
  }
}

// ---------------------------------------------------------------- Monte-Carlo score

__global__ __launch_bounds__(kThreads) void row_distances_kernel(EnsfDeviceSlab s, double alpha,
                                                                 std::size_t n, std::size_t row0,
                                                                 std::size_t rows, double* row_d2) {
  const std::size_t w = thread_index();  // (row, i, j)
  const std::size_t k = s.members;
  if (w >= rows * k * k) return;
  const std::size_t j = w % k, i = (w / k) % k, r = w / (k * k);
  double acc = 0;
  for (std::size_t level = 0; level < 2; ++level)
    for (std::size_t c = 0; c < n; ++c) {
      const std::size_t e = level * s.nc + r * n + c;
      acc += filters::ensf_squared_residual(s.z[i * s.dim + e], alpha, s.x[j * s.dim + e]);
    }
  row_d2[((row0 + r) * k + i) * k + j] = acc;
}

// One thread per member i (k is small). The summed distances are kept in the member's row of
// the weights, which the softmax then overwrites in place.
__global__ __launch_bounds__(kThreads) void softmax_kernel(EnsfDeviceSlab s, const double* row_d2,
                                                           std::size_t rows_total, double beta2,
                                                           double* weights, double* ess_min,
                                                           double* ess_last) {
  const std::size_t i = thread_index();
  const std::size_t k = s.members;
  if (i >= k) return;
  double* w = weights + i * k;
  for (std::size_t j = 0; j < k; ++j) {
    double d2 = 0.0;
    for (std::size_t r = 0; r < rows_total; ++r)
      d2 += row_d2[(r * k + i) * k + j];
    w[j] = d2;
  }
  // ensf_softmax_weights reads d2[j] before writing w[j] for the same j: in place is safe.
  const double w2 = filters::ensf_softmax_weights(w, k, beta2, w);
  const double ess = 1.0 / w2;
  ess_last[i] = ess;
  ess_min[i] = ess < ess_min[i] ? ess : ess_min[i];
}

__global__ __launch_bounds__(kThreads) void weighted_prior_and_gradient_kernel(
    EnsfDeviceSlab s, const double* weights, const double* off_dlogp, double* weighted,
    double* grad) {
  const std::size_t w = thread_index();  // (i, e)
  if (w >= s.members * s.dim) return;
  const std::size_t e = w % s.dim, i = w / s.dim;
  double wx = 0.0;
  for (std::size_t j = 0; j < s.members; ++j)
    wx += weights[i * s.members + j] * s.x[j * s.dim + e];
  weighted[w] = wx;
  const double scale = s.normalize ? s.sd[e] : 1.0;  // chain rule through x = μ + s z
  double g = 0.0;
  for (std::uint32_t k = s.elem_obs_start[e]; k < s.elem_obs_start[e + 1]; ++k) {
    const std::uint32_t o = s.elem_obs[k];
    const double q = filters::ensf_to_physical(s.z[w], s.mu[e], s.sd[e], s.normalize);
    const double dlogp = obs::log_likelihood_slope(static_cast<ObsKind>(s.obs_kind[o]), q,
                                                   s.obs_value[o], s.obs_sd[o], s.s_k);
    g += scale * dlogp;
  }
  if (s.off_count > 0) {
    for (std::uint32_t k = s.elem_off_start[e]; k < s.elem_off_start[e + 1]; ++k)
      g += scale * (s.elem_off_weight[k] * off_dlogp[i * s.off_count + s.elem_off_kk[k]]);
  }
  grad[w] = g;
}

// ---------------------------------------------------------------- output

__global__ __launch_bounds__(kThreads) void finish_kernel(EnsfDeviceSlab s, const double* target) {
  const std::size_t e = thread_index();
  if (e >= s.dim) return;
  for (std::size_t i = 0; i < s.members; ++i)
    s.post[i * s.dim + e] =
        filters::ensf_to_physical(s.z[i * s.dim + e], s.mu[e], s.sd[e], s.normalize);
  filters::ensf_rescale_spread(s.post + e, s.dim, s.members, s.inv_members, s.sd[e], s.rtps,
                               target != nullptr, target != nullptr ? target[e] : 0.0);
}

// Philox blocks of 4 global columns that cover one level's range of the slab.
std::size_t blocks_per_level(const EnsfDeviceSlab& s) {
  const std::size_t lo = s.c0, hi = s.c0 + s.nc;  // level 0; level 1 is shifted by N²
  const std::size_t l0 = (lo / 4), l1 = (hi - 1) / 4;
  // Level 1 starts at N² + c0, whose offset inside a block of 4 may differ when N² is not a
  // multiple of 4 (odd N): take the larger count of the two levels.
  const std::size_t m0 = (s.n2 + lo) / 4, m1 = (s.n2 + hi - 1) / 4;
  const std::size_t a = l1 - l0 + 1, b = m1 - m0 + 1;
  return a > b ? a : b;
}

}  // namespace

// ---------------------------------------------------------------- launches

void ensf_prior_statistics(const EnsfDeviceSlab& s) {
  prior_statistics_kernel<<<dim3(grid_for(s.dim)), dim3(kThreads), 0, 0>>>(s);
  check_launch("prior_statistics_kernel");
}

void ensf_paper_terms(const EnsfDeviceSlab& s) {
  paper_terms_kernel<<<dim3(grid_for(s.dim)), dim3(kThreads), 0, 0>>>(s);
  check_launch("paper_terms_kernel");
}

void ensf_innovations(const EnsfDeviceSlab& s, const double* off_values, double* innovation) {
  const std::size_t work = s.dim > s.off_count ? s.dim : s.off_count;
  innovations_kernel<<<dim3(grid_for(work)), dim3(kThreads), 0, 0>>>(s, off_values, innovation);
  check_launch("innovations_kernel");
}

void ensf_gather_off_grid(const EnsfDeviceSlab& s, bool from_prior, double* off_values) {
  if (s.off_count == 0) return;
  gather_off_grid_kernel<<<dim3(grid_for(s.members * s.off_count * 4)), dim3(kThreads), 0, 0>>>(
      s, from_prior, off_values);
  check_launch("gather_off_grid_kernel");
}

void ensf_initial_particles(const EnsfDeviceSlab& s) {
  const std::size_t bpl = blocks_per_level(s);
  initial_particles_kernel<<<dim3(grid_for(s.members * 2 * bpl)), dim3(kThreads), 0, 0>>>(s, bpl);
  check_launch("initial_particles_kernel");
}

void ensf_row_distances(const EnsfDeviceSlab& s, double alpha, std::size_t n, std::size_t row0,
                        std::size_t rows, std::size_t rows_total, double* row_d2) {
  fill_zero(row_d2, rows_total * s.members * s.members * sizeof(double));
  row_distances_kernel<<<dim3(grid_for(rows * s.members * s.members)), dim3(kThreads), 0, 0>>>(
      s, alpha, n, row0, rows, row_d2);
  check_launch("row_distances_kernel");
}

void ensf_softmax(const EnsfDeviceSlab& s, const double* row_d2, std::size_t rows_total,
                  double beta2, double* weights, double* ess_min, double* ess_last) {
  softmax_kernel<<<dim3(grid_for(s.members)), dim3(kThreads), 0, 0>>>(s, row_d2, rows_total, beta2,
                                                                      weights, ess_min, ess_last);
  check_launch("softmax_kernel");
}

void ensf_off_grid_slopes(const EnsfDeviceSlab& s, const double* off_values, double* dlogp) {
  if (s.off_count == 0) return;
  off_grid_slopes_kernel<<<dim3(grid_for(s.members * s.off_count)), dim3(kThreads), 0, 0>>>(
      s, off_values, dlogp);
  check_launch("off_grid_slopes_kernel");
}

void ensf_weighted_prior_and_gradient(const EnsfDeviceSlab& s, const double* weights,
                                      const double* off_dlogp, double* weighted, double* grad) {
  weighted_prior_and_gradient_kernel<<<dim3(grid_for(s.members * s.dim)), dim3(kThreads), 0, 0>>>(
      s, weights, off_dlogp, weighted, grad);
  check_launch("weighted_prior_and_gradient_kernel");
}

void ensf_step(const EnsfDeviceSlab& s, const EnsfDeviceStep& c, std::uint32_t row,
               const double* weighted, const double* grad) {
  const std::size_t bpl = blocks_per_level(s);
  step_kernel<<<dim3(grid_for(s.members * 2 * bpl)), dim3(kThreads), 0, 0>>>(s, c, row, bpl,
                                                                             weighted, grad);
  check_launch("step_kernel");
}

void ensf_member_mean(const EnsfDeviceSlab& s, double* history, std::size_t slot,
                      std::size_t old_slot, bool compare, unsigned long long* drift_bits) {
  member_mean_kernel<<<dim3(grid_for(s.dim)), dim3(kThreads), 0, 0>>>(s, history, slot, old_slot,
                                                                      compare, drift_bits);
  check_launch("member_mean_kernel");
}

void ensf_finish(const EnsfDeviceSlab& s, const double* target) {
  finish_kernel<<<dim3(grid_for(s.dim)), dim3(kThreads), 0, 0>>>(s, target);
  check_launch("finish_kernel");
}

}  // namespace rtda::hip::detail
