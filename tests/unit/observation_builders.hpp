// Small builders shared by the unit tests that make observations by hand.
#pragma once

#include <cstdint>

#include "obs/observation.hpp"

namespace rtda::test_support {

// One observation at (x, y) metres on `level`; the defaults are an identity-operator
// observation with unit error.
inline obs::Observation observation(double x_m, double y_m, int level, double value,
                                    obs::ObsOperator op = obs::ObsOperator::kIdentity,
                                    double error_sd = 1.0, std::uint64_t id = 0) {
  obs::Observation o;
  o.x_m = x_m;
  o.y_m = y_m;
  o.level = level;
  o.value = value;
  o.op = op;
  o.error_sd = error_sd;
  o.id = id;
  return o;
}

}  // namespace rtda::test_support
