// The element arithmetic that the surrogate's CPU layers and HIP kernels share
// (surrogate/nn_math.hpp), on the CPU: exp, GELU and its derivative, a layer-norm row, a
// softmax row, the row reductions, the patch index map and the position embedding. The GPU
// runs these same functions, so this is where their accuracy is established; the parity tests
// (nn_hip_test, vit_hip_test) then only have to account for summation order and FMA.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "surrogate/nn_math.hpp"
#include "surrogate/vit.hpp"

namespace rtda::surrogate::nn {
namespace {

constexpr std::uint64_t kSeed = 20250611;

double gelu_tanh_double(double x) {
  const double u = std::sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + std::tanh(u));
}

std::vector<float> uniform_row(std::mt19937_64& rng, int n, double lo, double hi) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v)
    x = static_cast<float>(lo + (hi - lo) * (static_cast<double>(rng() >> 11) * 0x1.0p-53));
  return v;
}

TEST(NnMath, ExpFloatIsWithinTwoUlpsOfDoubleExpOverTheNormalRange) {
  // Normal results: relative error <= 2 units of 2^-23 (measured: 1.0e-7, below one ulp of
  // the worst-placed result); the derivation in nn_math.hpp bounds the polynomial's
  // truncation far below that, so this is the float rounding of the Horner steps.
  double worst = 0.0;
  float worst_x = 0.0f;
  for (double x = -87.3; x <= 88.7; x += 3.1e-5) {
    const float xf = static_cast<float>(x);
    const double exact = std::exp(static_cast<double>(xf));
    const double rel = std::fabs(exp_float(xf) - exact) / exact;
    if (rel > worst) {
      worst = rel;
      worst_x = xf;
    }
  }
  EXPECT_LE(worst, 2.0 * 0x1.0p-23) << "at x = " << worst_x;
  EXPECT_EQ(exp_float(0.0f), 1.0f);
}

TEST(NnMath, ExpFloatUnderflowsOverflowsAndPropagatesNanLikeExp) {
  // Subnormal results: within one unit of the smallest subnormal.
  for (double x = -103.9; x < -87.3; x += 1.7e-4) {
    const float xf = static_cast<float>(x);
    EXPECT_LE(std::fabs(exp_float(xf) - std::exp(static_cast<double>(xf))), 0x1.0p-149)
        << "at x = " << xf;
  }
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(exp_float(-104.0f), 0.0f);
  EXPECT_EQ(exp_float(-1e30f), 0.0f);
  EXPECT_EQ(exp_float(-inf), 0.0f);
  EXPECT_EQ(exp_float(89.0f), inf);
  EXPECT_EQ(exp_float(inf), inf);
  EXPECT_TRUE(std::isfinite(exp_float(88.7f)));
  EXPECT_TRUE(std::isnan(exp_float(std::numeric_limits<float>::quiet_NaN())));
}

TEST(NnMath, GeluMatchesTheTanhFormulaInDouble) {
  // The gate form x / (1 + exp(-2u)) is the tanh form rewritten; in float it may differ from
  // the double formula by a few ulps of the gate (exp_float, the division, u's rounding
  // amplified by |2u| <= 2 x 0.8 x 10 in exp): 1e-6 relative to |x| plus a 1e-7 floor.
  for (double x = -10.0; x <= 10.0; x += 1e-3) {
    const float xf = static_cast<float>(x);
    const double ref = gelu_tanh_double(xf);
    EXPECT_NEAR(gelu(xf), ref, 1e-6 * std::fabs(xf) + 1e-7) << "at x = " << xf;
  }
  EXPECT_EQ(gelu(0.0f), 0.0f);
  EXPECT_FLOAT_EQ(gelu(kSqrt2OverPi), static_cast<float>(gelu_tanh_double(kSqrt2OverPi)));
  EXPECT_EQ(kSqrt2OverPi, static_cast<float>(std::sqrt(2.0 / 3.14159265358979323846)));
}

