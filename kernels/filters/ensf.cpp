#include "filters/ensf.hpp"

// No fused multiply-add contraction: an element must get the same bits in a vector lane and
// in a loop's scalar remainder, so the result cannot depend on where a slab or a thread's
// block starts (bitwise split independence, architecture.md §5).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

#include "core/normal_batch.hpp"

namespace rtda::filters {

static_assert(static_cast<int>(ObsKind::kLinearK) == static_cast<int>(io::ObsOperator::kLinearK) &&
                  static_cast<int>(ObsKind::kArctan) ==
                      static_cast<int>(io::ObsOperator::kArctan) &&
                  static_cast<int>(ObsKind::kIdentity) ==
                      static_cast<int>(io::ObsOperator::kIdentity),
              "obs_math.hpp's ObsKind must keep io::ObsOperator's codes");

namespace {

constexpr std::size_t kBlock = 512;  // state elements per unit of parallel work

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

[[noreturn]] void bad_setting(const std::string& key, const std::string& value,
                              const std::string& expected) {
  throw std::invalid_argument("ensf." + key + " = " + value + ": " + expected);
}

// Runs of local elements whose global indices are contiguous (never across the level seam).
struct Block {
  std::size_t e0, g0, len;
};
std::vector<Block> make_blocks(const EnsfSlabPlan& geo) {
  std::vector<Block> blocks;
  for (std::size_t level = 0; level < 2; ++level)
    for (std::size_t s = 0; s < geo.nc; s += kBlock)
      blocks.push_back(
          {level * geo.nc + s, level * geo.n2 + geo.c0 + s, std::min(kBlock, geo.nc - s)});
  return blocks;
}

void reduce_max(const EnsfReducer& r, std::span<double> v) {
  if (r.max) r.max(v);
}
void reduce_sum(const EnsfReducer& r, std::span<double> v) {
  if (r.sum) r.sum(v);
}

// The off-grid observations' stencil values of every member: each slab writes the points it
// owns (x + 0.0, so −0 becomes +0 as the sum with other slabs' +0.0 would make it) and the
// sum reducer completes the rest exactly.
struct OffGrid {
  std::vector<std::size_t> obs;  // observation indices, in order
  std::vector<double> values;    // [member][k][4]
};

// The Euler–Maruyama update of eq. 15 for one run of elements of one particle
// (ensf_euler_maruyama): the prior score with x̄ the paired member (paper) or Σ_j w_ij x_j
// (standard), the likelihood lik_b − lik_a z (paper, per-dimension coefficients) or a
// precomputed gradient (lik_a = nullptr). Adds the new z to msum (the stopping rule's member
// mean). Compiled per vector ISA; every clone gives the same bits (no contraction, only +,
// −, ×).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void em_update(const EnsfStepCoefficients& coefficients, std::size_t len,
               const double* __restrict xbar, const double* __restrict lik_a,
               const double* __restrict lik_b, const double* __restrict xi, double* __restrict z,
               double* __restrict msum) {
  const EnsfStepCoefficients c = coefficients;  // a local copy: no aliasing with z
  if (lik_a != nullptr) {
    for (std::size_t d = 0; d < len; ++d) {
      const double zn = ensf_euler_maruyama(
          c, z[d], xbar[d], ensf_paper_linear_likelihood(z[d], lik_a[d], lik_b[d]), xi[d]);
      z[d] = zn;
      msum[d] += zn;
    }
  } else {
    for (std::size_t d = 0; d < len; ++d) {
      const double zn = ensf_euler_maruyama(c, z[d], xbar[d], lik_b[d], xi[d]);
      z[d] = zn;
      msum[d] += zn;
    }
  }
}

}  // namespace

std::string_view to_string(EnsfMode m) {
  return m == EnsfMode::kPaper ? "paper" : "standard";
}

std::string_view to_string(EnsfSpreadTarget t) {
  switch (t) {
    case EnsfSpreadTarget::kInitial:
      return "initial";
    case EnsfSpreadTarget::kPrior:
      return "prior";
    case EnsfSpreadTarget::kNone:
      return "none";
  }
  return "?";
}

