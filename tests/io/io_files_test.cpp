// rtda's user-facing files (docs/architecture.md §7): round trips are exact, and every read error
// names the file, the variable and what was expected.
#include <gtest/gtest.h>

#include <unistd.h>
#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "io/conventions.hpp"
#include "io/fields.hpp"
#include "io/hdf5_file.hpp"
#include "io/observations_file.hpp"

namespace rtda::io {
namespace {

namespace fs = std::filesystem;

sqg::SqgParams small_params(int n = 8) {
  sqg::SqgParams p;
  p.N = n;
  p.dt_s = 600.0;
  return p;
}

class IoFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("rtda_io_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Fresh random inputs each run; the seed is logged so a failure can be replayed.
    seed_ = std::random_device{}();
    RecordProperty("seed", std::to_string(seed_));
    std::cout << "seed = " << seed_ << "\n";
    rng_.seed(seed_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<double> random_values(std::size_t n) {
    std::normal_distribution<double> normal(0.0, 10.0);
    std::vector<double> v(n);
    for (double& x : v)
      x = normal(rng_);
    return v;
  }

  // Names of everything in the test directory, to see that no temporary was left behind.
  std::vector<std::string> dir_listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_))
      names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

// Expects `f` to throw IoError whose message contains every one of `parts`.
template <class F>
void expect_io_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    for (const auto& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message: " << e.what() << "\nlacks: " << part;
    }
  }
}

// ---- state and ensemble ------------------------------------------------------------------

TEST_F(IoFiles, StateRoundTripIsExact) {
  const auto p = small_params();
  const auto q = random_values(p.state_size());
  const fs::path path = dir_ / "state.h5";
  write_state(path, p, 43200.0, q, {{"created_by", "io test"}});

  const FieldFile f = read_fields(path);
  EXPECT_EQ(f.members, 0);
  EXPECT_EQ(f.time_seconds, 43200.0);
  EXPECT_EQ(f.q, q);
  EXPECT_EQ(f.params.N, 8);
  EXPECT_EQ(f.provenance.at("created_by"), "io test");
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"state.h5"});
}

TEST_F(IoFiles, EnsembleRoundTripIsExact) {
  const auto p = small_params();
  const int members = 5;
  const auto q = random_values(std::size_t(members) * p.state_size());
  const fs::path path = dir_ / "ensemble.h5";
  write_ensemble(path, p, -3600.0, members, q);

  const FieldFile f = read_fields(path);
  EXPECT_EQ(f.members, members);
  EXPECT_EQ(f.time_seconds, -3600.0);
  EXPECT_EQ(f.q, q);
  EXPECT_EQ(f.member(4)[0], q[4 * p.state_size()]);
}

TEST_F(IoFiles, EveryModelParameterRoundTrips) {
  sqg::SqgParams p = small_params(16);
  p.L_m = 1.25e7;
  p.H_m = 9.0e3;
  p.U_ms = 20.0;
  p.f_per_s = 1.2e-4;
  p.nsq_per_s2 = 1.1e-4;
  p.g_ms2 = 9.81;
  p.theta0_K = 290.0;
  p.tdiab_s = std::numeric_limits<double>::infinity();  // relaxation off must survive
  p.ekman_r_ms = 1e-3;
  p.diff_order = 4;
  p.diff_efold_s = 7200.0;
  p.dt_s = 300.0;
  p.symmetric = false;
  p.dealias = false;
  p.advection = false;
  p.dynamics = sqg::Dynamics::kExact;
  const fs::path path = dir_ / "state.h5";
  write_state(path, p, 0.0, std::vector<double>(p.state_size(), 1.0));

  const sqg::SqgParams r = read_params(path);
  EXPECT_EQ(r.N, p.N);
  EXPECT_EQ(r.L_m, p.L_m);
  EXPECT_EQ(r.H_m, p.H_m);
  EXPECT_EQ(r.U_ms, p.U_ms);
  EXPECT_EQ(r.f_per_s, p.f_per_s);
  EXPECT_EQ(r.nsq_per_s2, p.nsq_per_s2);
  EXPECT_EQ(r.g_ms2, p.g_ms2);
  EXPECT_EQ(r.theta0_K, p.theta0_K);
  EXPECT_EQ(r.tdiab_s, p.tdiab_s);
  EXPECT_EQ(r.ekman_r_ms, p.ekman_r_ms);
  EXPECT_EQ(r.diff_order, p.diff_order);
  EXPECT_EQ(r.diff_efold_s, p.diff_efold_s);
  EXPECT_EQ(r.dt_s, p.dt_s);
  EXPECT_EQ(r.symmetric, p.symmetric);
  EXPECT_EQ(r.dealias, p.dealias);
  EXPECT_EQ(r.advection, p.advection);
  EXPECT_EQ(r.dynamics, p.dynamics);
}