TEST(NnMath, GeluSaturatesToIdentityAndZeroWithoutNan) {
  EXPECT_EQ(gelu(50.0f), 50.0f);
  EXPECT_EQ(gelu(1e20f), 1e20f);  // x^3 overflows: the gate is exactly 1
  EXPECT_EQ(gelu(-50.0f), 0.0f);  // -0 compares equal
  EXPECT_EQ(gelu(-1e20f), 0.0f);
  EXPECT_EQ(gelu_derivative(50.0f), 1.0f);
  EXPECT_EQ(gelu_derivative(-50.0f), 0.0f);
}

TEST(NnMath, GeluDerivativeMatchesCentralDifferencesOfTheDoubleFormula) {
  // Central differences of the double formula with h = 1e-5 are exact to ~1e-10, so the
  // comparison measures the float derivative: a few ulps of terms of size <= ~1.2.
  constexpr double h = 1e-5;
  for (double x = -8.0; x <= 8.0; x += 1.3e-3) {
    const float xf = static_cast<float>(x);
    const double fd = (gelu_tanh_double(xf + h) - gelu_tanh_double(xf - h)) / (2.0 * h);
    EXPECT_NEAR(gelu_derivative(xf), fd, 2e-6) << "at x = " << xf;
    EXPECT_EQ(gelu_derivative_from_gate(xf, gelu_gate(xf)), gelu_derivative(xf));
  }
}

// Reference layer norm in double of the same float inputs.
std::vector<double> layer_norm_double(const std::vector<float>& x, const std::vector<float>& g,
                                      const std::vector<float>& b, double eps) {
  const std::size_t n = x.size();
  double mean = 0.0;
  for (float v : x)
    mean += v;
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (float v : x)
    var += (v - mean) * (v - mean);
  var /= static_cast<double>(n);
  std::vector<double> y(n);
  for (std::size_t i = 0; i < n; ++i)
    y[i] = (x[i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
  return y;
}

TEST(NnMath, LayerNormRowMatchesADoublePrecisionReference) {
  std::mt19937_64 rng(kSeed);
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  for (int n : {1, 3, 7, 128, 1000}) {
    for (double offset : {0.0, 1000.0}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", offset = " + std::to_string(offset));
      const std::vector<float> x = uniform_row(rng, n, offset - 2.0, offset + 2.0);
      const std::vector<float> g = uniform_row(rng, n, 0.5, 1.5);
      const std::vector<float> b = uniform_row(rng, n, -0.5, 0.5);
      std::vector<float> y(x.size()), x_hat(x.size());
      const float inv_std =
          layer_norm_row(x.data(), n, g.data(), b.data(), kLayerNormEps, y.data(), x_hat.data());
      const std::vector<double> ref = layer_norm_double(x, g, b, kLayerNormEps);
      // Centred rows: float sums of n terms, ~1e-6 relative. Rows at 1000 +- 2: the float
      // mean carries an error of ~n ulp(1000) / n = 6e-5 in x - mean, i.e. 6e-5 / std in
      // x_hat (std ~ 1.15); the double reference sees the exact mean.
      const double tol = offset == 0.0 ? 5e-6 : 2e-4;
      for (int i = 0; i < n; ++i) {
        EXPECT_NEAR(y[static_cast<std::size_t>(i)], ref[static_cast<std::size_t>(i)], tol)
            << "element " << i;
        EXPECT_FLOAT_EQ(y[static_cast<std::size_t>(i)],
                        x_hat[static_cast<std::size_t>(i)] * g[static_cast<std::size_t>(i)] +
                            b[static_cast<std::size_t>(i)]);
      }
      EXPECT_GT(inv_std, 0.0f);
    }
  }
}

TEST(NnMath, LayerNormRowMayWorkInPlaceAndSkipXHat) {
  std::mt19937_64 rng(kSeed + 1);
  const std::vector<float> x = uniform_row(rng, 37, -3.0, 3.0);
  const std::vector<float> g = uniform_row(rng, 37, 0.5, 1.5);
  const std::vector<float> b = uniform_row(rng, 37, -0.5, 0.5);
  std::vector<float> y(x.size());
  layer_norm_row(x.data(), 37, g.data(), b.data(), kLayerNormEps, y.data(), nullptr);
  std::vector<float> in_place = x;
  layer_norm_row(in_place.data(), 37, g.data(), b.data(), kLayerNormEps, in_place.data(), nullptr);
  EXPECT_EQ(in_place, y);
}

TEST(NnMath, LayerNormOfAConstantRowIsBetaUpToRounding) {
  // var = 0 (up to the rounding of the mean): eps keeps inv_std finite (1 / sqrt(1e-5)).
  const std::vector<float> x(5, 0.1f), g(5, 2.0f), b = {1.0f, -1.0f, 0.5f, 0.0f, 3.0f};
  std::vector<float> y(5);
  const float inv_std =
      layer_norm_row(x.data(), 5, g.data(), b.data(), kLayerNormEps, y.data(), nullptr);
  EXPECT_TRUE(std::isfinite(inv_std));
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_NEAR(y[i], b[i], 1e-5);
}

std::vector<double> softmax_double(const std::vector<float>& s, double scale) {
  double m = -std::numeric_limits<double>::infinity();
  for (float v : s)
    m = std::max(m, static_cast<double>(v));
  std::vector<double> p(s.size());
  double sum = 0.0;
  for (std::size_t j = 0; j < s.size(); ++j)
    sum += p[j] = std::exp((s[j] - m) * scale);
  for (double& v : p)
    v /= sum;
  return p;
}

TEST(NnMath, SoftmaxRowMatchesADoublePrecisionReference) {
  std::mt19937_64 rng(kSeed + 2);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 2));
  const float scale = attention_scale(32);
  for (int n : {1, 2, 5, 37, 256}) {
    const std::vector<float> s = uniform_row(rng, n, -20.0, 20.0);
    std::vector<float> p = s;
    softmax_row(p.data(), n, scale);
    const std::vector<double> ref = softmax_double(s, scale);
    double sum = 0.0;
    for (int j = 0; j < n; ++j) {
      // Probabilities <= 1: exp_float's ~1e-7 relative error, the float sum of n <= 256 terms
      // and one division.
      EXPECT_NEAR(p[static_cast<std::size_t>(j)], ref[static_cast<std::size_t>(j)], 1e-6)
          << "n = " << n << ", element " << j;
      sum += p[static_cast<std::size_t>(j)];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6) << "n = " << n;
  }
}

