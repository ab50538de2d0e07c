// EnSF (docs/science.md §4, eq. 11–15): coefficient functions, the two score estimators, the
// linear-Gaussian limit of standard mode, the paper mode's stopping rule, spread target and
// reproduction anchor, determinism and the bitwise independence of the slab split.
#include "filters/ensf.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "core/normal_batch.hpp"
#include "core/random.hpp"
#include "filters/ensf_noise.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

#include <Random123/philox.h>

namespace rtda::filters {
namespace {

// ---------- helpers ----------

sqg::SqgParams grid_of(int n) {
  sqg::SqgParams g;
  g.N = n;
  return g;
}

// One observation per listed state element (global index level·N² + j·N + i), at the grid
// point; value from `truth` through the operator plus N(0, σ²) noise drawn from `seed`.
obs::ObservationSpace observe_points(const sqg::SqgParams& g, const std::vector<double>& truth,
                                     const std::vector<std::size_t>& elements, obs::ObsOperator op,
                                     double sigma, std::uint64_t seed) {
  obs::ObservationSet set;
  const std::size_t n2 = static_cast<std::size_t>(g.N) * g.N;
  RandomStream noise(seed, RandomPurpose::kTest, 99, 0);
  for (std::size_t e : elements) {
    obs::Observation o;
    o.level = static_cast<int>(e / n2);
    o.x_m = static_cast<double>(e % n2 % g.N) * g.dx_m();
    o.y_m = static_cast<double>(e % n2 / g.N) * g.dx_m();
    o.value = obs::operator_value(op, truth[e], g.kelvin_per_pv()) + sigma * noise.normal(e);
    o.error_sd = sigma;
    o.op = op;
    o.id = e;
    set.push_back(o);
  }
  return obs::ObservationSpace(g, set);
}

std::vector<std::size_t> all_elements(const sqg::SqgParams& g) {
  std::vector<std::size_t> v(g.state_size());
  for (std::size_t e = 0; e < v.size(); ++e)
    v[e] = e;
  return v;
}

// members × dim: truth + bias + N(0, spread²) deviations (every element independent; paper
// mode analyses dimensions independently, so spatial correlation would not change it).
std::vector<double> make_prior(const std::vector<double>& truth, int members, double bias_sd,
                               double spread, std::uint64_t seed) {
  const std::size_t dim = truth.size();
  std::vector<double> bias(dim), prior(members * dim);
  RandomStream(seed, RandomPurpose::kTest, 1, 0).fill_normal(bias, 0.0, bias_sd);
  for (int m = 0; m < members; ++m) {
    std::vector<double> dev(dim);
    RandomStream(seed, RandomPurpose::kTest, 2, m).fill_normal(dev, 0.0, spread);
    for (std::size_t e = 0; e < dim; ++e)
      prior[m * dim + e] = truth[e] + bias[e] + dev[e];
  }
  return prior;
}

void member_stats(const std::vector<double>& ens, int members, std::size_t dim, std::size_t e,
                  double& mean, double& sd) {
  double s = 0, ss = 0;
  for (int m = 0; m < members; ++m)
    s += ens[m * dim + e];
  mean = s / members;
  for (int m = 0; m < members; ++m)
    ss += (ens[m * dim + e] - mean) * (ens[m * dim + e] - mean);
  sd = std::sqrt(ss / (members - 1));
}

AnalysisDiagnostics run(EnsfAnalysis& f, const std::vector<double>& prior, int members,
                        const obs::ObservationSpace& o, AnalysisContext ctx,
                        std::vector<double>& post) {
  const std::size_t dim = prior.size() / members;
  post.assign(prior.size(), 0.0);
  return f.analyse({members, dim, prior}, o, ctx, {members, dim, post});
}

// Slabs run in their own threads; the reducer gathers every slab's vector at a barrier and
// combines them in *reverse* slab order, so the test also shows the order does not matter.
class ThreadReducer {
 public:
  explicit ThreadReducer(int slabs) : barrier_(slabs), parts_(slabs) {}
  EnsfReducer for_slab(int s) {
    return {[this, s](std::span<double> v) { combine(s, v, true); },
            [this, s](std::span<double> v) { combine(s, v, false); }};
  }

