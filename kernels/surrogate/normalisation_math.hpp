// The per-element arithmetic of the surrogate's per-level normalisation (docs/science.md §5:
// z = (q − mean[level]) / std[level] into the network's float32, and back), shared by the CPU
// (surrogate::Normalisation::apply / invert, training_data.cpp) and the HIP kernels that
// normalise and restore the device-resident ensemble around the ViT forecast
// (hip/cycle_hip.hip). Device-safe (core/hd.hpp): plain doubles and floats, no allocation.
//
// `inv_std` is 1 / std[level] computed once per level by the caller (in double, as the CPU
// always did): the element multiplies by it rather than dividing, so both backends round the
// same correctly rounded operations in the same order.
#pragma once

#include "core/hd.hpp"

namespace rtda::surrogate {

// z = (q − mean) · (1 / std), rounded to float.
RTDA_HD inline float normalise_value(double q, double mean, double inv_std) {
  return static_cast<float>((q - mean) * inv_std);
}

// q = z · std + mean in double (two roundings: the .hip files compile with contraction off).
RTDA_HD inline double denormalise_value(float z, double std_dev, double mean) {
  return static_cast<double>(z) * std_dev + mean;
}

}  // namespace rtda::surrogate
