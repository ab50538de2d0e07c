// LETKF (docs/science.md §3, eq. 7–10): localization, the ensemble-space solve, RTPS, and
// the column decomposition the MPI worker relies on.
#include <gtest/gtest.h>
#include <omp.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "filters/letkf.hpp"
#include "filters/localization.hpp"
#include "obs/observation_space.hpp"
#include "observation_builders.hpp"

namespace rtda::filters {
namespace {

using obs::ObsOperator;

constexpr std::uint64_t kSeed = 20240712;

sqg::SqgParams grid(int n) {
  sqg::SqgParams p;
  p.N = n;
  return p;
}

using rtda::test_support::observation;

// members x 2 N^2 values: a smooth-ish mean plus N(0, sd^2) perturbations.
std::vector<double> random_ensemble(const sqg::SqgParams& p, int members, double sd,
                                    std::uint64_t seed) {
  std::vector<double> e(static_cast<std::size_t>(members) * p.state_size());
  RandomStream(seed, RandomPurpose::kTest).fill_normal(e, 0.0, sd);
  for (std::size_t s = 0; s < e.size(); ++s)
    e[s] += std::sin(0.37 * static_cast<double>(s % p.state_size()));
  return e;
}

// `count` observations at random positions (grid points when on_grid) on random levels.
obs::ObservationSet random_observations(const sqg::SqgParams& p, std::size_t count, bool on_grid,
                                        ObsOperator op, double sd, std::uint64_t seed) {
  RandomStream u(seed, RandomPurpose::kTest, 1);
  obs::ObservationSet set;
  for (std::size_t o = 0; o < count; ++o) {
    double x = u.uniform(4 * o) * p.L_m;
    double y = u.uniform(4 * o + 1) * p.L_m;
    if (on_grid) {
      x = std::floor(x / p.dx_m()) * p.dx_m();
      y = std::floor(y / p.dx_m()) * p.dx_m();
    }
    x = std::min(x, std::nextafter(p.L_m, 0.0));
    y = std::min(y, std::nextafter(p.L_m, 0.0));
    const int level = u.uniform(4 * o + 2) < 0.5 ? 0 : 1;
    set.push_back(observation(x, y, level, 2.0 * u.uniform(4 * o + 3) - 1.0, op, sd));
  }
  return set;
}

std::vector<double> analyse(LetkfAnalysis& letkf, const std::vector<double>& prior, int members,
                            const obs::ObservationSpace& space,
                            AnalysisDiagnostics* diag = nullptr) {
  const std::size_t state = 2 * static_cast<std::size_t>(space.grid().nx) * space.grid().nx;
  std::vector<double> post(prior.size());
  const auto d = letkf.analyse({members, state, prior}, space, {}, {members, state, post});
  if (diag) *diag = d;
  return post;
}

// Element e of member m.
double at(const std::vector<double>& ens, std::size_t state, int m, std::size_t e) {
  return ens[m * state + e];
}

// Mean (state) and sample covariance (divisor k - 1) of an ensemble.
void moments(const std::vector<double>& ens, int k, std::size_t state, Eigen::VectorXd& mean,
             Eigen::MatrixXd& cov) {
  Eigen::Map<const Eigen::MatrixXd> x(ens.data(), static_cast<Eigen::Index>(state), k);
  mean = x.rowwise().mean();
  const Eigen::MatrixXd dev = x.colwise() - mean;
  cov = dev * dev.transpose() / (k - 1);
}

// ---------------------------------------------------------------- localization (eq. 7)

// The piecewise formula of docs/science.md eq. 7, written out term by term (independent of the
// Horner form in localization.cpp).
double gc_reference(double r) {
  if (r <= 1) {
    return 1 - 5.0 / 3 * std::pow(r, 2) + 5.0 / 8 * std::pow(r, 3) + 0.5 * std::pow(r, 4) -
           0.25 * std::pow(r, 5);
  }
  if (r < 2) {
    return 4 - 5 * r + 5.0 / 3 * std::pow(r, 2) + 5.0 / 8 * std::pow(r, 3) - 0.5 * std::pow(r, 4) +
           1.0 / 12 * std::pow(r, 5) - 2 / (3 * r);
  }
  return 0;
}

TEST(Localization, GaspariCohnMatchesThePiecewiseFormula) {
  EXPECT_EQ(gaspari_cohn(0.0), 1.0);
  EXPECT_NEAR(gaspari_cohn(0.5), 0.68489583333333333, 1e-15);  // 1-5/12+5/64+1/32-1/128
  EXPECT_NEAR(gaspari_cohn(1.0), 5.0 / 24.0, 1e-15);
  EXPECT_NEAR(gaspari_cohn(1.5), gc_reference(1.5), 1e-15);
  EXPECT_NEAR(gaspari_cohn(1.5), 0.016493055555555556, 1e-15);
  EXPECT_EQ(gaspari_cohn(2.0), 0.0);
  EXPECT_EQ(gaspari_cohn(3.7), 0.0);
  for (double r = 0; r < 2.2; r += 0.01)
    EXPECT_NEAR(gaspari_cohn(r), gc_reference(r), 1e-14) << "r = " << r;
}

TEST(Localization, GaspariCohnIsContinuousAtOne) {
  // Both branches give 5/24 at r = 1; the jump across it is O(eps) (slope ~ -1.17).
  const double below = gaspari_cohn(std::nextafter(1.0, 0.0));
  const double above = gaspari_cohn(std::nextafter(1.0, 2.0));
  EXPECT_NEAR(below, 5.0 / 24.0, 1e-14);
  EXPECT_NEAR(above, 5.0 / 24.0, 1e-14);
  // ... and just below 2 the taper is already tiny and positive.
  EXPECT_GT(gaspari_cohn(1.999), 0.0);
  EXPECT_LT(gaspari_cohn(1.999), 1e-8);
}

TEST(Localization, VerticalFactorsMatchSciencePage) {
  EXPECT_NEAR(vertical_localization_factor(2200, 1000), 0.27844, 5e-6);
  EXPECT_NEAR(vertical_localization_factor(2800, 1000), 0.46110, 5e-6);
  EXPECT_NEAR(vertical_localization_factor(5800, 1000), 0.83330, 5e-6);
}

TEST(Localization, PeriodicDistanceUsesTheMinimumImage) {
  const double l = 20e6;
  EXPECT_DOUBLE_EQ(periodic_distance_m(3e6, 4e6, l, l), 5e6);
  EXPECT_DOUBLE_EQ(periodic_distance_m(-3e6, 4e6, l, l), 5e6);
  EXPECT_DOUBLE_EQ(periodic_distance_m(19e6, 0, l, l), 1e6);   // wraps in x
  EXPECT_DOUBLE_EQ(periodic_distance_m(0, -17e6, l, l), 3e6);  // wraps in y
  EXPECT_DOUBLE_EQ(periodic_distance_m(10e6, 10e6, l, l), std::sqrt(2.0) * 10e6);
  EXPECT_DOUBLE_EQ(horizontal_localization(2.2e6, 2.2e6), 0.0);  // cut-off at d = L_h
  EXPECT_DOUBLE_EQ(horizontal_localization(1.1e6, 2.2e6), 5.0 / 24.0);
}

TEST(LetkfSettings, InvalidValuesAreRejectedNamingTheKey) {
  const auto message = [](LetkfSettings s) {
    try {
      s.validate();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  LetkfSettings s;
  EXPECT_NO_THROW(s.validate());
  s.localization_radius_km = -5;
  EXPECT_NE(message(s).find("letkf.localization_radius_km = -5"), std::string::npos);
  s = {};
  s.rtps = 1.5;
  EXPECT_NE(message(s).find("letkf.rtps = 1.5"), std::string::npos);
  s = {};
  s.vertical_distance_km = std::nan("");
  EXPECT_NE(message(s).find("letkf.vertical_distance_km"), std::string::npos);
  s = {};
  s.weight_cutoff = -1;
  EXPECT_NE(message(s).find("letkf.weight_cutoff = -1"), std::string::npos);
  s = {};
  s.rtps = -0.1;
  EXPECT_THROW(LetkfAnalysis{s}, std::invalid_argument);
}

// ---------------------------------------------------------------- the analysis (eq. 8–9)

TEST(Letkf, LetkfMatchesKalmanForLinearGaussian) {
  // One global domain, no RTPS, a linear operator: the ensemble mean and covariance after
  // the analysis are the Kalman update of the prior sample mean and covariance. Bilinear
  // interpolation is linear too, so off-grid positions are included. Values are O(1) and
  // the condition numbers small, so 1e-10 leaves ~4 orders of magnitude over round-off.
  const auto p = grid(8);
  const int k = 12;
  const std::size_t state = p.state_size();
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  for (const ObsOperator op : {ObsOperator::kIdentity, ObsOperator::kLinearK}) {
    const double scale = op == ObsOperator::kLinearK ? 1.0 / p.kelvin_per_pv() : 1.0;
    const auto prior = [&] {
      auto e = random_ensemble(p, k, 1.0, kSeed);
      for (double& v : e)
        v *= scale;  // linear_K: PV in m/s of a few hundred, observations in K
      return e;
    }();
    const auto set = random_observations(p, 7, false, op, 0.7, kSeed + 1);
    const obs::ObservationSpace space(p, set);
    ASSERT_EQ(space.size(), 7u);

    // H as a dense matrix: h is linear and h(0) = 0, so column s is h(e_s).
    Eigen::MatrixXd h(space.size(), state);
    std::vector<double> unit(state, 0.0), col(space.size());
    for (std::size_t s = 0; s < state; ++s) {
      unit[s] = 1.0;
      space.apply(unit, col);
      for (std::size_t o = 0; o < space.size(); ++o)
        h(o, s) = col[o];
      unit[s] = 0.0;
    }
    Eigen::VectorXd y(space.size());
    Eigen::MatrixXd r = Eigen::MatrixXd::Zero(space.size(), space.size());
    for (std::size_t o = 0; o < space.size(); ++o) {
      y(o) = space.value()[o];
      r(o, o) = space.error_sd()[o] * space.error_sd()[o];
    }

    Eigen::VectorXd mb, ma;
    Eigen::MatrixXd pb, pa;
    moments(prior, k, state, mb, pb);
    const Eigen::MatrixXd s = h * pb * h.transpose() + r;
    const Eigen::MatrixXd gain = pb * h.transpose() * s.inverse();
    const Eigen::VectorXd mean_kalman = mb + gain * (y - h * mb);
    const Eigen::MatrixXd cov_kalman = pb - gain * h * pb;

    LetkfSettings settings;
    settings.localize = false;
    settings.rtps = 0;
    LetkfAnalysis letkf(settings);
    AnalysisDiagnostics diag;
    const auto post = analyse(letkf, prior, k, space, &diag);
    moments(post, k, state, ma, pa);
    const double tol = 1e-10 * scale;
    EXPECT_LT((ma - mean_kalman).cwiseAbs().maxCoeff(), tol);
    EXPECT_LT((pa - cov_kalman).cwiseAbs().maxCoeff(), tol * scale);
    EXPECT_EQ(diag.observations_used, space.size());
    EXPECT_DOUBLE_EQ(diag.extra["letkf_mean_local_obs"], static_cast<double>(space.size()));
  }
}

TEST(Letkf, NonlinearOperatorEntersOnlyThroughMemberImages) {
  // One arctan observation at grid point (3, 5) of level 0; the element at that point gets
  // w = rho(0) = 1, its lid partner w = v. Reference: the ETKF written in closed form for
  // p = 1, with y_b^(i) = arctan(s q^(i)), ybar the mean of those images (not h(xbar)):
  //   M = (k-1) I + c y y^T, c = w / sigma^2,
  //   M^-1/2 = (k-1)^-1/2 (I - P) + ((k-1) + c |y|^2)^-1/2 P,  P = y y^T / |y|^2,
  //   wbar = M^-1 y c (yo - ybar),  x_a^(i) = xbar + sum_j X_j (sqrt(k-1) M^-1/2 + wbar 1^T)_ji.
  const auto p = grid(8);
  const int k = 6;
  const std::size_t state = p.state_size();
  const int i0 = 3, j0 = 5;
  const double sd = 0.01;
  obs::ObservationSet set;
  set.push_back(observation(i0 * p.dx_m(), j0 * p.dx_m(), 0, 0.3, ObsOperator::kArctan, sd));
  const obs::ObservationSpace space(p, set);
  auto prior = random_ensemble(p, k, 60.0, kSeed + 2);  // s q ~ 0.2: arctan clearly nonlinear
  SCOPED_TRACE("seed " + std::to_string(kSeed + 2));

  LetkfSettings settings;
  settings.rtps = 0;
  LetkfAnalysis letkf(settings);
  const auto post = analyse(letkf, prior, k, space);

  const double v = vertical_localization_factor(settings.localization_radius_km, 1000);
  const std::size_t e0 = static_cast<std::size_t>(j0) * p.N + i0;
  Eigen::VectorXd yb(k), q(k);
  for (int m = 0; m < k; ++m) {
    q(m) = at(prior, state, m, e0);
    yb(m) = std::atan(p.kelvin_per_pv() * q(m));
  }
  const double ybar = yb.mean();
  const Eigen::VectorXd ydev = yb.array() - ybar;
  for (const auto& [element, w] : {std::pair{e0, 1.0}, std::pair{e0 + p.N * p.N, v}}) {
    Eigen::VectorXd xb(k);
    for (int m = 0; m < k; ++m)
      xb(m) = at(prior, state, m, element);
    const double xbar = xb.mean();
    const Eigen::VectorXd xdev = xb.array() - xbar;
    const double c = w / (sd * sd);
    const double yy = ydev.squaredNorm();
    const Eigen::MatrixXd proj = ydev * ydev.transpose() / yy;
    const Eigen::MatrixXd eye = Eigen::MatrixXd::Identity(k, k);
    const Eigen::MatrixXd m_inv_sqrt =
        (eye - proj) / std::sqrt(k - 1.0) + proj / std::sqrt((k - 1.0) + c * yy);
    const Eigen::MatrixXd m_inv = (eye - proj) / (k - 1.0) + proj / ((k - 1.0) + c * yy);
    const Eigen::VectorXd wbar = m_inv * ydev * c * (0.3 - ybar);
    const Eigen::MatrixXd wmat =
        std::sqrt(k - 1.0) * m_inv_sqrt + wbar * Eigen::RowVectorXd::Ones(k);
    const Eigen::VectorXd expected = (xdev.transpose() * wmat).transpose().array() + xbar;
    for (int m = 0; m < k; ++m) {
      // ~60-sized values; the eigen solver and the closed form differ by O(1e-14) relative.
      EXPECT_NEAR(at(post, state, m, element), expected(m), 1e-10)
          << "element " << element << " member " << m;
    }
  }
  // With h(xbar) in place of mean h(x^(i)) the mean increment would differ visibly.
  const double h_of_mean = std::atan(p.kelvin_per_pv() * q.mean());
  EXPECT_GT(std::abs(h_of_mean - ybar), 1e-4);
}

// The equations of docs/science.md §3 applied literally, element by element: candidates from all
// observations, weights of eq. 7, C and its eigendecomposition (eq. 8), W (eq. 9), then RTPS
// (eq. 10). The oracle for the optimised column code.
std::vector<double> naive_letkf(const std::vector<double>& prior, int k,
                                const obs::ObservationSpace& space, const LetkfSettings& s) {
  const int n = space.grid().nx;
  const std::size_t nn = static_cast<std::size_t>(n) * n, state = 2 * nn, p = space.size();
  const double dx = space.grid().length_x_m / n;
  const double v = vertical_localization_factor(s.localization_radius_km, s.vertical_distance_km);
  Eigen::MatrixXd yb(p, k);
  std::vector<double> col(p);
  for (int m = 0; m < k; ++m) {
    space.apply(std::span<const double>(prior).subspan(m * state, state), col);
    for (std::size_t o = 0; o < p; ++o)
      yb(o, m) = col[o];
  }
  const Eigen::VectorXd ybar = yb.rowwise().mean();
  const Eigen::MatrixXd ydev = yb.colwise() - ybar;
  std::vector<double> post(prior.size());
  for (std::size_t e = 0; e < state; ++e) {
    const int lev = static_cast<int>(e / nn);
    const double xc = static_cast<double>((e % nn) % n) * dx;
    const double yc = static_cast<double>((e % nn) / n) * dx;
    std::vector<std::size_t> use;
    std::vector<double> w;
    for (std::size_t o = 0; o < p; ++o) {
      const double d = periodic_distance_m(xc - space.x_m()[o], yc - space.y_m()[o],
                                           space.grid().length_x_m, space.grid().length_y_m);
      double wo = gaspari_cohn(2 * d / (s.localization_radius_km * 1e3));
      if (space.level()[o] != lev) wo *= v;
      if (wo > s.weight_cutoff) {
        use.push_back(o);
        w.push_back(wo);
      }
    }
    Eigen::VectorXd xb(k);
    for (int m = 0; m < k; ++m)
      xb(m) = prior[m * state + e];
    Eigen::VectorXd xa = xb;
    if (!use.empty()) {
      const double xbar = xb.mean();
      const Eigen::VectorXd xdev = xb.array() - xbar;
      Eigen::MatrixXd yl(use.size(), k);
      Eigen::VectorXd rinv(use.size()), innov(use.size());
      for (std::size_t r = 0; r < use.size(); ++r) {
        yl.row(r) = ydev.row(use[r]);
        rinv(r) = w[r] / std::pow(space.error_sd()[use[r]], 2);
        innov(r) = space.value()[use[r]] - ybar(use[r]);
      }
      const Eigen::MatrixXd c = yl.transpose() * rinv.asDiagonal() * yl;
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(c);
      const Eigen::ArrayXd shifted = es.eigenvalues().array() + (k - 1);
      const Eigen::MatrixXd& vv = es.eigenvectors();
      const Eigen::MatrixXd pa = vv * shifted.inverse().matrix().asDiagonal() * vv.transpose();
      const Eigen::MatrixXd pa_sqrt = vv * shifted.rsqrt().matrix().asDiagonal() * vv.transpose();
      const Eigen::VectorXd wbar = pa * yl.transpose() * rinv.asDiagonal() * innov;
      const Eigen::MatrixXd wm = std::sqrt(k - 1.0) * pa_sqrt + wbar * Eigen::RowVectorXd::Ones(k);
      xa = (xdev.transpose() * wm).transpose().array() + xbar;
      const double ma = xa.mean();
      const double sb = std::sqrt((xb.array() - xbar).square().sum() / (k - 1));
      const double sa = std::sqrt((xa.array() - ma).square().sum() / (k - 1));
      if (sa > 0) xa = ((xa.array() - ma) * (1 + s.rtps * (sb - sa) / sa) + ma).matrix();
    }
    for (int m = 0; m < k; ++m)
      post[m * state + e] = xa(m);
  }
  return post;
}

TEST(Letkf, LocalizedAnalysisMatchesTheEquationsAppliedElementByElement) {
  // Off-grid and on-grid positions, all three operators, and a cut-off of 0.05 so that some
  // observations count for their own level (rho > 0.05) but not for the other (rho v <= 0.05).
  // Differences are round-off of different summation orders: 1e-10 on O(1) values.
  const auto p = grid(16);
  const int k = 8;
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 14);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 14));
  obs::ObservationSet set =
      random_observations(p, 150, false, ObsOperator::kIdentity, 0.4, kSeed + 15);
  const auto more = random_observations(p, 150, true, ObsOperator::kArctan, 0.3, kSeed + 16);
  for (std::size_t o = 0; o < more.size(); ++o)
    set.push_back(more.at(o));
  const auto lin = random_observations(p, 60, false, ObsOperator::kLinearK, 0.01, kSeed + 17);
  for (std::size_t o = 0; o < lin.size(); ++o)
    set.push_back(lin.at(o));
  const obs::ObservationSpace space(p, set);
  for (const double cutoff : {1e-10, 0.05}) {
    LetkfSettings s;
    s.localization_radius_km = 3700;
    s.rtps = 0.5;
    s.weight_cutoff = cutoff;
    LetkfAnalysis letkf(s);
    const auto fast = analyse(letkf, prior, k, space);
    const auto slow = naive_letkf(prior, k, space, s);
    double worst = 0;
    for (std::size_t i = 0; i < fast.size(); ++i)
      worst = std::max(worst, std::abs(fast[i] - slow[i]));
    EXPECT_LT(worst, 1e-10) << "cut-off " << cutoff;
  }
}

// ---------------------------------------------------------------- localization in the filter

TEST(Letkf, ObservationBeyondTheRadiusHasNoEffectOnAnElement) {
  // N = 16 on L = 20 000 km (dx = 1250 km), L_h = 2200 km. A near observation is used by the
  // element at (4, 4); adding a far one (> L_h from it, on both levels) changes nothing there,
  // bitwise, while elements near the far observation do change.
  const auto p = grid(16);
  const int k = 8;
  const std::size_t state = p.state_size();
  const double dx = p.dx_m();
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 3);
  obs::ObservationSet near_only;
  near_only.push_back(observation(4.3 * dx, 4.6 * dx, 0, 1.0));
  obs::ObservationSet both = near_only;
  both.push_back(observation(6 * dx, 4 * dx, 1, -1.0));  // d = 2 dx = 2500 km > L_h from (4, 4)
  LetkfAnalysis letkf;
  const auto a = analyse(letkf, prior, k, obs::ObservationSpace(p, near_only));
  const auto b = analyse(letkf, prior, k, obs::ObservationSpace(p, both));
  const std::size_t e = 4 * p.N + 4;
  for (int lev = 0; lev < 2; ++lev) {
    for (int m = 0; m < k; ++m) {
      const std::size_t el = e + lev * p.N * p.N;
      EXPECT_EQ(at(a, state, m, el), at(b, state, m, el)) << "level " << lev << " member " << m;
      EXPECT_NE(at(a, state, m, el), at(prior, state, m, el));
    }
  }
  const std::size_t e_far = 4 * p.N + 6 + p.N * p.N;  // at the far observation
  EXPECT_NE(at(a, state, 0, e_far), at(b, state, 0, e_far));
}

