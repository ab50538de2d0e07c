// Small, realistic analysis problems shared by the filters' shared-arithmetic tests and the
// HIP parity tests: an N × N SQG-sized grid, a prior of `members` states with spatially
// smooth mean and random perturbations of SQG magnitude (m/s), and observations of a truth
// drawn from the same distribution.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../unit/observation_builders.hpp"
#include "core/random.hpp"
#include "obs/observation.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::test_support {

struct FilterProblem {
  sqg::SqgParams grid;
  int members = 0;
  std::vector<double> prior;  // members × 2 N², [member][level][y][x]
  std::vector<double> truth;  // 2 N²
  obs::ObservationSpace obs;
  std::size_t state() const { return static_cast<std::size_t>(grid.state_size()); }
};

enum class ObsLayout {
  kEveryPoint,     // one observation per state element, at its grid point
  kRandomPoints,   // `count` observations at random grid points
  kBetweenPoints,  // `count` observations at random positions (bilinear stencils)
};

// Truth and prior: q = 2500 sin-cos pattern + noise; prior = truth + bias + spread noise,
// every draw from RandomStream(seed, kTest, ...), so a problem is a pure function of its
// arguments.
inline FilterProblem make_filter_problem(int n, int members, ObsLayout layout, std::size_t count,
                                         obs::ObsOperator op, double sigma, std::uint64_t seed) {
  FilterProblem p;
  p.grid.N = n;
  p.members = members;
  const std::size_t n2 = static_cast<std::size_t>(n) * n, state = 2 * n2;
  const double two_pi = 6.283185307179586;
  p.truth.resize(state);
  std::vector<double> noise(state);
  RandomStream(seed, RandomPurpose::kTest, 11, 0).fill_normal(noise, 0.0, 300.0);
  for (std::size_t e = 0; e < state; ++e) {
    const double x = two_pi * static_cast<double>(e % n2 % n) / n;
    const double y = two_pi * static_cast<double>(e % n2 / n) / n;
    p.truth[e] = 2500.0 * std::sin(x + (e >= n2 ? 0.7 : 0.0)) * std::cos(2.0 * y) + noise[e];
  }
  std::vector<double> bias(state);
  RandomStream(seed, RandomPurpose::kTest, 12, 0).fill_normal(bias, 0.0, 400.0);
  p.prior.resize(static_cast<std::size_t>(members) * state);
  for (int m = 0; m < members; ++m) {
    std::vector<double> dev(state);
    RandomStream(seed, RandomPurpose::kTest, 13, static_cast<std::uint64_t>(m))
        .fill_normal(dev, 0.0, 900.0);
    for (std::size_t e = 0; e < state; ++e)
      p.prior[m * state + e] = p.truth[e] + bias[e] + dev[e];
  }

  const double s_k = p.grid.kelvin_per_pv();
  const double dx = p.grid.dx_m();
  RandomStream u(seed, RandomPurpose::kTest, 14, 0);
  obs::ObservationSet set;
  const std::size_t total = layout == ObsLayout::kEveryPoint ? state : count;
  for (std::size_t o = 0; o < total; ++o) {
    int level;
    double x_m, y_m;
    if (layout == ObsLayout::kEveryPoint) {
      level = static_cast<int>(o / n2);
      x_m = static_cast<double>(o % n2 % n) * dx;
      y_m = static_cast<double>(o % n2 / n) * dx;
    } else {
      level = u.uniform(4 * o) < 0.5 ? 0 : 1;
      x_m = u.uniform(4 * o + 1) * p.grid.L_m;
      y_m = u.uniform(4 * o + 2) * p.grid.L_m;
      if (layout == ObsLayout::kRandomPoints) {
        x_m = std::floor(x_m / dx) * dx;
        y_m = std::floor(y_m / dx) * dx;
      }
      x_m = std::min(x_m, std::nextafter(p.grid.L_m, 0.0));
      y_m = std::min(y_m, std::nextafter(p.grid.L_m, 0.0));
    }
    // The truth at the position (bilinear between points), through the operator, plus noise.
    const double fx = x_m / dx, fy = y_m / dx;
    const int i0 = static_cast<int>(std::floor(fx)) % n, j0 = static_cast<int>(std::floor(fy)) % n;
    const double ax = fx - std::floor(fx), ay = fy - std::floor(fy);
    const auto at = [&](int i, int j) {
      return p.truth[static_cast<std::size_t>(level) * n2 + static_cast<std::size_t>(j % n) * n +
                     static_cast<std::size_t>(i % n)];
    };
    const double q = (1 - ax) * (1 - ay) * at(i0, j0) + ax * (1 - ay) * at(i0 + 1, j0) +
                     (1 - ax) * ay * at(i0, j0 + 1) + ax * ay * at(i0 + 1, j0 + 1);
    double h = op == obs::ObsOperator::kLinearK  ? s_k * q
               : op == obs::ObsOperator::kArctan ? std::atan(s_k * q)
                                                 : q;
    h += sigma * u.normal(4 * o + 3);
    set.push_back(test_support::observation(x_m, y_m, level, h, op, sigma, o));
  }
  p.obs = obs::ObservationSpace(p.grid, set);
  return p;
}

// Largest |a − b| / (|b| + floor) over two equally long vectors.
inline double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b,
                                      double floor) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size() && k < b.size(); ++k)
    worst = std::max(worst, std::abs(a[k] - b[k]) / (std::abs(b[k]) + floor));
  return worst;
}

}  // namespace rtda::test_support
