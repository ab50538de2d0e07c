// HDF5 checkpoints of the ViT surrogate: exact round trips, errors that name every mismatch,
// and files that h5py reads.
#include "surrogate/checkpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include "io/conventions.hpp"
#include "io/hdf5_file.hpp"

namespace rtda::surrogate {
namespace {

namespace fs = std::filesystem;

std::uint64_t logged_seed() {
  const std::uint64_t seed = (std::uint64_t(std::random_device{}()) << 32) | std::random_device{}();
  std::cout << "seed " << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

// One directory per process (CTest runs each test as its own process) and a fresh one per
// test; removed at the end unless a test failed, so the files can be inspected.
fs::path process_dir() {
  return fs::path(::testing::TempDir()) /
         ("rtda_surrogate_checkpoint_" + std::to_string(::getpid()));
}

class RemoveTestFiles : public ::testing::Environment {
 public:
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->Passed()) fs::remove_all(process_dir());
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveTestFiles =
    ::testing::AddGlobalTestEnvironment(new RemoveTestFiles);

fs::path test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = process_dir() / (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A stand-in for the ViT's parameter registry: named matrices in a fixed order.
struct Model {
  std::vector<std::unique_ptr<Parameter>> owned;
  ParameterList params;
  Parameter& add(const std::string& name, Eigen::Index rows, Eigen::Index cols) {
    owned.push_back(std::make_unique<Parameter>(name, rows, cols));
    params.push_back(owned.back().get());
    return *owned.back();
  }
};

Model small_vit(int width = 4) {
  Model m;
  m.add("patch_embed.weight", 32, width);
  m.add("patch_embed.bias", 1, width);
  m.add("pos_embed", 16, width);
  m.add("blocks.0.attn.qkv.weight", width, 3 * width);
  m.add("blocks.0.attn.qkv.bias", 1, 3 * width);
  m.add("blocks.0.norm1.gain", 1, width);
  m.add("head.weight", width, 32);
  m.add("head.bias", 1, 32);
  return m;
}

void randomise(Model& model, std::mt19937_64& rng) {
  std::normal_distribution<float> normal;
  for (Parameter* p : model.params) {
    for (Eigen::Index k = 0; k < p->value.size(); ++k)
      p->value.data()[k] = normal(rng);
  }
}

bool bitwise_equal(const Mat& a, const Mat& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(Real) * a.size()) == 0;
}

std::string load_error(const fs::path& path, const ParameterList& params) {
  try {
    load_surrogate(path, params);
  } catch (const io::IoError& e) {
    return e.what();
  }
  ADD_FAILURE() << "load_surrogate did not fail";
  return "";
}

SurrogateFile sample_metadata() {
  SurrogateFile f;
  f.architecture = {{"grid_n", "64"}, {"patch", "4"}, {"width", "4"},
                    {"depth", "1"},   {"heads", "2"}, {"model", "vit"}};
  f.norm_mean = {0.125, -3.5};
  f.norm_std = {7.25, 1.0 / 3.0};
  f.provenance = {{"training_data", "runs/nature_a.h5 runs/nature_b.h5"},
                  {"seed", "12345"},
                  {"steps", "7000"},
                  {"final_train_loss", "0.0123"}};
  f.train_loss = {1.0, 0.5, 0.25, 0.1 + 1e-17};
  f.val_rmse_K = {6.8, 5.4};
  return f;
}

TEST(CheckpointPath, DotsBecomeGroups) {
  EXPECT_EQ(checkpoint_path_of("blocks.3.attn.qkv.weight"), "blocks/3/attn/qkv/weight");
  EXPECT_EQ(checkpoint_path_of("pos_embed"), "pos_embed");
  EXPECT_THROW(checkpoint_path_of("a..b"), std::invalid_argument);
  EXPECT_THROW(checkpoint_path_of("a/b"), std::invalid_argument);
  EXPECT_THROW(checkpoint_path_of("training.x"), std::invalid_argument);
}

TEST(SurrogateCheckpoint, RoundTripIsBitwiseExactForParametersAndOptimizerState) {
  const fs::path path = test_dir() / "vit.h5";
  std::mt19937_64 rng(logged_seed());
  Model a = small_vit();
  randomise(a, rng);
  // Values that a lossy path would change: a subnormal, -0, the largest float.
  a.params[0]->value(0, 0) = std::numeric_limits<float>::denorm_min();
  a.params[0]->value(0, 1) = -0.0f;
  a.params[0]->value(0, 2) = std::numeric_limits<float>::max();
  AdamWSettings s;
  s.warmup_steps = 2;
  AdamW opt_a(a.params, s);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 3; ++i) {
    for (Parameter* p : a.params) {
      for (Eigen::Index k = 0; k < p->grad.size(); ++k)
        p->grad.data()[k] = normal(rng);
    }
    opt_a.clip_gradients();
    opt_a.step();
  }
  save_surrogate(path, a.params, sample_metadata(), &opt_a);

  Model b = small_vit();
  AdamW opt_b(b.params, s);
  const SurrogateFile f = load_surrogate(path, b.params, &opt_b);
  EXPECT_TRUE(f.has_optimizer_state);
  EXPECT_EQ(opt_b.steps(), 3);
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(a.params[i]->value, b.params[i]->value)) << a.params[i]->name;
    EXPECT_TRUE(bitwise_equal(opt_a.m()[i], opt_b.m()[i])) << "m of " << a.params[i]->name;
    EXPECT_TRUE(bitwise_equal(opt_a.v()[i], opt_b.v()[i])) << "v of " << a.params[i]->name;
  }

