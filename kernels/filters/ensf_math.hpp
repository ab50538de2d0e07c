// EnSF arithmetic that the CPU filter (ensf.cpp) and the HIP kernels (hip/ensf_hip.hip) share:
// host/device functions on scalars and raw pointers (core/hd.hpp), so the CPU tests exercise
// exactly what the GPU runs. docs/science.md §4, eq. 11–15.
//
// Bitwise agreement between the backends needs the same operations in the same order and no
// contraction of a multiply and an add into an FMA: ensf.cpp turns contraction off for g++,
// the .hip files for clang (`#pragma clang fp contract(off)` before including this header).
// +, −, ×, ÷ and √ are correctly rounded on both sides; exp, tan and atan come from different
// libraries (glibc, ROCm's OCML) and may differ in the last bit, which is why the parity tests
// of the arctan and Monte-Carlo paths carry tolerances.
#pragma once

#include <cmath>
#include <cstddef>

#include "core/hd.hpp"
#include "obs/observation_math.hpp"

namespace rtda::filters {

// The coefficient functions of eq. 11–12 at pseudo-time t.
struct EnsfCoefficients {
  double alpha;   // α_t
  double beta2;   // β_t²
  double drift;   // b(t) = −(1 − ε_α)/α_t
  double sigma2;  // σ²(t) = dβ_t²/dt − 2 b(t) β_t²
};

RTDA_HD inline EnsfCoefficients ensf_coefficients(double t, double eps_alpha, double eps_beta) {
  EnsfCoefficients c;
  c.alpha = 1.0 - (1.0 - eps_alpha) * t;  // eq. 11
  c.beta2 = eps_beta + (1.0 - eps_beta) * t;
  c.drift = -(1.0 - eps_alpha) / c.alpha;  // eq. 12
  c.sigma2 = (1.0 - eps_beta) - 2.0 * c.drift * c.beta2;
  return c;
}

// Everything one Euler–Maruyama step (eq. 15) needs, evaluated at the start of step k:
// t_k = 1 − k Δt, the damping h(t) = 1 − t (or 1) of eq. 14 and the noise scale √Δt σ(t).
struct EnsfStepCoefficients {
  double t, alpha, inv_beta2, beta2, drift, sigma2, damp, dt, noise;
};

RTDA_HD inline EnsfStepCoefficients ensf_step_coefficients(int k, double dt, double eps_alpha,
                                                           double eps_beta, bool damping) {
  EnsfStepCoefficients s;
  s.t = 1.0 - k * dt;
  const EnsfCoefficients co = ensf_coefficients(s.t, eps_alpha, eps_beta);
  s.alpha = co.alpha;
  s.beta2 = co.beta2;
  s.inv_beta2 = 1.0 / co.beta2;
  s.drift = co.drift;
  s.sigma2 = co.sigma2;
  s.damp = damping ? 1.0 - s.t : 1.0;
  s.dt = dt;
  s.noise = std::sqrt(dt) * std::sqrt(co.sigma2);
  return s;
}

// eq. 13 for one dimension and one (possibly weighted) prior value x̄: −(z − α x̄)/β².
RTDA_HD inline double ensf_prior_score(double z, double alpha, double xbar, double inv_beta2) {
  return -(z - alpha * xbar) * inv_beta2;
}

// Paper mode's likelihood score of one dimension (docs/science.md §4 paper): the linear part
// lin_b − lin_a z, plus with arctan observations −(atan_a arctan(s_K z) − atan_b) ·
// s_K/(1 + s_K² z²). The coefficients are sums over the dimension's observations
// (ensf_add_paper_observation).
RTDA_HD inline double ensf_paper_linear_likelihood(double z, double lin_a, double lin_b) {
  return lin_b - lin_a * z;
}
RTDA_HD inline double ensf_paper_likelihood(double z, double lin_a, double lin_b, double atan_a,
                                            double atan_b, double s_k) {
  const double u = s_k * z;
  return (lin_b - lin_a * z) - (atan_a * std::atan(u) - atan_b) * (s_k / (1.0 + u * u));
}

// eq. 14–15 for one element: the posterior score S_prior + h(t) S_lik, then
// z ← z − Δt [b z − σ² S] + √Δt σ ξ.
RTDA_HD inline double ensf_euler_maruyama(const EnsfStepCoefficients& c, double z, double xbar,
                                          double likelihood, double xi) {
  const double score = ensf_prior_score(z, c.alpha, xbar, c.inv_beta2) + c.damp * likelihood;
  return z - c.dt * (c.drift * z - c.sigma2 * score) + c.noise * xi;
}

// One observation's contribution to its dimension's paper-mode likelihood coefficients
// (added to lin_a, lin_b or atan_a, atan_b). mu, sd: the dimension's prior mean and standard
// deviation (sd > 0; the caller skips dimensions without spread).
//   linear_K (c = s_K) and identity (c = 1): y′ = c (y/c − μ)/s, σ′ = σ_o/s; score
//     −(c z − y′)/σ′² · c, i.e. lin_a += c²/σ′², lin_b += c y′/σ′².
//   arctan (the authors' heuristic): y clipped to |y| ≤ π/2 − clip σ_o, q = tan(y)/s_K,
//     y′ = arctan(s_K (q − μ)/s), σ′ = factor s_K σ_o; atan_a += 1/σ′², atan_b += y′/σ′².
struct EnsfPaperTerms {
  double lin_a, lin_b, atan_a, atan_b;
};
RTDA_HD inline void ensf_add_paper_observation(obs::ObsOperator op, double y, double sigma_o,
                                               double mu, double sd, double s_k,
                                               double arctan_sigma_factor,
                                               double arctan_clip_sigmas, EnsfPaperTerms& terms) {
  if (op == obs::ObsOperator::kArctan) {
    const double pi = 3.141592653589793238462643383279502884;
    const double reach = 0.5 * pi - arctan_clip_sigmas * sigma_o;
    const double limit = 0.0 < reach ? reach : 0.0;
    const double clipped = y < -limit ? -limit : (limit < y ? limit : y);
    const double q = std::tan(clipped) / s_k;
    const double y_prime = std::atan(s_k * (q - mu) / sd);
    const double sigma_prime = arctan_sigma_factor * s_k * sigma_o;
    const double prec = 1.0 / (sigma_prime * sigma_prime);
    terms.atan_a += prec;
    terms.atan_b += y_prime * prec;
  } else {
    const double c = op == obs::ObsOperator::kLinearK ? s_k : 1.0;
    const double y_prime = c * (y / c - mu) / sd;
    const double sigma_prime = sigma_o / sd;
    const double prec = 1.0 / (sigma_prime * sigma_prime);
    terms.lin_a += c * c * prec;
    terms.lin_b += c * y_prime * prec;
  }
}

// Member mean and standard deviation (n − 1 divisor) of one dimension whose members lie
// `stride` apart, summed in member order.
RTDA_HD inline void ensf_mean_spread(const double* x, std::size_t stride, std::size_t members,
                                     double inv_members, double& mean, double& spread) {
  double s = 0;
  for (std::size_t i = 0; i < members; ++i)
    s += x[i * stride];
  mean = s * inv_members;
  double ss = 0;
  for (std::size_t i = 0; i < members; ++i) {
    const double r = x[i * stride] - mean;
    ss += r * r;
  }
  spread = std::sqrt(ss / static_cast<double>(members - 1));
}

// The working coordinate of a prior value and back (docs/science.md §4: z = (x − μ)/s per
// dimension; a dimension without spread has inv_sd = 0 and stays at μ).
RTDA_HD inline double ensf_to_working(double x, double mu, double inv_sd, bool normalize) {
  return normalize ? (x - mu) * inv_sd : x;
}
RTDA_HD inline double ensf_to_physical(double z, double mu, double sd, bool normalize) {
  return normalize ? mu + sd * z : z;
}

// Monte-Carlo score (eq. 13): one term of the squared distance ‖z_i − α x_j‖².
RTDA_HD inline double ensf_squared_residual(double z, double alpha, double x) {
  const double d = z - alpha * x;
  return d * d;
}

// Softmax of −d_j / (2 β²) over the members (eq. 13), stable (the largest exponent is
// subtracted); returns Σ_j w_j², whose inverse is the effective number of members.
RTDA_HD inline double ensf_softmax_weights(const double* sq_dist, std::size_t members, double beta2,
                                           double* w) {
  double top = -__builtin_huge_val();
  for (std::size_t j = 0; j < members; ++j) {
    w[j] = -sq_dist[j] / (2.0 * beta2);
    top = top < w[j] ? w[j] : top;
  }
  double total = 0;
  for (std::size_t j = 0; j < members; ++j) {
    w[j] = std::exp(w[j] - top);
    total += w[j];
  }
  for (std::size_t j = 0; j < members; ++j)
    w[j] /= total;
  double w2 = 0;
  for (std::size_t j = 0; j < members; ++j)
    w2 += w[j] * w[j];
  return w2;
}

// After the reverse SDE, per dimension (members `stride` apart, physical units): eq. 10
// relaxation toward the prior spread sd_prior when rtps > 0, then rescaling of the
// perturbations to the target spread when has_target (and the target is finite). A collapsed
// dimension (spread 0) is left alone.
RTDA_HD inline void ensf_rescale_spread(double* out, std::size_t stride, std::size_t members,
                                        double inv_members, double sd_prior, double rtps,
                                        bool has_target, double target) {
  double mean, spread;
  if (rtps > 0) {
    ensf_mean_spread(out, stride, members, inv_members, mean, spread);
    if (spread > 0) {
      const double f = 1.0 + rtps * (sd_prior - spread) / spread;
      for (std::size_t i = 0; i < members; ++i)
        out[i * stride] = mean + (out[i * stride] - mean) * f;
    }
  }
  if (has_target) {
    ensf_mean_spread(out, stride, members, inv_members, mean, spread);
    if (spread > 0 && std::isfinite(target)) {
      const double f = target / spread;
      for (std::size_t i = 0; i < members; ++i)
        out[i * stride] = mean + (out[i * stride] - mean) * f;
    }
  }
}

}  // namespace rtda::filters
