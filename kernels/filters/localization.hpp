// Covariance localization for LETKF (docs/science.md §3, eq. 7).
//
// Horizontal: the Gaspari–Cohn (1999, eq. 4.10) fifth-order taper of the minimum-image
// distance on the doubly periodic plane, with half-width c = L_h / 2 so that the taper
// reaches zero at d = L_h. Vertical: an observation on the other boundary gets the extra
// factor v = rho(L_r), the taper evaluated at the boundary separation L_r (1000 km).
#pragma once

#include <algorithm>
#include <cmath>

#include "core/hd.hpp"

namespace rtda::filters {

// (Inline, and host/device: LETKF evaluates these for every candidate observation of every
// column, on the CPU and in the HIP kernel.)

// Gaspari–Cohn taper as a function of r = d / c = 2 d / L_h (eq. 7): 1 at r = 0, 0 for r >= 2.
// Negative r is treated as |r|.
RTDA_HD inline double gaspari_cohn(double r) {
  r = std::abs(r);
  if (r <= 1.0) {
    // 1 - 5/3 r^2 + 5/8 r^3 + 1/2 r^4 - 1/4 r^5
    const double r2 = r * r;
    return 1.0 + r2 * (-5.0 / 3.0 + r * (5.0 / 8.0 + r * (0.5 - 0.25 * r)));
  }
  if (r < 2.0) {
    // 4 - 5 r + 5/3 r^2 + 5/8 r^3 - 1/2 r^4 + 1/12 r^5 - 2/(3 r)
    return 4.0 + r * (-5.0 + r * (5.0 / 3.0 + r * (5.0 / 8.0 + r * (-0.5 + r / 12.0)))) -
           2.0 / (3.0 * r);
  }
  return 0.0;
}

// Minimum-image horizontal distance (m) for coordinate differences dx_m, dy_m on a periodic
// domain of sides lx_m x ly_m (core::Grid): each component becomes min(|d|, L - |d|) (eq. 7).
// Differences are expected in (-L, L), as between two positions in [0, L). On a ring
// (ly_m = the spacing, every y = 0) this is the distance along the ring.
RTDA_HD inline double periodic_distance_m(double dx_m, double dy_m, double lx_m, double ly_m) {
  double ax = std::abs(dx_m);
  double ay = std::abs(dy_m);
  // std::min's rule ((b < a) ? b : a), spelled out: std::min is not a device function on CUDA.
  ax = (lx_m - ax < ax) ? lx_m - ax : ax;
  ay = (ly_m - ay < ay) ? ly_m - ay : ay;
  return std::sqrt(ax * ax + ay * ay);
}

// Horizontal weight rho(d) for a localization radius (cut-off) L_h: gaspari_cohn(2 d / L_h).
RTDA_HD inline double horizontal_localization(double distance_m, double radius_m) {
  return gaspari_cohn(2.0 * distance_m / radius_m);
}

// Vertical factor v = rho(L_r) for observations on the other level (eq. 7):
// 0.27844 for L_h = 2200 km, 0.46110 for 2800 km, 0.83330 for 5800 km at L_r = 1000 km.
double vertical_localization_factor(double radius_km, double vertical_distance_km);

}  // namespace rtda::filters
