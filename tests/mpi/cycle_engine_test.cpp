// The analysis call of the worker group (CycleEngine::analyse) on 1 and 2 ranks: quality
// control before the filter, never a non-finite analysis, and the model.threads choice.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/random.hpp"
#include "cycle_engine.hpp"
#include "distributed_ensemble.hpp"

namespace rtda::worker {
namespace {

config::Config small_config(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o = {"model.preset=N32",           "model.fft_planning=estimate",
                                "model.fft_wisdom_file=\"\"", "model.threads=1",
                                "ensemble.members=6",         "ensemble.initial_noise_sd_ms=500"};
  o.insert(o.end(), extra.begin(), extra.end());
  return config::load(std::nullopt, o);
}

// One smooth nature state (plus a NaN at `nan_at` when >= 0).
io::NatureRun nature(const config::Config& cfg, long nan_at = -1) {
  io::NatureRun run;
  run.params = cfg.model.sqg;
  run.times_seconds = {0.0};
  const std::size_t n = static_cast<std::size_t>(run.params.state_size());
  run.q.resize(n);
  RandomStream(5, RandomPurpose::kTest).fill_normal(run.q, 0.0, 2000.0);
  if (nan_at >= 0)
    run.q[static_cast<std::size_t>(nan_at)] = std::numeric_limits<double>::quiet_NaN();
  return run;
}

// linear_K observations of the nature state at every 4th grid point of level 0, id = 100 + i.
obs::ObservationSet observations(const config::Config& cfg, const io::NatureRun& run) {
  obs::ObservationSet set;
  const auto& p = cfg.model.sqg;
  const double s = p.kelvin_per_pv();
  std::uint64_t id = 100;
  for (int j = 0; j < p.N; j += 4) {
    for (int i = 0; i < p.N; i += 4) {
      obs::Observation o;
      o.x_m = i * p.dx_m();
      o.y_m = j * p.dx_m();
      o.level = 0;
      o.value = s * run.q[static_cast<std::size_t>(j) * p.N + i];
      o.error_sd = 1.0;
      o.op = obs::ObsOperator::kLinearK;
      o.id = id++;
      set.push_back(o);
    }
  }
  return set;
}

obs::ObservationSet without(const obs::ObservationSet& set, std::size_t skip) {
  obs::ObservationSet out;
  for (std::size_t i = 0; i < set.size(); ++i)
    if (i != skip) out.push_back(set.at(i));
  return out;
}

TEST(CycleEngineQc, OffLeavesEveryObservationToTheFilter) {
  const auto cfg = small_config();
  const auto run = nature(cfg);
  CycleEngine engine(MPI_COMM_WORLD, cfg);
  engine.start_from_nature(run);
  auto set = observations(cfg, run);
  set.value[3] += 300.0;  // plausible (< 500 K) but far from the background
  const auto out = engine.analyse("letkf", set, 0, 0.0, {}, false);
  EXPECT_TRUE(out.refused.empty());
  EXPECT_EQ(out.record.observations_used, static_cast<double>(set.size()));
  EXPECT_EQ(out.record.observations_refused_qc, 0.0);
}

TEST(CycleEngineQc, GrossErrorsNeverReachTheFilterAndEveryRankRefusesTheSame) {
  const auto cfg = small_config({"qc.gross_error_sigmas=5"});
  const auto run = nature(cfg);
  auto set = observations(cfg, run);
  set.value[3] += 300.0;  // a gross error: refused
  set.value[5] = 1e300;   // implausible: refused before the check
  const std::size_t p = set.size();
  std::vector<double> mean_refused, mean_clean;
  {
    CycleEngine engine(MPI_COMM_WORLD, cfg);
    engine.start_from_nature(run);
    const auto out = engine.analyse("letkf", set, 7, 0.0, {}, true);
    ASSERT_EQ(out.refused.size(), 2u);
    EXPECT_EQ(out.refused[0].index, 3u);
    EXPECT_EQ(out.refused[0].id, 103u);
    EXPECT_EQ(out.refused[0].field, "innovation");
    EXPECT_EQ(out.refused[0].kind, "gross_error");
    EXPECT_NE(out.refused[0].reason.find("exceeds 5 * sqrt("), std::string::npos)
        << out.refused[0].reason;
    EXPECT_EQ(out.refused[1].index, 5u);
    EXPECT_EQ(out.refused[1].field, "value");
    EXPECT_EQ(out.refused[1].kind, "implausible");
    EXPECT_EQ(out.refused_by_reason.at("gross_error"), 1u);
    EXPECT_EQ(out.refused_by_reason.at("implausible"), 1u);
    EXPECT_EQ(out.record.observations_used, static_cast<double>(p - 2));
    EXPECT_EQ(out.record.observations_rejected, 0.0);
    if (engine.rank() == 0) {
      EXPECT_EQ(out.diagnostics.at("observations_refused_qc").value, 2.0);
      mean_refused = out.mean;
    }
    // Every rank took the same decisions.
    unsigned long long mine[2] = {out.refused.size(), out.refused[0].index};
    unsigned long long lo[2], hi[2];
    MPI_Allreduce(mine, lo, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(mine, hi, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    EXPECT_EQ(lo[0], hi[0]);
    EXPECT_EQ(lo[1], hi[1]);
  }
  {
    // The same analysis without the two observations: bit for bit.
    CycleEngine engine(MPI_COMM_WORLD, small_config());
    engine.start_from_nature(run);
    const auto out = engine.analyse("letkf", without(without(set, 5), 3), 7, 0.0, {}, false);
    if (engine.rank() == 0) mean_clean = out.mean;
  }
  ASSERT_EQ(mean_refused.size(), mean_clean.size());
  for (std::size_t e = 0; e < mean_clean.size(); ++e)
    ASSERT_EQ(mean_refused[e], mean_clean[e]) << e;
}

TEST(CycleEngineFinite, NonFiniteAnalysisThrowsOnEveryRankWithCycleFilterCountAndIndex) {
  const auto cfg = small_config();
  const long at = 2 * 32 + 5;  // level 0, y 2, x 5
  const auto run = nature(cfg, at);
  for (const std::string filter : {"none", "letkf", "ensf"}) {
    CycleEngine engine(MPI_COMM_WORLD, cfg);
    engine.start_from_nature(run);  // every member carries the NaN
    const auto set = without(observations(cfg, run), 1);
    std::string what;
    try {
      engine.analyse(filter, set, 3, 0.0, {}, false);
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    ASSERT_FALSE(what.empty()) << filter << ": expected std::runtime_error";
    EXPECT_NE(what.find("cycle 3, filter " + filter + ": the analysis is not finite"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("member values are NaN or inf (first: member 0"), std::string::npos)
        << what;
    if (filter == "none") {
      EXPECT_NE(what.find("6 member values"), std::string::npos) << what;
      EXPECT_NE(what.find("level 0, y 2, x 5, state index 69"), std::string::npos) << what;
    }
    // No rank was left in a collective: the group goes on together.
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST(ResolveThreads, ZeroSharesTheNodesCoresAmongItsRanks) {
  EXPECT_EQ(resolve_threads(3, std::nullopt, 16, 4).threads, 3);
  EXPECT_EQ(resolve_threads(0, std::nullopt, 16, 4).threads, 4);
  EXPECT_EQ(resolve_threads(0, std::nullopt, 2, 2).threads, 1);
  EXPECT_EQ(resolve_threads(0, std::nullopt, 2, 3).threads, 1);  // never 0
  EXPECT_EQ(resolve_threads(0, std::nullopt, 0, 0).threads, 1);
  EXPECT_EQ(resolve_threads(0, std::nullopt, 2, 2).reason,
            "model.threads = 0: 1 thread per rank (2 cores, 2 ranks on this node)");
  EXPECT_EQ(resolve_threads(0, std::string("5"), 2, 2).threads, 5);
  EXPECT_EQ(resolve_threads(0, std::string("3,2"), 16, 1).threads, 3);
  EXPECT_NE(resolve_threads(0, std::string("5"), 2, 2).reason.find("OMP_NUM_THREADS = 5"),
            std::string::npos);
  // A rank bound to fewer cores than its share (mpiexec's binding) takes those.
  const auto bound = resolve_threads(0, std::nullopt, 16, 2, 1);
  EXPECT_EQ(bound.threads, 1);
  EXPECT_NE(bound.reason.find("bound to 1"), std::string::npos) << bound.reason;
  EXPECT_EQ(resolve_threads(0, std::nullopt, 16, 2, 16).threads, 8);
  EXPECT_EQ(resolve_threads(0, std::nullopt, 16, 4, 8).threads, 4);
  const auto bad = resolve_threads(0, std::string("many"), 8, 2);
  EXPECT_EQ(bad.threads, 4);
  EXPECT_NE(bad.reason.find("ignored"), std::string::npos) << bad.reason;
  // The collective form: at least one thread, the same reason shape on every rank.
  const auto c = resolve_threads(MPI_COMM_WORLD, 0);
  EXPECT_GE(c.threads, 1);
  EXPECT_EQ(c.reason.rfind("model.threads = 0: ", 0), 0u) << c.reason;
}

}  // namespace
}  // namespace rtda::worker
