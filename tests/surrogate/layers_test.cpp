// Layers of the ViT surrogate (docs/science.md §5): every hand-written backward pass against
// central finite differences of its own forward pass.
//
// How the gradient checks are made trustworthy in float32: the scalar loss is
// L = sum_ij R_ij Y_ij with fixed random R (so dL/dY = R), summed in DOUBLE so the reduction
// adds no rounding of its own; what is left is the float rounding of each Y_ij (~6e-8 |Y|).
// With a step h = 1e-2 that noise contributes ~1e-6 / (2h) = 5e-5 to a derivative of size
// O(0.1..1), and the O(h^2 f''' / 6) truncation error is ~2e-5 for these smooth layers, so
// the analytic and finite-difference gradients agree to ~1e-3 relative. We require 1e-2 in the
// 2-norm over all checked entries (an indexing or sign error gives O(1)), and per entry
// 2e-2 of the largest entry (no single entry may be wrong while the norm hides it).
#include <gtest/gtest.h>

#include "surrogate_test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "surrogate/layers.hpp"

namespace rtda::surrogate {
namespace {

constexpr std::uint64_t kSeed = 20250301;

using test_support::random_normal;
using test_support::weighted_sum;

// d loss / d entry by central differences; the step is the float-rounded one actually taken.
double central_difference(Real& entry, const std::function<double()>& loss, double h = 1e-2) {
  const Real saved = entry;
  const Real up = static_cast<Real>(saved + h);
  const Real down = static_cast<Real>(saved - h);
  entry = up;
  const double l_up = loss();
  entry = down;
  const double l_down = loss();
  entry = saved;
  return (l_up - l_down) / (static_cast<double>(up) - static_cast<double>(down));
}

// Compares analytic gradient `analytic` of the entries of `values` with finite differences.
void expect_gradient_matches(Mat& values, const Mat& analytic, const std::function<double()>& loss,
                             const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(values.rows(), analytic.rows());
  ASSERT_EQ(values.cols(), analytic.cols());
  Mat fd(values.rows(), values.cols());
  for (Eigen::Index i = 0; i < values.size(); ++i) {
    fd.data()[i] = static_cast<Real>(central_difference(values.data()[i], loss));
  }
  const double scale = analytic.cwiseAbs().maxCoeff();
  ASSERT_GT(scale, 1e-4) << "gradient is (nearly) zero: the check would be vacuous";
  EXPECT_LT((fd - analytic).norm() / analytic.norm(), 1e-2);
  for (Eigen::Index i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(fd.data()[i], analytic.data()[i], 2e-2 * scale) << "entry " << i;
  }
}

// Runs the generic check for a layer: input gradient and every parameter gradient.
template <typename Layer>
void check_layer_gradients(Layer& layer, Mat x, const std::function<Mat(Layer&, const Mat&)>& fwd,
                           std::mt19937_64& rng) {
  const Mat y0 = fwd(layer, x);
  const Mat r = random_normal(y0.rows(), y0.cols(), rng);
  ParameterList params;
  layer.collect(params);
  for (Parameter* p : params)
    p->zero_grad();
  fwd(layer, x);
  const Mat dx = layer.backward(r);
  const auto loss = [&] { return weighted_sum(fwd(layer, x), r); };
  expect_gradient_matches(x, dx, loss, "input");
  for (Parameter* p : params)
    expect_gradient_matches(p->value, p->grad, loss, p->name);
}

// Randomises every parameter (LayerNorm's ones/zeros and zero biases would hide errors).
void randomise(ParameterList params, std::mt19937_64& rng, double sd) {
  for (Parameter* p : params)
    p->value = random_normal(p->value.rows(), p->value.cols(), rng, sd);
}

TEST(SurrogateLayers, LinearBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  std::mt19937_64 rng(kSeed);
  Linear layer("fc", 8, 6, kSeed);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 0.5);
  check_layer_gradients<Linear>(
      layer, random_normal(10, 8, rng), [](Linear& l, const Mat& x) { return l.forward(x); }, rng);
}

TEST(SurrogateLayers, LayerNormBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 1));
  std::mt19937_64 rng(kSeed + 1);
  LayerNorm layer("norm", 8);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 1.0);
  check_layer_gradients<LayerNorm>(
      layer, random_normal(10, 8, rng), [](LayerNorm& l, const Mat& x) { return l.forward(x); },
      rng);
}

