// SQG model step cost next to its FFT floor (the FFTs are the limit).
//
//   build/bench/sqg_step_bench --benchmark_filter=N:64
//
// Run one family per process (--benchmark_filter): FFTW reuses in-process wisdom, so an
// FFTW_ESTIMATE plan made after an FFTW_MEASURE plan of the same size inherits its choice.
//
// FftFloor runs exactly the transforms one dealiased RK4 step needs (4 stages x (8 inverse +
// 2 forward) on the 3N/2 grid) with FFTW plans of the same kind, and nothing else.
#include <benchmark/benchmark.h>

#include <vector>

#include "core/random.hpp"
#include "sqg/fftw_traits.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"

namespace {

using namespace rtda::sqg;

template <typename Real, unsigned kFlags = FFTW_MEASURE>
void BM_FftFloor(benchmark::State& state) {
  using F = detail::Fftw<Real>;
  const int n = static_cast<int>(state.range(0));
  const int m = 3 * n / 2, mk = m / 2 + 1;
  detail::AlignedVector<std::complex<Real>> spec(8 * m * mk);
  detail::AlignedVector<Real> grid(8 * m * m);
  const int dims[2] = {m, m};
  typename F::Plan c2r, r2c;
  {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    c2r = F::many_c2r(2, dims, 8, spec.data(), m * mk, grid.data(), m * m, kFlags);
    r2c = F::many_r2c(2, dims, 2, grid.data(), m * m, spec.data(), m * mk, kFlags);
  }
  for (auto _ : state) {
    for (int stage = 0; stage < 4; ++stage) {
      F::exec_c2r(c2r, spec.data(), grid.data());
      F::exec_r2c(r2c, grid.data(), spec.data());
    }
    benchmark::DoNotOptimize(grid.data());
  }
  F::destroy(c2r);
  F::destroy(r2c);
}

SqgParams params_for(int n) {
  return reference_preset(n);
}

template <typename Real, FftPlanning kPlanning = FftPlanning::kMeasure>
void BM_MemberStep(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  SqgModel<Real> model(params_for(n), kPlanning);
  auto ws = model.make_workspace();
  const auto q0 = nature_initial_state(model.params(), NatureSettings{});
  std::vector<Real> q(q0.begin(), q0.end());
  typename SqgModel<Real>::SpectralVector s(model.spectral_size());
  model.to_spectral(q, s, ws);
  for (auto _ : state)
    model.step(s, ws);
}

// A 20- (or 40-) member ensemble stepped by `threads` threads: member-steps per second.
template <typename Real>
void BM_EnsembleStep(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int members = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  SqgModel<Real> model(params_for(n), FftPlanning::kMeasure);
  EnsembleStepper<Real> stepper(model, threads);
  const auto q0 = nature_initial_state(model.params(), NatureSettings{});
  std::vector<Real> grid;
  for (int k = 0; k < members; ++k)
    grid.insert(grid.end(), q0.begin(), q0.end());
  typename SqgModel<Real>::SpectralVector s(model.spectral_size() * members);
  auto ws = model.make_workspace();
  for (int k = 0; k < members; ++k) {
    model.to_spectral(std::span<const Real>(grid).subspan(k * model.grid_size(), model.grid_size()),
                      std::span(s).subspan(k * model.spectral_size(), model.spectral_size()), ws);
  }
  for (auto _ : state)
    stepper.advance(s, members, 1);
  state.counters["member_steps_per_s"] = benchmark::Counter(
      static_cast<double>(members), benchmark::Counter::kIsIterationInvariantRate);
}

// Default planning (FFTW_MEASURE), then FFTW_ESTIMATE for comparison.
BENCHMARK(BM_FftFloor<double>)
    ->Name("FftFloor/f64/N")
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FftFloor<float>)
    ->Name("FftFloor/f32/N")
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemberStep<double>)
    ->Name("MemberStep/f64/N")
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemberStep<float>)
    ->Name("MemberStep/f32/N")
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FftFloor<double, FFTW_ESTIMATE>)
    ->Name("FftFloorEstimate/f64/N")
    ->Arg(64)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemberStep<double, FftPlanning::kEstimate>)
    ->Name("MemberStepEstimate/f64/N")
    ->Arg(64)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EnsembleStep<double>)
    ->Name("EnsembleStep/f64/N_members_threads")
    ->Args({64, 20, 1})
    ->Args({64, 20, 2})
    ->Args({128, 40, 1})
    ->Args({128, 40, 2})
    ->Args({256, 40, 1})
    ->Args({256, 40, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_EnsembleStep<float>)
    ->Name("EnsembleStep/f32/N_members_threads")
    ->Args({64, 20, 1})
    ->Args({64, 20, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
