// Observation operators and intake validation (docs/architecture.md §7, docs/science.md §2, §4).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/random.hpp"
#include "obs/observation_space.hpp"
#include "observation_builders.hpp"

namespace rtda::obs {
namespace {

sqg::SqgParams small_grid() {
  sqg::SqgParams p;
  p.N = 8;
  return p;
}

using rtda::test_support::observation;

std::vector<double> random_state(const sqg::SqgParams& p, std::uint64_t seed) {
  std::vector<double> s(p.state_size());
  RandomStream(seed, RandomPurpose::kTest).fill_normal(s, 0.0, 1000.0);
  return s;
}

TEST(ObservationSpace, InvalidObservationsAreRejectedWithReasonsAndTheRestCount) {
  const auto p = small_grid();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  ObservationSet set;
  set.push_back(observation(0, 0, 0, 1.0, ObsOperator::kIdentity, 1.0, 10));   // good
  set.push_back(observation(0, 0, 0, nan, ObsOperator::kIdentity, 1.0, 11));   // NaN value
  set.push_back(observation(0, 0, 0, inf, ObsOperator::kIdentity, 1.0, 12));   // infinite value
  set.push_back(observation(0, 0, 0, 1.0, ObsOperator::kIdentity, 0.0, 13));   // error_sd 0
  set.push_back(observation(0, 0, 0, 1.0, ObsOperator::kIdentity, -2.0, 14));  // error_sd < 0
  set.push_back(
      observation(0, 0, 0, 1.0, static_cast<ObsOperator>(7), 1.0, 15));  // unknown operator
  set.push_back(observation(p.L_m, 0, 0, 1.0, ObsOperator::kIdentity, 1.0, 16));  // x = L
  set.push_back(observation(0, -1.0, 0, 1.0, ObsOperator::kIdentity, 1.0, 17));   // y < 0
  set.push_back(observation(0, 0, 2, 1.0, ObsOperator::kIdentity, 1.0, 18));      // bad level
  set.push_back(observation(1e6, 2e6, 1, 2.0, ObsOperator::kArctan, 0.01, 19));   // good
  std::vector<Rejection> rejected;
  ObservationSpace space(p, set, &rejected);
  ASSERT_EQ(space.size(), 2u);
  EXPECT_EQ(space.id()[0], 10u);
  EXPECT_EQ(space.id()[1], 19u);
  ASSERT_EQ(rejected.size(), 8u);
  // The server's field names and words (obs/validity.hpp).
  const char* fields[] = {"value", "value", "error_sd", "error_sd", "op", "x_m", "y_m", "level"};
  for (std::size_t k = 0; k < rejected.size(); ++k) {
    EXPECT_EQ(rejected[k].id, 11u + k);
    EXPECT_EQ(rejected[k].index, 1u + k);
    EXPECT_EQ(rejected[k].field, fields[k]) << rejected[k].reason;
    EXPECT_EQ(rejected[k].reason.rfind(std::string(fields[k]) + " = ", 0), 0u)
        << rejected[k].reason;
  }
}

TEST(ObservationSpace, AnObservationAtAGridPointReadsThatPoint) {
  const auto p = small_grid();
  const auto state = random_state(p, 1);
  ObservationSet set;
  const int i = 3, j = 5;
  set.push_back(observation(i * p.L_m / p.N, j * p.L_m / p.N, 1, 0.0));
  ObservationSpace space(p, set);
  EXPECT_TRUE(space.all_at_grid_points());
  std::vector<double> hx(1);
  space.apply(state, hx);
  EXPECT_EQ(hx[0], state[p.N * p.N + j * p.N + i]);
}

TEST(ObservationSpace, BilinearInterpolationIsExactForABilinearFieldAndWrapsPeriodically) {
  const auto p = small_grid();
  const int n = p.N;
  const double dx = p.dx_m();
  // f = a + b i + c j + d i j is reproduced exactly inside a cell; across the periodic
  // seam (columns n-1 and 0) the field is not bilinear, so that cell is checked by hand.
  std::vector<double> state(p.state_size());
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i)
      state[j * n + i] = 2.0 + 3.0 * i - 1.5 * j + 0.25 * i * j;
  }
  ObservationSet set;
  set.push_back(observation(2.3 * dx, 4.6 * dx, 0, 0));
  set.push_back(observation((n - 0.25) * dx, 1.5 * dx, 0, 0));  // between column n-1 and column 0
  ObservationSpace space(p, set);
  EXPECT_FALSE(space.all_at_grid_points());
  std::vector<double> hx(2);
  space.apply(state, hx);
  EXPECT_NEAR(hx[0], 2.0 + 3.0 * 2.3 - 1.5 * 4.6 + 0.25 * 2.3 * 4.6, 1e-12);
  const auto f = [&](int i, int j) { return state[(j % n) * n + (i % n)]; };
  // x sits 3/4 of the way from column n-1 to column 0 (= column n on the periodic grid).
  const double seam =
      0.25 * (0.5 * f(n - 1, 1) + 0.5 * f(n - 1, 2)) + 0.75 * (0.5 * f(0, 1) + 0.5 * f(0, 2));
  EXPECT_NEAR(hx[1], seam, 1e-12);
}

