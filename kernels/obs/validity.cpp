#include "obs/validity.hpp"

#include <cmath>
#include <cstdio>

#include "core/format.hpp"
#include "obs/observation.hpp"

namespace rtda::obs {
namespace {

ObservationProblem refuse(const char* field, const std::string& value,
                          const std::string& expected) {
  return {field, std::string(field) + " = " + value + ": expected " + expected};
}

ObservationProblem refuse(const char* field, double value, const std::string& expected) {
  return refuse(field, core::format_double(value), expected);
}

}  // namespace

ObservationProblem check_observation(const ObservationFields& o, const ValidityRules& rules) {
  const core::Grid& g = rules.grid;
  if (!std::isfinite(o.time_seconds)) {
    return refuse("time_seconds", o.time_seconds, "a finite model time");
  }
  if (o.level < 0 || o.level >= g.levels) {
    return refuse("level", std::to_string(o.level),
                  g.levels == 2 ? "0 (surface) or 1 (lid)"
                                : "a level in [0, " + std::to_string(g.levels) + ")");
  }
  // The plane's messages name its side L (L_x = L_y there); a ring names its circumference.
  const char* lx_name = g.length_x_m == g.length_y_m ? "L" : "L_x";
  if (!(o.x_m >= 0 && o.x_m < g.length_x_m)) {
    return refuse("x_m", o.x_m,
                  "a position in [0, " + std::string(lx_name) + " = " +
                      core::format_double(g.length_x_m) + ") m");
  }
  if (g.ring()) {
    if (o.y_m != 0) return refuse("y_m", o.y_m, "0 (the grid is a ring along x)");
  } else if (!(o.y_m >= 0 && o.y_m < g.length_y_m)) {
    return refuse("y_m", o.y_m,
                  "a position in [0, " + std::string(g.length_x_m == g.length_y_m ? "L" : "L_y") +
                      " = " + core::format_double(g.length_y_m) + ") m");
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
