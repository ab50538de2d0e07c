// The scalar observation operators (science.md §2) and the Gaussian log-likelihood slope of
// eq. 14 as host/device functions, for the filters' shared arithmetic. Same arithmetic as
// obs::operator_value / operator_derivative (observation_space.cpp); an unknown operator code
// gives NaN here (ObservationSpace refuses such codes before any filter sees them).
//
// The operator is an ObsKind, whose codes are io::ObsOperator's (ensf.cpp checks that they
// agree). This header does not include io/observations_file.hpp because that pulls in
// HDF5, which the HIP compilation does not see.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.hpp"

namespace rtda::filters {

// io::ObsOperator's codes (part of the file format, so stable).
enum class ObsKind : std::int8_t { kLinearK = 0, kArctan = 1, kIdentity = 2 };

// From io::ObsOperator, e.g. obs_kind(space.op()[o]).
template <typename Op>
RTDA_HD inline ObsKind obs_kind(Op op) {
  static_assert(sizeof(Op) == sizeof(ObsKind), "io::ObsOperator and ObsKind share their codes");
  return static_cast<ObsKind>(static_cast<std::int8_t>(op));
}

RTDA_HD inline double obs_operator_value(ObsKind op, double q_ms, double kelvin_per_pv) {
  switch (op) {
    case ObsKind::kLinearK:
      return kelvin_per_pv * q_ms;
    case ObsKind::kArctan:
      return std::atan(kelvin_per_pv * q_ms);
    case ObsKind::kIdentity:
      return q_ms;
  }
  return __builtin_nan("");
}

RTDA_HD inline double obs_operator_derivative(ObsKind op, double q_ms, double kelvin_per_pv) {
  switch (op) {
    case ObsKind::kLinearK:
      return kelvin_per_pv;
    case ObsKind::kArctan: {
      const double u = kelvin_per_pv * q_ms;
      return kelvin_per_pv / (1.0 + u * u);
    }
    case ObsKind::kIdentity:
      return 1.0;
  }
  return __builtin_nan("");
}

// d/dq log p(y | q) for a Gaussian error sigma (eq. 14): −(h(q) − y)/σ² · h′(q).
RTDA_HD inline double obs_log_likelihood_slope(ObsKind op, double q_ms, double y, double sigma,
                                               double kelvin_per_pv) {
  return -(obs_operator_value(op, q_ms, kelvin_per_pv) - y) / (sigma * sigma) *
         obs_operator_derivative(op, q_ms, kelvin_per_pv);
}

// h at a bilinear stencil: q = Σ_p weight_p · state[index_p], in stencil order (as
// ObservationSpace::apply), then the operator.
RTDA_HD inline double obs_stencil_value(const double* state, const std::uint32_t* index,
                                        const double* weight, int count) {
  double q = 0;
  for (int p = 0; p < count; ++p)
    q += weight[p] * state[index[p]];
  return q;
}

}  // namespace rtda::filters