EnsfMode ensf_mode_from_string(std::string_view s) {
  if (s == "paper") return EnsfMode::kPaper;
  if (s == "standard") return EnsfMode::kStandard;
  bad_setting("mode", "\"" + std::string(s) + "\"", "expected \"paper\" or \"standard\"");
}

EnsfSpreadTarget ensf_spread_target_from_string(std::string_view s) {
  if (s == "initial") return EnsfSpreadTarget::kInitial;
  if (s == "prior") return EnsfSpreadTarget::kPrior;
  if (s == "none") return EnsfSpreadTarget::kNone;
  bad_setting("spread_target", "\"" + std::string(s) + "\"",
              "expected \"initial\", \"prior\" or \"none\"");
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
    bad_setting("eps_alpha", fmt_double(eps_alpha), "expected 0 < eps_alpha <= 1");
  if (!(eps_beta >= 0 && eps_beta <= 1))
    bad_setting("eps_beta", fmt_double(eps_beta), "expected 0 <= eps_beta <= 1");
  if (early_stopping && stop_window < 1)
    bad_setting("stop_window", std::to_string(stop_window), "expected at least 1");
  if (!(stop_tolerance > 0 && std::isfinite(stop_tolerance)))
    bad_setting("stop_tolerance", fmt_double(stop_tolerance), "expected a positive number");
  if (!(arctan_sigma_factor > 0 && std::isfinite(arctan_sigma_factor)))
    bad_setting("arctan_sigma_factor", fmt_double(arctan_sigma_factor),
                "expected a positive number");
  if (!(arctan_clip_sigmas >= 0 && std::isfinite(arctan_clip_sigmas)))
    bad_setting("arctan_clip_sigmas", fmt_double(arctan_clip_sigmas), "expected a number >= 0");
  if (!(rtps >= 0 && rtps <= 1)) bad_setting("rtps", fmt_double(rtps), "expected 0 <= rtps <= 1");
  if (mode == EnsfMode::kPaper && !normalize)
    bad_setting("normalize", "false", "paper mode works in normalized coordinates");
}

void ensf_paired_score(std::span<const double> z, std::span<const double> x_pair, double t,
                       double eps_alpha, double eps_beta, std::span<double> score) {
  const EnsfCoefficients c = ensf_coefficients(t, eps_alpha, eps_beta);
  for (std::size_t d = 0; d < z.size(); ++d)
    score[d] = -(z[d] - c.alpha * x_pair[d]) / c.beta2;
}

void ensf_monte_carlo_score(std::span<const double> z, std::span<const double> prior, int members,
                            double t, double eps_alpha, double eps_beta, std::span<double> score) {
  const EnsfCoefficients c = ensf_coefficients(t, eps_alpha, eps_beta);
  const std::size_t dim = z.size();
  std::vector<double> d2(members, 0.0), w(members);
  for (int j = 0; j < members; ++j)
    for (std::size_t d = 0; d < dim; ++d)
      d2[j] += ensf_squared_residual(z[d], c.alpha, prior[j * dim + d]);
  ensf_softmax_weights(d2.data(), static_cast<std::size_t>(members), c.beta2, w.data());  // eq. 13
  std::fill(score.begin(), score.end(), 0.0);
  for (int j = 0; j < members; ++j)
    for (std::size_t d = 0; d < dim; ++d)
      score[d] += w[j] * (-(z[d] - c.alpha * prior[j * dim + d]) / c.beta2);
}

