// EnSF analysis cost at N = 64, 20 members, every grid point observed with linear_K
// (bench/analysis_problem.hpp). Target on the 2-core machine with 2 threads: paper mode
// <= 50 ms per analysis (bench/RESULTS.md, "Analysis kernels: one path per filter").
//
//   OMP_NUM_THREADS=2 build/bench/ensf_bench --benchmark_filter='Ensf'
//
// Arguments: N / members / OpenMP threads.
//   EnsfPaper          paper mode with the stopping rule off and max_steps = 500, so every
//                      run takes the same number of steps;
//   EnsfPaperStopping  paper mode as configured by default (the W = 200 stopping rule); the
//                      counter `steps` is how many pseudo-time steps it took;
//   EnsfStandard       standard mode, its default 500 steps.
// NormalStream times the normal generator alone (members x 2N² numbers per step) for
// comparison: docs/science.md §4 says it dominates.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

#include "analysis_problem.hpp"
#include "core/normal_batch.hpp"
#include "core/random.hpp"
#include "filters/ensf.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

namespace {

using namespace rtda;

using bench::make_problem;
using bench::Problem;

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

void BM_EnsfPaperStopping(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int members = static_cast<int>(state.range(1));
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const Problem p = make_problem(n, members);
  filters::EnsfAnalysis ensf(filters::EnsfSettings::paper());
  const std::size_t dim = p.grid.state_size();
  std::vector<double> post(p.prior.size());
  filters::AnalysisDiagnostics diag;
  for (auto _ : state) {
    // The same cycle every time: the same noise, so the same number of steps.
    diag = ensf.analyse({members, dim, p.prior}, p.obs, {7, 1}, {members, dim, post});
    benchmark::DoNotOptimize(post.data());
  }
  state.counters["steps"] = diag.extra["ensf_steps"];
}
BENCHMARK(BM_EnsfPaperStopping)
    ->ArgNames({"N", "members", "threads"})
    ->Args({64, 20, 1})
    ->Args({64, 20, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_EnsfStandard(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int members = static_cast<int>(state.range(1));
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const Problem p = make_problem(n, members);
  filters::EnsfAnalysis ensf(filters::EnsfSettings::standard());
  const std::size_t dim = p.grid.state_size();
  std::vector<double> post(p.prior.size());
  for (auto _ : state) {
    ensf.analyse({members, dim, p.prior}, p.obs, {7, 1}, {members, dim, post});
    benchmark::DoNotOptimize(post.data());
  }
}
BENCHMARK(BM_EnsfStandard)
    ->ArgNames({"N", "members", "threads"})
    ->Args({64, 20, 2})
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