TEST(Letkf, ElementFarFromAllObservationsKeepsItsPriorExactly) {
  // Elements with no observation within L_h are copied bitwise; RTPS leaves them alone too
  // (alpha = 0.9 here); elements within reach are updated.
  const auto p = grid(16);
  const int k = 8;
  const std::size_t state = p.state_size();
  const double dx = p.dx_m();
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 4);
  obs::ObservationSet set;
  set.push_back(observation(2 * dx, 3 * dx, 1, 0.5));
  LetkfSettings settings;
  settings.rtps = 0.9;
  LetkfAnalysis letkf(settings);
  const obs::ObservationSpace space(p, set);
  const auto post = analyse(letkf, prior, k, space);
  std::size_t changed = 0;
  for (int lev = 0; lev < 2; ++lev) {
    for (int j = 0; j < p.N; ++j) {
      for (int i = 0; i < p.N; ++i) {
        const std::size_t e = static_cast<std::size_t>(lev) * p.N * p.N + j * p.N + i;
        const double d = periodic_distance_m(i * dx - 2 * dx, j * dx - 3 * dx, p.L_m, p.L_m);
        bool any_change = false;
        for (int m = 0; m < k; ++m) {
          if (d >= settings.localization_radius_km * 1e3) {
            EXPECT_EQ(at(post, state, m, e), at(prior, state, m, e)) << "element " << e;
          }
          any_change |= at(post, state, m, e) != at(prior, state, m, e);
        }
        changed += any_change;
      }
    }
  }
  EXPECT_EQ(changed,
            2u * 9u);  // within 2200 km: the point and its 8 neighbours (1768 km), 2 levels
}