TEST(SurrogateLayers, GeluBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 2));
  std::mt19937_64 rng(kSeed + 2);
  Gelu layer;
  // sd 2 covers the curved region around 0 and both nearly linear tails.
  check_layer_gradients<Gelu>(
      layer, random_normal(10, 8, rng, 2.0), [](Gelu& l, const Mat& x) { return l.forward(x); },
      rng);
}

TEST(SurrogateLayers, GeluIsTheTanhApproximation) {
  Gelu layer;
  Mat x(1, 5);
  x << -3.0f, -1.0f, 0.0f, 0.5f, 2.0f;
  const Mat y = layer.forward(x);
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    const double v = x(0, j);
    const double expected =
        0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    // Eigen's vectorised float tanh is accurate to a few float ulps.
    EXPECT_NEAR(y(0, j), expected, 1e-6) << "x = " << v;
  }
}

TEST(SurrogateLayers, AttentionBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 3));
  std::mt19937_64 rng(kSeed + 3);
  MultiHeadSelfAttention layer("attn", 8, 2, kSeed);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 0.5);
  // Two samples of 5 tokens: the backward must keep the samples apart too.
  check_layer_gradients<MultiHeadSelfAttention>(
      layer, random_normal(10, 8, rng),
      [](MultiHeadSelfAttention& l, const Mat& x) { return l.forward(x, 5); }, rng);
}

TEST(SurrogateLayers, AttentionSoftmaxSurvivesHugeScores) {
  // Scores of ~1e4 overflow exp() without the max shift; with it the output stays finite.
  std::mt19937_64 rng(kSeed + 4);
  MultiHeadSelfAttention layer("attn", 8, 2, kSeed);
  const Mat y = layer.forward(random_normal(6, 8, rng, 300.0), 3);
  EXPECT_TRUE(y.allFinite());
}

TEST(SurrogateLayers, AttentionDoesNotMixSamples) {
  std::mt19937_64 rng(kSeed + 5);
  MultiHeadSelfAttention layer("attn", 8, 2, kSeed);
  Mat x = random_normal(8, 8, rng);
  const Mat y = layer.forward(x, 4);
  x.bottomRows(4) = random_normal(4, 8, rng);  // change sample 1 only
  const Mat y2 = layer.forward(x, 4);
  EXPECT_EQ(y.topRows(4), y2.topRows(4));
}

TEST(SurrogateLayers, MlpBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 6));
  std::mt19937_64 rng(kSeed + 6);
  Mlp layer("mlp", 8, 4, kSeed);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 0.4);
  check_layer_gradients<Mlp>(
      layer, random_normal(10, 8, rng), [](Mlp& l, const Mat& x) { return l.forward(x); }, rng);
}

TEST(SurrogateLayers, TransformerBlockBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 7));
  std::mt19937_64 rng(kSeed + 7);
  TransformerBlock layer("blocks.0", 8, 2, 4, kSeed);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 0.4);
  check_layer_gradients<TransformerBlock>(
      layer, random_normal(10, 8, rng),
      [](TransformerBlock& l, const Mat& x) { return l.forward(x, 5); }, rng);
}

TEST(SurrogateLayers, LevelAggregationBackwardMatchesFiniteDifferences) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 9));
  std::mt19937_64 rng(kSeed + 9);
  // 2 levels, dim 8, 2 heads; 6 rows (positions of any samples: rows are independent).
  LevelAggregation layer("aggregate", 8, 2, 2, kSeed);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 0.5);
  check_layer_gradients<LevelAggregation>(
      layer, random_normal(6, 16, rng),
      [](LevelAggregation& l, const Mat& x) { return l.forward(x); }, rng);
}