 private:
  void combine(int s, std::span<double> v, bool is_max) {
    parts_[s].assign(v.begin(), v.end());
    barrier_.arrive_and_wait();
    const int n = static_cast<int>(parts_.size());
    for (std::size_t k = 0; k < v.size(); ++k) {
      double acc = parts_[n - 1][k];
      for (int r = n - 2; r >= 0; --r)
        acc = is_max ? std::max(acc, parts_[r][k]) : acc + parts_[r][k];
      v[k] = acc;
    }
    barrier_.arrive_and_wait();
  }
  std::barrier<> barrier_;
  std::vector<std::vector<double>> parts_;
};

// Analyse the whole state through slabs of columns [cuts[s], cuts[s+1]) and reassemble.
std::vector<double> run_slabs(const EnsfSettings& settings, const std::vector<double>& prior,
                              int members, int n, const obs::ObservationSpace& o,
                              AnalysisContext ctx, const std::vector<std::size_t>& cuts) {
  const std::size_t n2 = static_cast<std::size_t>(n) * n, dim = 2 * n2;
  const int slabs = static_cast<int>(cuts.size()) - 1;
  ThreadReducer reducer(slabs);
  std::vector<double> post(prior.size());
  std::vector<std::thread> threads;
  for (int s = 0; s < slabs; ++s)
    threads.emplace_back([&, s] {
      const std::size_t c0 = cuts[s], nc = cuts[s + 1] - cuts[s], sdim = 2 * nc;
      std::vector<double> in(members * sdim), out(members * sdim);
      for (int m = 0; m < members; ++m)
        for (std::size_t lv = 0; lv < 2; ++lv)
          for (std::size_t c = 0; c < nc; ++c)
            in[m * sdim + lv * nc + c] = prior[m * dim + lv * n2 + c0 + c];
      EnsfAnalysis f(settings);
      f.analyse_slab(c0, c0 + nc, {members, sdim, in}, o, ctx, {members, sdim, out},
                     reducer.for_slab(s));
      for (int m = 0; m < members; ++m)
        for (std::size_t lv = 0; lv < 2; ++lv)
          for (std::size_t c = 0; c < nc; ++c)
            post[m * dim + lv * n2 + c0 + c] = out[m * sdim + lv * nc + c];
    });
  for (auto& t : threads)
    t.join();
  return post;
}

// ---------- eq. 11–13 ----------

TEST(EnsfCoefficients, MatchEquations11And12) {
  // Paper ε_α = 0.05, ε_β = 0 at t = 1: α = 0.05, β² = 1, b = −0.95/0.05 = −19, σ² = 1 + 38.
  EnsfCoefficients c = ensf_coefficients(1.0, 0.05, 0.0);
  // (1 − 0.95·1 is 0.05 to 4e-17, and b divides by it: relative 1e-15 tolerances.)
  EXPECT_NEAR(c.alpha, 0.05, 1e-15);
  EXPECT_DOUBLE_EQ(c.beta2, 1.0);
  EXPECT_NEAR(c.drift, -19.0, 1e-13);
  EXPECT_NEAR(c.sigma2, 39.0, 1e-13);
  // t = 0.5: α = 0.525, β² = 0.5, b = −0.95/0.525, σ² = 1 − 2 b · 0.5.
  c = ensf_coefficients(0.5, 0.05, 0.0);
  EXPECT_DOUBLE_EQ(c.alpha, 0.525);
  EXPECT_DOUBLE_EQ(c.beta2, 0.5);
  EXPECT_NEAR(c.drift, -1.8095238095238095, 1e-15);
  EXPECT_NEAR(c.sigma2, 2.8095238095238095, 1e-15);
  // Standard ε_α = 0.5, ε_β = 0.025 at t = 0.2: α = 0.9, β² = 0.22, b = −5/9,
  // σ² = 0.975 + 2 · (5/9) · 0.22.
  c = ensf_coefficients(0.2, 0.5, 0.025);
  EXPECT_NEAR(c.alpha, 0.9, 1e-15);
  EXPECT_NEAR(c.beta2, 0.22, 1e-15);
  EXPECT_NEAR(c.drift, -5.0 / 9.0, 1e-15);
  EXPECT_NEAR(c.sigma2, 0.975 + 2.0 * 5.0 / 9.0 * 0.22, 1e-15);
  // t = 0: α = 1, β² = ε_β, no drift.
  c = ensf_coefficients(0.0, 0.5, 0.025);
  EXPECT_DOUBLE_EQ(c.alpha, 1.0);
  EXPECT_DOUBLE_EQ(c.beta2, 0.025);
  EXPECT_DOUBLE_EQ(c.drift, -0.5);
}

TEST(EnsfScore, PairedScoreIsMinusResidualOverBeta2) {
  // t = 0.5, paper ε: α = 0.525, β² = 0.5.
  const std::vector<double> z = {1.0, -2.0}, x = {0.5, 1.0};
  std::vector<double> s(2);
  ensf_paired_score(z, x, 0.5, 0.05, 0.0, s);
  EXPECT_NEAR(s[0], -(1.0 - 0.2625) / 0.5, 1e-14);  // −1.475
  EXPECT_NEAR(s[1], -(-2.0 - 0.525) / 0.5, 1e-14);  // 5.05
}

TEST(EnsfScore, MonteCarloScoreWeightsMembersBySoftmaxOfDistance) {
  // One dimension, members x = 0 and 2, z = 0.5, ε_α = 1 (α = 1), ε_β = 0, t = 0.5 (β² = 0.5):
  // d² = 0.25, 2.25 → w ∝ exp(−0.25), exp(−2.25); S = w0 (−0.5/0.5) + w1 (1.5/0.5).
  const std::vector<double> z = {0.5}, prior = {0.0, 2.0};
  std::vector<double> s(1);
  ensf_monte_carlo_score(z, prior, 2, 0.5, 1.0, 0.0, s);
  const double w0 = 1.0 / (1.0 + std::exp(-2.0)), w1 = 1.0 - w0;
  EXPECT_NEAR(s[0], -w0 + 3.0 * w1, 1e-14);  // −0.52319…
  // Far from both members the exponents (−1e6) would underflow without the max shift; the
  // nearer member takes all the weight.
  const std::vector<double> zfar = {1000.0};
  ensf_monte_carlo_score(zfar, prior, 2, 0.5, 1.0, 0.0, s);
  EXPECT_DOUBLE_EQ(s[0], -(1000.0 - 2.0) / 0.5);
}

// ---------- standard mode ----------

TEST(EnsfStandard, StandardModeApproachesKalmanPosteriorInLinearGaussianCase) {
  // 8 independent dimensions (N = 2, identity operator, every point observed, σ_o = 1),
  // prior N(0, 1) with 600 members. The Kalman posterior of each dimension has
  // mean m + P/(P + R)(y − m) and variance PR/(P + R) with the ensemble's own m, P.
  const int n = 2, members = 600;
  const sqg::SqgParams g = grid_of(n);
  const std::size_t dim = g.state_size();
  const std::vector<double> truth(dim, 0.0);
  const std::vector<double> prior = make_prior(truth, members, 0.0, 1.0, 11);
  const obs::ObservationSpace o = observe_points(g, std::vector<double>(dim, 1.0), all_elements(g),
                                                 obs::ObsOperator::kIdentity, 1.0, 12);
  EnsfAnalysis f(EnsfSettings::standard());
  std::vector<double> post;
  run(f, prior, members, o, {5, 0}, post);
  double increment_fraction = 0, var_ratio = 0;
  for (std::size_t e = 0; e < dim; ++e) {
    double mb, sb, ma, sa;
    member_stats(prior, members, dim, e, mb, sb);
    member_stats(post, members, dim, e, ma, sa);
    const double p = sb * sb, r = 1.0, y = o.value()[e];
    const double kalman_mean = mb + p / (p + r) * (y - mb), kalman_var = p * r / (p + r);
    increment_fraction += (ma - mb) / (kalman_mean - mb);
    var_ratio += sa * sa / kalman_var;
  }
  increment_fraction /= dim;
  var_ratio /= dim;
  RecordProperty("increment_fraction", std::to_string(increment_fraction));
  RecordProperty("variance_ratio", std::to_string(var_ratio));
  // EnSF is not exactly Bayesian even with a perfect prior score: h(t)·∇log p(y|z) (eq. 14)
  // is a heuristic for the diffused posterior score. Measured here (seeds fixed): the mean
  // moves 0.6–0.7 of the Kalman increment and the variance is ~8 % high; without damping
  // it overshoots the mean and the variance is 30 % low. The Monte-Carlo error of both
  // averages is ~0.03 (600 draws, 8 dimensions, increments ≈ 0.7 posterior sd), so the
  // bounds below are the method's bias plus ≳ 5 Monte-Carlo sd.
  EXPECT_GT(increment_fraction, 0.45);
  EXPECT_LT(increment_fraction, 1.15);
  EXPECT_NEAR(var_ratio, 1.0, 0.25);
}

// ---------- paper mode ----------

struct PaperCase {
  int n = 16, members = 20;
  sqg::SqgParams g;
  std::vector<double> truth, prior;
  obs::ObservationSpace obs;
};

// Prior RMSE ≈ 1.38 K, spread ≈ 3.28 K (docs/science.md §4's prior), linear_K σ_o = 1 K. The
// member mean's error is bias + the mean of 20 deviations (3.28/√20 K), so the bias takes
// the rest: √(1.38² − 3.28²/20) K.
PaperCase paper_case(int n, const std::vector<std::size_t>* elements = nullptr) {
  PaperCase c;
  c.n = n;
  c.g = grid_of(n);
  const double s_k = c.g.kelvin_per_pv();
  c.truth.resize(c.g.state_size());
  RandomStream(3, RandomPurpose::kTest, 0, 0).fill_normal(c.truth, 0.0, 3000.0);
  c.prior = make_prior(c.truth, c.members, std::sqrt(1.38 * 1.38 - 3.28 * 3.28 / 20) / s_k,
                       3.28 / s_k, 4);
  c.obs = observe_points(c.g, c.truth, elements ? *elements : all_elements(c.g),
                         obs::ObsOperator::kLinearK, 1.0, 5);
  return c;
}

TEST(EnsfPaper, StoppingRuleStopsBetweenWindowAndCap) {
  PaperCase c = paper_case(16);
  EnsfAnalysis f(EnsfSettings::paper());
  std::vector<double> post;
  const AnalysisDiagnostics d = run(f, c.prior, c.members, c.obs, {1, 0}, post);
  const double steps = d.extra.at("ensf_steps");
  // The rule is first checked after step k = W + 1 (202 steps taken); the cap is 502.
  EXPECT_GT(steps, 201);
  EXPECT_LE(steps, 502);
  EXPECT_NEAR(d.extra.at("ensf_final_t"), 1.0 - steps * 1e-3, 1e-12);
  if (steps < 502) {
    EXPECT_LT(d.extra.at("ensf_stop_drift"), 0.005 * 200);
  }
  EXPECT_EQ(d.observations_used, c.obs.size());
}

TEST(EnsfPaper, OutputSpreadEqualsTargetSpreadPerDimension) {
  PaperCase c = paper_case(16);
  const std::size_t dim = c.truth.size();
  EnsfAnalysis f(EnsfSettings::paper());  // spread_target = "initial"
  std::vector<double> post;
  run(f, c.prior, c.members, c.obs, {1, 0}, post);
  // Rescaling is x̄ + (x − x̄)·τ/σ: exact up to a few roundings.
  for (std::size_t e = 0; e < dim; ++e) {
    double mb, sb, ma, sa;
    member_stats(c.prior, c.members, dim, e, mb, sb);
    member_stats(post, c.members, dim, e, ma, sa);
    ASSERT_NEAR(sa, sb, 1e-12 * sb) << "element " << e;
  }
  // "initial" keeps the first prior's spread: a second cycle with half the spread is
  // rescaled back to it, while "prior" follows the new prior.
  std::vector<double> narrow = c.prior;
  for (std::size_t e = 0; e < dim; ++e) {
    double mb, sb;
    member_stats(c.prior, c.members, dim, e, mb, sb);
    for (int m = 0; m < c.members; ++m)
      narrow[m * dim + e] = mb + 0.5 * (c.prior[m * dim + e] - mb);
  }
  run(f, narrow, c.members, c.obs, {1, 1}, post);
  EnsfSettings sp = EnsfSettings::paper();
  sp.spread_target = EnsfSpreadTarget::kPrior;
  EnsfAnalysis g(sp);
  std::vector<double> post_prior;
  run(g, narrow, c.members, c.obs, {1, 1}, post_prior);
  for (std::size_t e = 0; e < dim; ++e) {
    double mb, sb, ma, sa;
    member_stats(c.prior, c.members, dim, e, mb, sb);
    member_stats(post, c.members, dim, e, ma, sa);
    ASSERT_NEAR(sa, sb, 1e-12 * sb) << "initial, element " << e;
    member_stats(post_prior, c.members, dim, e, ma, sa);
    ASSERT_NEAR(sa, 0.5 * sb, 1e-12 * sb) << "prior, element " << e;
  }
  EXPECT_EQ(f.initial_spread().size(), dim);
}

TEST(EnsfPaper, UnobservedDimensionsKeepPriorMeanAndSpread) {
  // Observe level 0 only; level 1 gets the paired prior score alone and is re-drawn around
  // the prior mean.
  const int n = 16;
  std::vector<std::size_t> level0(n * n);
  for (std::size_t e = 0; e < level0.size(); ++e)
    level0[e] = e;
  PaperCase c = paper_case(n, &level0);
  const std::size_t dim = c.truth.size(), n2 = dim / 2;
  EnsfAnalysis f(EnsfSettings::paper());
  std::vector<double> post;
  run(f, c.prior, c.members, c.obs, {2, 0}, post);
  double shift = 0, shift2 = 0, moved_obs = 0;
  for (std::size_t e = 0; e < dim; ++e) {
    double mb, sb, ma, sa;
    member_stats(c.prior, c.members, dim, e, mb, sb);
    member_stats(post, c.members, dim, e, ma, sa);
    ASSERT_NEAR(sa, sb, 1e-12 * sb);
    if (e < n2) {
      moved_obs += std::abs(ma - mb) / sb;
    } else {
      shift += (ma - mb) / sb;
      shift2 += (ma - mb) * (ma - mb) / (sb * sb);
    }
  }
  shift /= n2;
  const double shift_rms = std::sqrt(shift2 / n2);
  // Per unobserved dimension the new mean is μ + s·mean_i z_i with z_i ≈ α_t x_i + β_t noise
  // at t ≈ 0.5–0.8: an unbiased draw of sd ≲ √(β²/k) ≈ 0.2 s. Averaged over 256 dimensions
  // the shift is ~0.013 s (bound 0.06 ≈ 4.5 sd); the rms stays well below the prior spread.
  EXPECT_NEAR(shift, 0.0, 0.06);
  EXPECT_LT(shift_rms, 0.4);
  // Observed dimensions, by contrast, move toward their observations.
  EXPECT_GT(moved_obs / n2, shift_rms);
}

TEST(EnsfPaper, SameKeysGiveBitwiseSameAnalysisAnyThreadCount) {
  PaperCase c = paper_case(16);
  EnsfAnalysis f1(EnsfSettings::paper()), f2(EnsfSettings::paper()), f3(EnsfSettings::paper());
  std::vector<double> a, b, other;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  run(f1, c.prior, c.members, c.obs, {9, 4}, a);
  omp_set_num_threads(std::max(2, threads));
  run(f2, c.prior, c.members, c.obs, {9, 4}, b);
  omp_set_num_threads(threads);
  EXPECT_EQ(a, b);
  run(f3, c.prior, c.members, c.obs, {9, 5}, other);  // another cycle: other noise
  EXPECT_NE(a, other);
}

TEST(EnsfPaper, SlabSplitGivesBitwiseSameAnalysis) {
  PaperCase c = paper_case(16);
  EnsfAnalysis whole(EnsfSettings::paper());
  std::vector<double> expected;
  run(whole, c.prior, c.members, c.obs, {3, 2}, expected);
  // Uneven splits that cut rows and blocks anywhere.
  for (const auto& cuts :
       {std::vector<std::size_t>{0, 37, 100, 256}, std::vector<std::size_t>{0, 1, 255, 256}}) {
    const auto got = run_slabs(EnsfSettings::paper(), c.prior, c.members, c.n, c.obs, {3, 2}, cuts);
    EXPECT_EQ(got, expected);
  }
}

TEST(EnsfPaper, RefusesObservationsBetweenGridPoints) {
  PaperCase c = paper_case(8);
  obs::ObservationSet set;
  obs::Observation o;
  o.x_m = 0.5 * c.g.dx_m();
  o.value = 1.0;
  o.op = obs::ObsOperator::kLinearK;
  o.id = 77;
  set.push_back(o);
  const obs::ObservationSpace off(c.g, set);
  EnsfAnalysis f(EnsfSettings::paper());
  std::vector<double> post;
  try {
    run(f, c.prior, c.members, off, {1, 0}, post);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("id 77"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("between grid points"), std::string::npos) << e.what();
  }
}

TEST(EnsfPaper, ReproducesPublishedErrorReductionOnSyntheticPrior) {
  // docs/science.md §4: a 20-member N = 64 prior with RMSE 1.38 K and spread 3.28 K, every point
  // observed (linear_K, σ_o = 1 K) gave an analysis-mean RMSE of 0.866 K after ≈ 280–320
  // steps. Paper mode treats dimensions independently, so a prior with the same per-point
  // statistics is a fair analogue (the real prior is not exactly Gaussian, hence no exact
  // number): the analysis must beat both the prior (1.38 K) and σ_o (1 K) clearly.
  PaperCase c = paper_case(64);
  const std::size_t dim = c.truth.size();
  const double s_k = c.g.kelvin_per_pv();
  EnsfAnalysis f(EnsfSettings::paper());
  std::vector<double> post;
  const AnalysisDiagnostics d = run(f, c.prior, c.members, c.obs, {2024, 0}, post);
  double prior_se = 0, post_se = 0;
  for (std::size_t e = 0; e < dim; ++e) {
    double mb, sb, ma, sa;
    member_stats(c.prior, c.members, dim, e, mb, sb);
    member_stats(post, c.members, dim, e, ma, sa);
    prior_se += (s_k * (mb - c.truth[e])) * (s_k * (mb - c.truth[e]));
    post_se += (s_k * (ma - c.truth[e])) * (s_k * (ma - c.truth[e]));
  }
  const double prior_rmse = std::sqrt(prior_se / dim), post_rmse = std::sqrt(post_se / dim);
  RecordProperty("prior_rmse_K", std::to_string(prior_rmse));
  RecordProperty("analysis_rmse_K", std::to_string(post_rmse));
  RecordProperty("steps", std::to_string(d.extra.at("ensf_steps")));
  EXPECT_NEAR(prior_rmse, 1.38, 0.05);
  EXPECT_LT(post_rmse, 0.95);
  EXPECT_GT(post_rmse, 0.6);  // far better than the paper would mean a broken likelihood
  EXPECT_GT(d.extra.at("ensf_steps"), 201);
}

// ---------- standard mode, split and settings ----------

TEST(EnsfStandard, SlabSplitOfWholeRowsGivesBitwiseSameAnalysis) {
  // Include observations between grid points so the stencil exchange is exercised.
  PaperCase c = paper_case(8);
  obs::ObservationSet set;
  for (int k = 0; k < 40; ++k) {
    obs::Observation o;
    o.level = k % 2;
    o.x_m = (0.37 + 1.9 * k) * c.g.dx_m();
    o.y_m = (0.61 + 0.43 * k) * c.g.dx_m();
    while (o.x_m >= c.g.L_m)
      o.x_m -= c.g.L_m;
    o.value = 1.0 + 0.01 * k;
    o.error_sd = 1.0;
    o.op = k % 3 == 0 ? obs::ObsOperator::kArctan : obs::ObsOperator::kLinearK;
    o.id = k;
    set.push_back(o);
  }
  const obs::ObservationSpace o(c.g, set);
  EnsfSettings s = EnsfSettings::standard();
  s.steps = 100;
  s.rtps = 0.5;
  EnsfAnalysis whole(s);
  std::vector<double> expected;
  run(whole, c.prior, c.members, o, {6, 1}, expected);
  const auto got = run_slabs(s, c.prior, c.members, c.n, o, {6, 1}, {0, 16, 40, 64});
  EXPECT_EQ(got, expected);
  // Slabs must be whole rows in standard mode.
  EnsfAnalysis f(s);
  std::vector<double> in(c.members * 2 * 5), out(in.size());
  EXPECT_THROW(f.analyse_slab(3, 8, {c.members, 10, in}, o, {6, 1}, {c.members, 10, out}, {}),
               std::invalid_argument);
}

TEST(EnsfStandard, OffGridObservationPullsItsStencilPointsTowardIt) {
  // One bilinear observation far above the prior: ObservationSpace's gradient −Hᵀ(…) touches
  // exactly its four stencil points, and the analysis mean of each of them rises compared
  // with an analysis on the same noise without the observation.
  PaperCase c = paper_case(8);
  const std::size_t dim = c.truth.size();
  obs::ObservationSet set;
  obs::Observation ob;
  ob.x_m = 2.25 * c.g.dx_m();
  ob.y_m = 3.5 * c.g.dx_m();
  ob.value = 20.0;  // far above the prior (K)
  ob.error_sd = 0.5;
  ob.op = obs::ObsOperator::kLinearK;
  set.push_back(ob);
  const obs::ObservationSpace o(c.g, set);
  std::vector<double> grad(dim), state(c.prior.begin(), c.prior.begin() + dim);
  o.log_likelihood_gradient(state, grad);
  int nonzero = 0;
  for (double v : grad)
    nonzero += v != 0.0;
  EXPECT_EQ(nonzero, 4);
  EnsfSettings s = EnsfSettings::standard();
  s.steps = 50;
  EnsfAnalysis f1(s), f2(s);
  std::vector<double> with, without;
  run(f1, c.prior, c.members, o, {1, 0}, with);
  run(f2, c.prior, c.members, obs::ObservationSpace(c.g, obs::ObservationSet{}), {1, 0}, without);
  for (std::size_t e = 0; e < dim; ++e) {
    if (grad[e] == 0.0) continue;
    double mw, sw, mo, so;
    member_stats(with, c.members, dim, e, mw, sw);
    member_stats(without, c.members, dim, e, mo, so);
    EXPECT_GT(mw, mo) << "stencil element " << e << " should move toward the observation";
  }
}

TEST(EnsfSettings, ValidateNamesKeyAndValue) {
  EnsfSettings s;
  s.eps_alpha = 0.0;
  try {
    s.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ensf.eps_alpha = 0"), std::string::npos) << e.what();
  }
  s = EnsfSettings::paper();
  s.max_steps = 2000;
  EXPECT_THROW(s.validate(), std::invalid_argument);
  s = EnsfSettings::paper();
  s.normalize = false;
  EXPECT_THROW(s.validate(), std::invalid_argument);
  EXPECT_THROW(ensf_mode_from_string("papre"), std::invalid_argument);
  EXPECT_EQ(ensf_mode_from_string("standard"), EnsfMode::kStandard);
  EXPECT_EQ(ensf_spread_target_from_string("none"), EnsfSpreadTarget::kNone);
  EXPECT_NO_THROW(EnsfSettings::standard().validate());
  EXPECT_EQ(EnsfSettings::standard().step_cap(), 500);
  EXPECT_EQ(EnsfSettings::paper().step_cap(), 502);
}

// ---------- the normal generator ----------

TEST(NormalBatchStream, BlocksAreRandom123Philox4x32AndFillsAreRandomAccess) {
  NormalBatchStream s(42, RandomPurpose::kEnsfNoise, 3, 7);
  std::uint32_t bits[4];
  s.block_bits(5, 11, bits);
  r123::Philox4x32 rng;
  const auto ref = rng({{11, 5, 7, 3}}, {{s.key_word(0), s.key_word(1)}});
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(bits[i], ref.v[i]);
  std::vector<double> all(1000), part(333);
  s.fill(5, 0, all);
  s.fill(5, 101, part);
  for (std::size_t k = 0; k < part.size(); ++k)
    ASSERT_EQ(part[k], all[101 + k]);
  EXPECT_EQ(s.normal(5, 999), all[999]);
  EXPECT_NE(NormalBatchStream(42, RandomPurpose::kEnsfNoise, 3, 8).normal(5, 0), all[0]);
  EXPECT_NE(NormalBatchStream(42, RandomPurpose::kTest, 3, 7).normal(5, 0), all[0]);
  EXPECT_NE(s.normal(6, 0), all[0]);
  EXPECT_THROW(NormalBatchStream(1, RandomPurpose::kTest, std::uint64_t{1} << 32, 0),
               std::out_of_range);
}

// The EnSF draws its noise through EnsfNoiseStream (the vector form of the generator); it
// must give NormalBatchStream's numbers bit for bit, at any start and length (the runs of a
// slab start anywhere), for keys and counters across their ranges, with every instruction
// set this CPU has.
TEST(EnsfNoiseStream, IsNormalBatchStreamBitForBitOnAnyRun) {
  using Isa = EnsfNoiseStream::Isa;
  const Isa widest = EnsfNoiseStream::widest_isa();
  if (widest < Isa::kAvx512) std::cout << "[ note ] no AVX-512 here: its path is not compared\n";
  if (widest < Isa::kAvx2) std::cout << "[ note ] no AVX2 here: its path is not compared\n";
  RandomStream pick(20240712, RandomPurpose::kTest, 21, 0);  // every draw derives from it
  std::size_t compared = 0;
  for (int draw = 0; draw < 400; ++draw) {
    const auto isa = static_cast<Isa>(draw % (static_cast<int>(widest) + 1));
    const auto u = [&](int i) { return pick.uniform(8 * static_cast<std::uint64_t>(draw) + i); };
    const auto seed = static_cast<std::uint64_t>(u(0) * 1e18);
    const auto cycle = static_cast<std::uint64_t>(u(1) * 4294967295.0);
    const auto member = static_cast<std::uint64_t>(u(2) * 64);
    const auto row = static_cast<std::uint32_t>(u(3) * 1000);
    const auto first = static_cast<std::uint64_t>(u(4) * 200000);
    const auto count = static_cast<std::size_t>(u(5) * 700);
    const NormalBatchStream reference(seed, RandomPurpose::kEnsfNoise, cycle, member);
    const EnsfNoiseStream noise(seed, cycle, member);
    std::vector<double> expected(count), got(count);
    reference.fill(row, first, expected);
    noise.fill(row, first, got.data(), count, isa);
    for (std::size_t j = 0; j < count; ++j)
      ASSERT_EQ(std::memcmp(&got[j], &expected[j], sizeof(double)), 0)
          << "instruction set " << static_cast<int>(isa) << " seed " << seed << " cycle " << cycle
          << " member " << member << " row " << row << " column " << first + j;
    compared += count;
  }
  EXPECT_GT(compared, 100000u);
}

TEST(NormalBatchStream, MomentsAreStandardNormal) {
  // 2^20 numbers: the mean has sd 1e-3, the variance 1.4e-3, the kurtosis ~5e-3; bounds are
  // about 5 sd.
  std::vector<double> v(1 << 20);
  NormalBatchStream(8, RandomPurpose::kTest, 0, 0).fill(0, 0, v);
  double m1 = 0, m2 = 0, m4 = 0, tail = 0;
  for (double x : v) {
    m1 += x;
    m2 += x * x;
    m4 += x * x * x * x;
    tail += std::abs(x) > 3.0;
  }
  const double n = static_cast<double>(v.size());
  EXPECT_NEAR(m1 / n, 0.0, 5e-3);
  EXPECT_NEAR(m2 / n, 1.0, 7e-3);
  EXPECT_NEAR(m4 / n, 3.0, 0.03);
  EXPECT_NEAR(tail / n, 2.6998e-3, 3e-4);  // P(|n| > 3); sd of the fraction 5e-5
}

}  // namespace
}  // namespace rtda::filters