TEST_F(IoFiles, ProvenanceRoundTripsAndGainsVersion) {
  const auto p = small_params();
  const fs::path path = dir_ / "state.h5";
  const Provenance given = {{"created_by", "rtda nature"}, {"history", ""}, {"note", "π ≈ 3.14"}};
  write_state(path, p, 0.0, std::vector<double>(p.state_size()), given);

  const Provenance read = read_fields(path).provenance;
  for (const auto& [k, v] : given)
    EXPECT_EQ(read.at(k), v) << k;
  EXPECT_TRUE(read.contains("rtda_version"));
}

TEST_F(IoFiles, ReservedProvenanceNameIsRejected) {
  const auto p = small_params();
  const fs::path path = dir_ / "state.h5";
  expect_io_error(
      [&] {
        write_state(path, p, 0.0, std::vector<double>(p.state_size()), {{"N", "12"}});
      },
      {"state.h5", "attribute \"N\"", "reserved"});
  EXPECT_TRUE(dir_listing().empty()) << "a failed write leaves nothing behind";
}

TEST_F(IoFiles, FailedWriteLeavesPreviousFileIntact) {
  const auto p = small_params();
  const fs::path path = dir_ / "state.h5";
  const auto q = random_values(p.state_size());
  write_state(path, p, 1.0, q);
  expect_io_error([&] { write_state(path, p, 2.0, std::vector<double>(7)); },
                  {"state.h5", "variable \"q\"", "given 7 values, expected 128"});
  EXPECT_EQ(read_fields(path).q, q);
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"state.h5"});
}

TEST_F(IoFiles, OverwriteReplacesFile) {
  const auto p = small_params();
  const fs::path path = dir_ / "state.h5";
  write_state(path, p, 1.0, random_values(p.state_size()));
  const auto q = random_values(p.state_size());
  write_state(path, p, 2.0, q);
  EXPECT_EQ(read_fields(path).q, q);
  EXPECT_EQ(read_fields(path).time_seconds, 2.0);
}

// ---- read errors -------------------------------------------------------------------------

TEST_F(IoFiles, MissingFileIsNamed) {
  expect_io_error([&] { read_fields(dir_ / "nope.h5"); }, {"nope.h5", "does not exist"});
}

TEST_F(IoFiles, NonHdf5FileIsNamed) {
  const fs::path path = dir_ / "text.h5";
  std::ofstream(path) << "not hdf5\n";
  expect_io_error([&] { read_fields(path); }, {"text.h5", "not an HDF5"});
}

// Writes a file with valid model attributes and one variable `q` of the given shape.
void write_custom_q(const fs::path& path, const sqg::SqgParams& p, std::vector<hsize_t> dims,
                    std::string_view units) {
  File file = File::create(path);
  write_model_attributes(file, p);
  file.set_attribute("time_seconds", 0.0);
  {
    Dataset q = file.create_dataset<double>("q", dims);
    if (!units.empty()) q.set_units(units, "test");
  }
  file.close();
}

TEST_F(IoFiles, WrongRankNamesFileAndVariable) {
  const auto p = small_params();
  const fs::path path = dir_ / "rank2.h5";
  write_custom_q(path, p, {8, 8}, "m s-1");
  expect_io_error([&] { read_fields(path); },
                  {"rank2.h5", "variable \"q\"", "expected rank 3", "found rank 2"});
}

TEST_F(IoFiles, WrongUnitsNamesFileAndVariable) {
  const auto p = small_params();
  const fs::path path = dir_ / "kelvin.h5";
  write_custom_q(path, p, {2, 8, 8}, "K");
  expect_io_error([&] { read_fields(path); },
                  {"kelvin.h5", "variable \"q\"", "expected units \"m s-1\", found \"K\""});
}

TEST_F(IoFiles, MissingUnitsNamesFileAndVariable) {
  const auto p = small_params();
  const fs::path path = dir_ / "nounits.h5";
  write_custom_q(path, p, {2, 8, 8}, "");
  expect_io_error([&] { read_fields(path); },
                  {"nounits.h5", "variable \"q\"", "attribute \"units\": missing"});
}

TEST_F(IoFiles, ShapeDisagreeingWithFileNIsRejected) {
  const auto p = small_params();
  const fs::path path = dir_ / "shape.h5";
  write_custom_q(path, p, {2, 16, 16}, "m s-1");
  expect_io_error([&] { read_fields(path); },
                  {"shape.h5", "variable \"q\"", "does not match the file's N = 8"});
}

