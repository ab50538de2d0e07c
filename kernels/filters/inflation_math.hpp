// The per-element arithmetic of prior inflation (inflation.hpp), shared by the CPU path and
// the HIP kernel of the device-resident cycle (kernels/hip/cycle_hip.hip): nothing here
// needs more than core/hd.hpp.
#pragma once

#include <cstddef>

#include "core/hd.hpp"

namespace rtda::filters {

// Element e of an ensemble stored as values[m * stride + e], m < members: perturbations about
// the member mean scaled by lambda. The same arithmetic on the CPU and in a HIP kernel.
RTDA_HD inline void inflate_element(double* values, int members, std::size_t stride, std::size_t e,
                                    double lambda) {
  double mean = 0;
  for (int m = 0; m < members; ++m)
    mean += values[static_cast<std::size_t>(m) * stride + e];
  mean /= members;
  for (int m = 0; m < members; ++m) {
    double& v = values[static_cast<std::size_t>(m) * stride + e];
    v = mean + lambda * (v - mean);
  }
}

// Observation o of hx ([member][p]): the member mean of h(x) into out[o] and its (n-1)
// variance into out[p + o] (observation_moments in inflation.hpp; the device's copy of it).
RTDA_HD inline void observation_moment(const double* hx, int members, std::size_t p, std::size_t o,
                                       double* out) {
  double hm = 0;
  for (int m = 0; m < members; ++m)
    hm += hx[static_cast<std::size_t>(m) * p + o];
  hm /= members;
  double v = 0;
  for (int m = 0; m < members; ++m) {
    const double dev = hx[static_cast<std::size_t>(m) * p + o] - hm;
    v += dev * dev;
  }
  out[o] = hm;
  out[p + o] = v / (members - 1);
}

}  // namespace rtda::filters
