// Parity of the HIP EnSF (hip/ensf_hip.hpp) with the CPU filter, its oracle. Skips, saying
// what it skips, when no GPU is present; ensf_math_test.cpp replays the kernels'
// sequence on the CPU and holds it to the CPU filter bit for bit.
//
// Tolerances. Both backends draw identical normals (core/philox_hd.hpp) and sum in the same
// order, so the only differences come from operations that are not correctly rounded on the
// device (the double √ of the prior spread, exp of the softmax, atan/tan of arctan
// observations), each at most a few ulps, then carried through ≤ 500 Euler–Maruyama steps
// that contract rather than amplify: relative 1e-10 of the value (floor 1 m/s) for paper
// mode; 1e-8 for standard mode, whose softmax exponents −d²/(2β²) reach O(1e3), turning an
// ulp of d² into ~1e-13 relative of a weight per step.
#include "hip/ensf_hip.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "filter_problems.hpp"
#include "filters/ensf.hpp"
#include "gpu_skip.hpp"
#include "hip/device.hpp"
#include "hip/ensf_hip_kernels.hpp"

namespace rtda::hip {
namespace {

namespace ts = rtda::test_support;
using filters::EnsfSettings;

struct Results {
  std::vector<double> post;
  filters::AnalysisDiagnostics diag;
};

template <typename Filter>
Results run(Filter& f, const ts::FilterProblem& p, filters::AnalysisContext ctx) {
  Results r;
  r.post.assign(p.prior.size(), 0.0);
  r.diag = f.analyse({p.members, p.state(), p.prior}, p.obs, ctx, {p.members, p.state(), r.post});
  return r;
}

void expect_parity(const EnsfSettings& cfg, const ts::FilterProblem& p, double tol) {
  filters::EnsfAnalysis cpu(cfg);
  EnsfAnalysisHip gpu(cfg);
  const filters::AnalysisContext ctx{20240712, 4};
  const Results a = run(cpu, p, ctx), b = run(gpu, p, ctx);
  EXPECT_LT(ts::max_relative_difference(b.post, a.post, 1.0), tol);
  EXPECT_EQ(b.diag.extra.at("ensf_steps"), a.diag.extra.at("ensf_steps"));
  EXPECT_NEAR(b.diag.innovation_rms, a.diag.innovation_rms, 1e-12 * (1 + a.diag.innovation_rms));
  for (const auto& [key, value] : a.diag.extra)
    EXPECT_NEAR(b.diag.extra.at(key), value, tol * (1 + std::abs(value))) << key;
}

TEST(EnsfHip, PaperModeLinearMatchesCpu) {
  RTDA_SKIP_WITHOUT_GPU("EnSF paper-mode (linear obs) parity not run");
  expect_parity(EnsfSettings::paper(),
                ts::make_filter_problem(32, 20, ts::ObsLayout::kEveryPoint, 0,
                                        obs::ObsOperator::kLinearK, 1.0, 201),
                1e-10);
}

TEST(EnsfHip, PaperModeArctanMatchesCpu) {
  RTDA_SKIP_WITHOUT_GPU("EnSF paper-mode (arctan obs) parity not run");
  expect_parity(EnsfSettings::paper(),
                ts::make_filter_problem(32, 20, ts::ObsLayout::kRandomPoints, 600,
                                        obs::ObsOperator::kArctan, 0.01, 202),
                1e-10);
}

TEST(EnsfHip, StandardModeMatchesCpu) {
  RTDA_SKIP_WITHOUT_GPU("EnSF standard-mode parity not run");
  auto cfg = EnsfSettings::standard();
  cfg.steps = 200;
  cfg.rtps = 0.3;
  expect_parity(cfg,
                ts::make_filter_problem(16, 16, ts::ObsLayout::kBetweenPoints, 300,
                                        obs::ObsOperator::kLinearK, 1.0, 203),
                1e-8);
}

TEST(EnsfHip, SlabsWithAReducerMatchTheWholeDomain) {
  RTDA_SKIP_WITHOUT_GPU("EnSF slab analysis on the device not run");
  // Two slabs of whole grid rows analysed one after the other with a reducer that sees both
  // contributions: only possible serially if the reducer is trivial, so use one slab = the
  // whole domain through analyse_slab with an identity reducer (the collective path).
  auto cfg = EnsfSettings::standard();
  cfg.steps = 50;
  const auto p = ts::make_filter_problem(16, 12, ts::ObsLayout::kBetweenPoints, 200,
                                         obs::ObsOperator::kLinearK, 1.0, 204);
  filters::EnsfReducer identity{[](std::span<double>) {}, [](std::span<double>) {}};
  EnsfAnalysisHip gpu(cfg);
  std::vector<double> a(p.prior.size()), b(p.prior.size());
  gpu.analyse_slab(0, p.state() / 2, {p.members, p.state(), p.prior}, p.obs, {1, 1},
                   {p.members, p.state(), a}, identity);
  gpu.analyse({p.members, p.state(), p.prior}, p.obs, {1, 1}, {p.members, p.state(), b});
  EXPECT_EQ(a, b);
}

TEST(EnsfHip, DeviceResidentEnsembleGivesTheHostResult) {
  RTDA_SKIP_WITHOUT_GPU("EnSF device-pointer entry point not run");
  const auto p = ts::make_filter_problem(16, 12, ts::ObsLayout::kEveryPoint, 0,
                                         obs::ObsOperator::kLinearK, 1.0, 205);
  EnsfAnalysisHip host_path(EnsfSettings::paper()), device_path(EnsfSettings::paper());
  const Results a = run(host_path, p, {3, 8});
  detail::DeviceArray<double> ensemble(p.prior, "test ensemble");
  device_path.analyse_device(p.members, ensemble.get(), p.obs, {3, 8}, ensemble.get());
  EXPECT_EQ(ensemble.download(), a.post);
}

TEST(EnsfHip, WithoutADeviceTheAnalysisSaysSo) {
  if (rtda::device::gpu_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  const auto p = ts::make_filter_problem(8, 4, ts::ObsLayout::kEveryPoint, 0,
                                         obs::ObsOperator::kLinearK, 1.0, 206);
  EnsfAnalysisHip gpu(EnsfSettings::paper());
  try {
    run(gpu, p, {1, 1});
    FAIL() << "analysed without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("HIP"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rtda::hip
