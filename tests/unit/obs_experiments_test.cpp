// The observation experiments of docs/science.md §2, checked against a small synthetic nature
// run held in memory: networks, ids and positions, operators, error statistics, the shock
// schedules and fields, and reproducibility from the seed.
//
// Statistical checks use fixed seeds, so each is deterministic; their bounds are 4 standard
// errors of the statistic, wide enough that a correct implementation passes for essentially
// any seed (two-sided p ≈ 6e-5 per check) and narrow enough to catch a wrong sd, a biased
// mean or a wrong shock probability.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/experiments.hpp"
#include "obs/observation_space.hpp"

namespace rtda::obs {
namespace {

constexpr std::uint64_t kNatureSeed = 20240611;  // the synthetic truth
constexpr std::uint64_t kObsSeed = 7;            // ObserveSettings::seed unless a test varies it
constexpr int kN = 8;
constexpr std::size_t kNN = std::size_t(kN) * kN;

// A nature run of `states` states of N = 8, q ~ N(0, 2000²) m/s (about the climatological
// spread), one state every 12 h starting at day 1.
io::NatureRun synthetic_nature(std::size_t states) {
  io::NatureRun run;
  run.params.N = kN;
  for (std::size_t c = 0; c < states; ++c)
    run.times_seconds.push_back(86400.0 + 43200.0 * double(c));
  run.q.resize(states * 2 * kNN);
  RandomStream(kNatureSeed, RandomPurpose::kTest).fill_normal(run.q, 0.0, 2000.0);
  return run;
}

ObserveSettings settings_with_seed(std::uint64_t seed) {
  ObserveSettings s;
  s.seed = seed;
  return s;
}

struct Moments {
  double mean = 0;
  double sd = 0;
  std::size_t n = 0;
};

Moments moments(const std::vector<double>& v) {
  Moments m;
  m.n = v.size();
  for (double x : v)
    m.mean += x;
  m.mean /= double(m.n);
  double ss = 0;
  for (double x : v)
    ss += (x - m.mean) * (x - m.mean);
  m.sd = std::sqrt(ss / double(m.n - 1));
  return m;
}

// Mean 0 and standard deviation sigma within 4 standard errors: se(mean) = sigma/sqrt(n),
// se(sd) ≈ sigma/sqrt(2n) for Gaussian samples.
void expect_gaussian(const std::vector<double>& v, double sigma) {
  const Moments m = moments(v);
  const double n = double(m.n);
  EXPECT_LT(std::abs(m.mean), 4 * sigma / std::sqrt(n)) << "mean of " << m.n << " errors";
  EXPECT_LT(std::abs(m.sd - sigma), 4 * sigma / std::sqrt(2 * n))
      << "sd of " << m.n << " errors, expected " << sigma;
}

// The grid point an observation id names: id = c·2N² + level·N² + j·N + i.
struct GridPoint {
  std::size_t cycle, level, j, i;
  std::size_t state_index() const { return level * kNN + j * kN + i; }
};
GridPoint decode(std::uint64_t id) {
  const std::size_t within = id % (2 * kNN);
  return {std::size_t(id / (2 * kNN)), within / kNN, (within % kNN) / kN, within % kN};
}

// value − h(truth [+ shock]) for every observation: the observation errors.
std::vector<double> errors_of(const ObservationSet& set, const io::NatureRun& nature,
                              bool include_shock) {
  const double s = nature.params.kelvin_per_pv();
  std::vector<double> e(set.size());
  for (std::size_t k = 0; k < set.size(); ++k) {
    const GridPoint g = decode(set.id[k]);
    double q = nature.state(g.cycle)[g.state_index()];
    if (include_shock && !set.shock.empty()) q += set.shock[g.cycle * 2 * kNN + g.state_index()];
    e[k] = set.value[k] - operator_value(set.op[k], q, s);
  }
  return e;
}

std::string error_of(const io::NatureRun& nature, Experiment e, const ObserveSettings& s) {
  try {
    make_observations(nature, e, s);
  } catch (const std::invalid_argument& ex) {
    return ex.what();
  }
  return "";
}

// ---- experiment definitions -----------------------------------------------------------------

TEST(ObsExperiments, DefinitionsFollowTheTableOfScienceMd) {
  EXPECT_EQ(definition(Experiment::kLinear).op, ObsOperator::kLinearK);
  EXPECT_EQ(definition(Experiment::kLinear).error_sd, 1.0);
  EXPECT_FALSE(definition(Experiment::kLinear).sparse);
  EXPECT_EQ(definition(Experiment::kLinearShocks).op, ObsOperator::kLinearK);
  EXPECT_EQ(definition(Experiment::kLinearShocks).error_sd, 1.0);
  EXPECT_FALSE(definition(Experiment::kLinearShocks).sparse);
  EXPECT_EQ(definition(Experiment::kArctan).op, ObsOperator::kArctan);
  EXPECT_EQ(definition(Experiment::kArctan).error_sd, 0.01);
  EXPECT_FALSE(definition(Experiment::kArctan).sparse);
  EXPECT_EQ(definition(Experiment::kSparseArctanShocks).op, ObsOperator::kArctan);
  EXPECT_EQ(definition(Experiment::kSparseArctanShocks).error_sd, 0.01);
  EXPECT_TRUE(definition(Experiment::kSparseArctanShocks).sparse);
}

TEST(ObsExperiments, NamesRoundTripAndAnUnknownNameIsRejectedByName) {
  for (auto e : {Experiment::kLinear, Experiment::kLinearShocks, Experiment::kArctan,
                 Experiment::kSparseArctanShocks}) {
    EXPECT_EQ(experiment_from_string(to_string(e)), e);
  }
  try {
    experiment_from_string("bogus");
    FAIL() << "\"bogus\" accepted";
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find("bogus"), std::string::npos) << ex.what();
  }
}

TEST(ObsExperiments, OperatorsAreKelvinScaleArctanAndIdentity) {
  const double s = sqg::SqgParams{}.kelvin_per_pv();
  EXPECT_DOUBLE_EQ(s, 1.0e-4 * 300.0 / 9.8);  // s = f·θ₀/g
  EXPECT_DOUBLE_EQ(operator_value(ObsOperator::kLinearK, 1500.0, s), 1500.0 * s);
  EXPECT_DOUBLE_EQ(operator_value(ObsOperator::kArctan, 1500.0, s), std::atan(1500.0 * s));
  EXPECT_EQ(operator_value(ObsOperator::kIdentity, 1500.0, s), 1500.0);
}

// ---- experiment 1: linear -------------------------------------------------------------------

TEST(LinearExperiment, ObservesEveryGridPointOfBothLevelsEveryCycleOnce) {
  const auto nature = synthetic_nature(5);
  const auto set = make_observations(nature, Experiment::kLinear, settings_with_seed(kObsSeed));
  ASSERT_EQ(set.size(), 5 * 2 * kNN);
  // The ids are exactly 0 .. C·2N² − 1: every (cycle, level, j, i) once.
  std::vector<std::uint64_t> ids = set.id;
  std::sort(ids.begin(), ids.end());
  std::vector<std::uint64_t> expected(ids.size());
  std::iota(expected.begin(), expected.end(), 0u);
  EXPECT_EQ(ids, expected);
}

TEST(LinearExperiment, EachObservationSitsAtTheGridPointAndTimeItsIdNames) {
  const auto nature = synthetic_nature(5);
  const auto set = make_observations(nature, Experiment::kLinear, settings_with_seed(kObsSeed));
  const double dx = nature.params.L_m / kN;
  for (std::size_t k = 0; k < set.size(); ++k) {
    const GridPoint g = decode(set.id[k]);
    ASSERT_EQ(set.level[k], int(g.level)) << "row " << k;
    ASSERT_EQ(set.x_m[k], double(g.i) * dx) << "row " << k;  // x = i·L/N
    ASSERT_EQ(set.y_m[k], double(g.j) * dx) << "row " << k;  // y = j·L/N
    ASSERT_EQ(set.time_seconds[k], nature.times_seconds[g.cycle]) << "row " << k;
    ASSERT_EQ(set.op[k], ObsOperator::kLinearK) << "row " << k;
    ASSERT_EQ(set.error_sd[k], 1.0) << "row " << k;
  }
  EXPECT_EQ(set.cycle_time_seconds, nature.times_seconds);
  EXPECT_EQ(set.experiment, "linear");
  EXPECT_EQ(set.seed, kObsSeed);
}

TEST(LinearExperiment, ValuesAreKelvinScaledTruthPlusUnitGaussianErrors) {
  const auto nature = synthetic_nature(50);  // 6400 observations
  const auto set = make_observations(nature, Experiment::kLinear, settings_with_seed(kObsSeed));
  const auto errors = errors_of(set, nature, /*include_shock=*/false);
  expect_gaussian(errors, 1.0);
  // The truth signal (s·q ≈ 6 K) must be in the values: errors are not the values themselves.
  EXPECT_GT(moments(set.value).sd, 5.0);
}

TEST(LinearExperiment, HasNoShocks) {
  const auto nature = synthetic_nature(40);
  const auto set = make_observations(nature, Experiment::kLinear, settings_with_seed(kObsSeed));
  EXPECT_EQ(set.shock_sd, std::vector<double>(40, 0.0));
  EXPECT_TRUE(set.shock.empty());
  for (std::uint64_t c = 0; c < 1000; ++c)
    ASSERT_EQ(shock_sd(Experiment::kLinear, kObsSeed, c), 0.0);
}

TEST(LinearExperiment, OutputPassesTheObservationFileValidation) {
  const auto nature = synthetic_nature(3);
  for (auto e : {Experiment::kLinear, Experiment::kLinearShocks, Experiment::kArctan,
                 Experiment::kSparseArctanShocks}) {
    const auto set = make_observations(nature, e, settings_with_seed(kObsSeed));
    EXPECT_NO_THROW(io::validate(set, nature.params, "in-memory")) << to_string(e);
  }
}

// ---- experiment 3: arctan -------------------------------------------------------------------

TEST(ArctanExperiment, ValuesAreArctanOfScaledTruthPlusErrorsOfSd0p01) {
  const auto nature = synthetic_nature(50);
  const auto set = make_observations(nature, Experiment::kArctan, settings_with_seed(kObsSeed));
  ASSERT_EQ(set.size(), 50 * 2 * kNN);
  for (std::size_t k = 0; k < set.size(); ++k) {
    ASSERT_EQ(set.op[k], ObsOperator::kArctan);
    ASSERT_EQ(set.error_sd[k], 0.01);
  }
  expect_gaussian(errors_of(set, nature, false), 0.01);
  EXPECT_TRUE(set.shock.empty());
}

// ---- settings -------------------------------------------------------------------------------

TEST(ObserveSettings, ErrorSdOverrideScalesTheSameErrorsAndIsRecorded) {
  const auto nature = synthetic_nature(4);
  ObserveSettings wide = settings_with_seed(kObsSeed);
  wide.error_sd = 2.5;
  const auto a = make_observations(nature, Experiment::kLinear, settings_with_seed(kObsSeed));
  const auto b = make_observations(nature, Experiment::kLinear, wide);
  const auto ea = errors_of(a, nature, false);
  const auto eb = errors_of(b, nature, false);
  for (std::size_t k = 0; k < b.size(); ++k) {
    ASSERT_EQ(b.error_sd[k], 2.5);
    // Same seed, same standard normals: only the scale changes. 1e-12 K absorbs the rounding
    // of value = s·q + σ·e and its subtraction (|s·q| ≲ 30 K, ulp ≈ 4e-15 K).
    ASSERT_NEAR(eb[k], 2.5 * ea[k], 1e-12) << "row " << k;
  }
}

TEST(ObserveSettings, NonPositiveOrNonFiniteErrorSdIsRejectedNamingTheKey) {
  const auto nature = synthetic_nature(2);
  for (double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    ObserveSettings s;
    s.error_sd = bad;
    const std::string msg = error_of(nature, Experiment::kLinear, s);
    EXPECT_NE(msg.find("observe.error_sd"), std::string::npos) << bad << ": \"" << msg << "\"";
  }
}

TEST(ObserveSettings, CyclesLimitsTheNumberOfCycles) {
  const auto nature = synthetic_nature(6);
  ObserveSettings s = settings_with_seed(kObsSeed);
  s.cycles = 4;
  const auto set = make_observations(nature, Experiment::kLinear, s);
  EXPECT_EQ(set.cycles(), 4u);
  EXPECT_EQ(set.size(), 4 * 2 * kNN);
  // Zero means one cycle per nature state.
  EXPECT_EQ(make_observations(nature, Experiment::kLinear, ObserveSettings{}).cycles(), 6u);
}

TEST(ObserveSettings, MoreCyclesThanNatureStatesIsAnErrorNamingObserveCycles) {
  const auto nature = synthetic_nature(3);
  ObserveSettings s;
  s.cycles = 4;
  const std::string msg = error_of(nature, Experiment::kLinear, s);
  EXPECT_NE(msg.find("observe.cycles"), std::string::npos) << msg;
  EXPECT_NE(msg.find('3'), std::string::npos) << "should say how many states there are: " << msg;
}

TEST(ObserveSettings, SameSeedGivesAnIdenticalSet) {
  const auto nature = synthetic_nature(12);
  for (auto e : {Experiment::kLinearShocks, Experiment::kSparseArctanShocks}) {
    const auto a = make_observations(nature, e, settings_with_seed(kObsSeed));
    const auto b = make_observations(nature, e, settings_with_seed(kObsSeed));
    EXPECT_EQ(a.value, b.value) << to_string(e);
    EXPECT_EQ(a.id, b.id) << to_string(e);
    EXPECT_EQ(a.x_m, b.x_m) << to_string(e);
    EXPECT_EQ(a.y_m, b.y_m) << to_string(e);
    EXPECT_EQ(a.level, b.level) << to_string(e);
    EXPECT_EQ(a.time_seconds, b.time_seconds) << to_string(e);
    EXPECT_EQ(a.shock_sd, b.shock_sd) << to_string(e);
    EXPECT_EQ(a.shock, b.shock) << to_string(e);
  }
}

TEST(ObserveSettings, DifferentSeedsGiveDifferentErrorsAtTheSamePoints) {
  const auto nature = synthetic_nature(3);
  const auto a = make_observations(nature, Experiment::kLinear, settings_with_seed(1));
  const auto b = make_observations(nature, Experiment::kLinear, settings_with_seed(2));
  ASSERT_EQ(a.id, b.id);  // the full network does not depend on the seed
  const auto ea = errors_of(a, nature, false);
  const auto eb = errors_of(b, nature, false);
  std::size_t equal = 0;
  for (std::size_t k = 0; k < ea.size(); ++k)
    equal += ea[k] == eb[k];
  EXPECT_EQ(equal, 0u);
  // Independent, not merely shifted: the sample correlation of 768 pairs is within 4/sqrt(n).
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t k = 0; k < ea.size(); ++k) {
    sab += ea[k] * eb[k];
    saa += ea[k] * ea[k];
    sbb += eb[k] * eb[k];
  }
  EXPECT_LT(std::abs(sab / std::sqrt(saa * sbb)), 4 / std::sqrt(double(ea.size())));
}

