// Multiplicative prior inflation, applied to the forecast ensemble before any filter.
//
// A forecast model whose own error the ensemble does not represent (a surrogate trained to the
// conditional mean, a physics model with the wrong parameters) yields a background spread
// far below its error; every filter then trusts the background too much. Inflation scales
// each state element's perturbations about the ensemble mean, x_i <- x_mean + lambda (x_i -
// x_mean), and h(x_i) the same way (exact for linear operators, the usual first-order reading
// for nonlinear ones).
//
// "adaptive" estimates lambda every cycle from that cycle's innovations d = y - mean_i h(x_i)
// (Desroziers et al. 2005; Li, Kalnay and Miyoshi 2009): E[d^T d] = tr(H P H^T) + tr(R), so
//   lambda^2 = (d^T d - tr R) / tr(H P H^T),
// clamped to [1, inflation.max]: it never deflates. No state is carried between cycles, so a
// restarted worker group needs nothing beyond the ensemble.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "filters/inflation_math.hpp"
#include "filters/settings.hpp"
#include "obs/observation_space.hpp"

namespace rtda::filters {

struct InflationEstimate {
  double factor = 1.0;            // the lambda to apply
  double innovation_var = 0;      // d^T d / p
  double ensemble_var = 0;        // tr(H P H^T) / p
  double observation_var = 0;     // tr(R) / p
  double unclamped_factor = 1.0;  // adaptive: the estimate before clamping (NaN when undefined)
};

// Per observation o of hx ([member][obs], `members` rows, p = hx.size() / members): the member
// mean of h(x) in out[o] and its (n-1) variance in out[p + o]. The sums every user of these
// moments shares (the estimate below, the innovation diagnostics, the device path's copy).
std::vector<double> observation_moments(std::span<const double> hx, int members);

// lambda from the moments of observation_moments() and the observations.
InflationEstimate estimate_inflation_from_moments(const InflationSettings& s,
                                                  std::span<const double> moments,
                                                  const obs::ObservationSpace& space);

// lambda for this cycle from hx = h(x_b) of every member ([member][obs], `members` rows) and
// the observations. "none" gives 1, "fixed" the factor; "adaptive" with no observations or no
// ensemble variance in observation space gives 1.
InflationEstimate estimate_inflation(const InflationSettings& s, std::span<const double> hx,
                                     int members, const obs::ObservationSpace& space);

// Every element of values ([member][stride]) inflated by lambda (nothing when lambda == 1).
void inflate(std::span<double> values, int members, double lambda);

}  // namespace rtda::filters
