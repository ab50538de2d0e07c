// The EnSF filter (ensf.hpp): settings, the slab plan, the spread target and ensf_run, the one
// loop over the stages of ensf_stages.hpp. The CPU stages are ensf_cpu.cpp, the HIP ones
// hip/ensf_hip.cpp.
#include "filters/ensf.hpp"

// No fused multiply-add contraction: an element must get the same bits in a vector lane and
// in a loop's scalar remainder, so the result cannot depend on where a slab or a thread's
// block starts (bitwise split independence, docs/architecture.md §5).
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
#include <memory>
#include <stdexcept>
#include <string>

#include "core/format.hpp"
#include "filters/ensf_stages.hpp"

namespace rtda::filters {

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
  const core::Grid& grid = obs.grid();
  const std::size_t n = static_cast<std::size_t>(grid.nx);
  const std::size_t n2 = grid.columns();
  const int k_members = prior.members;
  const std::size_t members = static_cast<std::size_t>(std::max(k_members, 0));

  // ---- checks: the caller's shapes, then what each mode can do ----
  if (n2 == 0) throw std::invalid_argument("ensf: the observation space has no grid (0 points)");
  if (col_begin > col_end || col_end > n2)
    throw std::invalid_argument("ensf: slab columns [" + std::to_string(col_begin) + ", " +
                                std::to_string(col_end) + ") are not inside [0, " +
                                std::to_string(n2) + ")");
  plan.nx = n;
  plan.ny = static_cast<std::size_t>(grid.ny);
  plan.levels = static_cast<std::size_t>(grid.levels);
  plan.n2 = n2;
  plan.c0 = col_begin;
  plan.nc = col_end - col_begin;
  plan.dim = plan.levels * plan.nc;
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
        " members x " + std::to_string(plan.levels) + "·" + std::to_string(plan.nc) +
        " slab elements");
  if (paper && !obs.all_at_grid_points()) {
    for (std::size_t o = 0; o < obs.size(); ++o)
      if (obs.stencil(o).count != 1)
        throw std::invalid_argument(
            "ensf.mode = \"paper\": observation id " + std::to_string(obs.id()[o]) +
            " at (x, y) = (" + core::format_double(obs.x_m()[o]) + ", " +
            core::format_double(obs.y_m()[o]) +
            ") m lies between grid points; the paper likelihood is defined per state dimension "
            "(use ensf.mode = \"standard\" for interpolated observations)");
  }
  if (!paper && (col_begin % n != 0 || col_end % n != 0))
    throw std::invalid_argument("ensf: standard mode needs slabs of whole grid rows; columns [" +
                                std::to_string(col_begin) + ", " + std::to_string(col_end) +
                                ") are not multiples of nx = " + std::to_string(n));

  // ---- observations: who owns what ----
  for (std::size_t o = 0; o < obs.size(); ++o) {
    const auto& st = obs.stencil(o);
    plan.has_arctan = plan.has_arctan || obs.op()[o] == obs::ObsOperator::kArctan;
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
    const std::size_t state = plan.levels * plan.n2;
    if (initial_spread.empty()) initial_spread.assign(state, std::nan(""));
    if (initial_spread.size() != state)
      throw std::invalid_argument("ensf: the stored initial spread has " +
                                  std::to_string(initial_spread.size()) +
                                  " values; the state has " + std::to_string(state));
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
  return analyse_slab(0, obs.grid().columns(), prior, obs, ctx, posterior, EnsfReducer{});
}

AnalysisDiagnostics EnsfAnalysis::analyse_slab(std::size_t col_begin, std::size_t col_end,
                                               ConstEnsembleView prior,
                                               const obs::ObservationSpace& obs,
                                               const AnalysisContext& ctx, EnsembleView posterior,
                                               const EnsfReducer& reducer) {
  const auto wall_start = std::chrono::steady_clock::now();
  const EnsfSlabPlan plan = ensf_plan_slab(
      settings_, obs, col_begin, col_end, {prior.members, prior.state_size, prior.data.size()},
      {posterior.members, posterior.state_size, posterior.data.size()});
  const std::unique_ptr<EnsfStages> stages =
      make_cpu_ensf_stages(settings_, plan, obs, ctx, prior.data, posterior.data);
  AnalysisDiagnostics diag = ensf_run(settings_, plan, obs, *stages, reducer, initial_spread_);
  diag.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return diag;
}

