// The kernels of the device-resident assimilation cycle (worker/device_ensemble.hpp,
// worker/cycle_engine.cpp with --device hip): the ViT forecast's normalisation around
// VitForwardHip::forward_device, the ensemble statistics of the analysis products, the
// per-observation statistics of h(x_b) for the innovation diagnostics, and the packing of the
// member ↔ column transposes, and the prior inflation. Plain C++ (no HIP headers), as the other
// kernel seams (ensf_hip_kernels.hpp); the element arithmetic is shared with the CPU path
// (surrogate/normalisation_math.hpp, filters/inflation_math.hpp, hip/cycle_layout.hpp) and the
// reductions over members run inside one thread in member order, the order of the CPU loops.
//
// All pointers are device pointers. Launches go to the default stream (where
// VitForwardHip::forward_device and the filters queue their work) without waiting; a launch
// failure throws std::runtime_error naming the kernel. In a build without the HIP backend
// (RTDA_HIP=OFF) every function throws std::runtime_error (cycle_hip.cpp).
#pragma once

#include <cstddef>

namespace rtda::hip::cycle {

// One mean and standard deviation per level (surrogate::Normalisation), with 1 / std per
// level computed by the caller as the CPU does.
struct LevelScaling {
  double mean[2] = {0, 0};
  double std_dev[2] = {1, 1};
  double inv_std[2] = {1, 1};
};

// z[m][l][e] = normalise_value(q[m][l][e], mean[l], inv_std[l]) for `members` states of
// 2 n2 values ([member][level][y][x]).
void normalise(const double* states, float* z, std::size_t members, std::size_t n2,
               const LevelScaling& scaling);
// q[m][l][e] = denormalise_value(z[m][l][e], std[l], mean[l]) (the increment is already in z).
void denormalise(const float* z, double* states, std::size_t members, std::size_t n2,
                 const LevelScaling& scaling);

// Per element of x ([member][dim]): the member mean into out[e] and the (n − 1) standard
// deviation into out[dim + e], summed over the members in ascending order as
// worker::mean_and_spread does on the CPU.
void mean_and_spread(const double* x, std::size_t members, std::size_t dim, double* out);

// Per observation o of hx ([member][p]): mean_i hx into out[o] and the (n − 1) variance into
// out[p + o] through filters::observation_moment (the CPU path's arithmetic).
void observation_mean_and_variance(const double* hx, std::size_t members, std::size_t p,
                                   double* out);

// Prior inflation (filters/inflation.hpp): every element e < stride of values
// ([member][stride]) through filters::inflate_element, the CPU's arithmetic (nothing when
// lambda == 1, as filters::inflate).
void inflate(double* values, int members, std::size_t stride, double lambda);

// The transposes' buffers (cycle_layout.hpp): send[transpose_index(m, l, c)] = states[m][l][c]
// for the `local_members` states of this rank, and the inverse.
void pack_columns(const double* states, std::size_t local_members, int grid_n, int ranks,
                  double* send);
void unpack_columns(const double* recv, std::size_t local_members, int grid_n, int ranks,
                    double* states);

}  // namespace rtda::hip::cycle