namespace rtda::filters {
namespace {

TEST(EnsfPaper, SaturatedArctanObservationDoesNotThrowTheAnalysisAway) {
  // y = 1.575 lies past pi/2 (noise can put it there); tan(y) = -237 would make a pseudo-
  // observation of -7.7e4 m/s and drag the point to ~ -7.6e4 m/s. With the clip
  // (ensf.arctan_clip_sigmas = 3) the pseudo-observation is at most ~1.1e4 m/s.
  sqg::SqgParams grid;
  grid.N = 8;
  const int members = 10;
  const std::size_t dim = grid.state_size();
  std::vector<double> prior(members * dim);
  RandomStream(5, RandomPurpose::kTest).fill_normal(prior, 0.0, 1000.0);
  obs::ObservationSet set;
  obs::Observation o;
  o.x_m = 3 * grid.dx_m();
  o.y_m = 2 * grid.dx_m();
  o.value = 1.575;
  o.error_sd = 0.01;
  o.op = obs::ObsOperator::kArctan;
  set.push_back(o);
  const obs::ObservationSpace space(grid, set);
  EnsfAnalysis ensf(EnsfSettings::paper());
  std::vector<double> post(prior.size());
  ensf.analyse({members, dim, prior}, space, {7, 0}, {members, dim, post});
  for (double v : post) {
    ASSERT_TRUE(std::isfinite(v));
    ASSERT_LT(std::abs(v), 3.0e4) << "the saturated observation dragged a member away";
  }
}

}  // namespace
}  // namespace rtda::filters
