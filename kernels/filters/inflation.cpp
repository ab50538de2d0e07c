#include "inflation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace rtda::filters {

std::vector<double> observation_moments(std::span<const double> hx, int members) {
  const std::size_t p = members > 0 ? hx.size() / static_cast<std::size_t>(members) : 0;
  std::vector<double> out(2 * p);
  for (std::size_t o = 0; o < p; ++o)
    observation_moment(hx.data(), members, p, o, out.data());
  return out;
}

InflationEstimate estimate_inflation_from_moments(const InflationSettings& s,
                                                  std::span<const double> moments,
                                                  const obs::ObservationSpace& space) {
  InflationEstimate est;
  if (s.mode == InflationMode::kNone) return est;
  const std::size_t p = space.size();
  if (p > 0 && moments.size() == 2 * p) {
    double d2 = 0, hvar = 0, r = 0;
    for (std::size_t o = 0; o < p; ++o) {
      hvar += moments[p + o];
      const double d = space.value()[o] - moments[o];
      d2 += d * d;
      r += space.error_sd()[o] * space.error_sd()[o];
    }
    est.innovation_var = d2 / static_cast<double>(p);
    est.ensemble_var = hvar / static_cast<double>(p);
    est.observation_var = r / static_cast<double>(p);
  }
  if (s.mode == InflationMode::kFixed) {
    est.factor = est.unclamped_factor = s.factor;
    return est;
  }
  if (est.ensemble_var > 0) {
    const double ratio = (est.innovation_var - est.observation_var) / est.ensemble_var;
    est.unclamped_factor = std::sqrt(std::max(ratio, 0.0));
    est.factor = std::clamp(est.unclamped_factor, 1.0, s.max);
  } else {
    est.unclamped_factor = std::numeric_limits<double>::quiet_NaN();
  }
  return est;
}

InflationEstimate estimate_inflation(const InflationSettings& s, std::span<const double> hx,
                                     int members, const obs::ObservationSpace& space) {
  if (s.mode == InflationMode::kNone) return {};
  if (members < 2) return estimate_inflation_from_moments(s, {}, space);
  return estimate_inflation_from_moments(s, observation_moments(hx, members), space);
}

void inflate(std::span<double> values, int members, double lambda) {
  if (lambda == 1.0 || members < 2 || values.empty()) return;
  const std::size_t stride = values.size() / static_cast<std::size_t>(members);
  for (std::size_t e = 0; e < stride; ++e)
    inflate_element(values.data(), members, stride, e, lambda);
}

}  // namespace rtda::filters
