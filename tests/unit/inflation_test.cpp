// Multiplicative prior inflation (filters/inflation.hpp): the adaptive estimate recovers the
// factor that makes the spread consistent with the innovations, it is clamped, and applying
// it scales the perturbations and leaves the mean.
#include "filters/inflation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "config/config.hpp"
#include "obs/observation_space.hpp"
#include "observation_builders.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::filters {
namespace {

using test_support::observation;

struct Problem {
  obs::ObservationSpace space;
  std::vector<double> hx;  // [member][obs]
};

// Every grid point of level 0 observed. Members' h(x) have spread `sd_e` about 0; the
// observations deviate from the ensemble mean by N(0, (lambda sd_e)^2 + sd_o^2), i.e. the
// background error is lambda times what the spread says.
Problem consistent_problem(double lambda, double sd_e, double sd_o, int members = 20) {
  sqg::SqgParams g;
  g.N = 64;
  std::mt19937_64 gen(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  obs::ObservationSet set;
  const double sd_d = std::sqrt(lambda * lambda * sd_e * sd_e + sd_o * sd_o);
  for (int j = 0; j < g.N; ++j)
    for (int i = 0; i < g.N; ++i)
      set.push_back(
          observation(i * g.dx_m(), j * g.dx_m(), 0, 0.0, obs::ObsOperator::kIdentity, sd_o));
  Problem pr;
  const std::size_t p = set.size();
  pr.hx.assign(members * p, 0.0);
  for (std::size_t o = 0; o < p; ++o) {
    double mean = 0;
    for (int m = 0; m < members; ++m) {
      pr.hx[m * p + o] = sd_e * normal(gen);
      mean += pr.hx[m * p + o];
    }
    mean /= members;
    set.value[o] = mean + sd_d * normal(gen);
  }
  pr.space = obs::ObservationSpace(g, set);
  return pr;
}

TEST(Inflation, AdaptiveRecoversTheFactorTheInnovationsCallFor) {
  for (double lambda : {1.5, 2.0, 2.7}) {
    const Problem pr = consistent_problem(lambda, 0.8, 0.5);
    InflationSettings s;
    s.mode = InflationMode::kAdaptive;
    const InflationEstimate e = estimate_inflation(s, pr.hx, 20, pr.space);
    // 4096 observations: the variance ratio is known to ~3 %, lambda to ~2 %.
    EXPECT_NEAR(e.factor, lambda, 0.04 * lambda) << "lambda " << lambda;
    EXPECT_NEAR(e.observation_var, 0.25, 1e-12);
    EXPECT_NEAR(e.ensemble_var, 0.64, 0.03);
  }
}

TEST(Inflation, AdaptiveNeverDeflatesAndStopsAtItsMaximum) {
  InflationSettings s;
  s.mode = InflationMode::kAdaptive;
  s.max = 2.0;
  const Problem small = consistent_problem(0.5, 1.0, 0.5);  // spread too large
  const InflationEstimate e1 = estimate_inflation(s, small.hx, 20, small.space);
  EXPECT_LT(e1.unclamped_factor, 0.7);
  EXPECT_EQ(e1.factor, 1.0);
  const Problem big = consistent_problem(4.0, 0.5, 0.5);
  const InflationEstimate e2 = estimate_inflation(s, big.hx, 20, big.space);
  EXPECT_GT(e2.unclamped_factor, 3.5);
  EXPECT_EQ(e2.factor, 2.0);
}

TEST(Inflation, NoneFixedAndDegenerateCases) {
  const Problem pr = consistent_problem(2.0, 0.8, 0.5);
  InflationSettings s;
  EXPECT_EQ(estimate_inflation(s, pr.hx, 20, pr.space).factor, 1.0);  // none
  s.mode = InflationMode::kFixed;
  s.factor = 1.3;
  EXPECT_EQ(estimate_inflation(s, pr.hx, 20, pr.space).factor, 1.3);
  // Adaptive without observations, or with no ensemble variance, leaves the ensemble alone.
  s.mode = InflationMode::kAdaptive;
  EXPECT_EQ(estimate_inflation(s, {}, 20, obs::ObservationSpace()).factor, 1.0);
  std::vector<double> flat(pr.hx.size(), 0.25);
  const InflationEstimate e = estimate_inflation(s, flat, 20, pr.space);
  EXPECT_EQ(e.factor, 1.0);
  EXPECT_TRUE(std::isnan(e.unclamped_factor));
}

TEST(Inflation, ScalesPerturbationsAndKeepsTheMean) {
  const int k = 5;
  const std::size_t n = 7;
  std::vector<double> x(k * n);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(1.7 * static_cast<double>(i)) + 0.1 * static_cast<double>(i % n);
  std::vector<double> y = x;
  inflate(y, k, 1.75);
  for (std::size_t e = 0; e < n; ++e) {
    double mx = 0, my = 0;
    for (int m = 0; m < k; ++m) {
      mx += x[m * n + e];
      my += y[m * n + e];
    }
    mx /= k;
    my /= k;
    EXPECT_NEAR(my, mx, 1e-14);
    for (int m = 0; m < k; ++m)
      EXPECT_NEAR(y[m * n + e] - my, 1.75 * (x[m * n + e] - mx), 1e-14);
  }
  std::vector<double> z = x;
  inflate(z, k, 1.0);
  EXPECT_EQ(z, x);  // lambda = 1 leaves the bits alone
}

TEST(Inflation, ConfigurationNamesTheKeyAndTheValue) {
  const auto message = [](std::vector<std::string> sets) {
    try {
      config::load(std::nullopt, sets);
    } catch (const config::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({"inflation.mode=sometimes"}).find("inflation.mode"), std::string::npos);
  EXPECT_NE(message({"inflation.mode=sometimes"}).find("sometimes"), std::string::npos);
  EXPECT_NE(message({"inflation.factor=0.5"}).find("inflation.factor"), std::string::npos);
  EXPECT_NE(message({"inflation.max=nan"}).find("inflation.max"), std::string::npos);
  const config::Config c = config::load(std::nullopt, {"inflation.mode=adaptive"});
  EXPECT_EQ(c.inflation.mode, InflationMode::kAdaptive);
  EXPECT_EQ(message({"inflation.mode=adaptive", "inflation.max=2.5"}), "");
}

}  // namespace
}  // namespace rtda::filters