EnsfSlabPlan ensf_plan_slab(const EnsfSettings& cfg, const obs::ObservationSpace& obs,
                            std::size_t col_begin, std::size_t col_end, EnsfEnsembleShape prior,
                            EnsfEnsembleShape posterior) {
  const bool paper = cfg.mode == EnsfMode::kPaper;
  EnsfSlabPlan plan;
  const std::size_t n = static_cast<std::size_t>(obs.grid_n());
  const std::size_t n2 = n * n;
  const int k_members = prior.members;
  const std::size_t members = static_cast<std::size_t>(std::max(k_members, 0));

  // ---- checks: the caller's shapes, then what each mode can do ----
  if (n == 0) throw std::invalid_argument("ensf: the observation space has no grid (N = 0)");
  if (col_begin >= col_end || col_end > n2)
    throw std::invalid_argument("ensf: slab columns [" + std::to_string(col_begin) + ", " +
                                std::to_string(col_end) +
                                ") are not inside [0, N² = " + std::to_string(n2) + ")");
  plan.n = n;
  plan.n2 = n2;
  plan.c0 = col_begin;
  plan.nc = col_end - col_begin;
  plan.dim = 2 * plan.nc;
  plan.members = members;
  const std::size_t dim = plan.dim;
  if (k_members < 2)
    throw std::invalid_argument("ensf: the prior has " + std::to_string(k_members) +
                                " members; at least 2 are needed for a spread");
  if (prior.state_size != dim || prior.values != members * dim || posterior.members != k_members ||
      posterior.state_size != dim || posterior.values != members * dim)
    throw std::invalid_argument(
        "ensf: prior/posterior shapes (" + std::to_string(prior.members) + " x " +
        std::to_string(prior.state_size) + ", " + std::to_string(posterior.members) + " x " +
        std::to_string(posterior.state_size) + ") do not match " + std::to_string(members) +
        " members x 2·" + std::to_string(plan.nc) + " slab elements");
  if (paper && !obs.all_at_grid_points()) {
    for (std::size_t o = 0; o < obs.size(); ++o)
      if (obs.stencil(o).count != 1)
        throw std::invalid_argument(
            "ensf.mode = \"paper\": observation id " + std::to_string(obs.id()[o]) +
            " at (x, y) = (" + fmt_double(obs.x_m()[o]) + ", " + fmt_double(obs.y_m()[o]) +
            ") m lies between grid points; the paper likelihood is defined per state dimension "
            "(use ensf.mode = \"standard\" for interpolated observations)");
  }
  if (!paper && (col_begin % n != 0 || col_end % n != 0))
    throw std::invalid_argument("ensf: standard mode needs slabs of whole grid rows; columns [" +
                                std::to_string(col_begin) + ", " + std::to_string(col_end) +
                                ") are not multiples of N = " + std::to_string(n));

  // ---- observations: who owns what ----
  for (std::size_t o = 0; o < obs.size(); ++o) {
    const auto& st = obs.stencil(o);
    plan.has_arctan = plan.has_arctan || obs.op()[o] == io::ObsOperator::kArctan;
    std::size_t e;
    if (st.count == 1) {
      if (plan.local(st.index[0], e)) {
        plan.grid_obs.push_back(o);
        plan.grid_elem.push_back(e);
      }
    } else {
      plan.off_obs.push_back(o);
    }
  }
  return plan;
}

std::vector<double> ensf_target_spread(EnsfSpreadTarget target_kind, const EnsfSlabPlan& plan,
                                       const std::vector<double>& sd,
                                       std::vector<double>& initial_spread) {
  std::vector<double> target;
  if (target_kind == EnsfSpreadTarget::kInitial) {
    if (initial_spread.empty()) initial_spread.assign(2 * plan.n2, std::nan(""));
    if (initial_spread.size() != 2 * plan.n2)
      throw std::invalid_argument("ensf: the stored initial spread has " +
                                  std::to_string(initial_spread.size()) +
                                  " values; the state has " + std::to_string(2 * plan.n2));
    target.resize(plan.dim);
    for (std::size_t e = 0; e < plan.dim; ++e) {
      double& tau = initial_spread[plan.global(e)];
      if (std::isnan(tau)) tau = sd[e];
      target[e] = tau;
    }
  } else if (target_kind == EnsfSpreadTarget::kPrior) {
    target = sd;
  }
  return target;
}

EnsfAnalysis::EnsfAnalysis(EnsfSettings settings) : settings_(settings) {
  settings_.validate();
}

AnalysisDiagnostics EnsfAnalysis::analyse(ConstEnsembleView prior, const obs::ObservationSpace& obs,
                                          const AnalysisContext& ctx, EnsembleView posterior) {
  const std::size_t n2 = static_cast<std::size_t>(obs.grid_n()) * obs.grid_n();
  return analyse_slab(0, n2, prior, obs, ctx, posterior, EnsfReducer{});
}