  // Resuming continues exactly where the saved run would have gone.
  for (std::size_t i = 0; i < a.params.size(); ++i)
    b.params[i]->grad = a.params[i]->grad;
  opt_a.step();
  opt_b.step();
  for (std::size_t i = 0; i < a.params.size(); ++i)
    EXPECT_TRUE(bitwise_equal(a.params[i]->value, b.params[i]->value)) << a.params[i]->name;
}

TEST(SurrogateCheckpoint, ArchitectureNormalisationAndProvenanceRoundTrip) {
  const fs::path path = test_dir() / "vit.h5";
  Model a = small_vit();
  const SurrogateFile saved = sample_metadata();
  save_surrogate(path, a.params, saved);

  EXPECT_EQ(read_surrogate_architecture(path), saved.architecture);
  Model b = small_vit();
  AdamW opt(b.params, AdamWSettings{});
  const SurrogateFile f = load_surrogate(path, b.params, &opt);
  EXPECT_EQ(f.architecture, saved.architecture);
  EXPECT_EQ(f.norm_mean, saved.norm_mean);
  EXPECT_EQ(f.norm_std, saved.norm_std);
  EXPECT_EQ(f.provenance, saved.provenance);
  EXPECT_EQ(f.train_loss, saved.train_loss);
  EXPECT_EQ(f.val_rmse_K, saved.val_rmse_K);
  EXPECT_FALSE(f.has_optimizer_state);
  EXPECT_EQ(opt.steps(), 0);  // nothing to restore: the optimizer stays fresh
}

TEST(SurrogateCheckpoint, FileKindIsSurrogateAndNoTemporaryIsLeft) {
  const fs::path dir = test_dir();
  Model a = small_vit();
  save_surrogate(dir / "vit.h5", a.params, sample_metadata());
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "vit.h5");
  }
  EXPECT_EQ(entries, 1);
  const io::File file = io::File::open_read(dir / "vit.h5");
  EXPECT_EQ(file.string_attribute("file_kind"), "surrogate");
  EXPECT_TRUE(file.has_attribute("rtda_version"));
  EXPECT_EQ(file.open_dataset("blocks/0/attn/qkv/weight").dims(), (std::vector<hsize_t>{4, 12}));
}

