// The Lorenz-96 model (docs/science.md §7): the fixed point, RK4's order, the ring's
// symmetry, and the climatology of F = 8 that the data-assimilation literature quotes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "l96/lorenz96.hpp"

namespace rtda::l96 {
namespace {

std::vector<double> perturbed_rest(const Lorenz96Params& p) {
  std::vector<double> x(static_cast<std::size_t>(p.n), p.forcing);
  x[19] += 0.01;
  return x;
}

TEST(Lorenz96, TheRestStateIsAFixedPoint) {
  const Lorenz96 model({});
  std::vector<double> x(40, 8.0);
  model.advance(x, 100);
  for (double v : x)
    EXPECT_EQ(v, 8.0);
}

TEST(Lorenz96, TendencyIsTheEquation) {
  Lorenz96Params p;
  p.n = 5;
  const std::vector<double> x = {1, 2, 3, 4, 5};
  std::vector<double> d(5);
  tendency(p, x, d);
  // dx_0/dt = (x_1 - x_3) x_4 - x_0 + F with the ring's wrap-around.
  EXPECT_DOUBLE_EQ(d[0], (2 - 4) * 5 - 1 + 8.0);
  EXPECT_DOUBLE_EQ(d[2], (4 - 1) * 2 - 3 + 8.0);
  EXPECT_DOUBLE_EQ(d[4], (1 - 3) * 4 - 5 + 8.0);
}

TEST(Lorenz96, Rk4IsFourthOrder) {
  Lorenz96Params p;
  std::vector<double> x0 = perturbed_rest(p);
  Lorenz96(p).advance(x0, 2000);  // onto the attractor
  const auto run = [&](double dt) {
    Lorenz96Params q = p;
    q.dt = dt;
    std::vector<double> x = x0;
    Lorenz96(q).advance(x, static_cast<int>(std::lround(0.5 / dt)));
    return x;
  };
  const auto a = run(0.01), b = run(0.005), c = run(0.0025);
  double ab = 0, bc = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab = std::max(ab, std::abs(a[i] - b[i]));
    bc = std::max(bc, std::abs(b[i] - c[i]));
  }
  EXPECT_GT(ab / bc, 12.0);
  EXPECT_LT(ab / bc, 20.0);
}

TEST(Lorenz96, RotatingTheRingCommutesWithTheStep) {
  const Lorenz96 model({});
  std::vector<double> x = perturbed_rest(model.params());
  model.advance(x, 500);
  std::vector<double> r = x;
  std::rotate(r.begin(), r.begin() + 7, r.end());
  model.advance(x, 50);
  model.advance(r, 50);
  std::rotate(x.begin(), x.begin() + 7, x.end());
  EXPECT_EQ(x, r);
}

TEST(Lorenz96, MembersAreIndependentOfTheSplit) {
  const Lorenz96 model({});
  std::vector<double> all;
  for (int m = 0; m < 5; ++m) {
    std::vector<double> x = perturbed_rest(model.params());
    x[static_cast<std::size_t>(m)] += 0.1 * m;
    all.insert(all.end(), x.begin(), x.end());
  }
  std::vector<double> one_by_one = all;
  model.advance_members(all, 5, 30);
  for (int m = 0; m < 5; ++m)
    model.advance(std::span<double>(one_by_one).subspan(m * 40u, 40), 30);
  EXPECT_EQ(all, one_by_one);
}

// F = 8: time mean ~2.35 and standard deviation ~3.6 per variable (the "climatology" RMSE of
// the twin-experiment tables is this standard deviation).
TEST(Lorenz96, ClimatologyOfForcing8) {
  const Lorenz96 model({});
  std::vector<double> x = perturbed_rest(model.params());
  model.advance(x, 1000);
  double sum = 0, sum2 = 0;
  const int steps = 20000;
  for (int s = 0; s < steps; ++s) {
    model.advance(x, 1);
    for (double v : x) {
      sum += v;
      sum2 += v * v;
    }
  }
  const double count = 40.0 * steps;
  const double mean = sum / count, sd = std::sqrt(sum2 / count - mean * mean);
  EXPECT_NEAR(mean, 2.35, 0.15);
  EXPECT_NEAR(sd, 3.63, 0.15);
}

TEST(Lorenz96, BadParametersNameTheKey) {
  Lorenz96Params p;
  p.n = 3;
  EXPECT_THROW(Lorenz96{p}, std::invalid_argument);
  p = {};
  p.dt = 0;
  try {
    Lorenz96 m(p);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.l96_dt"), std::string::npos);
  }
  std::vector<double> short_state(39);
  EXPECT_THROW(Lorenz96({}).advance(short_state, 1), std::invalid_argument);
}

}  // namespace
}  // namespace rtda::l96