// ---- experiment 2: linear + shocks ----------------------------------------------------------

TEST(LinearShocksExperiment, CycleZeroIsNeverShocked) {
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    ASSERT_EQ(shock_sd(Experiment::kLinearShocks, seed, 0), 0.0) << "seed " << seed;
    ASSERT_EQ(shock_sd(Experiment::kSparseArctanShocks, seed, 0), 0.0) << "seed " << seed;
  }
}

TEST(LinearShocksExperiment, ShockSdFrequenciesFollowTheScheduleOfScienceMd) {
  // u ≤ 0.5 none; ≤ 0.7 600; ≤ 0.85 900; ≤ 0.95 1200; else 1500.
  const std::vector<std::pair<double, double>> schedule = {
      {0.0, 0.5}, {600.0, 0.2}, {900.0, 0.15}, {1200.0, 0.1}, {1500.0, 0.05}};
  const std::uint64_t n = 20000;
  std::vector<std::uint64_t> count(schedule.size(), 0);
  for (std::uint64_t c = 1; c <= n; ++c) {
    const double sd = shock_sd(Experiment::kLinearShocks, kObsSeed, c);
    const auto it = std::find_if(schedule.begin(), schedule.end(),
                                 [sd](const auto& s) { return s.first == sd; });
    ASSERT_NE(it, schedule.end()) << "cycle " << c << ": sd " << sd << " is not in the schedule";
    ++count[std::size_t(it - schedule.begin())];
  }
  for (std::size_t k = 0; k < schedule.size(); ++k) {
    const double p = schedule[k].second;
    const double freq = double(count[k]) / double(n);
    // Binomial: 4 standard errors sqrt(p(1−p)/n) ≤ 0.0142 for n = 20000.
    EXPECT_NEAR(freq, p, 4 * std::sqrt(p * (1 - p) / double(n))) << "sd " << schedule[k].first;
  }
}

