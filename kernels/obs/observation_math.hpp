// The observation operators (docs/science.md §2) and the Gaussian log-likelihood slope of eq. 14
// as host/device functions: the one operator enum of rtda and its arithmetic, shared by the
// observation space, the CPU filters and the HIP kernels (core/hd.hpp). Free of HDF5, of
// <string> and of anything a device cannot run, so .hip files include it directly.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.hpp"

namespace rtda::obs {

// The codes of the observation files' `operator` variable and of proto/rtda.proto's
// ObservationOperator (tests/unit/wire_contract_test.cpp): append only.
enum class ObsOperator : std::int8_t {
  kLinearK = 0,   // f·θ₀/g·q, kelvin
  kArctan = 1,    // arctan(f·θ₀/g·q)
  kIdentity = 2,  // q, m s-1
};

// Whether `code` (a file's or a message's, read wider than the enum) names an operator.
RTDA_HD constexpr bool known_operator(std::int64_t code) {
  return code >= 0 && code <= 2;
}

// h(q): the scalar operator at one interpolated q (m s-1); `kelvin_per_pv` is the grid's
// f·θ₀/g. An unknown code gives NaN (the intake check of obs/validity.hpp refuses such codes
// before any filter sees them).
RTDA_HD inline double operator_value(ObsOperator op, double q_ms, double kelvin_per_pv) {
  switch (op) {
    case ObsOperator::kLinearK:
      return kelvin_per_pv * q_ms;
    case ObsOperator::kArctan:
      return std::atan(kelvin_per_pv * q_ms);
    case ObsOperator::kIdentity:
      return q_ms;
  }
  return __builtin_nan("");
}

// h'(q) = dh/dq.
RTDA_HD inline double operator_derivative(ObsOperator op, double q_ms, double kelvin_per_pv) {
  switch (op) {
    case ObsOperator::kLinearK:
      return kelvin_per_pv;
    case ObsOperator::kArctan: {
      const double u = kelvin_per_pv * q_ms;
      return kelvin_per_pv / (1.0 + u * u);
    }
    case ObsOperator::kIdentity:
      return 1.0;
  }
  return __builtin_nan("");
}

// d/dq log p(y | q) for a Gaussian error sigma (eq. 14): −(h(q) − y)/σ² · h′(q).
RTDA_HD inline double log_likelihood_slope(ObsOperator op, double q_ms, double y, double sigma,
                                           double kelvin_per_pv) {
  return -(operator_value(op, q_ms, kelvin_per_pv) - y) / (sigma * sigma) *
         operator_derivative(op, q_ms, kelvin_per_pv);
}

// q at a bilinear stencil: Σ_p weight_p · state[index_p], in stencil order (as
// ObservationSpace::apply).
RTDA_HD inline double stencil_value(const double* state, const std::uint32_t* index,
                                    const double* weight, int count) {
  double q = 0;
  for (int p = 0; p < count; ++p)
    q += weight[p] * state[index[p]];
  return q;
}

}  // namespace rtda::obs
