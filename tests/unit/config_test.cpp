#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "config/config.hpp"

namespace rtda::config {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

std::string error_of(const std::optional<std::string>& path, std::vector<std::string> sets) {
  try {
    load(path, sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsAreThePaperConfiguration) {
  const Config c = load(std::nullopt);
  EXPECT_EQ(c.model.sqg.N, 64);
  EXPECT_EQ(c.model.sqg.dt_s, 1200.0);
  EXPECT_EQ(c.model.sqg.diff_efold_s, 86400.0);
  EXPECT_EQ(c.model.sqg.dynamics, sqg::Dynamics::kSqgturb);
  EXPECT_EQ(c.nature.seed, 42u);
}

TEST(Config, SettingNPicksItsReferencePreset) {
  const Config c = load(std::nullopt, {"model.N=256"});
  EXPECT_EQ(c.model.sqg.dt_s, 90.0);
  EXPECT_EQ(c.model.sqg.diff_efold_s, 5400.0);
  // An explicit key still wins over the preset.
  const Config d = load(std::nullopt, {"model.N=128", "model.dt_s=300"});
  EXPECT_EQ(d.model.sqg.dt_s, 300.0);
  EXPECT_EQ(d.model.sqg.diff_efold_s, 8 * 3600.0);
}

TEST(Config, FileThenOverridesInOrder) {
  const auto path =
      write_temp("rtda_cfg_a.toml", "[model]\ndynamics = \"exact\"\nU_ms = 20\ntdiab_s = inf\n");
  const Config c = load(path, {"model.U_ms=25.5"});
  EXPECT_EQ(c.model.sqg.dynamics, sqg::Dynamics::kExact);
  EXPECT_EQ(c.model.sqg.U_ms, 25.5);
  EXPECT_TRUE(std::isinf(c.model.sqg.tdiab_s));
  // A bare word is a string value: no quotes needed on the command line.
  EXPECT_EQ(load(std::nullopt, {"model.dynamics=exact"}).model.sqg.dynamics, sqg::Dynamics::kExact);
}

TEST(Config, UnknownKeysAndBadValuesAreRejectedWithTheirName) {
  const auto path = write_temp("rtda_cfg_b.toml", "[model]\nNN = 3\n");
  const std::string e1 = error_of(path, {});
  EXPECT_NE(e1.find("model.NN"), std::string::npos) << e1;
  EXPECT_NE(e1.find("rtda_cfg_b.toml"), std::string::npos) << e1;
  const std::string e2 = error_of(std::nullopt, {"model.dynamics=fast"});
  EXPECT_NE(e2.find("model.dynamics"), std::string::npos) << e2;
  EXPECT_NE(e2.find("fast"), std::string::npos) << e2;
  EXPECT_NE(error_of(std::nullopt, {"model.N=63"}).find("model.N"), std::string::npos);
  EXPECT_NE(error_of(std::nullopt, {"model.N=abc"}).find("integer"), std::string::npos);
  EXPECT_NE(error_of(std::nullopt, {"nature.interval_hours=0.1"}).find("interval_hours"),
            std::string::npos);
  EXPECT_NE(error_of(std::nullopt, {"nosuch.key=1"}).find("nosuch.key"), std::string::npos);
  EXPECT_NE(error_of(std::nullopt, {"model.N"}).find("section.key=value"), std::string::npos);
  const auto bad_syntax = write_temp("rtda_cfg_c.toml", "[model\nN = 3\n");
  EXPECT_NE(error_of(bad_syntax, {}).find("rtda_cfg_c.toml:1"), std::string::npos);
}

TEST(Config, EffectiveConfigRoundTripsThroughToml) {
  const Config c =
      load(std::nullopt, {"model.N=128", "model.dynamics=exact", "observe.error_sd=2"});
  const auto path = write_temp("rtda_cfg_d.toml", to_toml(c));
  const Config d = load(path, {});
  EXPECT_EQ(to_toml(c), to_toml(d));
  EXPECT_EQ(d.model.sqg.N, 128);
  EXPECT_EQ(*d.observe.error_sd, 2.0);
}

TEST(Config, StringsWithQuotesBackslashesAndControlCharactersRoundTripThroughToml) {
  Config c = load(std::nullopt, {});
  c.server.data_dir = "C:\\data \"quoted\"\tand\na new line";
  c.experiment.nature_file = "/n\\a\\t\\u";
  const Config d = load_text(to_toml(c), "(round trip)");
  EXPECT_EQ(d.server.data_dir, c.server.data_dir);
  EXPECT_EQ(d.experiment.nature_file, c.experiment.nature_file);
  EXPECT_EQ(to_toml(c), to_toml(d));
}

TEST(Config, ReferenceDocumentsEveryKey) {
  const std::string md = reference_markdown();
  for (const char* key : {"model.dynamics", "model.N", "nature.seed", "observe.seed"}) {
    EXPECT_NE(md.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace rtda::config

namespace rtda::config {
namespace {

TEST(Config, EnsfModeSelectsItsDefaultsBeforeExplicitKeys) {
  const Config paper = load(std::nullopt);
  EXPECT_EQ(paper.ensf.eps_alpha, 0.05);
  const Config std_mode = load(std::nullopt, {"ensf.eps_beta=0.1", "ensf.mode=standard"});
  EXPECT_EQ(std_mode.ensf.mode, filters::EnsfMode::kStandard);
  EXPECT_EQ(std_mode.ensf.eps_alpha, 0.5);  // the standard mode's default
  EXPECT_EQ(std_mode.ensf.eps_beta, 0.1);   // explicit key wins, whatever its position
}

TEST(Config, SignedAndUnsignedIntegersAreRangeChecked) {
  EXPECT_EQ(load(std::nullopt, {"ensemble.climatology_index=-1"}).ensemble.climatology_index, -1);
  EXPECT_NE(error_of(std::nullopt, {"nature.seed=-1"}).find("non-negative"), std::string::npos);
  EXPECT_NE(error_of(std::nullopt, {"letkf.rtps=2"}).find("letkf.rtps"), std::string::npos);
  EXPECT_NE(error_of(std::nullopt, {"ensemble.members=1"}).find("ensemble.members"),
            std::string::npos);
}

}  // namespace
}  // namespace rtda::config