TEST(LinearShocksExperiment, ShockedCyclesStoreTheirSdAndField) {
  const std::size_t cycles = 30;
  const auto nature = synthetic_nature(cycles);
  const auto set =
      make_observations(nature, Experiment::kLinearShocks, settings_with_seed(kObsSeed));
  ASSERT_EQ(set.shock_sd.size(), cycles);
  ASSERT_EQ(set.shock.size(), cycles * 2 * kNN);
  int shocked = 0;
  std::vector<double> expected(2 * kNN);
  for (std::size_t c = 0; c < cycles; ++c) {
    const double sd = shock_sd(Experiment::kLinearShocks, kObsSeed, c);
    EXPECT_EQ(set.shock_sd[c], sd) << "cycle " << c;
    std::fill(expected.begin(), expected.end(), 0.0);
    if (sd > 0) {
      ++shocked;
      shock_field(Experiment::kLinearShocks, kObsSeed, c, sd, expected);
    }
    const std::vector<double> stored(set.shock.begin() + std::ptrdiff_t(c * 2 * kNN),
                                     set.shock.begin() + std::ptrdiff_t((c + 1) * 2 * kNN));
    EXPECT_EQ(stored, expected) << "cycle " << c << " (sd " << sd << ")";
  }
  // P(fewer than 5 of 29 cycles shocked at p = 0.5) ≈ 1e-5: the test exercises shocks.
  EXPECT_GE(shocked, 5);
}

