// EnSF analysis cost (issue 3 target: paper mode, N = 64, 20 members, every point observed
// with linear_K, 500 pseudo-time steps, <= 0.15 s).
//
//   build/bench/ensf_bench --benchmark_filter=Paper
//
// Arguments: N / members / OpenMP threads. The stopping rule is off and max_steps = 500 so
// every run takes the same number of steps. NormalStream times the normal generator alone
// (members x 2N² numbers per step) for comparison: science.md §4 says it dominates.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

#include "core/normal_batch.hpp"
#include "core/random.hpp"
#include "filters/ensf.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

namespace {

using namespace rtda;

struct Problem {
  sqg::SqgParams grid;
  obs::ObservationSpace obs;
  std::vector<double> prior;
};

// Truth and members N(0, 1000²) m/s per element (≈ 3 K spread), every point observed.
Problem make_problem(int n, int members) {
  Problem p;
  p.grid.N = n;
  const std::size_t dim = p.grid.state_size();
  std::vector<double> truth(dim);
  RandomStream(1, RandomPurpose::kTest, 0, 0).fill_normal(truth, 0.0, 1000.0);
  p.prior.resize(members * dim);
  for (int m = 0; m < members; ++m) {
    std::vector<double> noise(dim);
    RandomStream(1, RandomPurpose::kTest, 1, m).fill_normal(noise, 0.0, 1000.0);
    for (std::size_t e = 0; e < dim; ++e)
      p.prior[m * dim + e] = truth[e] + noise[e];
  }
  io::ObservationSet set;
  const double s_k = p.grid.kelvin_per_pv();
  for (int level = 0; level < 2; ++level)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const std::size_t e = (static_cast<std::size_t>(level) * n + j) * n + i;
        io::Observation o;
        o.level = level;
        o.x_m = i * p.grid.dx_m();
        o.y_m = j * p.grid.dx_m();
        o.value = s_k * truth[e] + RandomStream(1, RandomPurpose::kTest, 2, 0).normal(e);
        o.error_sd = 1.0;
        o.op = io::ObsOperator::kLinearK;
        o.id = e;
        set.push_back(o);
      }
  p.obs = obs::ObservationSpace(p.grid, set);
  return p;
}

void BM_EnsfPaper(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int members = static_cast<int>(state.range(1));
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const Problem p = make_problem(n, members);
  filters::EnsfSettings s = filters::EnsfSettings::paper();
  s.early_stopping = false;
  s.max_steps = 500;
  filters::EnsfAnalysis ensf(s);
  const std::size_t dim = p.grid.state_size();
  std::vector<double> post(p.prior.size());
  std::uint64_t cycle = 0;
  for (auto _ : state) {
    ensf.analyse({members, dim, p.prior}, p.obs, {7, cycle++}, {members, dim, post});
    benchmark::DoNotOptimize(post.data());
  }
  state.counters["normals_per_s"] = benchmark::Counter(
      500.0 * members * static_cast<double>(dim), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EnsfPaper)
    ->ArgNames({"N", "members", "threads"})
    ->Args({64, 20, 1})
    ->Args({64, 20, 2})
    ->Args({128, 40, 2})
    ->Args({256, 40, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The generator alone: one pseudo-time step's normals for every member.
void BM_NormalStream(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int members = static_cast<int>(state.range(1));
  const std::size_t dim = 2 * static_cast<std::size_t>(n) * n;
  std::vector<double> out(dim);
  std::uint64_t row = 0;
  for (auto _ : state) {
    for (int m = 0; m < members; ++m)
      NormalBatchStream(7, RandomPurpose::kEnsfNoise, 0, m).fill(row, 0, out);
    ++row;
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["normals_per_s"] = benchmark::Counter(
      static_cast<double>(members) * dim, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_NormalStream)
    ->ArgNames({"N", "members"})
    ->Args({64, 20})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
