// AdamW and its learning-rate schedule (docs/science.md §5).
#include "surrogate/optimizer.hpp"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <random>
#include <stdexcept>

namespace rtda::surrogate {
namespace {

// Fresh random inputs each run; the seed is logged so a failure can be replayed.
std::uint64_t logged_seed() {
  const std::uint64_t seed = (std::uint64_t(std::random_device{}()) << 32) | std::random_device{}();
  std::cout << "seed " << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

void fill_random(Mat& m, std::mt19937_64& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  for (Eigen::Index k = 0; k < m.size(); ++k)
    m.data()[k] = normal(rng);
}

AdamWSettings schedule_settings() {
  AdamWSettings s;
  s.lr = 2e-3;
  s.warmup_steps = 100;
  s.total_steps = 1000;
  s.min_lr_fraction = 0.1;
  return s;
}

TEST(LearningRate, IsZeroAtStepZero) {
  EXPECT_EQ(learning_rate(schedule_settings(), 0), 0.0);
}

TEST(LearningRate, RisesLinearlyDuringWarmup) {
  const AdamWSettings s = schedule_settings();
  EXPECT_DOUBLE_EQ(learning_rate(s, 25), 0.25 * s.lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, 50), 0.5 * s.lr);
}

TEST(LearningRate, ReachesPeakAtEndOfWarmup) {
  const AdamWSettings s = schedule_settings();
  EXPECT_DOUBLE_EQ(learning_rate(s, s.warmup_steps), s.lr);
}

TEST(LearningRate, ReachesMinimumAtTotalStepsAndStaysThere) {
  const AdamWSettings s = schedule_settings();
  const double min_lr = s.min_lr_fraction * s.lr;
  EXPECT_DOUBLE_EQ(learning_rate(s, s.total_steps), min_lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, s.total_steps + 1), min_lr);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10 * s.total_steps), min_lr);
}

TEST(LearningRate, CosineMidpointIsHalfwayBetweenPeakAndMinimum) {
  const AdamWSettings s = schedule_settings();
  const int mid = (s.warmup_steps + s.total_steps) / 2;
  EXPECT_NEAR(learning_rate(s, mid), 0.5 * (1 + s.min_lr_fraction) * s.lr, 1e-15);
}

TEST(LearningRate, DecaysMonotonicallyBetweenWarmupAndTotal) {
  const AdamWSettings s = schedule_settings();
  for (int step = s.warmup_steps; step < s.total_steps; ++step) {
    ASSERT_LT(learning_rate(s, step + 1), learning_rate(s, step)) << "step " << step;
  }
}

TEST(AdamWSettingsTest, RejectsUnusableValues) {
  AdamWSettings s;
  s.beta2 = 1.0;
  EXPECT_THROW(validate(s), std::invalid_argument);
  s = AdamWSettings{};
  s.total_steps = s.warmup_steps - 1;
  EXPECT_THROW(validate(s), std::invalid_argument);
  s = AdamWSettings{};
  s.clip_norm = -1;
  EXPECT_THROW(AdamW({}, s), std::invalid_argument);
}

TEST(AdamW, FirstStepMovesEachEntryByLearningRateAgainstItsGradient) {
  // With bias correction, m_hat = g and v_hat = g^2 after one step, so the update is
  // lr * g / (|g| + eps): a step of almost exactly lr against the sign of every entry.
  std::mt19937_64 rng(logged_seed());
  Parameter w("layer.weight", 5, 7);
  fill_random(w.value, rng);
  fill_random(w.grad, rng, 1e-2f);
  const Mat before = w.value;
  AdamWSettings s;
  s.lr = 1e-3;
  s.warmup_steps = 0;
  s.weight_decay = 0;
  s.clip_norm = 0;
  AdamW opt({&w}, s);
  opt.step();
  EXPECT_EQ(opt.steps(), 1);
  for (Eigen::Index k = 0; k < w.value.size(); ++k) {
    const double g = w.grad.data()[k];
    const double expected = before.data()[k] - s.lr * g / (std::abs(g) + s.eps);
    // A handful of float32 roundings of numbers of size |p| ~ 1: a few ulp of |p|.
    const double tol = 4 * FLT_EPSILON * std::max(std::abs(expected), s.lr);
    EXPECT_NEAR(w.value.data()[k], expected, tol) << "entry " << k;
  }
}

TEST(AdamW, ConvergesOnQuadraticFromZero) {
  // minimise ||W - T||^2, gradient 2 (W - T), from W = 0.
  std::mt19937_64 rng(logged_seed());
  Parameter w("fit.weight", 6, 4);
  Mat target(6, 4);
  fill_random(target, rng);
  AdamWSettings s;
  s.lr = 0.05;
  s.warmup_steps = 20;
  s.total_steps = 2000;
  s.weight_decay = 0;  // decay would pull the minimum away from T
  s.clip_norm = 0;
  AdamW opt({&w}, s);
  const double initial = (w.value - target).squaredNorm();
  for (int step = 0; step < s.total_steps; ++step) {
    opt.zero_grad();
    w.grad = 2 * (w.value - target);
    opt.step();
  }
  const double final_loss = (w.value - target).squaredNorm();
  EXPECT_LT(final_loss, 1e-6 * initial);
  // Adam's steps are about lr in size; the final lr is min_lr_fraction * lr = 2.5e-3.
  EXPECT_LT((w.value - target).cwiseAbs().maxCoeff(), 2.5e-3);
}