TEST_F(IoFiles, WrongResolutionVersusRunIsRejected) {
  const auto p = small_params(32);
  const fs::path path = dir_ / "n32.h5";
  write_state(path, p, 0.0, std::vector<double>(p.state_size()));
  const FieldFile f = read_fields(path);
  expect_io_error([&] { check_compatible(f, small_params(64), path); },
                  {"n32.h5", "q has N = 32, expected 64"});
  sqg::SqgParams other_l = p;
  other_l.L_m = 1e7;
  expect_io_error([&] { check_compatible(f, other_l, path); }, {"n32.h5", "q has L ="});
  EXPECT_NO_THROW(check_compatible(f, p, path));
}

TEST_F(IoFiles, MissingVariableNamesFileVariableAndExpectation) {
  const auto p = small_params();
  const fs::path path = dir_ / "noq.h5";
  {
    File file = File::create(path);
    write_model_attributes(file, p);
    file.close();
  }
  expect_io_error([&] { read_fields(path); },
                  {"noq.h5", "variable \"q\"", "missing (expected boundary PV"});
}

TEST_F(IoFiles, FileOfAnotherKindIsNamed) {
  const auto p = small_params();
  const fs::path path = dir_ / "obs.h5";
  write_observations(path, obs::ObservationSet{}, p);
  expect_io_error(
      [&] { read_fields(path); },
      {"obs.h5", "file_kind is \"observation_set\", expected \"state\" or \"ensemble\""});
  expect_io_error([&] { read_nature(path); }, {"obs.h5", "expected \"nature_run\""});
}

TEST_F(IoFiles, MissingModelAttributeIsNamed) {
  const fs::path path = dir_ / "noattrs.h5";
  {
    File file = File::create(path);
    file.close();
  }
  expect_io_error([&] { read_fields(path); }, {"noattrs.h5", "attribute \"N\": missing"});
}

TEST_F(IoFiles, UnusableModelAttributeIsNamed) {
  const fs::path path = dir_ / "badN.h5";
  const auto p = small_params();
  write_custom_q(path, p, {2, 8, 8}, "m s-1");
  {
    File file = File::open_read_write(path);
    file.set_attribute<std::int32_t>("N", 7);
    file.close();
  }
  expect_io_error([&] { read_fields(path); }, {"badN.h5", "model.N = 7"});
}

// ---- nature run --------------------------------------------------------------------------

TEST_F(IoFiles, NatureRunRoundTripIsExact) {
  const auto p = small_params();
  const fs::path path = dir_ / "nature.h5";
  std::vector<double> times, q;
  {
    NatureWriter writer(path, p, {{"created_by", "io test"}});
    for (int k = 0; k < 6; ++k) {
      const auto state = random_values(p.state_size());
      writer.append(k * 43200.0, state);
      times.push_back(k * 43200.0);
      q.insert(q.end(), state.begin(), state.end());
    }
    EXPECT_FALSE(fs::exists(path)) << "the final name appears only on close";
    EXPECT_TRUE(fs::exists(dir_ / "nature.h5.partial"));
    writer.close();
  }
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"nature.h5"});
  const NatureRun run = read_nature(path);
  EXPECT_EQ(run.times_seconds, times);
  EXPECT_EQ(run.q, q);
  EXPECT_EQ(run.provenance.at("created_by"), "io test");
  EXPECT_EQ(read_nature_times(path), times);
}

TEST_F(IoFiles, NatureRunRangeReadsThoseStates) {
  const auto p = small_params();
  const fs::path path = dir_ / "nature.h5";
  std::vector<std::vector<double>> states;
  NatureWriter writer(path, p);
  for (int k = 0; k < 5; ++k) {
    states.push_back(random_values(p.state_size()));
    writer.append(100.0 + k, states.back());
  }
  writer.close();

  const NatureRun run = read_nature(path, IndexRange{2, 4});
  ASSERT_EQ(run.size(), 2u);
  EXPECT_EQ(run.first_index, 2u);
  EXPECT_EQ(run.times_seconds, (std::vector<double>{102.0, 103.0}));
  EXPECT_TRUE(std::ranges::equal(run.state(0), states[2]));
  EXPECT_TRUE(std::ranges::equal(run.state(1), states[3]));
  expect_io_error(
      [&] {
        read_nature(path, IndexRange{3, 9});
      },
      {"nature.h5", "variable \"q\"", "asked for states [3, 9), the file holds 5"});
}

