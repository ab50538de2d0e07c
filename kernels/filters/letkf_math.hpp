// LETKF arithmetic that the CPU "shared-arithmetic" path (LetkfAnalysis::analyse_columns_shared)
// and the HIP kernel (hip/letkf_hip.hip) share: host/device functions on raw pointers
// (core/hd.hpp). docs/science.md §3, eq. 7–10.
//
// One element's local analysis, in the order both backends follow:
//   1. candidates: observations in the cells around the column, each with ρ(d) (eq. 7);
//      level weight w = ρ (own level) or ρ v (other level), dropped when w ≤ cut-off;
//   2. C = Σ_o (w/σ²) y_o y_oᵀ and b = Σ_o (w/σ²) y_o (y − ȳ)_o (eq. 8–9), every entry summed
//      over the candidates in their enumeration order;
//   3. C = V Λ Vᵀ by the cyclic Jacobi method in round-robin ("circle") order: each round
//      rotates m/2 disjoint index pairs, whose angles depend only on their own 2 × 2 blocks,
//      so a round can be applied in parallel (one 2 × 2 block of C and one row pair of V per
//      work item) and gives the same bits as the serial loop here;
//   4. the transform of eq. 9 with the symmetric square root, then RTPS (eq. 10).
// No step depends on the order in which work items run, only on which items exist, so the
// serial CPU loops and the GPU's parallel ones agree bit for bit wherever the device's
// arithmetic is correctly rounded (+, −, ×, ÷ and √ in IEEE double; no contraction: the
// .hip file turns it off, g++ does not contract in ISO mode).
//
// Why Jacobi on the GPU: k ≤ 128 members makes C small; Jacobi needs nothing but 2 × 2
// rotations, parallelises within a work-group without the sequential bulge chase of the
// QR iteration, is accurate for the small eigenvalues of a positive semidefinite C, and has
// no special cases for degenerate eigenvalues (every rotation is well-defined).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstddef>

#include "core/hd.hpp"
#include "filters/localization.hpp"