TEST(LinearShocksExperiment, ObservationsOfAShockedCycleSeeTruthPlusShock) {
  const std::size_t cycles = 30;
  const auto nature = synthetic_nature(cycles);
  const auto set =
      make_observations(nature, Experiment::kLinearShocks, settings_with_seed(kObsSeed));
  // Against truth + shock the errors are N(0, 1 K) over all cycles; against the bare truth,
  // a shocked cycle's residuals carry s·shock, whose sd (≥ 600·s ≈ 1.8 K) is well above 1 K.
  expect_gaussian(errors_of(set, nature, /*include_shock=*/true), 1.0);
  const auto bare = errors_of(set, nature, /*include_shock=*/false);
  for (std::size_t c = 0; c < cycles; ++c) {
    if (set.shock_sd[c] == 0) continue;
    const std::vector<double> cycle_bare(bare.begin() + std::ptrdiff_t(c * 2 * kNN),
                                         bare.begin() + std::ptrdiff_t((c + 1) * 2 * kNN));
    const double expected_sd =
        std::hypot(1.0, set.shock_sd[c] * nature.params.kelvin_per_pv());  // error ⊕ shock
    // 128 samples: sd within 4·sd/sqrt(2·128) = 25 %.
    EXPECT_NEAR(moments(cycle_bare).sd, expected_sd, 0.25 * expected_sd) << "cycle " << c;
  }
}