TEST_F(IoFiles, NatureWriterRejectsTimeThatDoesNotIncrease) {
  const auto p = small_params();
  NatureWriter writer(dir_ / "nature.h5", p);
  writer.append(10.0, std::vector<double>(p.state_size()));
  expect_io_error([&] { writer.append(10.0, std::vector<double>(p.state_size())); },
                  {"nature.h5.partial", "variable \"time\"", "append at time 10 s"});
}

TEST_F(IoFiles, AbandonedNatureRunKeepsReadablePartialFile) {
  const auto p = small_params();
  const auto state = random_values(p.state_size());
  {
    NatureWriter writer(dir_ / "nature.h5", p);
    writer.append(0.0, state);
    writer.append(1.0, state);
    // No close(): as if the run died.
  }
  EXPECT_FALSE(fs::exists(dir_ / "nature.h5"));
  const NatureRun run = read_nature(dir_ / "nature.h5.partial");
  EXPECT_EQ(run.size(), 2u);
  EXPECT_TRUE(std::ranges::equal(run.state(1), state));
}

TEST_F(IoFiles, NatureRunWithNoStatesRoundTrips) {
  const auto p = small_params();
  NatureWriter writer(dir_ / "nature.h5", p);
  writer.close();
  EXPECT_EQ(read_nature(dir_ / "nature.h5").size(), 0u);
}

// ---- observations ------------------------------------------------------------------------

obs::ObservationSet sample_observations(const sqg::SqgParams& p, std::mt19937_64& rng,
                                        std::size_t n, std::size_t cycles) {
  obs::ObservationSet set;
  set.experiment = "io-test";
  set.seed = 0xFEEDFACECAFEBEEFull;  // above 2^63: uint64 must survive
  std::uniform_real_distribution<double> pos(0.0, p.L_m);
  std::normal_distribution<double> normal;
  for (std::size_t i = 0; i < n; ++i) {
    set.push_back(obs::Observation{
        .time_seconds = 43200.0 * double(i % 3),
        .level = std::int32_t(i % 2),
        .x_m = pos(rng),
        .y_m = pos(rng),
        .value = normal(rng),
        .error_sd = 0.5 + double(i) / 8.0,
        .op = static_cast<obs::ObsOperator>(i % 3),
        .id = (std::uint64_t{1} << 63) + i,
    });
  }
  for (std::size_t c = 0; c < cycles; ++c) {
    set.cycle_time_seconds.push_back(43200.0 * double(c));
    set.shock_sd.push_back(c == 1 ? 2.5 : 0.0);
  }
  return set;
}

void expect_same(const obs::ObservationSet& a, const obs::ObservationSet& b) {
  EXPECT_EQ(a.experiment, b.experiment);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.time_seconds, b.time_seconds);
  EXPECT_EQ(a.level, b.level);
  EXPECT_EQ(a.x_m, b.x_m);
  EXPECT_EQ(a.y_m, b.y_m);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.error_sd, b.error_sd);
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.cycle_time_seconds, b.cycle_time_seconds);
  EXPECT_EQ(a.shock_sd, b.shock_sd);
  EXPECT_EQ(a.shock, b.shock);
}

TEST_F(IoFiles, ObservationSetRoundTripIsExact) {
  const auto p = small_params();
  obs::ObservationSet set = sample_observations(p, rng_, 50, 3);
  set.shock.assign(3 * p.state_size(), 0.0);
  const auto shock = random_values(p.state_size());
  std::copy(shock.begin(), shock.end(), set.shock.begin() + p.state_size());
  const fs::path path = dir_ / "obs.h5";
  write_observations(path, set, p, {{"created_by", "io test"}});

  const ObservationFile f = read_observations(path);
  expect_same(f.set, set);
  EXPECT_EQ(f.params.N, p.N);
  EXPECT_EQ(f.provenance.at("created_by"), "io test");
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"obs.h5"});
}

TEST_F(IoFiles, ObservationSetWithoutShockOrObservationsRoundTrips) {
  const auto p = small_params();
  const fs::path path = dir_ / "obs.h5";
  const obs::ObservationSet set = sample_observations(p, rng_, 0, 0);
  write_observations(path, set, p);
  expect_same(read_observations(path).set, set);

  const obs::ObservationSet no_shock = sample_observations(p, rng_, 7, 2);
  write_observations(path, no_shock, p);
  expect_same(read_observations(path).set, no_shock);
}

TEST_F(IoFiles, ObservationWriterReportsFirstBadRow) {
  const auto p = small_params();
  obs::ObservationSet set = sample_observations(p, rng_, 10, 1);
  set.level[4] = 2;
  set.level[6] = 3;
  const fs::path path = dir_ / "obs.h5";
  expect_io_error([&] { write_observations(path, set, p); },
                  {"obs.h5", "variable \"level\"", "row 4 has level = 2", "0 (surface) or 1"});
  EXPECT_TRUE(dir_listing().empty());
}

