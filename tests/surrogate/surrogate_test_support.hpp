// Helpers shared by the surrogate's tests: portable random matrices, the scalar loss whose
// gradient the finite-difference checks compare, and the whole-model backward check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "surrogate/tensor.hpp"
#include "surrogate/vit.hpp"

namespace rtda::surrogate::test_support {

// The small ViT the tests build (8 x 8 grid, patch 2, width 16, 2 blocks of 2 heads).
inline VitConfig tiny_vit_config() {
  VitConfig c;
  c.grid_n = 8;
  c.patch = 2;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.seed = 3;
  return c;
}

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

// The finite-difference check of a whole Vit's backward (vit_test.cpp, embedding_test.cpp):
// loss sum(R o out) in double, central differences with step 1e-2, 4 random entries of the
// input and of every parameter, each within 2e-2 of the tensor's largest gradient entry (the
// network is deep, so third derivatives and float rounding are larger than for one layer),
// and a nonzero gradient so the check cannot be vacuous. The zero-initialised head, the norms
// and the biases are randomised first (else every gradient before the head vanishes).
inline void expect_vit_backward_matches_finite_differences(Vit& vit, std::mt19937_64& rng) {
  ParameterList params;
  vit.collect(params);
  for (Parameter* p : params) {
    if (p->name.rfind("head", 0) == 0 || p->name.find("norm") != std::string::npos ||
        p->name.find("bias") != std::string::npos) {
      p->value = random_normal(p->value.rows(), p->value.cols(), rng, 0.3);
      if (p->name.find("norm") != std::string::npos &&
          p->name.find("weight") != std::string::npos) {
        p->value.array() += 1.0f;
      }
    }
  }
  Mat x = random_normal(2, vit.state_size(), rng);
  const Mat r = random_normal(2, vit.state_size(), rng);
  for (Parameter* p : params)
    p->zero_grad();
  vit.forward(x);
  const Mat dx = vit.backward(r);
  const auto loss = [&] { return weighted_sum(vit.forward(x), r); };
  const auto fd = [&](Real& entry) {
    const Real saved = entry;
    const Real up = static_cast<Real>(saved + 1e-2);
    const Real down = static_cast<Real>(saved - 1e-2);
    entry = up;
    const double l_up = loss();
    entry = down;
    const double l_down = loss();
    entry = saved;
    return (l_up - l_down) / (static_cast<double>(up) - static_cast<double>(down));
  };
  const auto check = [&](Mat& values, const Mat& grad, const std::string& what) {
    SCOPED_TRACE(what);
    const double scale = grad.cwiseAbs().maxCoeff();
    ASSERT_GT(scale, 1e-4) << "vanishing gradient: the check would be vacuous";
    for (int k = 0; k < 4; ++k) {
      const Eigen::Index i = static_cast<Eigen::Index>(rng() % values.size());
      const double numeric = fd(values.data()[i]);
      EXPECT_NEAR(numeric, grad.data()[i], 2e-2 * scale) << "entry " << i;
    }
  };
  check(x, dx, "input");
  for (Parameter* p : params)
    check(p->value, p->grad, p->name);
}

}  // namespace rtda::surrogate::test_support