TEST(SurrogateLayers, LevelAggregationIsTheCrossAttentionOfItsDefinition) {
  // One row, written out in double from the definition: z_l = x_l + E_l, [k|v] = z W + b,
  // per head p = softmax_l(q_h . k_lh / sqrt(dh)), y = (sum_l p_l v_lh) W_o + b_o.
  std::mt19937_64 rng(kSeed + 10);
  const int dim = 8, heads = 2, levels = 3, dh = dim / heads;
  LevelAggregation layer("aggregate", dim, heads, levels, kSeed);
  ParameterList params;
  layer.collect(params);
  randomise(params, rng, 0.7);
  ASSERT_EQ(params.size(), 6u);
  const Mat& q = params[0]->value;
  const Mat& e = params[1]->value;
  const Mat& w_kv = params[2]->value;
  const Mat& b_kv = params[3]->value;
  const Mat& w_o = params[4]->value;
  const Mat& b_o = params[5]->value;
  const Mat x = random_normal(1, levels * dim, rng);
  const Mat y = layer.forward(x);
  ASSERT_EQ(y.rows(), 1);
  ASSERT_EQ(y.cols(), dim);
  Eigen::MatrixXd kv(levels, 2 * dim);
  for (int l = 0; l < levels; ++l) {
    for (int o = 0; o < 2 * dim; ++o) {
      double s = b_kv(0, o);
      for (int i = 0; i < dim; ++i)
        s += (static_cast<double>(x(0, l * dim + i)) + e(l, i)) * w_kv(i, o);
      kv(l, o) = s;
    }
  }
  Eigen::VectorXd mixed = Eigen::VectorXd::Zero(dim);
  for (int h = 0; h < heads; ++h) {
    std::vector<double> score(levels);
    double top = -1e300, sum = 0;
    for (int l = 0; l < levels; ++l) {
      score[l] = 0;
      for (int i = 0; i < dh; ++i)
        score[l] += q(0, h * dh + i) * kv(l, h * dh + i);
      score[l] /= std::sqrt(static_cast<double>(dh));
      top = std::max(top, score[l]);
    }
    for (int l = 0; l < levels; ++l)
      sum += std::exp(score[l] - top);
    for (int l = 0; l < levels; ++l) {
      const double p = std::exp(score[l] - top) / sum;
      for (int i = 0; i < dh; ++i)
        mixed(h * dh + i) += p * kv(l, dim + h * dh + i);
    }
  }
  for (int o = 0; o < dim; ++o) {
    double expected = b_o(0, o);
    for (int i = 0; i < dim; ++i)
      expected += mixed(i) * w_o(i, o);
    EXPECT_NEAR(y(0, o), expected, 1e-5 * (1.0 + std::abs(expected))) << "feature " << o;
  }
}

