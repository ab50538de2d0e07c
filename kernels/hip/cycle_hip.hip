// GPU kernels (HIP or CUDA, gpu_runtime.hpp) of the device-resident cycle (cycle_hip.hpp): one
// thread per element (or per observation); the sums over members run inside the thread in member
// order, so they are the CPU's sums. Contraction is off for the whole file so that a × b + c rounds
// twice, as on the CPU.
#if defined(__HIP__)
#pragma clang fp contract(off)  // nvcc: -fmad=false on its command line
#endif

#include <cmath>
#include <stdexcept>
#include <string>

#include "filters/inflation_math.hpp"
#include "hip/cycle_hip.hpp"
#include "hip/cycle_layout.hpp"
#include "hip/gpu_runtime.hpp"
#include "surrogate/normalisation_math.hpp"

namespace rtda::hip::cycle {

namespace {

constexpr int kThreads = 256;

using gpu::check_launch;

dim3 grid_for(std::size_t work) {
  const std::size_t blocks = (work + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(blocks > 0 ? blocks : 1));
}

__device__ inline std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__global__ __launch_bounds__(kThreads) void normalise_kernel(const double* states, float* z,
                                                             std::size_t count, std::size_t n2,
                                                             LevelScaling s) {
  const std::size_t i = thread_index();
  if (i >= count) return;
  const int level = static_cast<int>((i / n2) % 2);
  z[i] = surrogate::normalise_value(states[i], s.mean[level], s.inv_std[level]);
}

__global__ __launch_bounds__(kThreads) void denormalise_kernel(const float* z, double* states,
                                                               std::size_t count, std::size_t n2,
                                                               LevelScaling s) {
  const std::size_t i = thread_index();
  if (i >= count) return;
  const int level = static_cast<int>((i / n2) % 2);
  states[i] = surrogate::denormalise_value(z[i], s.std_dev[level], s.mean[level]);
}

// The sums of worker::mean_and_spread for one element e: the mean, then the squared
// deviations, each over the members in ascending order.
__global__ __launch_bounds__(kThreads) void mean_and_spread_kernel(const double* x,
                                                                   std::size_t members,
                                                                   std::size_t dim, double* out) {
  const std::size_t e = thread_index();
  if (e >= dim) return;
  double mean = 0.0;
  for (std::size_t m = 0; m < members; ++m)
    mean += x[m * dim + e];
  mean /= static_cast<double>(static_cast<int>(members));
  double sum2 = 0.0;
  for (std::size_t m = 0; m < members; ++m) {
    const double d = x[m * dim + e] - mean;
    sum2 += d * d;
  }
  out[e] = mean;
  out[dim + e] = sqrt(sum2 / static_cast<double>(static_cast<int>(members) - 1));
}

__global__ __launch_bounds__(kThreads) void observation_mean_and_variance_kernel(
    const double* hx, std::size_t members, std::size_t p, double* out) {
  const std::size_t o = thread_index();
  if (o >= p) return;
  filters::observation_moment(hx, static_cast<int>(members), p, o, out);
}

__global__ __launch_bounds__(kThreads) void inflate_kernel(double* values, int members,
                                                           std::size_t stride, double lambda) {
  const std::size_t e = thread_index();
  if (e >= stride) return;
  filters::inflate_element(values, members, stride, e, lambda);
}

// One thread per element (m, level, c) of the member layout; `to_buffer` packs, else unpacks.
__global__ __launch_bounds__(kThreads) void transpose_kernel(const double* src, double* dst,
                                                             std::size_t local_members, int grid_n,
                                                             int ranks, bool to_buffer) {
  const std::size_t i = thread_index();
  const std::size_t n2 = static_cast<std::size_t>(grid_n) * static_cast<std::size_t>(grid_n);
  if (i >= local_members * 2 * n2) return;
  const std::size_t c = i % n2;
  const int level = static_cast<int>((i / n2) % 2);
  const std::size_t m = i / (2 * n2);
  const std::size_t j = layout::transpose_index(m, level, c, local_members, grid_n, ranks);
  if (to_buffer)
    dst[j] = src[i];
  else
    dst[i] = src[j];
}

}  // namespace

void normalise(const double* states, float* z, std::size_t members, std::size_t n2,
               const LevelScaling& scaling) {
  const std::size_t count = members * 2 * n2;
  if (count == 0) return;
  normalise_kernel<<<grid_for(count), dim3(kThreads), 0, 0>>>(states, z, count, n2, scaling);
  check_launch("normalise_kernel");
}

void denormalise(const float* z, double* states, std::size_t members, std::size_t n2,
                 const LevelScaling& scaling) {
  const std::size_t count = members * 2 * n2;
  if (count == 0) return;
  denormalise_kernel<<<grid_for(count), dim3(kThreads), 0, 0>>>(z, states, count, n2, scaling);
  check_launch("denormalise_kernel");
}

void mean_and_spread(const double* x, std::size_t members, std::size_t dim, double* out) {
  if (dim == 0) return;
  mean_and_spread_kernel<<<grid_for(dim), dim3(kThreads), 0, 0>>>(x, members, dim, out);
  check_launch("mean_and_spread_kernel");
}

void observation_mean_and_variance(const double* hx, std::size_t members, std::size_t p,
                                   double* out) {
  if (p == 0) return;
  observation_mean_and_variance_kernel<<<grid_for(p), dim3(kThreads), 0, 0>>>(hx, members, p, out);
  check_launch("observation_mean_and_variance_kernel");
}

void inflate(double* values, int members, std::size_t stride, double lambda) {
  if (lambda == 1.0 || members < 2 || stride == 0) return;
  inflate_kernel<<<grid_for(stride), dim3(kThreads), 0, 0>>>(values, members, stride, lambda);
  check_launch("inflate_kernel");
}

void pack_columns(const double* states, std::size_t local_members, int grid_n, int ranks,
                  double* send) {
  const std::size_t count = local_members * 2 * static_cast<std::size_t>(grid_n) * grid_n;
  if (count == 0) return;
  transpose_kernel<<<grid_for(count), dim3(kThreads), 0, 0>>>(states, send, local_members, grid_n,
                                                              ranks, true);
  check_launch("transpose_kernel (pack)");
}

void unpack_columns(const double* recv, std::size_t local_members, int grid_n, int ranks,
                    double* states) {
  const std::size_t count = local_members * 2 * static_cast<std::size_t>(grid_n) * grid_n;
  if (count == 0) return;
  transpose_kernel<<<grid_for(count), dim3(kThreads), 0, 0>>>(recv, states, local_members, grid_n,
                                                              ranks, false);
  check_launch("transpose_kernel (unpack)");
}

}  // namespace rtda::hip::cycle