// ---------------------------------------------------------------- RTPS (eq. 10)

TEST(Letkf, RtpsRestoresPriorSpreadAtAlphaOne) {
  // alpha = 1 relaxes the analysis standard deviation all the way back to the prior's, per
  // element, and RTPS never moves the mean (compared with the alpha = 0 analysis). Relative
  // 1e-12: a handful of O(1) operations per element.
  const auto p = grid(16);
  const int k = 10;
  const std::size_t state = p.state_size();
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 5);
  const obs::ObservationSpace space(
      p, random_observations(p, 120, true, ObsOperator::kIdentity, 0.5, kSeed + 6));
  SCOPED_TRACE("seed " + std::to_string(kSeed + 5));
  LetkfSettings off;
  off.rtps = 0;
  LetkfSettings full;
  full.rtps = 1;
  LetkfAnalysis letkf_off(off), letkf_full(full);
  const auto a0 = analyse(letkf_off, prior, k, space);
  const auto a1 = analyse(letkf_full, prior, k, space);
  const auto stats = [&](const std::vector<double>& ens, std::size_t e) {
    double mean = 0, var = 0;
    for (int m = 0; m < k; ++m)
      mean += at(ens, state, m, e);
    mean /= k;
    for (int m = 0; m < k; ++m)
      var += std::pow(at(ens, state, m, e) - mean, 2);
    return std::pair{mean, std::sqrt(var / (k - 1))};
  };
  std::size_t reduced = 0;
  for (std::size_t e = 0; e < state; ++e) {
    const auto [mb, sb] = stats(prior, e);
    const auto [m0, s0] = stats(a0, e);
    const auto [m1, s1] = stats(a1, e);
    EXPECT_NEAR(s1, sb, 1e-12 * sb) << "element " << e;
    EXPECT_NEAR(m1, m0, 1e-12 * (1 + std::abs(m0))) << "element " << e;
    reduced += s0 < sb * (1 - 1e-6);
  }
  EXPECT_GT(reduced, state / 2);  // the analysis did shrink the spread where RTPS restored it
}

