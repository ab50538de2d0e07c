// The per-level patch embedding of the ViT surrogate (surrogate.embedding = "per-level",
// docs/science.md §5): one Linear per level, the two level tokens merged by cross-attention
// (LevelAggregation). The whole model's gradients, batching, persistence at initialisation,
// its size, the checkpoint attribute (and old checkpoints without it loading as "joint"), the
// refusal of unknown values, and the HIP forward's refusal.
#include <gtest/gtest.h>
#include <unistd.h>

#include "surrogate_test_support.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>

#include "config/config.hpp"
#include "hip/vit_hip.hpp"
#include "surrogate/checkpoint.hpp"
#include "surrogate/trainer.hpp"
#include "surrogate/vit.hpp"

#ifndef RTDA_SHIPPED_WEIGHTS
#error "RTDA_SHIPPED_WEIGHTS (configs/weights/vit-n64.h5) must be defined by the build"
#endif

namespace rtda::surrogate {
namespace {

constexpr std::uint64_t kSeed = 20250310;

using test_support::expect_vit_backward_matches_finite_differences;
using test_support::random_normal;

VitConfig tiny_per_level() {
  VitConfig c = test_support::tiny_vit_config();
  c.embedding = PatchEmbedding::kPerLevel;
  return c;
}

std::string thrown_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("rtda-embedding-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(SurrogateEmbedding, PerLevelModelHasItsLayersInAFixedOrder) {
  Vit vit(tiny_per_level());
  ParameterList params;
  vit.collect(params);
  const std::vector<std::string> first = {
      "embed.level0.weight",   "embed.level0.bias",     "embed.level1.weight",  "embed.level1.bias",
      "aggregate.query",       "aggregate.level_embed", "aggregate.kv.weight",  "aggregate.kv.bias",
      "aggregate.proj.weight", "aggregate.proj.bias",   "blocks.0.norm1.weight"};
  ASSERT_GT(params.size(), first.size());
  for (std::size_t i = 0; i < first.size(); ++i)
    EXPECT_EQ(params[i]->name, first[i]);
  EXPECT_EQ(params[0]->value.rows(), 4);  // p^2 values of one level
  EXPECT_EQ(params[0]->value.cols(), 16);
  EXPECT_EQ(params.back()->name, "head.bias");
  for (const Parameter* p : params)
    EXPECT_EQ(p->name.find("patch_embed"), std::string::npos) << p->name;
}

TEST(SurrogateEmbedding, PerLevelSizeAndFlopsAtTheDefaultShape) {
  VitConfig c;  // N 64, patch 4, dim 128, depth 4, heads 4
  c.embedding = PatchEmbedding::kPerLevel;
  Vit vit(c);
  // Joint 801 696 minus its embedding (32 x 128 + 128 = 4 224), plus two level Linears
  // 2 (16 x 128 + 128) = 4 352, query 128, level embeddings 2 x 128 = 256, kv 128 x 256 + 256 =
  // 33 024, proj 128 x 128 + 128 = 16 512: +50 048.
  EXPECT_EQ(vit.parameter_count(), 801696 + 50048);
  // Joint 541 065 216 (the level Linears do the same products as the joint one), plus kv over
  // 2 T tokens 2 (512)(128)(256) = 33 554 432, scores and weighted values 2 x 2 (256)(2)(128) =
  // 262 144, proj 2 (256)(128)(128) = 8 388 608.
  EXPECT_EQ(vit.flops_per_sample(), 541065216LL + 33554432 + 262144 + 8388608);
}

TEST(SurrogateEmbedding, UntrainedPerLevelIncrementModelIsExactlyPersistence) {
  std::mt19937_64 rng(kSeed);
  Vit vit(tiny_per_level());
  const Mat x = random_normal(3, vit.state_size(), rng);
  EXPECT_EQ(vit.forward(x), x);
  VitConfig full;
  full.embedding = PatchEmbedding::kPerLevel;
  Vit big(full);
  const Mat x64 = random_normal(1, big.state_size(), rng);
  EXPECT_EQ(big.forward(x64), x64);
}

TEST(SurrogateEmbedding, PerLevelBackwardMatchesFiniteDifferences) {
  // As vit_test.cpp: loss sum(R o out) in double, central differences with step 1e-2, 4 random
  // entries of the input and of every parameter, 2e-2 of the tensor's largest gradient entry.
  SCOPED_TRACE("seed " + std::to_string(kSeed + 1));
  std::mt19937_64 rng(kSeed + 1);
  Vit vit(tiny_per_level());
  expect_vit_backward_matches_finite_differences(vit, rng);
}

TEST(SurrogateEmbedding, PerLevelBatchOfThreeEqualsThreeSingleSamples) {
  // Same tolerance and reasoning as vit_test.cpp (GEMM blocking may differ with the row count).
  std::mt19937_64 rng(kSeed + 2);
  Vit vit(tiny_per_level());
  ParameterList params;
  vit.collect(params);
  Parameter& head_w = *params[params.size() - 2];
  head_w.value = random_normal(head_w.value.rows(), head_w.value.cols(), rng, 0.3);
  const Mat x = random_normal(3, vit.state_size(), rng);
  const Mat batched = vit.forward(x);
  const double scale = batched.cwiseAbs().maxCoeff();
  for (Eigen::Index s = 0; s < 3; ++s) {
    const Mat single = vit.forward(x.row(s));
    EXPECT_LE((single - batched.row(s)).cwiseAbs().maxCoeff(), 1e-6 * scale) << "sample " << s;
  }
}

TEST(SurrogateEmbedding, TheLevelsAreEmbeddedSeparately) {
  // Per level, each token is the merge of two per-level tokens: zeroing level 1's Linear
  // (weights and bias) leaves the output independent of level 1 except through the increment.
  std::mt19937_64 rng(kSeed + 3);
  VitConfig c = tiny_per_level();
  c.predict_increment = false;
  Vit vit(c);
  ParameterList params;
  vit.collect(params);
  params[2]->value.setZero();                      // embed.level1.weight
  Parameter& head_w = *params[params.size() - 2];  // zero at initialisation: make it visible
  head_w.value = random_normal(head_w.value.rows(), head_w.value.cols(), rng, 0.3);
  Mat x = random_normal(1, vit.state_size(), rng);
  const Mat y = vit.forward(x);
  x.rightCols(vit.state_size() / 2) = random_normal(1, vit.state_size() / 2, rng);  // level 1
  EXPECT_EQ(vit.forward(x), y);
  x.leftCols(vit.state_size() / 2) = random_normal(1, vit.state_size() / 2, rng);  // level 0
  EXPECT_NE(vit.forward(x), y);
}

TEST(SurrogateEmbedding, UnknownEmbeddingIsRefusedNamingTheKey) {
  // From a checkpoint's attributes.
  auto arch = architecture_of(tiny_per_level());
  arch["embedding"] = "mixed";
  const std::string from_file = thrown_message([&] { vit_config_from(arch); });
  EXPECT_NE(from_file.find("surrogate.embedding"), std::string::npos) << from_file;
  EXPECT_NE(from_file.find("mixed"), std::string::npos) << from_file;
  // And as a configuration key.
  const std::string from_config =
      thrown_message([] { config::load_text("", "test", {"surrogate.embedding=\"crosswise\""}); });
  EXPECT_NE(from_config.find("surrogate.embedding"), std::string::npos) << from_config;
  EXPECT_NE(from_config.find("crosswise"), std::string::npos) << from_config;
  EXPECT_EQ(config::load_text("", "test", {}).surrogate.embedding, PatchEmbedding::kJoint);
  EXPECT_EQ(
      config::load_text("", "test", {"surrogate.embedding=\"per-level\""}).surrogate.embedding,
      PatchEmbedding::kPerLevel);
}

TEST(SurrogateEmbedding, CheckpointRoundTripKeepsThePerLevelEmbedding) {
  TempDir dir;
  std::mt19937_64 rng(kSeed + 4);
  Vit vit(tiny_per_level());
  ParameterList params;
  vit.collect(params);
  for (Parameter* p : params)  // nonzero head: the outputs must show the weights
    p->value = random_normal(p->value.rows(), p->value.cols(), rng, 0.3);
  SurrogateFile file;
  file.architecture = architecture_of(vit.config());
  EXPECT_EQ(file.architecture.at("embedding"), "per-level");
  const auto path = dir.path / "per-level.h5";
  save_surrogate(path, params, file);
  const VitConfig read = vit_config_from(read_surrogate_architecture(path));
  EXPECT_EQ(read.embedding, PatchEmbedding::kPerLevel);
  Vit loaded(read);
  ParameterList loaded_params;
  loaded.collect(loaded_params);
  load_surrogate(path, loaded_params);
  const Mat x = random_normal(2, vit.state_size(), rng);
  EXPECT_EQ(loaded.forward(x), vit.forward(x));
  // A joint model cannot take these weights: the parameter names differ.
  VitConfig joint = read;
  joint.embedding = PatchEmbedding::kJoint;
  Vit wrong(joint);
  ParameterList wrong_params;
  wrong.collect(wrong_params);
  EXPECT_ANY_THROW(load_surrogate(path, wrong_params));
}

TEST(SurrogateEmbedding, CheckpointWithoutTheAttributeLoadsAsJoint) {
  TempDir dir;
  std::mt19937_64 rng(kSeed + 5);
  VitConfig c = tiny_per_level();
  c.embedding = PatchEmbedding::kJoint;
  Vit vit(c);
  ParameterList params;
  vit.collect(params);
  SurrogateFile file;
  file.architecture = architecture_of(c);
  file.architecture.erase("embedding");  // as written before the per-level embedding existed
  const auto path = dir.path / "old.h5";
  save_surrogate(path, params, file);
  const auto arch = read_surrogate_architecture(path);
  EXPECT_EQ(arch.count("embedding"), 0u);
  const VitConfig read = vit_config_from(arch);
  EXPECT_EQ(read.embedding, PatchEmbedding::kJoint);
  Vit loaded(read);
  ParameterList loaded_params;
  loaded.collect(loaded_params);
  EXPECT_NO_THROW(load_surrogate(path, loaded_params));
}

TEST(SurrogateEmbedding, ShippedCheckpointLoadsUnchangedAsJoint) {
  const std::filesystem::path path = RTDA_SHIPPED_WEIGHTS;
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const auto arch = read_surrogate_architecture(path);
  const VitConfig c = vit_config_from(arch);
  EXPECT_EQ(c.embedding, PatchEmbedding::kJoint);
  Vit vit(c);
  ParameterList params;
  vit.collect(params);
  const SurrogateFile f = load_surrogate(path, params);
  EXPECT_EQ(vit.parameter_count(), 801696);
  EXPECT_EQ(f.norm_mean.size(), 2u);
  // Trained: the head is no longer zero, so the model is not persistence.
  EXPECT_GT(params.back()->value.cwiseAbs().maxCoeff(), 0.0f);
}

TEST(SurrogateEmbedding, HipForwardRefusesThePerLevelModel) {
  // The refusal comes before the device is looked for, so it holds with or without one.
  Vit vit(tiny_per_level());
  const std::string msg = thrown_message([&] { hip::VitForwardHip forward(vit); });
  EXPECT_NE(msg.find("surrogate.embedding"), std::string::npos) << msg;
  EXPECT_NE(msg.find("per-level"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HIP"), std::string::npos) << msg;
  EXPECT_THROW(hip::VitForwardHip{vit}, std::invalid_argument);
}

}  // namespace
}  // namespace rtda::surrogate
