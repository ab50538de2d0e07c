// Parity of the HIP LETKF (hip/letkf_hip.hpp) with the CPU: against the kernel's sequence
// replayed on the CPU (letkf_replay.hpp: the kernel's header functions in the kernel's order;
// letkf_math_test.cpp holds it to the CPU column path), and against the CPU column path
// LetkfAnalysis::analyse_columns itself. Skips, saying what it skips, when no GPU is
// present.
//
// Tolerances (relative to the value, floor 1 m/s). Kernel vs replay: the same operations
// in the same order; differences come only from device operations that are not correctly
// rounded (double √ in the Jacobi rotations, the spreads and the transform; atan of arctan
// operators), a few ulps each. A few-ulp change of a rotation moves the eigenvalues by
// O(ε ‖C‖) and a small eigenvalue's gain 1/(λ + k − 1) by O(ε ‖C‖ / (k − 1)) relative:
// ~1e-14 for σ_o = 1 K linear observations (‖C‖ ~ 1e3) -> tolerance 1e-12; ~1e-10 for
// σ_o = 0.01 arctan ones (‖C‖ ~ 1e7) -> 1e-9. Kernel vs the CPU path: the same bound plus
// the two paths' different summation orders and eigensolvers, 1e-10 and 1e-9, the bounds
// letkf_math_test.cpp holds the replay to.
#include "hip/letkf_hip.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "filter_problems.hpp"
#include "filters/letkf.hpp"
#include "gpu_skip.hpp"
#include "hip/device.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "letkf_replay.hpp"

namespace rtda::hip {
namespace {

namespace ts = rtda::test_support;

std::vector<double> hx_of(const ts::FilterProblem& p) {
  std::vector<double> hx(static_cast<std::size_t>(p.members) * p.obs.size());
  for (int m = 0; m < p.members; ++m)
    p.obs.apply(std::span<const double>(p.prior).subspan(m * p.state(), p.state()),
                std::span<double>(hx).subspan(m * p.obs.size(), p.obs.size()));
  return hx;
}

void expect_parity(const filters::LetkfSettings& s, const ts::FilterProblem& p, double tol_replay,
                   double tol_cpu) {
  const filters::LetkfAnalysis cpu(s);
  const LetkfAnalysisHip gpu(s);
  const auto hx = hx_of(p);
  const std::size_t n2 = p.state() / 2;
  std::vector<double> replay(p.prior.size()), host(p.prior.size()), device(p.prior.size());
  filters::LetkfColumnStats cpu_stats, device_stats;
  filters::letkf_kernel_replay(s, p.prior, hx, p.members, p.obs, 0, n2, replay);
  cpu.analyse_columns(p.prior, hx, p.members, p.obs, 0, n2, host, &cpu_stats);
  gpu.analyse_columns(p.prior, hx, p.members, p.obs, 0, n2, device, &device_stats);
  EXPECT_EQ(device_stats.local_observations, cpu_stats.local_observations);
  EXPECT_LT(ts::max_relative_difference(device, replay, 1.0), tol_replay);
  EXPECT_LT(ts::max_relative_difference(device, host, 1.0), tol_cpu);
}

TEST(LetkfHip, LocalizedLinearAnalysisMatchesCpu) {
  RTDA_SKIP_WITHOUT_GPU("LETKF (localized, linear obs) parity not run");
  filters::LetkfSettings s;
  s.localization_radius_km = 2200;
  s.rtps = 0.3;
  expect_parity(s,
                ts::make_filter_problem(32, 20, ts::ObsLayout::kBetweenPoints, 500,
                                        obs::ObsOperator::kLinearK, 1.0, 301),
                1e-12, 1e-10);
}

TEST(LetkfHip, ArctanObservationsAndOddMembersMatchCpu) {
  RTDA_SKIP_WITHOUT_GPU("LETKF (arctan obs, odd k) parity not run");
  filters::LetkfSettings s;
  s.localization_radius_km = 2800;
  s.rtps = 0.8;
  expect_parity(s,
                ts::make_filter_problem(16, 15, ts::ObsLayout::kRandomPoints, 300,
                                        obs::ObsOperator::kArctan, 0.01, 302),
                1e-9, 1e-9);
}

TEST(LetkfHip, LargeEnsembleUsesTheGlobalWorkspaceAndMatchesCpu) {
  RTDA_SKIP_WITHOUT_GPU("LETKF with 64 members (matrices off LDS) not run");
  filters::LetkfSettings s;
  s.localization_radius_km = 3000;
  expect_parity(s,
                ts::make_filter_problem(16, 64, ts::ObsLayout::kBetweenPoints, 300,
                                        obs::ObsOperator::kLinearK, 1.0, 303),
                1e-12, 1e-10);
}

TEST(LetkfHip, WholeDomainOnDeviceMatchesCpuAnalyse) {
  RTDA_SKIP_WITHOUT_GPU("LETKF whole-domain device analysis not run");
  filters::LetkfSettings s;
  s.localization_radius_km = 2200;
  const auto p = ts::make_filter_problem(32, 20, ts::ObsLayout::kBetweenPoints, 400,
                                         obs::ObsOperator::kLinearK, 1.0, 304);
  filters::LetkfAnalysis cpu(s);
  std::vector<double> expected(p.prior.size());
  const auto cd =
      cpu.analyse({p.members, p.state(), p.prior}, p.obs, {}, {p.members, p.state(), expected});
  const LetkfAnalysisHip gpu(s);
  detail::DeviceArray<double> ensemble(p.prior, "test ensemble");
  const auto gd = gpu.analyse_device(p.members, ensemble.get(), p.obs, ensemble.get());
  EXPECT_LT(ts::max_relative_difference(ensemble.download(), expected, 1.0), 1e-10);
  EXPECT_EQ(gd.observations_used, cd.observations_used);
  EXPECT_EQ(gd.extra.at("letkf_mean_local_obs"), cd.extra.at("letkf_mean_local_obs"));
  EXPECT_NEAR(gd.innovation_rms, cd.innovation_rms, 1e-12 * (1 + cd.innovation_rms));
}

TEST(LetkfHip, WithoutADeviceTheAnalysisSaysSo) {
  if (rtda::device::gpu_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  const auto p = ts::make_filter_problem(8, 4, ts::ObsLayout::kEveryPoint, 0,
                                         obs::ObsOperator::kLinearK, 1.0, 305);
  LetkfAnalysisHip gpu;
  std::vector<double> post(p.prior.size());
  EXPECT_THROW(
      gpu.analyse({p.members, p.state(), p.prior}, p.obs, {}, {p.members, p.state(), post}),
      std::runtime_error);
}

}  // namespace
}  // namespace rtda::hip
