// The whole ViT forward pass on a HIP device (hip::VitForwardHip) against the CPU model
// (surrogate::Vit::forward): a small model, the default model (docs/science.md §5's CPU probe)
// with a batch of 3, the device-pointer entry point, the weight re-upload that online
// training needs, and buffer reuse across batch sizes. The parity tests skip, saying what they
// skip, when no GPU is present.
//
// Weights: the initialised model has a zero head (the increment model starts as persistence),
// which would make any comparison of outputs trivially exact, so every test perturbs all
// parameters first.
//
// Tolerance: the two backends evaluate the same functions (nn_math.hpp) and differ only in
// float32 summation order and FMA contraction. Each GEMM then agrees to ~1e-5 of its output
// scale (k <= 512; see nn_hip_test), layer norms re-normalise, and the residual stream adds
// the errors of 2 depth + 2 products: after 4 blocks a few 1e-5 relative. We require 1e-3 of
// the largest increment (output minus input), norm-wise: a 10x margin over that estimate.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../surrogate/surrogate_test_support.hpp"
#include "gpu_skip.hpp"
#include "hip/device.hpp"
#include "hip/nn_hip.hpp"
#include "hip/vit_hip.hpp"
#include "surrogate/vit.hpp"

namespace rtda::hip {
namespace {

using surrogate::Mat;
using surrogate::ParameterList;
using surrogate::Vit;
using surrogate::VitConfig;
using surrogate::test_support::random_normal;

constexpr std::uint64_t kSeed = 20250613;

VitConfig small_config() {
  return surrogate::test_support::tiny_vit_config();
}

// Adds sd N(0, 1) to every parameter (so the head is no longer zero and the layer norms'
// gamma and beta are not 1 and 0).
void perturb(Vit& vit, std::mt19937_64& rng, double sd = 0.05) {
  ParameterList params;
  vit.collect(params);
  for (auto* p : params)
    p->value += random_normal(p->value.rows(), p->value.cols(), rng, sd);
}

void expect_matches_cpu(const Mat& got, const Mat& want, const Mat& input) {
  ASSERT_EQ(got.rows(), want.rows());
  ASSERT_EQ(got.cols(), want.cols());
  ASSERT_TRUE(got.allFinite());
  const double increment = static_cast<double>((want - input).cwiseAbs().maxCoeff());
  ASSERT_GT(increment, 1e-3) << "the model is (nearly) persistence: the comparison is vacuous";
  const double error = static_cast<double>((got - want).cwiseAbs().maxCoeff());
  EXPECT_LE(error, 1e-3 * increment) << "largest increment " << increment;
}

Mat forward_on_device(VitForwardHip& gpu, const Mat& x) {
  Mat y(x.rows(), x.cols());
  gpu.forward(x.data(), y.data(), static_cast<int>(x.rows()));
  return y;
}

TEST(HipVitForward, SmallModelMatchesTheCpuForward) {
  RTDA_SKIP_WITHOUT_GPU("VitForwardHip vs Vit::forward (small model) not checked");
  std::mt19937_64 rng(kSeed);
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  Vit vit(small_config());
  perturb(vit, rng);
  const Mat x = random_normal(5, vit.state_size(), rng);
  VitForwardHip gpu(vit);
  const Mat want = vit.forward(x);
  expect_matches_cpu(forward_on_device(gpu, x), want, x);
}

TEST(HipVitForward, DefaultModelMatchesTheCpuForwardForABatchOfThree) {
  RTDA_SKIP_WITHOUT_GPU("VitForwardHip vs Vit::forward (default model) not checked");
  std::mt19937_64 rng(kSeed + 1);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 1));
  Vit vit(VitConfig{});  // N = 64, patch 4, width 128, depth 4, 4 heads: T = 256, dh = 32
  perturb(vit, rng);
  const Mat x = random_normal(3, vit.state_size(), rng);
  VitForwardHip gpu(vit);
  const Mat want = vit.forward(x);
  expect_matches_cpu(forward_on_device(gpu, x), want, x);

  // A smaller batch reuses the buffers and gives the rows of the larger one (each sample is
  // computed independently; the GEMM's k order does not depend on the number of rows).
  EXPECT_EQ(gpu.capacity(), 3);
  const Mat one = forward_on_device(gpu, x.topRows(1));
  EXPECT_EQ(gpu.capacity(), 3);
  expect_matches_cpu(one, want.topRows(1), x.topRows(1));
}

TEST(HipVitForward, AbsoluteStateModelMatchesTheCpuForward) {
  RTDA_SKIP_WITHOUT_GPU("VitForwardHip without predict_increment not checked");
  std::mt19937_64 rng(kSeed + 2);
  VitConfig c = small_config();
  c.predict_increment = false;
  c.depth = 3;
  Vit vit(c);
  perturb(vit, rng);
  const Mat x = random_normal(2, vit.state_size(), rng);
  VitForwardHip gpu(vit);
  const Mat want = vit.forward(x);
  const Mat got = forward_on_device(gpu, x);
  // Without the increment the output is the network alone: 1e-3 of its largest value.
  EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-3 * want.cwiseAbs().maxCoeff());
}

TEST(HipVitForward, DeviceEntryPointMatchesTheHostOneAndWorksInPlace) {
  RTDA_SKIP_WITHOUT_GPU("VitForwardHip::forward_device not checked");
  std::mt19937_64 rng(kSeed + 3);
  Vit vit(small_config());
  perturb(vit, rng);
  const Mat x = random_normal(4, vit.state_size(), rng);
  VitForwardHip gpu(vit);
  const Mat host = forward_on_device(gpu, x);

  nn::DeviceArray d_in(static_cast<std::size_t>(x.size()));
  nn::DeviceArray d_out(d_in.size());
  d_in.upload(x.data());
  gpu.forward_device(d_in.data(), d_out.data(), 4);
  Mat device(x.rows(), x.cols());
  d_out.download(device.data());
  EXPECT_EQ(device, host);  // the same kernels on the same data: deterministic

  gpu.forward_device(d_in.data(), d_in.data(), 4);  // in place: the ensemble stays resident
  d_in.download(device.data());
  EXPECT_EQ(device, host);
}

TEST(HipVitForward, UsesNewHostWeightsOnlyAfterTheReupload) {
  RTDA_SKIP_WITHOUT_GPU("VitForwardHip::upload_weights not checked");
  std::mt19937_64 rng(kSeed + 4);
  Vit vit(small_config());
  perturb(vit, rng);
  const Mat x = random_normal(2, vit.state_size(), rng);
  VitForwardHip gpu(vit);
  const Mat before = forward_on_device(gpu, x);

  perturb(vit, rng);  // as an optimiser step would
  const Mat want = vit.forward(x);
  EXPECT_EQ(forward_on_device(gpu, x), before) << "the device weights are a snapshot";
  gpu.upload_weights(vit);
  expect_matches_cpu(forward_on_device(gpu, x), want, x);

  VitConfig other = small_config();
  other.depth = 1;
  Vit different(other);
  EXPECT_THROW(gpu.upload_weights(different), std::invalid_argument);
}

TEST(HipVitForward, RefusesToConstructWithoutADevice) {
  std::string why;
  if (rtda::device::gpu_device_count(&why) > 0) GTEST_SKIP() << "a GPU is present";
  Vit vit(small_config());
  try {
    VitForwardHip gpu(vit);
    FAIL() << "constructed without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable HIP device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rtda::hip
