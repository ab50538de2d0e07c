#include "sqg/sqg_params.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace rtda::sqg {

namespace {
void require(bool ok, const char* field, double value, const char* expected) {
  if (ok) return;
  std::ostringstream msg;
  msg << "model." << field << " = " << value << ": " << expected;
  throw std::invalid_argument(msg.str());
}
std::invalid_argument bad(const std::string& key, double value, const std::string& expected) {
  std::ostringstream m;
  m << "nature." << key << " = " << value << ": " << expected;
  return std::invalid_argument(m.str());
}
}  // namespace

void SqgParams::validate() const {
  require(N >= 4 && N % 2 == 0, "N", N, "expected an even number >= 4");
  require(std::isfinite(L_m) && L_m > 0, "L_m", L_m, "expected a positive length");
  require(std::isfinite(H_m) && H_m > 0, "H_m", H_m, "expected a positive height");
  require(std::isfinite(U_ms), "U_ms", U_ms, "expected a finite speed");
  require(std::isfinite(f_per_s) && f_per_s > 0, "f_per_s", f_per_s, "expected f > 0");
  require(std::isfinite(nsq_per_s2) && nsq_per_s2 > 0, "nsq_per_s2", nsq_per_s2,
          "expected N^2 > 0");
  require(std::isfinite(g_ms2) && g_ms2 > 0, "g_ms2", g_ms2, "expected g > 0");
  require(std::isfinite(theta0_K) && theta0_K > 0, "theta0_K", theta0_K, "expected theta0 > 0");
  require(tdiab_s > 0, "tdiab_s", tdiab_s, "expected a positive time (inf = no relaxation)");
  require(std::isfinite(ekman_r_ms) && ekman_r_ms >= 0, "ekman_r_ms", ekman_r_ms,
          "expected a rate >= 0");
  require(diff_order >= 1 && diff_order % 2 == 0, "diff_order", diff_order,
          "expected a positive even order");
  require(diff_efold_s > 0, "diff_efold_s", diff_efold_s,
          "expected a positive time (inf = no hyperdiffusion)");
  require(std::isfinite(dt_s) && dt_s > 0, "dt_s", dt_s, "expected a positive time step");
}

SqgParams reference_preset(int N) {
  SqgParams p;
  p.N = N;
  switch (N) {
    case 32:
      p.dt_s = 2400.0;
      p.diff_efold_s = 3.0 * 86400.0;
      break;
    case 64:
      p.dt_s = 1200.0;
      p.diff_efold_s = 86400.0;
      break;
    case 128:
      p.dt_s = 600.0;
      p.diff_efold_s = 8.0 * 3600.0;
      break;
    case 256:
      p.dt_s = 90.0;
      p.diff_efold_s = 5400.0;
      break;
    case 512:
      p.dt_s = 90.0;
      p.diff_efold_s = 1800.0;
      break;
    case 1024:
      p.dt_s = 40.0;
      p.diff_efold_s = 900.0;
      break;
    default:
      throw std::invalid_argument("model.preset: no reference configuration for N = " +
                                  std::to_string(N) + " (have 32, 64, 128, 256, 512, 1024)");
  }
  return p;
}

std::vector<int> reference_preset_resolutions() {
  return {32, 64, 128, 256, 512, 1024};
}

long NatureSettings::steps_per_interval(const SqgParams& params) const {
  return std::lround(interval_hours * 3600.0 / params.dt_s);
}

long NatureSettings::spinup_steps(const SqgParams& params) const {
  return std::lround(spinup_days * 86400.0 / params.dt_s);
}

void NatureSettings::validate(const SqgParams& params) const {
  if (!(noise_sd_ms >= 0) || !std::isfinite(noise_sd_ms)) {
    throw bad("noise_sd_ms", noise_sd_ms, "expected a finite value >= 0");
  }
  if (!std::isfinite(bump_amplitude_ms)) {
    throw bad("bump_amplitude_ms", bump_amplitude_ms, "expected a finite value");
  }
  if (!(spinup_days >= 0) || !std::isfinite(spinup_days)) {
    throw bad("spinup_days", spinup_days, "expected a finite value >= 0");
  }
  if (states < 1) throw bad("states", states, "expected at least 1");
  const double per = interval_hours * 3600.0 / params.dt_s;
  if (!(interval_hours > 0) || std::abs(per - std::round(per)) > 1e-9) {
    throw bad("interval_hours", interval_hours,
              "expected a positive multiple of model.dt_s = " + std::to_string(params.dt_s) + " s");
  }
  const double spin = spinup_days * 86400.0 / params.dt_s;
  if (std::abs(spin - std::round(spin)) > 1e-9) {
    throw bad(
        "spinup_days", spinup_days,
        "expected a whole number of model steps (dt = " + std::to_string(params.dt_s) + " s)");
  }
}

}  // namespace rtda::sqg