TEST(SurrogateLayers, LevelAggregationRegistersNamedParametersAndRejectsBadShapes) {
  LevelAggregation layer("aggregate", 8, 2, 2, kSeed);
  ParameterList params;
  layer.collect(params);
  const std::vector<std::string> expected = {"aggregate.query",       "aggregate.level_embed",
                                             "aggregate.kv.weight",   "aggregate.kv.bias",
                                             "aggregate.proj.weight", "aggregate.proj.bias"};
  ASSERT_EQ(params.size(), expected.size());
  for (std::size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(params[i]->name, expected[i]);
  EXPECT_EQ(params[0]->value.rows(), 1);
  EXPECT_EQ(params[1]->value.rows(), 2);
  EXPECT_EQ(params[2]->value.cols(), 16);
  // Xavier-initialised query and level embedding (not zero), reproducible from the seed.
  EXPECT_GT(params[0]->value.cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_GT(params[1]->value.cwiseAbs().maxCoeff(), 0.0f);
  LevelAggregation same("aggregate", 8, 2, 2, kSeed);
  ParameterList same_params;
  same.collect(same_params);
  for (std::size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(params[i]->value, same_params[i]->value) << params[i]->name;
  EXPECT_THROW(layer.forward(Mat::Zero(3, 8)), std::invalid_argument);  // one level's width
  EXPECT_THROW(layer.backward(Mat::Zero(3, 8)), std::logic_error);      // no forward yet
  EXPECT_THROW(LevelAggregation("bad", 8, 3, 2, kSeed), std::invalid_argument);
}

TEST(SurrogateLayers, LevelAggregationSoftmaxSurvivesHugeScores) {
  std::mt19937_64 rng(kSeed + 11);
  LevelAggregation layer("aggregate", 8, 2, 2, kSeed);
  const Mat y = layer.forward(random_normal(4, 16, rng, 1e4));
  EXPECT_TRUE(y.allFinite());
}

TEST(SurrogateLayers, BackwardAccumulatesParameterGradients) {
  std::mt19937_64 rng(kSeed + 8);
  TransformerBlock layer("blocks.0", 8, 2, 4, kSeed);
  ParameterList params;
  layer.collect(params);
  const Mat x = random_normal(10, 8, rng);
  const Mat dy = random_normal(10, 8, rng);
  layer.forward(x, 5);
  layer.backward(dy);
  std::vector<Mat> once;
  for (Parameter* p : params)
    once.push_back(p->grad);
  layer.forward(x, 5);
  layer.backward(dy);
  for (std::size_t i = 0; i < params.size(); ++i) {
    // g + g is exact in floating point, and the second pass repeats the first bit for bit.
    EXPECT_EQ(params[i]->grad, (2 * once[i]).eval()) << params[i]->name;
  }
}

TEST(SurrogateLayers, ParametersRegisterInAFixedNamedOrder) {
  TransformerBlock layer("blocks.3", 8, 2, 4, kSeed);
  ParameterList params;
  layer.collect(params);
  const std::vector<std::string> expected = {
      "blocks.3.norm1.weight",  "blocks.3.norm1.bias",       "blocks.3.attn.qkv.weight",
      "blocks.3.attn.qkv.bias", "blocks.3.attn.proj.weight", "blocks.3.attn.proj.bias",
      "blocks.3.norm2.weight",  "blocks.3.norm2.bias",       "blocks.3.mlp.fc1.weight",
      "blocks.3.mlp.fc1.bias",  "blocks.3.mlp.fc2.weight",   "blocks.3.mlp.fc2.bias"};
  ASSERT_EQ(params.size(), expected.size());
  for (std::size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(params[i]->name, expected[i]);
}

TEST(SurrogateLayers, XavierInitIsBoundedAndDependsOnSeedAndName) {
  Linear a("fc", 64, 32, 7);
  Linear b("fc", 64, 32, 7);
  Linear c("fc", 64, 32, 8);
  Linear d("other", 64, 32, 7);
  const double bound = std::sqrt(6.0 / (64 + 32));
  EXPECT_LE(a.weight().value.cwiseAbs().maxCoeff(), bound);
  EXPECT_GT(a.weight().value.cwiseAbs().maxCoeff(), 0.9 * bound);  // fills the interval
  EXPECT_EQ(a.weight().value, b.weight().value);
  EXPECT_NE(a.weight().value, c.weight().value);
  EXPECT_NE(a.weight().value, d.weight().value);
  EXPECT_TRUE(a.bias().value.isZero(0));
}

TEST(SurrogateLayers, LinearRejectsWrongWidthAndBackwardWithoutForward) {
  Linear layer("fc", 4, 3, 1);
  EXPECT_THROW(layer.forward(Mat::Zero(2, 5)), std::invalid_argument);
  EXPECT_THROW(layer.backward(Mat::Zero(2, 3)), std::logic_error);
}

}  // namespace
}  // namespace rtda::surrogate