TEST(Letkf, RtpsRelaxesStandardDeviationsNotVariances) {
  // alpha = 0.3: sigma_new = sigma_a + 0.3 (sigma_b - sigma_a) for every element.
  const auto p = grid(8);
  const int k = 7;
  const std::size_t state = p.state_size();
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 7);
  const obs::ObservationSpace space(
      p, random_observations(p, 40, false, ObsOperator::kIdentity, 0.5, kSeed + 8));
  LetkfSettings off, some;
  off.rtps = 0;
  some.rtps = 0.3;
  off.localization_radius_km = some.localization_radius_km = 6000;
  LetkfAnalysis letkf_off(off), letkf_some(some);
  const auto a0 = analyse(letkf_off, prior, k, space);
  const auto a3 = analyse(letkf_some, prior, k, space);
  const auto sd = [&](const std::vector<double>& ens, std::size_t e) {
    Eigen::VectorXd x(k);
    for (int m = 0; m < k; ++m)
      x(m) = at(ens, state, m, e);
    return std::sqrt((x.array() - x.mean()).square().sum() / (k - 1));
  };
  for (std::size_t e = 0; e < state; ++e) {
    const double sb = sd(prior, e), sa = sd(a0, e);
    EXPECT_NEAR(sd(a3, e), sa + 0.3 * (sb - sa), 1e-12) << "element " << e;
  }
}

