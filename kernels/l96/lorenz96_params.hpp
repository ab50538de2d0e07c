// The Lorenz-96 model's parameters and grid (docs/science.md §7): what the configuration and
// the files hold. The model itself is lorenz96.hpp.
#pragma once

#include "core/grid.hpp"

namespace rtda::l96 {

struct Lorenz96Params {
  int n = 40;          // variables on the ring
  double forcing = 8;  // F
  double dt = 0.05;    // RK4 step (model time units)

  // Seconds per model time unit: the usual reading of the model, in which dt = 0.05 is about
  // six hours of weather (one time unit is five days). rtda's clock runs in seconds.
  static constexpr double kSecondsPerTimeUnit = 5 * 86400.0;
  // Spacing of the ring's variables. One kilometre, so that a localization radius in km
  // (letkf.localization_radius_km) reads as a number of variables.
  static constexpr double kSpacingM = 1000.0;
  double step_seconds() const { return dt * kSecondsPerTimeUnit; }
  // The ring: one level of n points along x.
  core::Grid grid() const { return {1, n, 1, n * kSpacingM, kSpacingM}; }

  // Throws std::invalid_argument naming `model.l96_<key>` and the value.
  void validate() const;
};

}  // namespace rtda::l96
