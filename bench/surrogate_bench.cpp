// The ViT surrogate's cost (time per member per cycle vs the physics model; achieved
// GFLOP/s of forward and training step vs the machine's matrix-multiply peak).
//   OMP_NUM_THREADS=1 build/bench/surrogate_bench
// Counters: gflops = matrix-multiply flops per second (Vit::flops_per_sample; a training step
// is counted as 3x the forward: forward, and two products per product in backward).
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <cmath>
#include <random>

#include "sqg/sqg_model.hpp"
#include "surrogate/vit.hpp"

namespace {

using rtda::surrogate::Mat;

Mat random_batch(int rows, int cols) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> g;
  Mat x(rows, cols);
  for (Eigen::Index i = 0; i < x.size(); ++i)
    x.data()[i] = g(rng);
  return x;
}

// One cycle of 20 members through the default ViT (N = 64, patch 4, width 128, depth 4).
void VitForecast20Members(benchmark::State& state) {
  Eigen::setNbThreads(static_cast<int>(state.range(0)));
  rtda::surrogate::Vit vit(rtda::surrogate::VitConfig{});
  const Mat x = random_batch(20, vit.state_size());
  for (auto _ : state) {
    Mat y = vit.forward(x);
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 20.0 * static_cast<double>(vit.flops_per_sample());
  state.counters["gflops"] = benchmark::Counter(
      flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(VitForecast20Members)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// One training step (batch 16): forward, MSE gradient, backward.
void VitTrainingStep(benchmark::State& state) {
  Eigen::setNbThreads(static_cast<int>(state.range(0)));
  rtda::surrogate::Vit vit(rtda::surrogate::VitConfig{});
  const Mat x = random_batch(16, vit.state_size());
  for (auto _ : state) {
    Mat y = vit.forward(x);
    Mat d = (y - x) * (2.0f / static_cast<float>(y.size()));
    Mat dx = vit.backward(d);
    benchmark::DoNotOptimize(dx.data());
  }
  const double flops = 3.0 * 16.0 * static_cast<double>(vit.flops_per_sample());
  state.counters["gflops"] = benchmark::Counter(
      flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(VitTrainingStep)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The machine's float matrix-multiply peak as Eigen reaches it (the reference for the ViT).
void EigenSgemmPeak(benchmark::State& state) {
  Eigen::setNbThreads(static_cast<int>(state.range(1)));
  const int n = static_cast<int>(state.range(0));
  const Mat a = random_batch(n, n), b = random_batch(n, n);
  Mat c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["gflops"] = benchmark::Counter(
      2.0 * n * n * static_cast<double>(n) * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(EigenSgemmPeak)
    ->Args({1024, 1})
    ->Args({1024, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The physics model over one 12-hour cycle, one member (N = 64, 36 steps of 20 min).
void SqgForecastOneMember(benchmark::State& state) {
  const rtda::sqg::SqgParams p = rtda::sqg::reference_preset(64);
  const rtda::sqg::SqgModel<double> model(p, rtda::sqg::FftPlanning::kMeasure);
  rtda::sqg::EnsembleStepper<double> stepper(model, 1);
  std::vector<double> q = model.equilibrium_grid();
  const int steps = static_cast<int>(std::lround(12 * 3600.0 / p.dt_s));
  for (auto _ : state) {
    stepper.advance_grid(q, 1, steps);
    benchmark::DoNotOptimize(q.data());
  }
}
BENCHMARK(SqgForecastOneMember)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