// ---------------------------------------------------------------- decomposition

// Gathers columns [begin, end) of a member-major ensemble into [member][level][column].
std::vector<double> gather_columns(const std::vector<double>& ens, int k, std::size_t nn,
                                   std::size_t begin, std::size_t end) {
  const std::size_t nc = end - begin;
  std::vector<double> out(static_cast<std::size_t>(k) * 2 * nc);
  for (int m = 0; m < k; ++m)
    for (int lev = 0; lev < 2; ++lev)
      for (std::size_t c = begin; c < end; ++c)
        out[(m * 2 + lev) * nc + (c - begin)] = ens[m * 2 * nn + lev * nn + c];
  return out;
}

TEST(Letkf, ColumnSplitDoesNotChangeTheAnalysisBitwise) {
  // analyse() is analyse_columns over all columns, and any split of the columns (and any
  // thread count) gives the same bits: each column depends only on its own prior and hx.
  const auto p = grid(16);
  const int k = 9;
  const std::size_t nn = static_cast<std::size_t>(p.N) * p.N;
  const std::size_t state = p.state_size();
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 9);
  const obs::ObservationSpace space(
      p, random_observations(p, 300, false, ObsOperator::kArctan, 0.05, kSeed + 10));
  LetkfSettings settings;
  settings.localization_radius_km = 4000;
  LetkfAnalysis letkf(settings);
  const auto whole = analyse(letkf, prior, k, space);

  std::vector<double> hx(k * space.size());
  for (int m = 0; m < k; ++m)
    space.apply(std::span<const double>(prior).subspan(m * state, state),
                std::span<double>(hx).subspan(m * space.size(), space.size()));
  const std::vector<std::size_t> cuts = {0, 1, 37, 38, 129, 200, nn};
  for (const int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (std::size_t s = 0; s + 1 < cuts.size(); ++s) {
      const std::size_t b = cuts[s], e = cuts[s + 1];
      const auto in = gather_columns(prior, k, nn, b, e);
      std::vector<double> out(in.size());
      letkf.analyse_columns(in, hx, k, space, b, e, out);
      EXPECT_EQ(out, gather_columns(whole, k, nn, b, e))
          << "columns [" << b << ", " << e << "), " << threads << " threads";
    }
  }
  omp_set_num_threads(omp_get_num_procs());
}

