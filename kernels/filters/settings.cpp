// Checks of the analysis settings (settings.hpp).
#include "filters/settings.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/format.hpp"

namespace rtda::filters {

namespace {

[[noreturn]] void invalid_setting(const char* key, double value, const char* expected) {
  std::ostringstream m;
  m.precision(17);
  m << "letkf." << key << " = " << value << ": expected " << expected;
  throw std::invalid_argument(m.str());
}

[[noreturn]] void bad_setting(const std::string& key, const std::string& value,
                              const std::string& expected) {
  throw std::invalid_argument("ensf." + key + " = " + value + ": " + expected);
}

}  // namespace

void LetkfSettings::validate() const {
  if (!std::isfinite(localization_radius_km) || !(localization_radius_km > 0)) {
    invalid_setting("localization_radius_km", localization_radius_km, "a positive finite radius");
  }
  if (!std::isfinite(rtps) || rtps < 0 || rtps > 1) {
    invalid_setting("rtps", rtps, "a relaxation factor in [0, 1]");
  }
  if (!std::isfinite(vertical_distance_km) || vertical_distance_km < 0) {
    invalid_setting("vertical_distance_km", vertical_distance_km, "a non-negative finite distance");
  }
  if (!std::isfinite(weight_cutoff) || weight_cutoff < 0 || weight_cutoff >= 1) {
    invalid_setting("weight_cutoff", weight_cutoff, "a weight in [0, 1)");
  }
}

EnsfSettings EnsfSettings::paper() {
  return EnsfSettings{};
}

EnsfSettings EnsfSettings::standard() {
  EnsfSettings s;
  s.mode = EnsfMode::kStandard;
  s.steps = 500;
  s.max_steps = 0;
  s.eps_alpha = 0.5;
  s.eps_beta = 0.025;
  s.early_stopping = false;
  s.spread_target = EnsfSpreadTarget::kNone;
  return s;
}

void EnsfSettings::validate() const {
  if (steps < 1) bad_setting("steps", std::to_string(steps), "expected at least 1");
  if (max_steps < 0 || max_steps > steps)
    bad_setting("max_steps", std::to_string(max_steps),
                "expected 0 (all steps) or 1 .. ensf.steps = " + std::to_string(steps));
  // α_t > 0 for t in [0, 1] needs ε_α > 0 (b(t) divides by it).
  if (!(eps_alpha > 0 && eps_alpha <= 1))
    bad_setting("eps_alpha", core::format_double(eps_alpha), "expected 0 < eps_alpha <= 1");
  if (!(eps_beta >= 0 && eps_beta <= 1))
    bad_setting("eps_beta", core::format_double(eps_beta), "expected 0 <= eps_beta <= 1");
  if (early_stopping && stop_window < 1)
    bad_setting("stop_window", std::to_string(stop_window), "expected at least 1");
  if (!(stop_tolerance > 0 && std::isfinite(stop_tolerance)))
    bad_setting("stop_tolerance", core::format_double(stop_tolerance),
                "expected a positive number");
  if (!(arctan_sigma_factor > 0 && std::isfinite(arctan_sigma_factor)))
    bad_setting("arctan_sigma_factor", core::format_double(arctan_sigma_factor),
                "expected a positive number");
  if (!(arctan_clip_sigmas >= 0 && std::isfinite(arctan_clip_sigmas)))
    bad_setting("arctan_clip_sigmas", core::format_double(arctan_clip_sigmas),
                "expected a number >= 0");
  if (!(rtps >= 0 && rtps <= 1))
    bad_setting("rtps", core::format_double(rtps), "expected 0 <= rtps <= 1");
  if (mode == EnsfMode::kPaper && !normalize)
    bad_setting("normalize", "false", "paper mode works in normalized coordinates");
}

void InflationSettings::validate() const {
  auto bad = [](const char* key, double v, const char* want) {
    throw std::invalid_argument(std::string(key) + " = " + std::to_string(v) + ": expected " +
                                want);
  };
  if (!(factor >= 1.0) || !std::isfinite(factor)) bad("inflation.factor", factor, "a number >= 1");
  if (!(max >= 1.0) || !std::isfinite(max)) bad("inflation.max", max, "a number >= 1");
}

}  // namespace rtda::filters