TEST(SurrogateCheckpoint, WrongShapeNamesFileParameterAndBothShapes) {
  const fs::path path = test_dir() / "vit.h5";
  std::mt19937_64 rng(logged_seed());
  Model a = small_vit(4);
  save_surrogate(path, a.params, sample_metadata());
  Model b = small_vit(8);
  randomise(b, rng);
  const Mat before = b.params[0]->value;
  const std::string error = load_error(path, b.params);
  EXPECT_NE(error.find("vit.h5"), std::string::npos) << error;
  EXPECT_NE(error.find("blocks/0/attn/qkv/weight: shape 4x12, expected 8x24"), std::string::npos)
      << error;
  EXPECT_EQ(error.find("head/bias"), std::string::npos) << error;  // 1x32 still matches
  EXPECT_NE(error.find("head/weight: shape 4x32, expected 8x32"), std::string::npos) << error;
  EXPECT_TRUE(bitwise_equal(b.params[0]->value, before)) << "a failed load changed the model";
}

TEST(SurrogateCheckpoint, MissingAndExtraParametersAreBothNamed) {
  const fs::path path = test_dir() / "vit.h5";
  Model a = small_vit();
  a.add("blocks.1.mlp.fc1.weight", 4, 16);
  save_surrogate(path, a.params, sample_metadata());

  Model b = small_vit();
  b.add("head.norm.gain", 1, 4);
  b.add("cls_token", 1, 4);
  const std::string error = load_error(path, b.params);
  EXPECT_NE(error.find("vit.h5"), std::string::npos) << error;
  EXPECT_NE(error.find("missing: head/norm/gain, cls_token"), std::string::npos) << error;
  EXPECT_NE(error.find("extra: blocks/1/mlp/fc1/weight"), std::string::npos) << error;
}

TEST(SurrogateCheckpoint, OptimizerStateOfAnotherShapeIsNamed) {
  const fs::path path = test_dir() / "vit.h5";
  Model a = small_vit();
  AdamW opt_a(a.params, AdamWSettings{});
  save_surrogate(path, a.params, sample_metadata(), &opt_a);
  // Moments saved for a model whose head.bias was 1x32; this optimizer's is 1x16.
  Model b = small_vit();
  Model other = small_vit();
  other.params.back()->value = Mat::Zero(1, 16);
  other.params.back()->grad = Mat::Zero(1, 16);
  AdamW opt_b(other.params, AdamWSettings{});
  try {
    load_surrogate(path, b.params, &opt_b);
    FAIL() << "expected io::IoError";
  } catch (const io::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer/m/head/bias: shape 1x32, expected 1x16"),
              std::string::npos)
        << e.what();
  }
}

TEST(SurrogateCheckpoint, RejectsAFileOfAnotherKind) {
  const fs::path path = test_dir() / "state.h5";
  {
    io::File f = io::File::create(path);
    io::write_file_kind(f, "state");
    f.close();
  }
  Model m = small_vit();
  EXPECT_THROW(load_surrogate(path, m.params), io::IoError);
  EXPECT_THROW(read_surrogate_architecture(path), io::IoError);
}

TEST(SurrogateCheckpoint, OpensWithH5py) {
  const char* python = "/usr/bin/python3";
  if (std::system((std::string(python) + " -c 'import h5py' >/dev/null 2>&1").c_str()) != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with h5py is not available; h5py compatibility unchecked";
  }
  const fs::path dir = test_dir();
  const fs::path path = dir / "vit.h5";
  Model a = small_vit();
  a.params[3]->value(1, 2) = 0.75f;
  AdamW opt(a.params, AdamWSettings{});
  save_surrogate(path, a.params, sample_metadata(), &opt);
  const fs::path script = dir / "check.py";
  std::ofstream(script) << R"PY(import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["file_kind"] in ("surrogate", b"surrogate"), f.attrs["file_kind"]
    w = f["blocks/0/attn/qkv/weight"]
    assert w.dtype == np.float32 and w.shape == (4, 12), (w.dtype, w.shape)
    assert w[1, 2] == np.float32(0.75)
    assert f["head/bias"].shape == (1, 32)
    assert list(f.attrs["norm_mean"]) == [0.125, -3.5]
    assert f["training"].attrs["seed"] in ("12345", b"12345")
    assert f["optimizer"].attrs["steps"] == 0
    assert f["optimizer/v/pos_embed"].shape == (16, 4)
    assert len(f["training/val_rmse_K"]) == 2
)PY";
  const std::string cmd = std::string(python) + " " + script.string() + " " + path.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace rtda::surrogate