TEST(Letkf, PosteriorMayAliasThePrior) {
  const auto p = grid(8);
  const int k = 5;
  const std::size_t state = p.state_size();
  auto ens = random_ensemble(p, k, 1.0, kSeed + 11);
  const obs::ObservationSpace space(
      p, random_observations(p, 50, true, ObsOperator::kIdentity, 1.0, kSeed + 12));
  LetkfSettings settings;
  settings.localization_radius_km = 8000;
  LetkfAnalysis letkf(settings);
  const auto separate = analyse(letkf, ens, k, space);
  letkf.analyse({k, state, ens}, space, {}, {k, state, ens});
  EXPECT_EQ(ens, separate);
}

TEST(Letkf, DiagnosticsCountObservationsAndInnovations) {
  const auto p = grid(16);
  const int k = 6;
  const std::size_t state = p.state_size();
  const auto prior = random_ensemble(p, k, 1.0, kSeed + 13);
  // Every grid point of both levels observed: each element sees the observations within
  // 2200 km (its own point and 8 neighbours, the diagonal ones at 1768 km) on each level.
  obs::ObservationSet set;
  for (int lev = 0; lev < 2; ++lev)
    for (int j = 0; j < p.N; ++j)
      for (int i = 0; i < p.N; ++i)
        set.push_back(observation(i * p.dx_m(), j * p.dx_m(), lev, 0.1 * i - 0.05 * j));
  const obs::ObservationSpace space(p, set);
  LetkfAnalysis letkf;
  AnalysisDiagnostics diag;
  analyse(letkf, prior, k, space, &diag);
  EXPECT_EQ(diag.observations_used, space.size());
  EXPECT_DOUBLE_EQ(diag.extra["letkf_mean_local_obs"], 18.0);
  double sum = 0, sum2 = 0;
  for (std::size_t o = 0; o < space.size(); ++o) {
    double mean = 0;
    for (int m = 0; m < k; ++m)
      mean += at(prior, state, m, o);  // identity at grid points: observation o is element o
    const double d = space.value()[o] - mean / k;
    sum += d;
    sum2 += d * d;
  }
  EXPECT_NEAR(diag.innovation_mean, sum / space.size(), 1e-12);
  EXPECT_NEAR(diag.innovation_rms, std::sqrt(sum2 / space.size()), 1e-12);
  EXPECT_GT(diag.seconds, 0.0);
}

}  // namespace
}  // namespace rtda::filters
