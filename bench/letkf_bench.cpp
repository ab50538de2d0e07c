// LETKF analysis cost at N = 64, 20 members, all 8192 grid points observed with linear_K,
// L_h = 2200 km (bench/analysis_problem.hpp). Target on the 2-core machine with 2 threads:
// <= 60 ms per analysis (bench/RESULTS.md, "Analysis kernels: one path per filter").
//
//   OMP_NUM_THREADS=2 build/bench/letkf_bench --benchmark_filter=Analysis
//
// Arguments: N / members / OpenMP threads. Analysis is the whole LetkfAnalysis::analyse call
// (h(x) of every member, the column solves, RTPS). EigenSolve times only the k x k
// symmetric eigendecompositions (Eigen::SelfAdjointEigenSolver with eigenvectors, as a
// textbook implementation would call it) on matrices of the same kind: the reference point
// for the analysis' own solver, which never forms V and solves the four elements of two
// columns in vector lanes (letkf_cpu.cpp, TridiagonalQr). N = 256 with 40 members (~40 s)
// is left out.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <Eigen/Dense>
#include <vector>

#include "analysis_problem.hpp"
#include "core/random.hpp"
#include "filters/letkf.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

namespace {

using namespace rtda;

using bench::make_problem;
using bench::Problem;

void BM_Analysis(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int members = static_cast<int>(state.range(1));
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const Problem p = make_problem(n, members);
  const std::size_t dim = p.grid.state_size();
  filters::LetkfAnalysis letkf;  // L_h = 2200 km, RTPS 0.3
  std::vector<double> post(p.prior.size());
  filters::AnalysisDiagnostics diag;
  for (auto _ : state) {
    diag = letkf.analyse({members, dim, p.prior}, p.obs, {}, {members, dim, post});
    benchmark::DoNotOptimize(post.data());
  }
  state.counters["local_obs"] = diag.extra["letkf_mean_local_obs"];
  state.counters["elements_per_s"] =
      benchmark::Counter(static_cast<double>(dim), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Analysis)
    ->ArgNames({"N", "members", "threads"})
    ->Args({64, 20, 1})
    ->Args({64, 20, 2})
    ->Args({128, 40, 1})
    ->Args({128, 40, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// 2 N^2 eigendecompositions of k x k matrices shaped like the analysis' C (Y^T R^-1 Y with
// ~300 local observations), one thread.
void BM_EigenSolve(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int k = static_cast<int>(state.range(1));
  constexpr int kDistinct = 64;
  std::vector<Eigen::MatrixXd> cs;
  std::vector<double> g(300 * k);
  for (int c = 0; c < kDistinct; ++c) {
    RandomStream(3, RandomPurpose::kTest, 0, c).fill_normal(g);
    const Eigen::Map<const Eigen::MatrixXd> y(g.data(), 300, k);
    const Eigen::MatrixXd dev = y.rowwise() - y.colwise().mean();
    cs.push_back(dev.transpose() * dev);
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(k);
  for (auto _ : state) {
    for (int e = 0; e < 2 * n * n; ++e) {
      es.compute(cs[e % kDistinct]);
      benchmark::DoNotOptimize(es.eigenvectors().data());
    }
  }
}
BENCHMARK(BM_EigenSolve)->ArgNames({"N", "members"})->Args({64, 20})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