TEST(LinearShocksExperiment, ShockFieldIsWhiteGaussianWithTheRequestedSd) {
  std::vector<double> field(2 * 64 * 64);  // one N = 64 state
  for (double sd : {600.0, 1500.0}) {
    shock_field(Experiment::kLinearShocks, kObsSeed, 5, sd, field);
    const Moments m = moments(field);
    const double n = double(field.size());
    EXPECT_LT(std::abs(m.mean), 4 * sd / std::sqrt(n)) << "sd " << sd;
    EXPECT_NEAR(m.sd, sd, 4 * sd / std::sqrt(2 * n)) << "sd " << sd;
    // White: neighbouring x points are uncorrelated (|r| within 4/sqrt(n)).
    double lag = 0;
    for (std::size_t k = 0; k + 1 < field.size(); ++k)
      lag += field[k] * field[k + 1];
    EXPECT_LT(std::abs(lag / (n - 1) / (m.sd * m.sd)), 4 / std::sqrt(n)) << "sd " << sd;
  }
}

TEST(LinearShocksExperiment, EachShockedCycleDrawsAFreshField) {
  std::vector<double> a(2 * kNN), b(2 * kNN);
  shock_field(Experiment::kLinearShocks, kObsSeed, 3, 600.0, a);
  shock_field(Experiment::kLinearShocks, kObsSeed, 4, 600.0, b);
  EXPECT_NE(a, b);
}

