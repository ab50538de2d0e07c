#include "inflation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace rtda::filters {

void InflationSettings::validate() const {
  auto bad = [](const char* key, double v, const char* want) {
    throw std::invalid_argument(std::string(key) + " = " + std::to_string(v) + ": expected " +
                                want);
  };
  if (!(factor >= 1.0) || !std::isfinite(factor)) bad("inflation.factor", factor, "a number >= 1");
  if (!(max >= 1.0) || !std::isfinite(max)) bad("inflation.max", max, "a number >= 1");
}

InflationMode inflation_mode_from_string(std::string_view s) {
  if (s == "none") return InflationMode::kNone;
  if (s == "fixed") return InflationMode::kFixed;
  if (s == "adaptive") return InflationMode::kAdaptive;
  throw std::invalid_argument("inflation.mode = \"" + std::string(s) +
                              "\": expected \"none\", \"fixed\" or \"adaptive\"");
}

std::string_view to_string(InflationMode m) {
  switch (m) {
    case InflationMode::kNone:
      return "none";
    case InflationMode::kFixed:
      return "fixed";
    case InflationMode::kAdaptive:
      return "adaptive";
  }
  return "none";
}

InflationEstimate estimate_inflation(const InflationSettings& s, std::span<const double> hx,
                                     int members, const obs::ObservationSpace& space) {
  InflationEstimate est;
  if (s.mode == InflationMode::kNone) return est;
  const std::size_t p = space.size();
  if (members >= 2 && p > 0) {
    double d2 = 0, hvar = 0, r = 0;
    for (std::size_t o = 0; o < p; ++o) {
      double hm = 0;
      for (int m = 0; m < members; ++m)
        hm += hx[static_cast<std::size_t>(m) * p + o];
      hm /= members;
      double v = 0;
      for (int m = 0; m < members; ++m) {
        const double dev = hx[static_cast<std::size_t>(m) * p + o] - hm;
        v += dev * dev;
      }
      hvar += v / (members - 1);
      const double d = space.value()[o] - hm;
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

void inflate(std::span<double> values, int members, double lambda) {
  if (lambda == 1.0 || members < 2 || values.empty()) return;
  const std::size_t stride = values.size() / static_cast<std::size_t>(members);
  for (std::size_t e = 0; e < stride; ++e)
    inflate_element(values.data(), members, stride, e, lambda);
}

}  // namespace rtda::filters
