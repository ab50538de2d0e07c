// The filters' spellings of the observation operators of obs/observation_math.hpp (the one
// enum and its host/device arithmetic): ObsKind is obs::ObsOperator, and the obs_* functions
// forward to obs::operator_value, operator_derivative, log_likelihood_slope and stencil_value.
#pragma once

#include <cstdint>

#include "core/hd.hpp"
#include "obs/observation_math.hpp"

namespace rtda::filters {

using ObsKind = obs::ObsOperator;

// From an operator or its int8 code, e.g. obs_kind(space.op()[o]).
template <typename Op>
RTDA_HD inline ObsKind obs_kind(Op op) {
  static_assert(sizeof(Op) == sizeof(ObsKind), "an operator code is one byte");
  return static_cast<ObsKind>(static_cast<std::int8_t>(op));
}

RTDA_HD inline double obs_operator_value(ObsKind op, double q_ms, double kelvin_per_pv) {
  return obs::operator_value(op, q_ms, kelvin_per_pv);
}

RTDA_HD inline double obs_operator_derivative(ObsKind op, double q_ms, double kelvin_per_pv) {
  return obs::operator_derivative(op, q_ms, kelvin_per_pv);
}

RTDA_HD inline double obs_log_likelihood_slope(ObsKind op, double q_ms, double y, double sigma,
                                               double kelvin_per_pv) {
  return obs::log_likelihood_slope(op, q_ms, y, sigma, kelvin_per_pv);
}

RTDA_HD inline double obs_stencil_value(const double* state, const std::uint32_t* index,
                                        const double* weight, int count) {
  return obs::stencil_value(state, index, weight, count);
}

}  // namespace rtda::filters