// ---- experiment 4: sparse arctan + shocks ---------------------------------------------------

TEST(SparseArctanShocksExperiment, ObservesHalfThePointsOfEachLevelOnceEachCycle) {
  const std::size_t cycles = 20;
  const auto nature = synthetic_nature(cycles);
  const auto set =
      make_observations(nature, Experiment::kSparseArctanShocks, settings_with_seed(kObsSeed));
  ASSERT_EQ(set.size(), cycles * kNN);  // N²/2 per level, 2 levels
  std::vector<std::size_t> per_cycle_level(cycles * 2, 0);
  std::set<std::uint64_t> seen;
  for (std::size_t k = 0; k < set.size(); ++k) {
    const GridPoint g = decode(set.id[k]);
    ASSERT_LT(g.cycle, cycles);
    ASSERT_EQ(set.time_seconds[k], nature.times_seconds[g.cycle]);
    ASSERT_EQ(set.level[k], int(g.level));
    ASSERT_EQ(set.x_m[k], double(g.i) * nature.params.L_m / kN);
    ASSERT_EQ(set.y_m[k], double(g.j) * nature.params.L_m / kN);
    EXPECT_TRUE(seen.insert(set.id[k]).second) << "id " << set.id[k] << " appears twice";
    ++per_cycle_level[g.cycle * 2 + g.level];
  }
  for (std::size_t k = 0; k < per_cycle_level.size(); ++k)
    EXPECT_EQ(per_cycle_level[k], kNN / 2) << "cycle " << k / 2 << " level " << k % 2;
}

TEST(SparseArctanShocksExperiment, NetworkIsRedrawnEachCycleAndPerLevel) {
  const auto nature = synthetic_nature(3);
  const auto set =
      make_observations(nature, Experiment::kSparseArctanShocks, settings_with_seed(kObsSeed));
  // points[c][level] = sorted grid indices observed.
  std::vector<std::vector<std::size_t>> points(6);
  for (std::uint64_t id : set.id) {
    const GridPoint g = decode(id);
    points[g.cycle * 2 + g.level].push_back(g.j * kN + g.i);
  }
  for (auto& p : points)
    std::sort(p.begin(), p.end());
  EXPECT_NE(points[0], points[2]) << "cycles 0 and 1, surface";
  EXPECT_NE(points[1], points[3]) << "cycles 0 and 1, lid";
  EXPECT_NE(points[0], points[1]) << "cycle 0, surface and lid";
  // A new seed draws new networks.
  const auto other =
      make_observations(nature, Experiment::kSparseArctanShocks, settings_with_seed(kObsSeed + 1));
  EXPECT_NE(set.id, other.id);
}