TEST(NnMath, SoftmaxRowIsStableForHugeLogits) {
  // Shifting by the maximum: no overflow, and the result depends only on differences.
  std::vector<float> near = {1.0f, 3.0f, -2.0f, 0.0f};
  std::vector<float> huge = {10001.0f, 10003.0f, 9998.0f, 10000.0f};  // exact in float
  softmax_row(near.data(), 4, 0.5f);
  softmax_row(huge.data(), 4, 0.5f);
  EXPECT_EQ(near, huge);

  const float big = FLT_MAX;
  std::vector<float> extreme = {big, -big, 0.0f, big};
  softmax_row(extreme.data(), 4, 1.0f);
  EXPECT_EQ(extreme[0], 0.5f);
  EXPECT_EQ(extreme[1], 0.0f);  // big - (-big) overflows to -inf: exp gives 0, not NaN
  EXPECT_EQ(extreme[2], 0.0f);
  EXPECT_EQ(extreme[3], 0.5f);

  std::vector<float> one_hot = {-1e4f, 1e4f, -1e4f};
  softmax_row(one_hot.data(), 3, attention_scale(32));
  EXPECT_EQ(one_hot, (std::vector<float>{0.0f, 1.0f, 0.0f}));
}

TEST(NnMath, RowReductionsHandleEveryRemainderLength) {
  // Small integers: every partial sum is exact, so any order must give the exact result.
  for (int n = 1; n <= 11; ++n) {
    std::vector<float> x(static_cast<std::size_t>(n));
    float sum = 0.0f, sum_sq = 0.0f, max = -1e9f;
    for (int i = 0; i < n; ++i) {
      x[static_cast<std::size_t>(i)] = static_cast<float>((i * 7) % 5 - 2 + (i == n / 2 ? 9 : 0));
      sum += x[static_cast<std::size_t>(i)];
      sum_sq += (x[static_cast<std::size_t>(i)] - 1.0f) * (x[static_cast<std::size_t>(i)] - 1.0f);
      max = std::max(max, x[static_cast<std::size_t>(i)]);
    }
    EXPECT_EQ(row_sum(x.data(), n), sum) << "n = " << n;
    EXPECT_EQ(row_sum_sq_centred(x.data(), n, 1.0f), sum_sq) << "n = " << n;
    EXPECT_EQ(row_max(x.data(), n), max) << "n = " << n;
  }
}