TEST(ObservationSpace, OperatorsMatchTheirDefinitions) {
  const auto p = small_grid();
  const double s = p.kelvin_per_pv();
  EXPECT_DOUBLE_EQ(operator_value(ObsOperator::kLinearK, 1000.0, s), 1000.0 * s);
  EXPECT_DOUBLE_EQ(operator_value(ObsOperator::kArctan, 1000.0, s), std::atan(1000.0 * s));
  EXPECT_DOUBLE_EQ(operator_value(ObsOperator::kIdentity, 1000.0, s), 1000.0);
  // Derivatives against central differences (step 1e-3 m/s: truncation ~1e-9 relative).
  for (auto op : {ObsOperator::kLinearK, ObsOperator::kArctan, ObsOperator::kIdentity}) {
    for (double q : {-3000.0, 0.0, 250.0}) {
      const double h = 1e-3;
      const double fd = (operator_value(op, q + h, s) - operator_value(op, q - h, s)) / (2 * h);
      EXPECT_NEAR(operator_derivative(op, q, s), fd, 1e-8 * std::max(1.0, std::abs(fd)));
    }
  }
}

TEST(ObservationSpace, LikelihoodGradientMatchesFiniteDifferences) {
  const auto p = small_grid();
  const auto state = random_state(p, 2);
  ObservationSet set;
  set.push_back(observation(1.5 * p.dx_m(), 2.25 * p.dx_m(), 0, 3.0, ObsOperator::kLinearK, 1.0));
  set.push_back(observation(4 * p.dx_m(), 4 * p.dx_m(), 1, 0.3, ObsOperator::kArctan, 0.05));
  set.push_back(
      observation(7.9 * p.dx_m(), 0.2 * p.dx_m(), 1, -500.0, ObsOperator::kIdentity, 200.0));
  ObservationSpace space(p, set);
  auto log_like = [&](const std::vector<double>& x) {
    std::vector<double> hx(space.size());
    space.apply(x, hx);
    double l = 0;
    for (std::size_t o = 0; o < hx.size(); ++o) {
      const double r = (hx[o] - space.value()[o]) / space.error_sd()[o];
      l -= 0.5 * r * r;
    }
    return l;
  };
  std::vector<double> grad(p.state_size());
  space.log_likelihood_gradient(state, grad);
  for (std::size_t k = 0; k < state.size(); ++k) {
    auto plus = state, minus = state;
    const double h = 1e-2;
    plus[k] += h;
    minus[k] -= h;
    const double fd = (log_like(plus) - log_like(minus)) / (2 * h);
    // Central differences of a smooth function: error O(h^2 f''') far below 1e-6 here.
    EXPECT_NEAR(grad[k], fd, 1e-6 * std::max(1.0, std::abs(fd))) << "element " << k;
  }
}

}  // namespace
}  // namespace rtda::obs
