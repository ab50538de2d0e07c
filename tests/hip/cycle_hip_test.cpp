// The device-resident cycle (worker/device_ensemble.hpp; docs/gpu.md, "Residency"):
// CycleEngine with Backend::kGpu against Backend::kCpu, its oracle, over the same cycles —
// the same nature run, initial ensemble, observations and seeds — for the ViT surrogate with
// EnSF and the SQG physics with LETKF; and the bytes a ViT + EnSF cycle moves between host
// and device on one rank. Runs under mpiexec (1 rank; 2 ranks for the parity tests, which then
// exercise the host-staged transposes). Skips, saying what it skips, when no GPU is
// present.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "cycle_engine.hpp"
#include "device_ensemble.hpp"
#include "filter_problems.hpp"
#include "gpu_skip.hpp"
#include "hip/device.hpp"
#include "io/fields.hpp"
#include "obs/experiments.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"

namespace rtda::worker {
namespace {

// The worker group of this test: MPI_COMM_WORLD under mpiexec, else one process without MPI
// (as `rtda experiment` runs outside mpiexec), so the check of a GPU machine without an MPI
// launcher (bench/gpu_check.sh) runs the one-rank cases too.
Comm group() {
  return launched_by_mpi() ? Comm(MPI_COMM_WORLD) : Comm::single();
}

// The ViT weights: RTDA_TEST_VIT_WEIGHTS from the environment (a copied tree, as on a GPU
// machine), else the file of this source tree.
std::string vit_weights() {
  const char* env = std::getenv("RTDA_TEST_VIT_WEIGHTS");
  return "surrogate.weights=" + std::string(env && *env ? env : RTDA_TEST_VIT_WEIGHTS);
}

int mpi_rank() {
  return group().rank();
}

// A short nature run in memory (every rank makes the same one: the model is deterministic).
io::NatureRun make_nature(const config::Config& cfg) {
  io::NatureRun nature;
  nature.params = cfg.model.sqg;
  sqg::SqgModel<double> model(cfg.model.sqg, cfg.model.fft_planning);
  sqg::run_nature(model, cfg.nature, [&](int, double t, std::span<const double> q) {
    nature.times_seconds.push_back(t);
    nature.q.insert(nature.q.end(), q.begin(), q.end());
  });
  return nature;
}

config::Config make_config(const std::vector<std::string>& overrides) {
  std::vector<std::string> all = {"nature.spinup_days=5",           "nature.states=5",
                                  "experiment.observations=linear", "model.fft_planning=estimate",
                                  "model.fft_wisdom_file=",         "model.threads=1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return config::load(std::nullopt, all);
}

struct Cycles {
  std::vector<std::vector<double>> mean, spread;  // rank 0
  std::vector<std::map<std::string, io::Diagnostic>> diagnostics;
};

// The offline experiment's loop (worker/experiment.cpp) for `cycles` cycles.
Cycles run_cycles(const config::Config& cfg, const io::NatureRun& nature, const std::string& filter,
                  device::Backend backend, int cycles) {
  CycleEngine engine(group(), cfg, backend);
  engine.start_from_nature(nature);
  const obs::Experiment experiment = obs::experiment_from_string(cfg.experiment.observations);
  obs::ObserveSettings observe = cfg.observe;
  observe.seed = cfg.experiment.seed;
  Cycles out;
  for (int c = 0; c < cycles; ++c) {
    if (c > 0) engine.forecast_cycle();
    const double t = nature.times_seconds[static_cast<std::size_t>(c)];
    obs::ObservationSet set;
    obs::append_cycle_observations(cfg.model.sqg, nature.state(static_cast<std::size_t>(c)), t,
                                   static_cast<std::uint64_t>(c), experiment, observe, set);
    std::vector<double> truth;
    if (mpi_rank() == 0) {
      const auto s = nature.state(static_cast<std::size_t>(c));
      truth.assign(s.begin(), s.end());
    }
    CycleOutcome o = engine.analyse(filter, set, static_cast<std::uint64_t>(c), t, truth, false);
    engine.adapt_surrogate();
    out.mean.push_back(std::move(o.mean));
    out.spread.push_back(std::move(o.spread));
    out.diagnostics.push_back(std::move(o.diagnostics));
  }
  return out;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v)
    m = std::max(m, std::abs(x));
  return m;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Every cycle's analysis mean (and spread) within `rel` of the largest |value| of the CPU's.
void expect_same_analyses(const Cycles& hip, const Cycles& cpu, double rel) {
  if (mpi_rank() != 0) return;
  ASSERT_EQ(hip.mean.size(), cpu.mean.size());
  for (std::size_t c = 0; c < cpu.mean.size(); ++c) {
    ASSERT_EQ(hip.mean[c].size(), cpu.mean[c].size());
    EXPECT_LE(max_abs_difference(hip.mean[c], cpu.mean[c]), rel * max_abs(cpu.mean[c]))
        << "analysis mean, cycle " << c;
    EXPECT_LE(max_abs_difference(hip.spread[c], cpu.spread[c]), rel * max_abs(cpu.mean[c]))
        << "analysis spread, cycle " << c;
    EXPECT_EQ(hip.diagnostics[c].at("observations_used").value,
              cpu.diagnostics[c].at("observations_used").value);
    EXPECT_NEAR(hip.diagnostics[c].at("innovation_rms").value,
                cpu.diagnostics[c].at("innovation_rms").value,
                rel * (1 + cpu.diagnostics[c].at("innovation_rms").value))
        << "cycle " << c;
    EXPECT_EQ(cpu.diagnostics[c].count("device_host_bytes"), 0u);
    EXPECT_EQ(hip.diagnostics[c].count("device_host_bytes"), 1u);
  }
}

// A DistributedEnsemble holding (this rank's members of) a test problem's prior.
DistributedEnsemble loaded(const test_support::FilterProblem& p) {
  DistributedEnsemble ens(group(), p.members, p.grid.grid());
  const std::size_t n = ens.state_size();
  std::copy(
      p.prior.begin() + static_cast<std::ptrdiff_t>(ens.first_member() * n),
      p.prior.begin() + static_cast<std::ptrdiff_t>((ens.first_member() + ens.local_members()) * n),
      ens.local_states().begin());
  return ens;
}

// The device transposes are permutations in DistributedEnsemble's order: bit for bit its
// columns, and back. 5 members over 2 ranks make uneven member blocks (3 + 2).
TEST(CycleHip, DeviceTransposesAreTheHostOnes) {
  RTDA_SKIP_WITHOUT_GPU("device member <-> column transposes not checked");
  const auto p = test_support::make_filter_problem(12, 5, test_support::ObsLayout::kEveryPoint, 0,
                                                   obs::ObsOperator::kLinearK, 1.0, 7);
  DistributedEnsemble ens = loaded(p);
  std::vector<double> want;
  ens.to_columns(want);
  DeviceEnsemble dev(group(), ens);
  dev.to_device();
  double* cols = dev.to_columns();
  std::vector<double> got(want.size());
  hip::detail::copy_to_host(got.data(), cols, got.size() * sizeof(double));
  EXPECT_EQ(got, want);
  // Back: change the columns on the device, then compare the members with the host path's.
  for (auto& v : want)
    v = -2 * v + 1;
  hip::detail::DeviceArray<double> changed(want, "changed columns");
  const std::vector<double> before(ens.local_states().begin(), ens.local_states().end());
  if (ens.ranks() == 1) {
    hip::detail::copy_on_device(dev.states(), changed.get(), want.size() * sizeof(double));
    dev.from_columns(dev.states());
  } else {
    hip::detail::copy_on_device(cols, changed.get(), want.size() * sizeof(double));
    dev.from_columns(cols);
  }
  EXPECT_EQ(dev.current(), DeviceEnsemble::Current::kDevice);
  ens.from_columns(want);  // the host path's answer, into the host copy
  const std::vector<double> host(ens.local_states().begin(), ens.local_states().end());
  std::copy(before.begin(), before.end(), ens.local_states().begin());
  dev.to_host();  // the stale host copy is replaced by the device's
  EXPECT_EQ(dev.current(), DeviceEnsemble::Current::kBoth);
  EXPECT_EQ(std::vector<double>(ens.local_states().begin(), ens.local_states().end()), host);
}

// h(x) on the device equals DistributedEnsemble::observe_all: the shared operators
// (obs/observation_math.hpp) in the same order with contraction off, linear here, so the same
// correctly rounded + and x: equal to 1e-15 relative (exact expected); arctan observations go
// through the device's atan, a few ulps.
TEST(CycleHip, DeviceObservationsAreTheHostOnes) {
  RTDA_SKIP_WITHOUT_GPU("device h(x) not checked");
  for (const auto op : {obs::ObsOperator::kLinearK, obs::ObsOperator::kArctan}) {
    const auto p = test_support::make_filter_problem(16, 5, test_support::ObsLayout::kBetweenPoints,
                                                     300, op, 1.0, 8);
    DistributedEnsemble ens = loaded(p);
    const std::vector<double> want = ens.observe_all(p.obs);
    DeviceEnsemble dev(group(), ens);
    dev.to_device();
    const std::vector<double> got = dev.observe_all(p.obs).download();
    ASSERT_EQ(got.size(), want.size());
    const double tol = op == obs::ObsOperator::kLinearK ? 1e-15 : 1e-14;  // of max(1, |h|)
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << i;
  }
}

// ViT + EnSF. The two forecasts differ by the float32 forward passes (vit_hip_test: within
// 1e-3 of the largest increment, from summation order and FMA; increments are at most the
// state's size), the normalisation is bitwise the CPU's, and EnSF draws the same noise and
// moves its prior towards the observations with a gain below 1, so the analysis means differ
// by at most ~1e-3 of the state per forecast, i.e. 2e-3 after two forecasts. We require 2e-3
// of the largest |mean|; the expected difference is ~1e-5 (the forward's measured error).
TEST(CycleHip, VitEnsfMatchesTheCpuCycle) {
  RTDA_SKIP_WITHOUT_GPU("ViT + EnSF cycles on the device vs the CPU not run");
  const config::Config cfg = make_config({"model.kind=vit", vit_weights(), "ensemble.members=12"});
  const io::NatureRun nature = make_nature(cfg);
  const Cycles cpu = run_cycles(cfg, nature, "ensf", device::Backend::kCpu, 3);
  const Cycles hip = run_cycles(cfg, nature, "ensf", device::Backend::kGpu, 3);
  expect_same_analyses(hip, cpu, 2e-3);
}

// SQG + LETKF: the forecast is the CPU's SQG on both (bitwise, from the same analysis), the
// device LETKF agrees with the CPU's (Eigen) to 1e-10 of the values (letkf_hip_test: two
// eigensolvers, errors ~eps |C|), and two 12-hour forecasts grow a difference by well under
// 100 at this range; we require 1e-8 of the largest |mean|.
TEST(CycleHip, SqgLetkfMatchesTheCpuCycle) {
  RTDA_SKIP_WITHOUT_GPU("SQG + LETKF cycles on the device vs the CPU not run");
  const config::Config cfg = make_config({"model.preset=N32", "ensemble.members=16"});
  const io::NatureRun nature = make_nature(cfg);
  const Cycles cpu = run_cycles(cfg, nature, "letkf", device::Backend::kCpu, 3);
  const Cycles hip = run_cycles(cfg, nature, "letkf", device::Backend::kGpu, 3);
  expect_same_analyses(hip, cpu, 1e-8);
}

// Prior inflation on the device path: the factor from h(x) on the host, the scaling by the
// shared per-element function on the device (SQG + LETKF as above, "fixed" so that it acts
// every cycle).
TEST(CycleHip, InflatedSqgLetkfMatchesTheCpuCycle) {
  RTDA_SKIP_WITHOUT_GPU("inflated SQG + LETKF cycles not run");
  const config::Config cfg = make_config(
      {"model.preset=N32", "ensemble.members=16", "inflation.mode=fixed", "inflation.factor=1.2"});
  const io::NatureRun nature = make_nature(cfg);
  const Cycles cpu = run_cycles(cfg, nature, "letkf", device::Backend::kCpu, 3);
  const Cycles hip = run_cycles(cfg, nature, "letkf", device::Backend::kGpu, 3);
  expect_same_analyses(hip, cpu, 1e-8);
  if (mpi_rank() == 0) {
    for (const auto& d : hip.diagnostics)
      EXPECT_EQ(d.at("inflation_factor").value, 1.2);
  }
}

// Residency on one rank, ViT + EnSF (paper mode: grid-point observations only): after the
// first cycle (which uploads the initial ensemble) a cycle moves only
//   - the background and analysis mean and spread: 2 x 2 x (2 N^2) doubles = 32 dim bytes;
//   - EnSF's per-element bookkeeping: the prior spread down and the spread target up
//     (dim doubles each) and two CSR offset arrays ((dim + 1) uint32 each): 24 dim + 8 bytes;
//   - per observation: the stencil (53 bytes), the h(x) statistics (16), EnSF's values,
//     errors, operator codes, element lists and innovations (29): under 128 bytes;
//   - the stopping rule's maximum, 8 bytes per step, and EnSF's few member-sized vectors;
// and never an ensemble (members x dim doubles; with 32 members and an observation per state
// element the budget is under 3/4 of one copy, so a single round trip of the ensemble would fail).
TEST(CycleHip, VitEnsfCycleKeepsTheEnsembleOnTheDevice) {
  RTDA_SKIP_WITHOUT_GPU("host <-> device bytes per cycle not measured");
  const int k = 32;
  const config::Config cfg =
      make_config({"model.kind=vit", vit_weights(), "ensemble.members=" + std::to_string(k)});
  const io::NatureRun nature = make_nature(cfg);
  const Cycles hip = run_cycles(cfg, nature, "ensf", device::Backend::kGpu, 4);
  if (mpi_rank() != 0) return;
  const double dim = 2.0 * cfg.model.sqg.N * cfg.model.sqg.N;
  const double ensemble_bytes = 8.0 * k * dim;
  // Cycle 0 uploads the initial ensemble (start_from_nature filled the host copy).
  EXPECT_GE(hip.diagnostics[0].at("device_host_bytes").value, ensemble_bytes);
  for (std::size_t c = 1; c < hip.diagnostics.size(); ++c) {
    const auto& d = hip.diagnostics[c];
    const double p = d.at("observations_used").value;
    const double budget = 32 * dim + (24 * dim + 8) + 128 * p + 8 * cfg.ensf.step_cap() + 64 * k;
    ASSERT_LT(budget, ensemble_bytes) << "the budget would not catch an ensemble copy";
    const double moved = d.at("device_host_bytes").value;
    EXPECT_LE(moved, budget) << "cycle " << c << ": " << moved << " bytes, ensemble "
                             << ensemble_bytes;
  }
}

}  // namespace
}  // namespace rtda::worker

// Under mpiexec every rank runs every test, only rank 0 prints the report, and the exit code
// is non-zero when any rank failed; outside mpiexec MPI is never initialised.
int main(int argc, char** argv) {
  const bool mpi = rtda::worker::launched_by_mpi();
  if (mpi) MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  if (mpi) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int any = RUN_ALL_TESTS();
  if (mpi) {
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
  }
  return any;
}