namespace rtda::filters {

// ---------------------------------------------------------------- observations (eq. 7–9)

// The ensemble statistics of observation o from hx ([member][obs], p observations per
// member): Y_b row (unscaled deviations of the member images from their mean), the
// innovation y − ȳ_b and 1/σ_o.
RTDA_HD inline void letkf_observation_row(const double* hx, std::size_t p, int k, std::size_t o,
                                          double y, double sigma, double* dev_row, double& innov,
                                          double& inv_sd) {
  double mean = 0;
  for (int m = 0; m < k; ++m)
    mean += hx[m * p + o];
  mean /= k;
  for (int m = 0; m < k; ++m)
    dev_row[m] = hx[m * p + o] - mean;
  innov = y - mean;
  inv_sd = 1.0 / sigma;
}

// ρ(d) of a candidate observation at (x_o, y_o) for the grid point (x_c, y_c) (eq. 7); 1
// without localization.
RTDA_HD inline double letkf_candidate_rho(double x_c, double y_c, double x_o, double y_o,
                                          double lx_m, double ly_m, double radius_m,
                                          bool localize) {
  if (!localize) return 1.0;
  return horizontal_localization(periodic_distance_m(x_c - x_o, y_c - y_o, lx_m, ly_m), radius_m);
}

// The weight of eq. 7 for an element on level `lev` and an observation on level `obs_level`:
// ρ on the own level, ρ v on the other (v = 1 without localization).
RTDA_HD inline double letkf_level_weight(double rho, int obs_level, int lev, double v) {
  return obs_level == lev ? rho : rho * v;
}

// R_loc⁻¹ entry of an observation: w / σ².
RTDA_HD inline double letkf_precision(double w, double inv_sd) {
  return w * inv_sd * inv_sd;
}

// The contributions of one observation to C_ij and to b_i (eq. 8–9).
RTDA_HD inline double letkf_c_term(double precision, double y_i, double y_j) {
  return (precision * y_i) * y_j;
}
RTDA_HD inline double letkf_b_term(double precision, double y_i, double innov) {
  return (precision * y_i) * innov;
}

// ---------------------------------------------------------------- Jacobi (eq. 8)

// The Jacobi matrices are m × m, row-major, m = k rounded up to even: an odd k gets a zero
// row and column, which no rotation touches (its off-diagonal entries stay exactly 0).
RTDA_HD inline int jacobi_size(int k) {
  return k + (k & 1);
}

// Pair `pair` (0 ≤ pair < m/2) of round `round` (0 ≤ round < m − 1) of the circle method:
// index 0 stays, 1 .. m − 1 rotate, and every pair of indices meets exactly once per sweep.
// p < q.
RTDA_HD inline void jacobi_pair(int m, int round, int pair, int& p, int& q) {
  const auto slot = [m, round](int s) { return s == 0 ? 0 : (s - 1 + round) % (m - 1) + 1; };
  const int a = slot(pair), b = slot(m - 1 - pair);
  p = a < b ? a : b;
  q = a < b ? b : a;
}

struct JacobiRotation {
  double c, s, t;  // cos, sin, tan of the angle; c = 1, s = t = 0 when not rotating
  int p, q;
  bool rotate;
};

// Convergence thresholds of one matrix: an off-diagonal a_pq is left alone when
// |a_pq| ≤ ε sqrt(|a_pp a_qq|) (below what the diagonal can resolve) or ≤ ε² ‖A‖_F (absolute
// round-off floor, so that exact zeros and null spaces terminate).
RTDA_HD inline double jacobi_absolute_floor(const double* a, int m) {
  double ss = 0;
  for (int i = 0; i < m * m; ++i)
    ss += a[i] * a[i];
  return DBL_EPSILON * DBL_EPSILON * std::sqrt(ss);
}

// The rotation that zeroes a_pq (Rutishauser's formulas: t = sgn θ / (|θ| + √(θ² + 1)),
// θ = (a_qq − a_pp) / (2 a_pq)), or no rotation below the thresholds.
RTDA_HD inline JacobiRotation jacobi_rotation(const double* a, int m, int p, int q,
                                              double absolute_floor) {
  JacobiRotation r{1.0, 0.0, 0.0, p, q, false};
  const double app = a[p * m + p], aqq = a[q * m + q], apq = a[p * m + q];
  const double size = std::fabs(apq);
  if (size <= absolute_floor ||
      size <= DBL_EPSILON * (std::sqrt(std::fabs(app)) * std::sqrt(std::fabs(aqq))))
    return r;
  const double theta = (aqq - app) / (2.0 * apq);
  const double at = std::fabs(theta);
  // For huge θ, θ² would overflow: t ≈ 1/(2θ).
  double t = at > 1e150 ? 0.5 / at : 1.0 / (at + std::sqrt(at * at + 1.0));
  if (theta < 0) t = -t;
  r.t = t;
  r.c = 1.0 / std::sqrt(t * t + 1.0);
  r.s = t * r.c;
  r.rotate = true;
  return r;
}

// A ← Jᵀ A J on the 2 × 2 block of rows (P.p, P.q) and columns (Q.p, Q.q) and on its mirror
// (P ≠ Q), J = [c s; −s c] on each pair. Reads and writes nothing outside those blocks. The
// diagonal block (P == Q) gets the exact diagonal a_pp − t a_pq, a_qq + t a_pq and zeros.
RTDA_HD inline void jacobi_rotate_block(double* a, int m, const JacobiRotation& P,
                                        const JacobiRotation& Q) {
  if (P.p == Q.p) {
    if (!P.rotate) return;
    const double apq = a[P.p * m + P.q];
    a[P.p * m + P.p] -= P.t * apq;
    a[P.q * m + P.q] += P.t * apq;
    a[P.p * m + P.q] = 0.0;
    a[P.q * m + P.p] = 0.0;
    return;
  }
  if (!P.rotate && !Q.rotate) return;
  const double b00 = a[P.p * m + Q.p], b01 = a[P.p * m + Q.q];
  const double b10 = a[P.q * m + Q.p], b11 = a[P.q * m + Q.q];
  // T = B J_Q (columns), then Jᵀ_P T (rows).
  const double t00 = Q.c * b00 - Q.s * b01, t01 = Q.s * b00 + Q.c * b01;
  const double t10 = Q.c * b10 - Q.s * b11, t11 = Q.s * b10 + Q.c * b11;
  const double n00 = P.c * t00 - P.s * t10, n10 = P.s * t00 + P.c * t10;
  const double n01 = P.c * t01 - P.s * t11, n11 = P.s * t01 + P.c * t11;
  a[P.p * m + Q.p] = n00;
  a[P.p * m + Q.q] = n01;
  a[P.q * m + Q.p] = n10;
  a[P.q * m + Q.q] = n11;
  a[Q.p * m + P.p] = n00;
  a[Q.q * m + P.p] = n01;
  a[Q.p * m + P.q] = n10;
  a[Q.q * m + P.q] = n11;
}

// V ← V J on row `row` and the columns of one pair (eigenvectors accumulate as columns).
RTDA_HD inline void jacobi_rotate_vectors(double* v, int m, int row, const JacobiRotation& r) {
  if (!r.rotate) return;
  const double vp = v[row * m + r.p], vq = v[row * m + r.q];
  v[row * m + r.p] = r.c * vp - r.s * vq;
  v[row * m + r.q] = r.s * vp + r.c * vq;
}

// Work items of a round: the (m/2)(m/2 + 1)/2 blocks P ≥ Q (item → (P, Q)), then m·(m/2)
// (row, pair) updates of V.
RTDA_HD inline int jacobi_block_items(int m) {
  return (m / 2) * (m / 2 + 1) / 2;
}
RTDA_HD inline void jacobi_block_of_item(int item, int& P, int& Q) {
  // Row-major lower triangle: P(P + 1)/2 ≤ item < (P + 1)(P + 2)/2 (no floating point).
  P = 0;
  while ((P + 1) * (P + 2) / 2 <= item)
    ++P;
  Q = item - P * (P + 1) / 2;
}

// Limit on sweeps; cyclic Jacobi converges quadratically and needs 6–12 sweeps for k ≤ 128.
constexpr int kJacobiMaxSweeps = 60;

// The serial form of the parallel algorithm above, for the CPU: a (m × m, full symmetric,
// destroyed: eigenvalues on its diagonal) and v (m × m, set to the eigenvectors as columns);
// rot is scratch of m/2 rotations. Returns the sweeps used, or −1 without convergence.
RTDA_HD inline int jacobi_eigen(double* a, double* v, int m, JacobiRotation* rot) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j)
      v[i * m + j] = i == j ? 1.0 : 0.0;
  const double floor_abs = jacobi_absolute_floor(a, m);
  for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
    bool rotated = false;
    for (int round = 0; round + 1 < m; ++round) {
      for (int pair = 0; pair < m / 2; ++pair) {
        int p, q;
        jacobi_pair(m, round, pair, p, q);
        rot[pair] = jacobi_rotation(a, m, p, q, floor_abs);
        rotated = rotated || rot[pair].rotate;
      }
      const int items = jacobi_block_items(m);
      for (int item = 0; item < items; ++item) {
        int P, Q;
        jacobi_block_of_item(item, P, Q);
        jacobi_rotate_block(a, m, rot[P], rot[Q]);
      }
      for (int item = 0; item < m * (m / 2); ++item)
        jacobi_rotate_vectors(v, m, item / (m / 2), rot[item % (m / 2)]);
    }
    if (!rotated) return sweep + 1;
  }
  return -1;
}