TEST_F(IoFiles, ObservationWriterRejectsUnequalColumns) {
  const auto p = small_params();
  obs::ObservationSet set = sample_observations(p, rng_, 10, 1);
  set.error_sd.pop_back();
  expect_io_error([&] { write_observations(dir_ / "obs.h5", set, p); },
                  {"obs.h5", "variable \"error_sd\"", "has 9 entries, expected 10"});
}

TEST_F(IoFiles, ObservationReaderReportsUnknownOperatorCode) {
  const auto p = small_params();
  const fs::path path = dir_ / "obs.h5";
  write_observations(path, sample_observations(p, rng_, 10, 1), p);
  {
    // Corrupt row 3 behind the writer's back, as a foreign tool might.
    File file = File::open_read_write(path);
    {
      Dataset op = file.open_dataset("operator");
      const std::int8_t bad = 7;
      op.write_slab<std::int8_t>({3}, {1}, std::span<const std::int8_t>(&bad, 1));
    }
    file.close();
  }
  expect_io_error([&] { read_observations(path); },
                  {"obs.h5", "variable \"operator\"", "row 3 has operator = 7"});
}

TEST_F(IoFiles, ObservationReaderNamesMissingColumn) {
  const auto p = small_params();
  const fs::path path = dir_ / "obs.h5";
  write_observations(path, sample_observations(p, rng_, 4, 1), p);
  {
    File file = File::open_read_write(path);
    ASSERT_GE(H5Ldelete(file.id(), "id", H5P_DEFAULT), 0);
    file.close();
  }
  expect_io_error([&] { read_observations(path); },
                  {"obs.h5", "variable \"id\"", "missing (expected observation ids"});
}

TEST_F(IoFiles, ObservationReaderNamesTheFirstColumnOfAnEmptyFile) {
  const auto p = small_params();
  const fs::path path = dir_ / "foreign.h5";  // no file_kind, as another tool might write
  {
    File file = File::create(path);
    write_model_attributes(file, p);
    file.close();
  }
  // experiment, seed and the per-cycle variables are optional; the columns are not.
  expect_io_error([&] { read_observations(path); }, {"foreign.h5", "variable \"time\": missing"});
}

TEST_F(IoFiles, ObservationColumnsAloneAreAFileWithTheRunsModel) {
  const auto p = small_params();
  const fs::path path = dir_ / "columns.h5";
  {
    File file = File::create(path);
    std::optional<Dataset> obs = write_pure_dimension(file, "obs", 2);
    const auto column = [&]<class T>(const char* name, std::vector<T> v, const char* units) {
      Dataset ds = file.create_dataset<T>(name, {2});
      if (*units) ds.set_units(units, name);
      ds.attach_scale(*obs, 0);
      ds.write(std::span<const T>(v));
    };
    column("time", std::vector<double>{1.0, 2.0}, "days since 2000-01-01T12:00:00Z");
    column("level", std::vector<std::int32_t>{0, 1}, "");
    column("x", std::vector<double>{0.5, 1.0}, "km");
    column("y", std::vector<double>{0.0, 2.0}, "km");
    column("value", std::vector<double>{3.0, 4.0}, "K");
    column("error_sd", std::vector<double>{1.0, 0.5}, "K");
    column("operator", std::vector<std::int8_t>{0, 0}, "");
    column("id", std::vector<std::int64_t>{7, 8}, "");
    obs.reset();
    file.close();
  }
  std::vector<std::string> warnings;
  RunDefaults run{FieldModel(p), [&](const std::string& w) { warnings.push_back(w); }};
  const ObservationFile f = read_observations(path, &run);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("N, L, H"), std::string::npos) << warnings[0];
  EXPECT_EQ(f.params.N, p.N);
  EXPECT_EQ(f.set.time_seconds, (std::vector<double>{1.5 * 86400, 2.5 * 86400}));
  EXPECT_EQ(f.set.x_m, (std::vector<double>{500.0, 1000.0}));
  EXPECT_EQ(f.set.id, (std::vector<std::uint64_t>{7, 8}));
  EXPECT_EQ(f.set.cycles(), 0u);
  EXPECT_TRUE(f.set.experiment.empty());
  // Without the run's model the missing attributes are an error naming one of them.
  expect_io_error([&] { read_observations(path); }, {"columns.h5", "\"N\""});
}

}  // namespace
}  // namespace rtda::io
