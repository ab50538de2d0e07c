#include "obs/validity.hpp"

#include <cmath>
#include <cstdio>

#include "obs/observation.hpp"

namespace rtda::obs {
namespace {

std::string format_double(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

ObservationProblem refuse(const char* field, const std::string& value,
                          const std::string& expected) {
  return {field, std::string(field) + " = " + value + ": expected " + expected};
}

ObservationProblem refuse(const char* field, double value, const std::string& expected) {
  return refuse(field, format_double(value), expected);
}

}  // namespace

ObservationProblem check_observation(const ObservationFields& o, const ValidityRules& rules) {
  const double l_m = rules.domain_m;
  if (!std::isfinite(o.time_seconds)) {
    return refuse("time_seconds", o.time_seconds, "a finite model time");
  }
  if (o.level != 0 && o.level != 1) {
    return refuse("level", std::to_string(o.level), "0 (surface) or 1 (lid)");
  }
  if (!(o.x_m >= 0 && o.x_m < l_m)) {
    return refuse("x_m", o.x_m, "a position in [0, L = " + format_double(l_m) + ") m");
  }
  if (!(o.y_m >= 0 && o.y_m < l_m)) {
    return refuse("y_m", o.y_m, "a position in [0, L = " + format_double(l_m) + ") m");
  }
  if (!std::isfinite(o.value)) return refuse("value", o.value, "a finite value");
  if (!(std::isfinite(o.error_sd) && o.error_sd > 0)) {
    return refuse("error_sd", o.error_sd, "a finite standard deviation > 0");
  }
  if (!known_operator(o.op)) {
    return refuse("op", std::to_string(o.op), std::string(kOperatorCodes));
  }
  if (rules.plausibility) {
    std::string why = implausible_observation(static_cast<int>(o.op), o.value, o.error_sd,
                                              *rules.plausibility, rules.kelvin_per_pv);
    if (!why.empty()) return {plausibility_field(why), std::move(why), "implausible"};
  }
  return {};
}

}  // namespace rtda::obs
