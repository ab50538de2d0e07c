// The ViT surrogate (docs/science.md §5) as a whole: gradients, persistence at initialisation,
// batching, trainability and determinism, on a tiny model (N = 8, patch 2, dim 16, depth 2,
// heads 2) that runs in milliseconds.
#include <gtest/gtest.h>

#include "surrogate_test_support.hpp"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "surrogate/vit.hpp"

namespace rtda::surrogate {
namespace {

constexpr std::uint64_t kSeed = 20250302;

VitConfig tiny_config() {
  return test_support::tiny_vit_config();
}

using test_support::expect_vit_backward_matches_finite_differences;
using test_support::random_normal;

double mse(const Mat& a, const Mat& b) {
  return (a - b).cast<double>().squaredNorm() / static_cast<double>(a.size());
}

TEST(SurrogateVit, DefaultConfigIsTheCpuProbeOfScience5) {
  // docs/science.md §5: joint 2-channel embedding, patch 4, width 128, depth 4, "~0.8 M
  // parameters".
  Vit vit(VitConfig{});
  EXPECT_EQ(vit.tokens_per_sample(), 256);
  EXPECT_EQ(vit.parameter_count(), 801696);
  // Per block 2 T d (3d + d + 2 r d) for the Linears + 4 T^2 d for attention; plus embed/head.
  EXPECT_EQ(vit.flops_per_sample(), 541065216);
}

TEST(SurrogateVit, RejectsInconsistentConfigurations) {
  VitConfig c = tiny_config();
  c.patch = 3;  // 8 is not a multiple of 3
  EXPECT_THROW(Vit{c}, std::invalid_argument);
  c = tiny_config();
  c.heads = 3;  // 16 is not a multiple of 3
  EXPECT_THROW(Vit{c}, std::invalid_argument);
  c = tiny_config();
  c.dim = 18;  // not a multiple of 4: the 2-D sin-cos embedding needs dim/4 frequencies
  c.heads = 2;
  EXPECT_THROW(Vit{c}, std::invalid_argument);
  Vit vit(tiny_config());
  EXPECT_THROW(vit.forward(Mat::Zero(2, 100)), std::invalid_argument);
  EXPECT_THROW(vit.backward(Mat::Zero(2, 128)), std::logic_error);  // no forward yet
}

TEST(SurrogateVit, UntrainedIncrementModelIsExactlyPersistence) {
  // The head starts at zero, so x + head(...) = x + 0 = x bit for bit.
  std::mt19937_64 rng(kSeed);
  Vit vit(tiny_config());
  const Mat x = random_normal(3, vit.state_size(), rng);
  EXPECT_EQ(vit.forward(x), x);
  Vit full(VitConfig{});
  const Mat x64 = random_normal(1, full.state_size(), rng);
  EXPECT_EQ(full.forward(x64), x64);
}

TEST(SurrogateVit, BackwardMatchesFiniteDifferences) {
  // Same float32 reasoning as layers_test.cpp: double-summed loss sum(R o out), central
  // differences with step 1e-2, expected agreement ~1e-3 relative; we require 2e-2 per entry
  // relative to the largest checked entry of the tensor (the network is deeper, so third
  // derivatives and rounding are larger than for one layer), and a nonzero gradient.
  SCOPED_TRACE("seed " + std::to_string(kSeed + 1));
  std::mt19937_64 rng(kSeed + 1);
  Vit vit(tiny_config());
  expect_vit_backward_matches_finite_differences(vit, rng);
}

TEST(SurrogateVit, BatchOfThreeEqualsThreeSingleSamples) {
  // Every row-wise layer and the per-sample attention compute each sample's numbers with the
  // same operations, but Eigen's GEMM picks its cache blocking and kernel paths from the matrix
  // shape, which changes with the number of stacked rows and can reassociate sums. So we do
  // not promise bitwise equality: we require 1e-6 of the output scale, a few float ulps
  // (float epsilon is 1.2e-7), while any cross-sample leak would be O(1).
  std::mt19937_64 rng(kSeed + 2);
  Vit vit(tiny_config());
  ParameterList params;
  vit.collect(params);
  params.back()->value = random_normal(1, params.back()->value.cols(), rng, 0.3);  // head bias
  params[params.size() - 2]->value = random_normal(
      params[params.size() - 2]->value.rows(), params[params.size() - 2]->value.cols(), rng,
      0.3);  // head weight: make the network visible in the output
  const Mat x = random_normal(3, vit.state_size(), rng);
  const Mat batched = vit.forward(x);
  const double scale = batched.cwiseAbs().maxCoeff();
  for (Eigen::Index s = 0; s < 3; ++s) {
    const Mat single = vit.forward(x.row(s));
    EXPECT_LE((single - batched.row(s)).cwiseAbs().maxCoeff(), 1e-6 * scale) << "sample " << s;
  }
}

TEST(SurrogateVit, TinyModelOverfitsFourPairsWithPlainSgd) {
  SCOPED_TRACE("seed " + std::to_string(kSeed + 3));
  std::mt19937_64 rng(kSeed + 3);
  Vit vit(tiny_config());
  ParameterList params;
  vit.collect(params);
  const Mat x = random_normal(4, vit.state_size(), rng);
  const Mat target = random_normal(4, vit.state_size(), rng);
  // The loss is a mean over 512 values, so per-parameter gradients are small; lr 0.3 for 500
  // steps reaches 0.05-0.2 % of the initial MSE over several seeds (lr 0.1 only ~1 %), a 5x
  // margin under the 1 % asked for.
  const double lr = 0.3;
  const double initial = mse(vit.forward(x), target);
  for (int step = 0; step < 500; ++step) {
    for (Parameter* p : params)
      p->zero_grad();
    const Mat out = vit.forward(x);
    // d mean((out - target)^2) / d out
    vit.backward((2.0f / static_cast<Real>(out.size())) * (out - target));
    for (Parameter* p : params)
      p->value -= static_cast<Real>(lr) * p->grad;
  }
  const double last = mse(vit.forward(x), target);
  EXPECT_LT(last, 0.01 * initial) << "initial MSE " << initial << ", final " << last;
}

TEST(SurrogateVit, SameSeedGivesBitwiseIdenticalModelsAndOutputs) {
  std::mt19937_64 rng(kSeed + 4);
  VitConfig c = tiny_config();
  c.predict_increment = false;  // so the output shows the network, not just x
  Vit a(c);
  Vit b(c);
  c.seed += 1;
  Vit other(c);
  ParameterList pa, pb, po;
  a.collect(pa);
  b.collect(pb);
  other.collect(po);
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i]->value, pb[i]->value) << pa[i]->name;
    any_differs = any_differs || pa[i]->value != po[i]->value;
  }
  EXPECT_TRUE(any_differs) << "a different seed must give different weights";
  const Mat x = random_normal(2, a.state_size(), rng);
  const Mat r = random_normal(2, a.state_size(), rng);
  EXPECT_EQ(a.forward(x), b.forward(x));
  EXPECT_EQ(a.backward(r), b.backward(r));
  for (std::size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(pa[i]->grad, pb[i]->grad) << pa[i]->name;
}

TEST(SurrogateVit, PositionEmbeddingIsTwoDimensionalSinCos) {
  Vit vit(tiny_config());
  const Mat& e = vit.position_embedding();  // 4 x 4 tokens, dim 16: 4 frequencies per half
  ASSERT_EQ(e.rows(), 16);
  ASSERT_EQ(e.cols(), 16);
  // Token (i=1, j=2) = row 6; the lowest frequency is 1: sin(j), cos(j), sin(i), cos(i).
  EXPECT_NEAR(e(6, 0), std::sin(2.0), 1e-6);
  EXPECT_NEAR(e(6, 4), std::cos(2.0), 1e-6);
  EXPECT_NEAR(e(6, 8), std::sin(1.0), 1e-6);
  EXPECT_NEAR(e(6, 12), std::cos(1.0), 1e-6);
  ParameterList params;
  vit.collect(params);
  for (const Parameter* p : params)
    EXPECT_EQ(p->name.find("pos"), std::string::npos);
}

}  // namespace
}  // namespace rtda::surrogate