AnalysisDiagnostics ensf_run(const EnsfSettings& cfg, const EnsfSlabPlan& plan,
                             const obs::ObservationSpace& obs, EnsfStages& stages,
                             const EnsfReducer& reducer, std::vector<double>& initial_spread) {
  const bool paper = cfg.mode == EnsfMode::kPaper;

  // ---- normalise (docs/science.md §4 paper) and the target spread τ_d ----
  const std::vector<double> sd = stages.prior_statistics();
  stages.set_target_spread(ensf_target_spread(cfg.spread_target, plan, sd, initial_spread));

  // ---- innovation diagnostics: y − mean_i h(x_b^(i)), one owner per observation ----
  AnalysisDiagnostics diag;
  const std::size_t n_obs = obs.size();
  diag.observations_used = n_obs;
  if (!plan.off_obs.empty()) stages.gather_off_grid(true, reducer.sum);
  {
    std::vector<double> innovation = stages.innovations();
    if (n_obs > 0 && reducer.sum) reducer.sum(innovation);
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

  if (paper) stages.paper_terms();
  stages.initial_particles();

  // ---- the reverse SDE (eq. 15), every coefficient at the start of its step ----
  const double dt = 1.0 / cfg.steps;
  const int cap = cfg.step_cap();
  std::vector<EnsfStepCoefficients> coefficients(static_cast<std::size_t>(cap));
  for (int k = 0; k < cap; ++k)
    coefficients[k] = ensf_step_coefficients(k, dt, cfg.eps_alpha, cfg.eps_beta, cfg.damping);
  const bool watch = cfg.early_stopping;
  const int window = cfg.stop_window;
  double last_drift = 0;
  int steps_taken = 0;
  for (int k = 0; k < cap;) {
    // Paper mode couples its elements only through the stopping rule, first tested after
    // step W + 1: the steps before it are one stage call.
    const int k_end = !paper ? k + 1 : (watch ? std::max(k + 1, std::min(cap, window + 1)) : cap);
    const bool decide = watch && k_end - 1 > window;
    if (!paper) {
      // eq. 13–14: Monte-Carlo score over all members, likelihood gradient.
      stages.member_distances(coefficients[k].alpha, reducer.sum);
      stages.softmax_weights(coefficients[k].beta2);
      if (!plan.off_obs.empty()) stages.gather_off_grid(false, reducer.sum);
      stages.weighted_prior_and_gradient();
    }
    double drift = stages.steps(coefficients, k, k_end, decide);
    steps_taken = k_end;
    k = k_end;
    // Stopping rule: after step k > W, max_d |m_k − m_{k−W}| < tolerance · W.
    if (decide) {
      if (reducer.max) reducer.max(std::span<double>(&drift, 1));
      last_drift = drift;
      if (drift < cfg.stop_tolerance * static_cast<double>(window)) break;
    }
  }

  // ---- output: x_i = μ + s ⊙ z_i (no division by α_t), then RTPS and the spread target ----
  stages.finish();

  diag.extra["ensf_steps"] = steps_taken;
  diag.extra["ensf_final_t"] = 1.0 - steps_taken * dt;
  if (watch) diag.extra["ensf_stop_drift"] = last_drift;
  if (!paper) {
    const EnsfStages::EffectiveMembers ess = stages.effective_members();
    diag.extra["ensf_min_effective_members"] = ess.min;
    diag.extra["ensf_final_effective_members"] = ess.last_mean;
  }
  return diag;
}

}  // namespace rtda::filters