// ---------------------------------------------------------------- transform (eq. 9)

// Entry i of Vᵀ x (column i of V against x), summed over rows in order.
RTDA_HD inline double letkf_project(const double* v, int m, int k, const double* x, int i) {
  double s = 0;
  for (int r = 0; r < k; ++r)
    s += v[r * m + i] * x[r];
  return s;
}
// Entry `row` of V y.
RTDA_HD inline double letkf_expand(const double* v, int m, int k, const double* y, int row) {
  double s = 0;
  for (int i = 0; i < k; ++i)
    s += v[row * m + i] * y[i];
  return s;
}
// g_i = 1/(λ_i + k − 1): P̃_a = V diag(g) Vᵀ (eq. 8).
RTDA_HD inline double letkf_gain(double lambda, int k) {
  return 1.0 / (lambda + (k - 1));
}
// One term of the mean increment, z_i g_i zb_i, and the scaled perturbation √((k−1) g_i) z_i.
RTDA_HD inline double letkf_increment_term(double z, double lambda, int k, double zb) {
  return z * letkf_gain(lambda, k) * zb;
}
RTDA_HD inline double letkf_scaled_perturbation(double z, double lambda, int k) {
  return z * std::sqrt((k - 1) * letkf_gain(lambda, k));
}
RTDA_HD inline double letkf_mean(const double* x, int k) {
  double mean = 0;
  for (int i = 0; i < k; ++i)
    mean += x[i];
  return mean / k;
}