TEST(SparseArctanShocksExperiment, EveryPointIsObservedHalfTheTime) {
  // The partial Fisher–Yates shuffle must not favour any point. Over C = 400 cycles each
  // point's count is Binomial(400, 1/2): sd 10; a 5-sd bound keeps the chance that any of the
  // 128 points falls outside it by luck below 1e-4.
  const std::size_t cycles = 400;
  const auto nature = synthetic_nature(cycles);
  const auto set =
      make_observations(nature, Experiment::kSparseArctanShocks, settings_with_seed(kObsSeed));
  std::vector<int> count(2 * kNN, 0);
  for (std::uint64_t id : set.id)
    ++count[decode(id).state_index()];
  for (std::size_t k = 0; k < count.size(); ++k)
    EXPECT_NEAR(count[k], 200, 50) << "grid index " << k;
}

TEST(SparseArctanShocksExperiment, ValuesAreArctanOfTruthPlusShockWithErrorsOfSd0p01) {
  const auto nature = synthetic_nature(100);
  const auto set =
      make_observations(nature, Experiment::kSparseArctanShocks, settings_with_seed(kObsSeed));
  for (std::size_t k = 0; k < set.size(); ++k) {
    ASSERT_EQ(set.op[k], ObsOperator::kArctan);
    ASSERT_EQ(set.error_sd[k], 0.01);
  }
  expect_gaussian(errors_of(set, nature, /*include_shock=*/true), 0.01);
}

TEST(SparseArctanShocksExperiment, ShocksOfSd900ComeWithProbabilityOneTenth) {
  const std::uint64_t n = 20000;
  std::uint64_t shocked = 0;
  for (std::uint64_t c = 1; c <= n; ++c) {
    const double sd = shock_sd(Experiment::kSparseArctanShocks, kObsSeed, c);
    ASSERT_TRUE(sd == 0.0 || sd == 900.0) << "cycle " << c << ": sd " << sd;
    shocked += sd > 0;
  }
  // Binomial(20000, 0.1): 4 standard errors = 4·sqrt(0.09/20000) ≈ 0.0085.
  EXPECT_NEAR(double(shocked) / double(n), 0.1, 4 * std::sqrt(0.1 * 0.9 / double(n)));
}

TEST(SparseArctanShocksExperiment, EveryShockedCycleAppliesTheSameFixedField) {
  // Find enough cycles to hold three shocks (P(fewer than 3 in 300 cycles) ≈ 1e-10).
  std::vector<std::size_t> shocked;
  std::size_t c = 0;
  for (; c < 300 && shocked.size() < 3; ++c) {
    if (shock_sd(Experiment::kSparseArctanShocks, kObsSeed, c) > 0) shocked.push_back(c);
  }
  ASSERT_EQ(shocked.size(), 3u);
  const auto nature = synthetic_nature(c);
  const auto set =
      make_observations(nature, Experiment::kSparseArctanShocks, settings_with_seed(kObsSeed));
  auto field_at = [&](std::size_t cycle) {
    return std::vector<double>(set.shock.begin() + std::ptrdiff_t(cycle * 2 * kNN),
                               set.shock.begin() + std::ptrdiff_t((cycle + 1) * 2 * kNN));
  };
  const auto first = field_at(shocked[0]);
  EXPECT_GT(moments(first).sd, 0.0);
  EXPECT_EQ(set.shock_sd[shocked[0]], 900.0);
  for (std::size_t k = 1; k < shocked.size(); ++k) {
    EXPECT_EQ(field_at(shocked[k]), first) << "cycles " << shocked[0] << " and " << shocked[k];
    EXPECT_EQ(set.shock_sd[shocked[k]], 900.0);
  }
  // Unshocked cycles store zeros.
  for (std::size_t cycle = 0; cycle < c; ++cycle) {
    if (set.shock_sd[cycle] > 0) continue;
    EXPECT_EQ(field_at(cycle), std::vector<double>(2 * kNN, 0.0)) << "cycle " << cycle;
  }
}

}  // namespace
}  // namespace rtda::obs