TEST(NnMath, AttentionScaleIsOneOverSqrtHeadDim) {
  EXPECT_EQ(attention_scale(4), 0.5f);
  EXPECT_FLOAT_EQ(attention_scale(32), static_cast<float>(1.0 / std::sqrt(32.0)));
}

TEST(NnMath, PatchStateIndexIsABijectionInTheDocumentedLayout) {
  for (const auto& [n, p] : {std::pair{8, 2}, std::pair{64, 4}, std::pair{6, 3}}) {
    const int grid = n / p;
    const int tokens = grid * grid;
    const int features = 2 * p * p;
    std::vector<int> hits(static_cast<std::size_t>(2 * n * n), 0);
    for (int t = 0; t < tokens; ++t) {
      for (int f = 0; f < features; ++f) {
        const int at = patch_state_index(t, f, n, p);
        ASSERT_GE(at, 0);
        ASSERT_LT(at, 2 * n * n);
        ++hits[static_cast<std::size_t>(at)];
      }
    }
    for (int h : hits)
      ASSERT_EQ(h, 1) << "N = " << n << ", p = " << p;
  }
  // N = 8, p = 2: token (1, 2) = 1 * 4 + 2 = 6; feature [level 1][dy 1][dx 0] = 4 + 2 + 0 = 6
  // is level 1, y = 1 * 2 + 1 = 3, x = 2 * 2 + 0 = 4: 64 + 3 * 8 + 4 = 92.
  EXPECT_EQ(patch_state_index(6, 6, 8, 2), 92);
  EXPECT_EQ(patch_state_index(0, 0, 8, 2), 0);
}

TEST(NnMath, SincosPositionValueIsTheVitsPositionEmbedding) {
  VitConfig c;
  c.grid_n = 16;
  c.patch = 2;
  c.dim = 24;
  c.depth = 0;
  c.heads = 2;
  Vit vit(c);
  const Mat& e = vit.position_embedding();
  const int grid = c.grid_n / c.patch;
  for (int i = 0; i < grid; ++i) {
    for (int j = 0; j < grid; ++j) {
      for (int f = 0; f < c.dim; ++f) {
        ASSERT_EQ(e(i * grid + j, f), static_cast<float>(sincos_position_value(i, j, f, c.dim)))
            << "token (" << i << ", " << j << "), feature " << f;
      }
    }
  }
  // Token (0, 0): sin 0 = 0 and cos 0 = 1 in each half.
  EXPECT_EQ(sincos_position_value(0, 0, 0, 8), 0.0);
  EXPECT_EQ(sincos_position_value(0, 0, 2, 8), 1.0);
  EXPECT_EQ(sincos_position_value(0, 0, 5, 8), 0.0);
  EXPECT_EQ(sincos_position_value(0, 0, 7, 8), 1.0);
  EXPECT_DOUBLE_EQ(sincos_position_value(3, 5, 4, 8), std::sin(3.0));          // row i, k = 0
  EXPECT_DOUBLE_EQ(sincos_position_value(3, 5, 1, 8), std::sin(5.0 / 100.0));  // column j, k = 1
}

}  // namespace
}  // namespace rtda::surrogate::nn