AnalysisDiagnostics EnsfAnalysis::analyse_slab(std::size_t col_begin, std::size_t col_end,
                                               ConstEnsembleView prior,
                                               const obs::ObservationSpace& obs,
                                               const AnalysisContext& ctx, EnsembleView posterior,
                                               const EnsfReducer& reducer) {
  const auto wall_start = std::chrono::steady_clock::now();
  const EnsfSettings& cfg = settings_;
  const bool paper = cfg.mode == EnsfMode::kPaper;
  const EnsfSlabPlan geo = ensf_plan_slab(
      cfg, obs, col_begin, col_end, {prior.members, prior.state_size, prior.data.size()},
      {posterior.members, posterior.state_size, posterior.data.size()});
  const std::size_t n = geo.n, dim = geo.dim, members = geo.members;
  const std::vector<std::size_t>& grid_obs = geo.grid_obs;
  const std::vector<std::size_t>& grid_elem = geo.grid_elem;

  const std::vector<Block> blocks = make_blocks(geo);
  const double s_k = obs.kelvin_per_pv();
  const double inv_members = 1.0 / static_cast<double>(members);

  // ---- prior statistics per element (normalization, science.md §4 paper) ----
  std::vector<double> mu(dim), sd(dim), inv_sd(dim);
  for (std::size_t e = 0; e < dim; ++e) {
    ensf_mean_spread(prior.data.data() + e, dim, members, inv_members, mu[e], sd[e]);
    inv_sd[e] = sd[e] > 0 ? 1.0 / sd[e] : 0.0;  // a dimension without spread stays at μ
  }
  const std::vector<double> target =  // τ_d
      ensf_target_spread(cfg.spread_target, geo, sd, initial_spread_);

  // ---- observations: off-grid stencils exchanged through `sum` ----
  const std::size_t n_obs = obs.size();
  OffGrid off;
  off.obs = geo.off_obs;
  auto gather_off_grid = [&](std::span<const double> state_members, std::size_t stride) {
    off.values.assign(members * off.obs.size() * 4, 0.0);
    for (std::size_t i = 0; i < members; ++i)
      for (std::size_t k = 0; k < off.obs.size(); ++k) {
        const auto& st = obs.stencil(off.obs[k]);
        for (int p = 0; p < st.count; ++p) {
          std::size_t e;
          if (geo.local(st.index[p], e))
            off.values[(i * off.obs.size() + k) * 4 + p] = state_members[i * stride + e] + 0.0;
        }
      }
    if (!off.obs.empty()) reduce_sum(reducer, off.values);
  };
  auto off_grid_q = [&](std::size_t i, std::size_t k) {
    const auto& st = obs.stencil(off.obs[k]);
    double q = 0;
    for (int p = 0; p < st.count; ++p)
      q += st.weight[p] * off.values[(i * off.obs.size() + k) * 4 + p];
    return q;
  };

  // ---- innovation diagnostics: y − mean_i h(x_b^(i)), one owner per observation ----
  AnalysisDiagnostics diag;
  diag.observations_used = n_obs;
  {
    std::vector<double> innovation(n_obs, 0.0);
    for (std::size_t g = 0; g < grid_obs.size(); ++g) {
      const std::size_t o = grid_obs[g];
      double hbar = 0;
      for (std::size_t i = 0; i < members; ++i)
        hbar += obs_operator_value(obs_kind(obs.op()[o]), prior.data[i * dim + grid_elem[g]], s_k);
      innovation[o] = obs.value()[o] - hbar * inv_members;
    }
    gather_off_grid(prior.data, dim);
    for (std::size_t k = 0; k < off.obs.size(); ++k) {
      const std::size_t o = off.obs[k];
      std::size_t e;
      if (!geo.local(obs.stencil(o).index[0], e)) continue;  // owner: slab of stencil point 0
      double hbar = 0;
      for (std::size_t i = 0; i < members; ++i)
        hbar += obs_operator_value(obs_kind(obs.op()[o]), off_grid_q(i, k), s_k);
      innovation[o] = obs.value()[o] - hbar * inv_members;
    }
    if (n_obs > 0) reduce_sum(reducer, innovation);
    double sum = 0, sum2 = 0;
    for (double v : innovation) {
      sum += v;
      sum2 += v * v;
    }
    if (n_obs > 0) {
      diag.innovation_mean = sum / static_cast<double>(n_obs);
      diag.innovation_rms = std::sqrt(sum2 / static_cast<double>(n_obs));
    }
  }

  // ---- prior in the working coordinates (normalized or not) ----
  std::vector<double> x(members * dim);
  for (std::size_t i = 0; i < members; ++i)
    for (std::size_t e = 0; e < dim; ++e)
      x[i * dim + e] = ensf_to_working(prior.data[i * dim + e], mu[e], inv_sd[e], cfg.normalize);

  // ---- paper likelihood scores per dimension (science.md §4 paper) ----
  // linear_K (c = s_K) and identity (c = 1): y′ = c (y/c − μ)/s, σ′ = σ_o/s, score
  //   −(c z − y′)/σ′² · c  =  lin_b − lin_a · z  (summed over observations of a dimension).
  // arctan: q = tan(y)/s_K, y′ = arctan(s_K (q − μ)/s), σ′ = factor · s_K · σ_o, score
  //   −(arctan(s_K z) − y′)/σ′² · s_K/(1 + s_K² z²)  =  −(atan_a arctan(s_K z) − atan_b) · ….
  // A dimension without prior spread (s = 0) cannot move and gets no score.
  std::vector<double> lin_a, lin_b, atan_a, atan_b;
  const bool has_arctan = geo.has_arctan;
  if (paper) {
    lin_a.assign(dim, 0.0);
    lin_b.assign(dim, 0.0);
    if (has_arctan) {
      atan_a.assign(dim, 0.0);
      atan_b.assign(dim, 0.0);
    }
    for (std::size_t g = 0; g < grid_obs.size(); ++g) {
      const std::size_t o = grid_obs[g], e = grid_elem[g];
      if (!(sd[e] > 0)) continue;
      EnsfPaperTerms terms{lin_a[e], lin_b[e], has_arctan ? atan_a[e] : 0.0,
                           has_arctan ? atan_b[e] : 0.0};
      ensf_add_paper_observation(obs_kind(obs.op()[o]), obs.value()[o], obs.error_sd()[o], mu[e],
                                 sd[e], s_k, cfg.arctan_sigma_factor, cfg.arctan_clip_sigmas,
                                 terms);
      lin_a[e] = terms.lin_a;
      lin_b[e] = terms.lin_b;
      if (has_arctan) {
        atan_a[e] = terms.atan_a;
        atan_b[e] = terms.atan_b;
      }
    }
  }

  // ---- the reverse SDE (eq. 15) ----
  std::vector<NormalBatchStream> streams;
  streams.reserve(members);
  for (std::size_t i = 0; i < members; ++i)
    streams.emplace_back(ctx.seed, RandomPurpose::kEnsfNoise, ctx.cycle, i);
  std::vector<double> z(members * dim);
  const auto n_blocks = static_cast<std::ptrdiff_t>(blocks.size());
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t b = 0; b < n_blocks; ++b) {
    const Block& bl = blocks[b];
    for (std::size_t i = 0; i < members; ++i)  // z(1) ~ N(0, I): row 0
      streams[i].fill(0, bl.g0, std::span<double>(z.data() + i * dim + bl.e0, bl.len));
  }

  const double dt = 1.0 / cfg.steps;
  const int cap = cfg.step_cap();
  const std::size_t window = static_cast<std::size_t>(cfg.stop_window);
  std::vector<double> history;  // ring of W + 1 member means of z
  if (cfg.early_stopping) history.assign((window + 1) * dim, 0.0);
  // Standard mode work arrays.
  std::vector<double> weighted, grad, xt, row_d2, weights;
  const std::size_t rows_total = n, row0 = col_begin / n, rows = geo.nc / n;
  if (!paper) {
    weighted.resize(members * dim);
    grad.resize(members * dim);
    xt.resize(dim * members);  // [e][j] for the distances
    for (std::size_t j = 0; j < members; ++j)
      for (std::size_t e = 0; e < dim; ++e)
        xt[e * members + j] = x[j * dim + e];
    row_d2.resize(rows_total * members * members);
    weights.resize(members * members);
  }
  double min_ess = static_cast<double>(members), last_mean_ess = min_ess, last_drift = 0;
  int steps_taken = 0;

  for (int k = 0; k < cap; ++k) {
    // Every coefficient at the start of the step, t = 1 − k Δt.
    const EnsfStepCoefficients sc =
        ensf_step_coefficients(k, dt, cfg.eps_alpha, cfg.eps_beta, cfg.damping);
    const std::uint64_t row = static_cast<std::uint64_t>(k) + 1;

    if (!paper) {
      // eq. 13: ‖z_i − α x_j‖² per grid row (both levels), rows summed in ascending order.
      std::fill(row_d2.begin(), row_d2.end(), 0.0);
      const auto n_row_work = static_cast<std::ptrdiff_t>(rows * members);
#pragma omp parallel for schedule(static)
      for (std::ptrdiff_t w = 0; w < n_row_work; ++w) {
        const std::size_t r = static_cast<std::size_t>(w) / members;
        const std::size_t i = static_cast<std::size_t>(w) % members;
        double* acc = row_d2.data() + ((row0 + r) * members + i) * members;
        for (std::size_t level = 0; level < 2; ++level)
          for (std::size_t c = 0; c < n; ++c) {
            const std::size_t e = level * geo.nc + r * n + c;
            const double zi = z[i * dim + e];
            const double* xe = xt.data() + e * members;
            for (std::size_t j = 0; j < members; ++j)
              acc[j] += ensf_squared_residual(zi, sc.alpha, xe[j]);
          }
      }
      reduce_sum(reducer, row_d2);
      double ess_sum = 0;
      for (std::size_t i = 0; i < members; ++i) {
        std::vector<double> d2(members, 0.0);
        for (std::size_t r = 0; r < rows_total; ++r)
          for (std::size_t j = 0; j < members; ++j)
            d2[j] += row_d2[(r * members + i) * members + j];
        const double w2 =
            ensf_softmax_weights(d2.data(), members, sc.beta2, weights.data() + i * members);
        ess_sum += 1.0 / w2;
        min_ess = std::min(min_ess, 1.0 / w2);
      }
      last_mean_ess = ess_sum * inv_members;

      // Σ_j w_ij x_j, and the likelihood gradient (eq. 14) in working coordinates.
      if (!off.obs.empty()) {
        std::vector<double> phys(members * dim);
        for (std::size_t i = 0; i < members; ++i)
          for (std::size_t e = 0; e < dim; ++e)
            phys[i * dim + e] = ensf_to_physical(z[i * dim + e], mu[e], sd[e], cfg.normalize);
        gather_off_grid(phys, dim);
      }
#pragma omp parallel for schedule(static)
      for (std::ptrdiff_t ii = 0; ii < static_cast<std::ptrdiff_t>(members); ++ii) {
        const std::size_t i = static_cast<std::size_t>(ii);
        double* wx = weighted.data() + i * dim;
        std::fill(wx, wx + dim, 0.0);
        for (std::size_t j = 0; j < members; ++j) {
          const double wij = weights[i * members + j];
          const double* xj = x.data() + j * dim;
          for (std::size_t e = 0; e < dim; ++e)
            wx[e] += wij * xj[e];
        }
        double* gi = grad.data() + i * dim;
        std::fill(gi, gi + dim, 0.0);
        for (std::size_t g = 0; g < grid_obs.size(); ++g) {
          const std::size_t o = grid_obs[g], e = grid_elem[g];
          const double q = ensf_to_physical(z[i * dim + e], mu[e], sd[e], cfg.normalize);
          const double dlogp = obs_log_likelihood_slope(obs_kind(obs.op()[o]), q, obs.value()[o],
                                                        obs.error_sd()[o], s_k);
          gi[e] += (cfg.normalize ? sd[e] : 1.0) * dlogp;  // chain rule through x = μ + s z
        }
        for (std::size_t kk = 0; kk < off.obs.size(); ++kk) {
          const std::size_t o = off.obs[kk];
          const auto& st = obs.stencil(o);
          const double q = off_grid_q(i, kk);
          const double dlogp = obs_log_likelihood_slope(obs_kind(obs.op()[o]), q, obs.value()[o],
                                                        obs.error_sd()[o], s_k);
          for (int p = 0; p < st.count; ++p) {
            std::size_t e;
            if (geo.local(st.index[p], e))
              gi[e] += (cfg.normalize ? sd[e] : 1.0) * (st.weight[p] * dlogp);
          }
        }
      }
    }

    // The Euler–Maruyama step itself, element-wise (eq. 14–15).
    double drift_max = 0;
    const bool watch = cfg.early_stopping;
    const std::size_t slot = static_cast<std::size_t>(k) % (window + 1);
    const std::size_t old_slot = (static_cast<std::size_t>(k) + 1) % (window + 1);
    const bool compare = watch && static_cast<std::size_t>(k) >= window;
#pragma omp parallel for schedule(dynamic, 1) reduction(max : drift_max)
    for (std::ptrdiff_t b = 0; b < n_blocks; ++b) {
      const Block& bl = blocks[b];
      alignas(64) double xi[kBlock];
      alignas(64) double msum[kBlock] = {};
      for (std::size_t i = 0; i < members; ++i) {
        streams[i].fill(row, bl.g0, std::span<double>(xi, bl.len));
        double* zi = z.data() + i * dim + bl.e0;
        if (paper && has_arctan) {
          // Paired score S_i = −(z_i − α_t x_i)/β_t² plus the damped per-dimension likelihood
          // with the arctan heuristic (library atan: not vectorised).
          const double* xi_prior = x.data() + i * dim + bl.e0;
          const double* la = lin_a.data() + bl.e0;
          const double* lb = lin_b.data() + bl.e0;
          const double* aa = atan_a.data() + bl.e0;
          const double* ab = atan_b.data() + bl.e0;
          for (std::size_t d = 0; d < bl.len; ++d) {
            const double zd = zi[d];
            const double lik = ensf_paper_likelihood(zd, la[d], lb[d], aa[d], ab[d], s_k);
            const double zn = ensf_euler_maruyama(sc, zd, xi_prior[d], lik, xi[d]);
            zi[d] = zn;
            msum[d] += zn;
          }
        } else if (paper) {
          em_update(sc, bl.len, x.data() + i * dim + bl.e0, lin_a.data() + bl.e0,
                    lin_b.data() + bl.e0, xi, zi, msum);
        } else {
          // Monte-Carlo score S_i = −(z_i − α_t Σ_j w_ij x_j)/β_t² plus the damped gradient.
          em_update(sc, bl.len, weighted.data() + i * dim + bl.e0, nullptr,
                    grad.data() + i * dim + bl.e0, xi, zi, msum);
        }
      }
      if (watch) {
        double* now = history.data() + slot * dim + bl.e0;
        const double* then = history.data() + old_slot * dim + bl.e0;
        for (std::size_t d = 0; d < bl.len; ++d) {
          const double m = msum[d] * inv_members;
          if (compare) drift_max = std::max(drift_max, std::abs(m - then[d]));
          now[d] = m;
        }
      }
    }
    steps_taken = k + 1;
    // Stopping rule: after step k > W, max_d |m_k − m_{k−W}| < tolerance · W.
    if (watch && static_cast<std::size_t>(k) > window) {
      reduce_max(reducer, std::span<double>(&drift_max, 1));
      last_drift = drift_max;
      if (drift_max < cfg.stop_tolerance * static_cast<double>(window)) break;
    }
  }

  // ---- output: x_i = μ + s ⊙ z_i (no division by α_t), then RTPS and spread target ----
  std::span<double> out = posterior.data;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t b = 0; b < n_blocks; ++b) {
    const Block& bl = blocks[b];
    for (std::size_t d = 0; d < bl.len; ++d) {
      const std::size_t e = bl.e0 + d;
      for (std::size_t i = 0; i < members; ++i)
        out[i * dim + e] = ensf_to_physical(z[i * dim + e], mu[e], sd[e], cfg.normalize);
      ensf_rescale_spread(out.data() + e, dim, members, inv_members, sd[e], cfg.rtps,
                          !target.empty(), target.empty() ? 0.0 : target[e]);
    }
  }

  diag.extra["ensf_steps"] = steps_taken;
  diag.extra["ensf_final_t"] = 1.0 - steps_taken * dt;
  if (cfg.early_stopping) diag.extra["ensf_stop_drift"] = last_drift;
  if (!paper) {
    diag.extra["ensf_min_effective_members"] = min_ess;
    diag.extra["ensf_final_effective_members"] = last_mean_ess;
  }
  diag.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return diag;
}

}  // namespace rtda::filters