// Eq. 9 for one element from the eigen-decomposition (λ_i = a[i m + i], eigenvectors in the
// columns of v) and b = Y_bᵀ R⁻¹ (y − ȳ): with z = Vᵀ X_b and zb = Vᵀ b, the mean increment is
// X_b w̄ = Σ_i z_i g_i zb_i and the perturbations X_b √(k−1) P̃_a^{1/2} = V diag(√((k−1) g)) z
// (P̃_a^{1/2} symmetric). xb: the k prior members; xa: the analysis; z, zb, xd: scratch of k.
RTDA_HD inline void letkf_transform(const double* a, const double* v, int m, int k,
                                    const double* xb, const double* b, double* xd, double* z,
                                    double* zb, double* xa) {
  const double mean = letkf_mean(xb, k);
  for (int r = 0; r < k; ++r)
    xd[r] = xb[r] - mean;  // X_b, unscaled
  for (int i = 0; i < k; ++i) {
    z[i] = letkf_project(v, m, k, xd, i);
    zb[i] = letkf_project(v, m, k, b, i);
  }
  double increment = 0;
  for (int i = 0; i < k; ++i)
    increment += letkf_increment_term(z[i], a[i * m + i], k, zb[i]);
  for (int i = 0; i < k; ++i)
    z[i] = letkf_scaled_perturbation(z[i], a[i * m + i], k);
  for (int r = 0; r < k; ++r)
    xa[r] = mean + increment + letkf_expand(v, m, k, z, r);
}

// ---------------------------------------------------------------- RTPS (eq. 10)

// Relax the analysis spread of one element toward the prior spread: standard deviations
// (n − 1 divisor) about each ensemble's own mean; the mean is unchanged.
RTDA_HD inline void letkf_rtps(const double* xb, double* xa, int k, double alpha) {
  if (alpha == 0) return;
  double mb = 0, ma = 0;
  for (int m = 0; m < k; ++m) {
    mb += xb[m];
    ma += xa[m];
  }
  mb /= k;
  ma /= k;
  double vb = 0, va = 0;
  for (int m = 0; m < k; ++m) {
    vb += (xb[m] - mb) * (xb[m] - mb);
    va += (xa[m] - ma) * (xa[m] - ma);
  }
  const double sb = std::sqrt(vb / (k - 1));
  const double sa = std::sqrt(va / (k - 1));
  if (!(sa > 0)) return;  // a collapsed analysis has no perturbations to scale
  const double factor = 1.0 + alpha * (sb - sa) / sa;
  for (int m = 0; m < k; ++m)
    xa[m] = ma + (xa[m] - ma) * factor;
}

}  // namespace rtda::filters
