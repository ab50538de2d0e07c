// The EnSF arithmetic shared by the CPU filter and the HIP kernels (filters/ensf_math.hpp):
// its pieces, and the whole kernel sequence of hip/ensf_hip.hip replayed on the CPU — one
// element, member or Philox block at a time, with the noise from core/philox_hd.hpp — which
// must reproduce EnsfAnalysis bit for bit. That replay is what makes the HIP parity tests'
// tight tolerances plausible on a machine without a GPU. Runs on the CPU.
#include "filters/ensf_math.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/normal_batch.hpp"
#include "core/philox_hd.hpp"
#include "filter_problems.hpp"
#include "filters/ensf.hpp"

namespace rtda::filters {
namespace {

namespace ts = rtda::test_support;

TEST(EnsfMath, StepCoefficientsAreEquations11And12AtTheStartOfTheStep) {
  const double dt = 1e-3;
  const EnsfStepCoefficients s = ensf_step_coefficients(250, dt, 0.05, 0.025, true);
  const double t = 1.0 - 250 * dt;
  const EnsfCoefficients c = ensf_coefficients(t, 0.05, 0.025);
  EXPECT_EQ(s.t, t);
  EXPECT_EQ(s.alpha, c.alpha);
  EXPECT_EQ(s.inv_beta2, 1.0 / c.beta2);
  EXPECT_EQ(s.drift, -(1.0 - 0.05) / (1.0 - 0.95 * t));
  EXPECT_EQ(s.sigma2, c.sigma2);
  EXPECT_EQ(s.damp, 1.0 - t);
  EXPECT_EQ(ensf_step_coefficients(250, dt, 0.05, 0.025, false).damp, 1.0);
  EXPECT_EQ(s.noise, std::sqrt(dt) * std::sqrt(c.sigma2));
}

TEST(EnsfMath, SoftmaxWeightsSumToOneAndFavourTheNearestMember) {
  const double d2[4] = {10.0, 2.0, 1e6, 3.0};
  double w[4];
  const double w2 = ensf_softmax_weights(d2, 4, 0.5, w);
  EXPECT_NEAR(w[0] + w[1] + w[2] + w[3], 1.0, 1e-15);
  EXPECT_GT(w[1], w[3]);
  EXPECT_GT(w[3], w[0]);
  EXPECT_EQ(w[2], 0.0);  // exp underflows: no NaN from the huge distance
  EXPECT_NEAR(w2, w[0] * w[0] + w[1] * w[1] + w[3] * w[3], 1e-15);
}

TEST(EnsfMath, RescaleSpreadHitsTheTargetAndKeepsTheMean) {
  std::vector<double> x = {1.0, 2.0, 4.0, 9.0};  // one dimension, stride 1
  double mean0, sd0;
  ensf_mean_spread(x.data(), 1, 4, 0.25, mean0, sd0);
  ensf_rescale_spread(x.data(), 1, 4, 0.25, 0.0, 0.0, true, 2.0);
  double mean, sd;
  ensf_mean_spread(x.data(), 1, 4, 0.25, mean, sd);
  EXPECT_NEAR(mean, mean0, 1e-14);
  EXPECT_NEAR(sd, 2.0, 1e-14);
  // RTPS with α = 1 restores the prior spread.
  ensf_rescale_spread(x.data(), 1, 4, 0.25, 5.0, 1.0, false, 0.0);
  ensf_mean_spread(x.data(), 1, 4, 0.25, mean, sd);
  EXPECT_NEAR(sd, 5.0, 1e-13);
}

// ---------------------------------------------------------------- the kernels, replayed

// The HIP filter's sequence (hip/ensf_hip.cpp and the kernels of ensf_hip.hip) for the whole
// domain, one work item at a time, in the order the kernels' threads compute each value.
std::vector<double> replay_device_ensf(const EnsfSettings& cfg, const ts::FilterProblem& p,
                                       AnalysisContext ctx, std::vector<double>& initial_spread) {
  const std::size_t n2 = static_cast<std::size_t>(p.grid.N) * p.grid.N;
  const std::size_t dim = 2 * n2, k = static_cast<std::size_t>(p.members);
  const EnsfSlabPlan plan =
      ensf_plan_slab(cfg, p.obs, 0, n2, {p.members, dim, k * dim}, {p.members, dim, k * dim});
  const bool paper = cfg.mode == EnsfMode::kPaper;
  const double s_k = p.obs.kelvin_per_pv(), inv_members = 1.0 / static_cast<double>(k);
  const NormalBatchStream keys(ctx.seed, RandomPurpose::kEnsfNoise, ctx.cycle, 0);
  const auto noise = [&](std::size_t member, std::uint32_t row, std::size_t g) {
    double xi[4];
    philox_hd::normal_block(
        keys.key_word(0), keys.key_word(1), static_cast<std::uint32_t>(ctx.cycle),
        static_cast<std::uint32_t>(member), row, static_cast<std::uint32_t>(g / 4), xi);
    return xi[g % 4];
  };
  const auto kind = [&](std::size_t o) { return p.obs.op()[o]; };
  // Per-element observation lists (the CSR of the kernels).
  std::vector<std::vector<std::size_t>> elem_obs(dim);
  for (std::size_t g = 0; g < plan.grid_obs.size(); ++g)
    elem_obs[plan.grid_elem[g]].push_back(plan.grid_obs[g]);
  std::vector<std::vector<std::pair<std::size_t, double>>> elem_off(dim);
  for (std::size_t kk = 0; kk < plan.off_obs.size(); ++kk) {
    const auto& st = p.obs.stencil(plan.off_obs[kk]);
    for (int q = 0; q < st.count; ++q)
      elem_off[st.index[q]].push_back({kk, st.weight[q]});
  }

  std::vector<double> mu(dim), sd(dim), inv_sd(dim), x(k * dim), z(k * dim), post(k * dim);
  for (std::size_t e = 0; e < dim; ++e) {  // prior_statistics_kernel
    ensf_mean_spread(p.prior.data() + e, dim, k, inv_members, mu[e], sd[e]);
    inv_sd[e] = sd[e] > 0 ? 1.0 / sd[e] : 0.0;
    for (std::size_t i = 0; i < k; ++i)
      x[i * dim + e] = ensf_to_working(p.prior[i * dim + e], mu[e], inv_sd[e], cfg.normalize);
  }
  const std::vector<double> target =
      ensf_target_spread(cfg.spread_target, plan, sd, initial_spread);
  std::vector<EnsfPaperTerms> terms(dim, EnsfPaperTerms{0, 0, 0, 0});
  if (paper)
    for (std::size_t e = 0; e < dim; ++e)  // paper_terms_kernel
      if (sd[e] > 0)
        for (std::size_t o : elem_obs[e])
          ensf_add_paper_observation(kind(o), p.obs.value()[o], p.obs.error_sd()[o], mu[e], sd[e],
                                     s_k, cfg.arctan_sigma_factor, cfg.arctan_clip_sigmas,
                                     terms[e]);
  for (std::size_t i = 0; i < k; ++i)  // initial_particles_kernel
    for (std::size_t e = 0; e < dim; ++e)
      z[i * dim + e] = noise(i, 0, e);

  const double dt = 1.0 / cfg.steps;
  const std::size_t window = static_cast<std::size_t>(cfg.stop_window), n = plan.ny;
  std::vector<double> history((window + 1) * dim, 0.0), d2(n * k * k), w(k * k), weighted(k * dim),
      grad(k * dim), dlogp(k * plan.off_obs.size());
  for (int step = 0; step < cfg.step_cap(); ++step) {
    const EnsfStepCoefficients c =
        ensf_step_coefficients(step, dt, cfg.eps_alpha, cfg.eps_beta, cfg.damping);
    if (!paper) {
      for (std::size_t r = 0; r < n; ++r)  // row_distances_kernel
        for (std::size_t i = 0; i < k; ++i)
          for (std::size_t j = 0; j < k; ++j) {
            double acc = 0;
            for (std::size_t level = 0; level < 2; ++level)
              for (std::size_t col = 0; col < n; ++col) {
                const std::size_t e = level * n2 + r * n + col;
                acc += ensf_squared_residual(z[i * dim + e], c.alpha, x[j * dim + e]);
              }
            d2[(r * k + i) * k + j] = acc;
          }
      for (std::size_t i = 0; i < k; ++i) {  // softmax_kernel
        for (std::size_t j = 0; j < k; ++j) {
          double s = 0.0;
          for (std::size_t r = 0; r < n; ++r)
            s += d2[(r * k + i) * k + j];
          w[i * k + j] = s;
        }
        ensf_softmax_weights(w.data() + i * k, k, c.beta2, w.data() + i * k);
      }
      for (std::size_t i = 0; i < k; ++i)  // gather + off_grid_slopes_kernel
        for (std::size_t kk = 0; kk < plan.off_obs.size(); ++kk) {
          const std::size_t o = plan.off_obs[kk];
          const auto& st = p.obs.stencil(o);
          double q = 0;
          for (int s = 0; s < st.count; ++s) {
            const std::size_t e = st.index[s];
            q += st.weight[s] *
                 (ensf_to_physical(z[i * dim + e], mu[e], sd[e], cfg.normalize) + 0.0);
          }
          dlogp[i * plan.off_obs.size() + kk] =
              obs::log_likelihood_slope(kind(o), q, p.obs.value()[o], p.obs.error_sd()[o], s_k);
        }
      for (std::size_t i = 0; i < k; ++i)  // weighted_prior_and_gradient_kernel
        for (std::size_t e = 0; e < dim; ++e) {
          double wx = 0.0;
          for (std::size_t j = 0; j < k; ++j)
            wx += w[i * k + j] * x[j * dim + e];
          weighted[i * dim + e] = wx;
          const double scale = cfg.normalize ? sd[e] : 1.0;
          double g = 0.0;
          for (std::size_t o : elem_obs[e]) {
            const double q = ensf_to_physical(z[i * dim + e], mu[e], sd[e], cfg.normalize);
            g += scale *
                 obs::log_likelihood_slope(kind(o), q, p.obs.value()[o], p.obs.error_sd()[o], s_k);
          }
          for (const auto& [kk, wt] : elem_off[e])
            g += scale * (wt * dlogp[i * plan.off_obs.size() + kk]);
          grad[i * dim + e] = g;
        }
    }
    for (std::size_t i = 0; i < k; ++i)  // step_kernel
      for (std::size_t e = 0; e < dim; ++e) {
        const std::size_t ie = i * dim + e;
        const double zd = z[ie];
        const double xi = noise(i, static_cast<std::uint32_t>(step + 1), e);
        if (paper) {
          const EnsfPaperTerms& t = terms[e];
          const double lik =
              plan.has_arctan ? ensf_paper_likelihood(zd, t.lin_a, t.lin_b, t.atan_a, t.atan_b, s_k)
                              : ensf_paper_linear_likelihood(zd, t.lin_a, t.lin_b);
          z[ie] = ensf_euler_maruyama(c, zd, x[ie], lik, xi);
        } else {
          z[ie] = ensf_euler_maruyama(c, zd, weighted[ie], grad[ie], xi);
        }
      }
    if (cfg.early_stopping) {  // member_mean_kernel
      const std::size_t slot = static_cast<std::size_t>(step) % (window + 1);
      const std::size_t old_slot = (static_cast<std::size_t>(step) + 1) % (window + 1);
      double drift = 0;
      for (std::size_t e = 0; e < dim; ++e) {
        double msum = 0;
        for (std::size_t i = 0; i < k; ++i)
          msum += z[i * dim + e];
        const double m = msum * inv_members;
        const double d = std::fabs(m - history[old_slot * dim + e]);
        drift = d > drift ? d : drift;
        history[slot * dim + e] = m;
      }
      if (static_cast<std::size_t>(step) > window &&
          drift < cfg.stop_tolerance * static_cast<double>(window))
        break;
    }
  }
  for (std::size_t e = 0; e < dim; ++e) {  // finish_kernel
    for (std::size_t i = 0; i < k; ++i)
      post[i * dim + e] = ensf_to_physical(z[i * dim + e], mu[e], sd[e], cfg.normalize);
    ensf_rescale_spread(post.data() + e, dim, k, inv_members, sd[e], cfg.rtps, !target.empty(),
                        target.empty() ? 0.0 : target[e]);
  }
  return post;
}

std::vector<double> cpu_ensf(const EnsfSettings& cfg, const ts::FilterProblem& p,
                             AnalysisContext ctx) {
  EnsfAnalysis filter(cfg);
  std::vector<double> post(p.prior.size());
  filter.analyse({p.members, p.state(), p.prior}, p.obs, ctx, {p.members, p.state(), post});
  return post;
}

void expect_bitwise(const std::vector<double>& a, const std::vector<double>& b) {
  ASSERT_EQ(a.size(), b.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    differ += std::memcmp(&a[i], &b[i], sizeof(double)) != 0;
  EXPECT_EQ(differ, 0u) << "of " << a.size() << " values; max relative difference "
                        << ts::max_relative_difference(a, b, 1.0);
}

TEST(EnsfKernelReplay, PaperModeLinearObservationsIsTheCpuFilterBitForBit) {
  const auto p = ts::make_filter_problem(16, 12, ts::ObsLayout::kEveryPoint, 0,
                                         obs::ObsOperator::kLinearK, 1.0, 101);
  std::vector<double> spread;
  expect_bitwise(replay_device_ensf(EnsfSettings::paper(), p, {7, 3}, spread),
                 cpu_ensf(EnsfSettings::paper(), p, {7, 3}));
}

TEST(EnsfKernelReplay, PaperModeArctanObservationsIsTheCpuFilterBitForBit) {
  const auto p = ts::make_filter_problem(16, 10, ts::ObsLayout::kRandomPoints, 300,
                                         obs::ObsOperator::kArctan, 0.01, 102);
  std::vector<double> spread;
  expect_bitwise(replay_device_ensf(EnsfSettings::paper(), p, {9, 0}, spread),
                 cpu_ensf(EnsfSettings::paper(), p, {9, 0}));
}

TEST(EnsfKernelReplay, StandardModeWithOffGridObservationsIsTheCpuFilterBitForBit) {
  auto cfg = EnsfSettings::standard();
  cfg.steps = 60;
  cfg.rtps = 0.5;
  cfg.spread_target = EnsfSpreadTarget::kPrior;
  const auto p = ts::make_filter_problem(16, 10, ts::ObsLayout::kBetweenPoints, 250,
                                         obs::ObsOperator::kLinearK, 1.0, 103);
  std::vector<double> spread;
  expect_bitwise(replay_device_ensf(cfg, p, {5, 2}, spread), cpu_ensf(cfg, p, {5, 2}));
}

}  // namespace
}  // namespace rtda::filters
