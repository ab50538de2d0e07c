// Checkpoints of the cycling ensemble (io/checkpoint.hpp): the ensemble, the EnSF spread
// target and the online-adapted surrogate's state come back exactly, and a plain ensemble
// file is not taken for a checkpoint.
#include "io/checkpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "io/fields.hpp"
#include "io/hdf5_file.hpp"

namespace fs = std::filesystem;
using rtda::io::Checkpoint;

namespace {

class CheckpointFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rtda-checkpoint-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

Checkpoint sample() {
  Checkpoint c;
  c.params.N = 8;
  c.params.dt_s = 600.0;
  c.cycle = 17;
  c.time_seconds = 43200.0 * 17;
  c.members = 3;
  const std::size_t n = c.params.state_size();
  for (std::size_t i = 0; i < 3 * n; ++i)
    c.q.push_back(std::sin(0.1 * static_cast<double>(i)) * 1000.0);
  c.ensf_initial_spread.assign(n, 250.0);
  c.ensf_initial_spread[5] = std::numeric_limits<double>::quiet_NaN();
  c.config_hash = "0123456789abcdef";
  c.surrogate_online.arrays["current"] = {1.5f, -2.25f, 3.0e-8f};
  c.surrogate_online.arrays["buffer_x"] = {};
  c.surrogate_online.doubles["previous"] = {0.1, 1.0 / 3.0, -7.0e300};
  c.surrogate_online.attributes["version"] = "12";
  c.surrogate_online.attributes["lr_scale"] = "0.25";
  return c;
}

}  // namespace

TEST_F(CheckpointFile, RoundTripsTheEnsembleAndTheOnlineSurrogateExactly) {
  const Checkpoint c = sample();
  const fs::path path = dir_ / "checkpoint-00000017.h5";
  rtda::io::write_checkpoint(path, c);
  const Checkpoint r = rtda::io::read_checkpoint(path);
  EXPECT_EQ(r.cycle, 17);
  EXPECT_EQ(r.members, 3);
  EXPECT_EQ(r.q, c.q);
  EXPECT_EQ(r.config_hash, c.config_hash);
  ASSERT_EQ(r.ensf_initial_spread.size(), c.ensf_initial_spread.size());
  EXPECT_TRUE(std::isnan(r.ensf_initial_spread[5]));
  EXPECT_EQ(r.ensf_initial_spread[0], 250.0);
  EXPECT_EQ(r.surrogate_online.arrays, c.surrogate_online.arrays);
  EXPECT_EQ(r.surrogate_online.doubles, c.surrogate_online.doubles);
  EXPECT_EQ(r.surrogate_online.attributes, c.surrogate_online.attributes);
}

TEST_F(CheckpointFile, WithoutAnAdaptingSurrogateThereIsNoSurrogateGroup) {
  Checkpoint c = sample();
  c.surrogate_online = {};
  const fs::path path = dir_ / "plain.h5";
  rtda::io::write_checkpoint(path, c);
  EXPECT_TRUE(rtda::io::read_checkpoint(path).surrogate_online.empty());
  rtda::io::File f = rtda::io::File::open_read(path);
  EXPECT_FALSE(f.has("surrogate_online"));
}

TEST_F(CheckpointFile, AnEnsembleFileIsNotACheckpoint) {
  const Checkpoint c = sample();
  const fs::path path = dir_ / "ensemble.h5";
  rtda::io::write_ensemble(path, c.params, c.time_seconds, c.members, c.q, {});
  try {
    rtda::io::read_checkpoint(path);
    FAIL() << "an ensemble file was read as a checkpoint";
  } catch (const rtda::io::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cycle"), std::string::npos) << e.what();
  }
}