TEST(AdamW, WeightDecayOnlyTouchesWeightParameters) {
  std::mt19937_64 rng(logged_seed());
  Parameter weight("blocks.0.mlp.fc1.weight", 3, 4);
  Parameter bias("blocks.0.mlp.fc1.bias", 1, 4);
  Parameter norm("blocks.0.norm1.gain", 1, 3);
  Parameter embed("pos_embed", 8, 3);
  for (Parameter* p : {&weight, &bias, &norm, &embed})
    fill_random(p->value, rng);
  const Mat w0 = weight.value, b0 = bias.value, n0 = norm.value, e0 = embed.value;
  AdamWSettings s;
  s.lr = 0.1;
  s.warmup_steps = 0;
  s.weight_decay = 0.5;
  AdamW opt({&weight, &bias, &norm, &embed}, s);
  opt.step();  // zero gradients: the Adam part moves nothing, only the decay acts
  EXPECT_EQ(bias.value, b0);
  EXPECT_EQ(norm.value, n0);
  EXPECT_EQ(embed.value, e0);
  const Mat expected = w0 * float(1 - s.lr * s.weight_decay);
  EXPECT_EQ(weight.value, expected);
  EXPECT_NE(weight.value, w0);

  EXPECT_TRUE(is_weight_decayed("blocks.3.attn.qkv.weight"));
  EXPECT_FALSE(is_weight_decayed("blocks.3.attn.qkv.bias"));
  EXPECT_FALSE(is_weight_decayed("pos_embed"));
  EXPECT_FALSE(is_weight_decayed("weight"));  // no layer prefix: not a ".weight" name
}

TEST(AdamW, ClippingScalesGlobalNormToClipNormAndReturnsNormBeforeClipping) {
  Parameter a("a.weight", 1, 1), b("b.weight", 1, 1);
  a.grad(0, 0) = 3;
  b.grad(0, 0) = 4;
  AdamWSettings s;
  s.clip_norm = 1.0;
  AdamW opt({&a, &b}, s);
  EXPECT_DOUBLE_EQ(opt.clip_gradients(), 5.0);
  EXPECT_FLOAT_EQ(a.grad(0, 0), 0.6f);
  EXPECT_FLOAT_EQ(b.grad(0, 0), 0.8f);
  EXPECT_NEAR(opt.clip_gradients(), 1.0, 1e-6);  // float32 rounding of the scaled grads
}

TEST(AdamW, ClippingLeavesSmallGradientsUnchanged) {
  std::mt19937_64 rng(logged_seed());
  Parameter a("a.weight", 4, 4);
  fill_random(a.grad, rng, 0.01f);
  const Mat g0 = a.grad;
  AdamW opt({&a}, AdamWSettings{});
  EXPECT_LT(opt.clip_gradients(), 1.0);
  EXPECT_EQ(a.grad, g0);
}

TEST(AdamW, ClipNormZeroTurnsClippingOff) {
  Parameter a("a.weight", 1, 2);
  a.grad << 30, 40;
  AdamWSettings s;
  s.clip_norm = 0;
  AdamW opt({&a}, s);
  EXPECT_DOUBLE_EQ(opt.clip_gradients(), 50.0);
  EXPECT_EQ(a.grad(0, 1), 40.0f);
}

TEST(AdamW, ZeroGradClearsEveryGradient) {
  Parameter a("a.weight", 2, 2), b("a.bias", 1, 2);
  a.grad.setOnes();
  b.grad.setOnes();
  AdamW opt({&a, &b}, AdamWSettings{});
  opt.zero_grad();
  EXPECT_EQ(a.grad.squaredNorm() + b.grad.squaredNorm(), 0.0f);
}

TEST(AdamW, IdenticalRunsGiveBitwiseIdenticalParameters) {
  const std::uint64_t seed = logged_seed();
  auto run = [seed] {
    std::mt19937_64 rng(seed);
    Parameter w("w.weight", 8, 8);
    fill_random(w.value, rng);
    AdamW opt({&w}, AdamWSettings{});
    for (int i = 0; i < 20; ++i) {
      fill_random(w.grad, rng);
      opt.clip_gradients();
      opt.step();
    }
    return w.value;
  };
  const Mat a = run(), b = run();
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * a.size()));
}

TEST(AdamW, SetStateRestoresMomentsAndRejectsWrongShapesNamingTheParameter) {
  Parameter a("a.weight", 2, 3), b("a.bias", 1, 3);
  AdamW opt({&a, &b}, AdamWSettings{});
  std::vector<Mat> m = {Mat::Constant(2, 3, 1), Mat::Constant(1, 3, 2)};
  std::vector<Mat> v = {Mat::Constant(2, 3, 3), Mat::Constant(1, 3, 4)};
  opt.set_state(7, m, v);
  EXPECT_EQ(opt.steps(), 7);
  EXPECT_EQ(opt.m()[1], m[1]);
  EXPECT_EQ(opt.v()[0], v[0]);

  v[1] = Mat::Zero(3, 1);
  try {
    opt.set_state(9, m, v);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("a.bias: v shape 3x1, expected 1x3"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(opt.steps(), 7);  // unchanged by the failed call
  EXPECT_THROW(opt.set_state(1, {m[0]}, v), std::invalid_argument);
}

}  // namespace
}  // namespace rtda::surrogate
