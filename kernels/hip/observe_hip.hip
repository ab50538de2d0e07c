// h(x) on the device: one thread per (member, observation), the stencil and operator
// arithmetic of obs/observation_math.hpp (the CPU's ObservationSpace::apply runs the same).
// Contraction is off, so that a × b + c rounds twice, as on the CPU.
#if defined(__HIP__)
#pragma clang fp contract(off)  // nvcc: -fmad=false on its command line
#endif

#include <stdexcept>
#include <string>

#include "hip/gpu_runtime.hpp"
#include "hip/observe_hip.hpp"
#include "obs/observation_math.hpp"

namespace rtda::hip::detail {

namespace {

constexpr int kThreads = 256;

using gpu::check;

unsigned grid_for(std::size_t work) {
  const std::size_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

__device__ inline std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__global__ __launch_bounds__(kThreads) void apply_operators_kernel(
    const double* states, std::size_t state, int k, std::size_t p,
    const std::uint32_t* stencil_index, const double* stencil_weight,
    const std::int32_t* stencil_count, const std::int8_t* kind, double s_k, double* hx) {
  const std::size_t w = thread_index();  // (member, observation)
  if (w >= static_cast<std::size_t>(k) * p) return;
  const std::size_t o = w % p, m = w / p;
  const double q = obs::stencil_value(states + m * state, stencil_index + o * 4,
                                      stencil_weight + o * 4, stencil_count[o]);
  hx[w] = obs::operator_value(static_cast<obs::ObsOperator>(kind[o]), q, s_k);
}

}  // namespace

void apply_operators(const double* states, std::size_t state, int k, std::size_t p,
                     const std::uint32_t* stencil_index, const double* stencil_weight,
                     const std::int32_t* stencil_count, const std::int8_t* kind, double s_k,
                     double* hx) {
  if (p == 0) return;
  apply_operators_kernel<<<dim3(grid_for(static_cast<std::size_t>(k) * p)), dim3(kThreads), 0, 0>>>(
      states, state, k, p, stencil_index, stencil_weight, stencil_count, kind, s_k, hx);
  gpu::check_launch("apply_operators_kernel");
}

}  // namespace rtda::hip::detail
