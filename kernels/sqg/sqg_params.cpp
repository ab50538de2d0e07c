#include "sqg/sqg_params.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace rtda::sqg {

namespace {
void require(bool ok, const char* field, double value, const char* expected) {
  if (ok) return;
  std::ostringstream msg;
  msg << "model." << field << " = " << value << ": " << expected;
  throw std::invalid_argument(msg.str());
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

}  // namespace rtda::sqg
