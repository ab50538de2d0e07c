// Helpers shared by the surrogate's tests: portable random matrices and the scalar loss
// whose gradient the finite-difference checks compare.
#pragma once

#include <cmath>
#include <random>

#include "surrogate/tensor.hpp"

namespace rtda::surrogate::test_support {

// Standard normal matrix by Box-Muller on our own uniform conversion (portable across
// standard libraries, unlike std::normal_distribution).
inline Mat random_normal(Eigen::Index rows, Eigen::Index cols, std::mt19937_64& rng,
                         double sd = 1.0) {
  Mat m(rows, cols);
  const auto uniform = [&rng] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    m.data()[i] = static_cast<Real>(sd * r * std::cos(6.283185307179586 * uniform()));
  }
  return m;
}

// sum(y ∘ r) in double: a loss whose gradient with respect to y is r.
inline double weighted_sum(const Mat& y, const Mat& r) {
  double s = 0.0;
  for (Eigen::Index i = 0; i < y.size(); ++i)
    s += static_cast<double>(y.data()[i]) * static_cast<double>(r.data()[i]);
  return s;
}

}  // namespace rtda::surrogate::test_support
