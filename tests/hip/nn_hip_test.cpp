// Each HIP kernel of the surrogate (hip/nn_hip.hpp) against its CPU oracle: the surrogate's
// CPU layers (Linear, LayerNorm, Gelu, MultiHeadSelfAttention) or nn_math.hpp directly. The
// GPU evaluates the same element functions (nn_math.hpp), so the tolerances only cover
// float32 summation order (the GEMM's k loop and the row reductions run in another order than
// Eigen and nn_math's four-way partial sums) and FMA contraction on the device; each states
// its bound. Every test skips, saying what it skips, when no GPU is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../surrogate/surrogate_test_support.hpp"
#include "gpu_skip.hpp"
#include "hip/device.hpp"
#include "hip/nn_hip.hpp"
#include "surrogate/layers.hpp"
#include "surrogate/nn_math.hpp"

namespace rtda::hip::nn {
namespace {

using surrogate::Mat;
using surrogate::ParameterList;
using surrogate::test_support::random_normal;

constexpr std::uint64_t kSeed = 20250612;

DeviceArray to_device(const Mat& m) {
  DeviceArray d(static_cast<std::size_t>(m.size()));
  d.upload(m.data());
  return d;
}

Mat to_host(const DeviceArray& d, Eigen::Index rows, Eigen::Index cols) {
  Mat m(rows, cols);
  EXPECT_EQ(static_cast<std::size_t>(m.size()), d.size());
  d.download(m.data());
  return m;
}

double max_abs(const Mat& m) {
  return static_cast<double>(m.cwiseAbs().maxCoeff());
}

// Float32 GEMM error bound (Higham, Accuracy and Stability, §3.5): |fl(a.b) - a.b| <=
// k u sum_i |a_i b_i| with u = 2^-24, for any summation order, so two orders differ by at most
// twice that. With k <= 512 this is <= 6e-5 sum|a_i b_i|; we allow 1e-4 of that sum (plus the
// bias), elementwise.
void expect_gemm_close(const Mat& got, const Mat& want, const Mat& abs_sum, double rel = 1e-4) {
  ASSERT_EQ(got.rows(), want.rows());
  ASSERT_EQ(got.cols(), want.cols());
  for (Eigen::Index i = 0; i < got.rows(); ++i) {
    for (Eigen::Index j = 0; j < got.cols(); ++j) {
      ASSERT_NEAR(got(i, j), want(i, j), rel * abs_sum(i, j) + 1e-30)
          << "element (" << i << ", " << j << ")";
    }
  }
}

// sum_k |x_ik w_kj| + |b_j|: the scale of the rounding error of (x w + b)_ij.
Mat product_scale(const Mat& x, const Mat& w, const Mat& bias) {
  Mat s = x.cwiseAbs() * w.cwiseAbs();
  if (bias.size() > 0) s.rowwise() += bias.cwiseAbs().row(0);
  return s;
}

TEST(HipKernels, GemmMatchesTheCpuLinearLayerOnSizesThatAreNotTileMultiples) {
  RTDA_SKIP_WITHOUT_GPU("GEMM parity with surrogate::Linear not checked");
  std::mt19937_64 rng(kSeed);
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  struct Shape {
    int rows, in, out;
  };
  for (const Shape& s : {Shape{67, 37, 45}, Shape{1, 1, 1}, Shape{130, 129, 70}, Shape{64, 16, 64},
                         Shape{300, 512, 128}, Shape{5, 200, 3}}) {
    SCOPED_TRACE("rows " + std::to_string(s.rows) + ", in " + std::to_string(s.in) + ", out " +
                 std::to_string(s.out));
    surrogate::Linear cpu("test.linear", s.in, s.out, kSeed);
    cpu.bias().value = random_normal(1, s.out, rng);
    const Mat x = random_normal(s.rows, s.in, rng);
    const Mat want = cpu.forward(x);

    const DeviceArray dx = to_device(x);
    const DeviceArray dw = to_device(cpu.weight().value);
    const DeviceArray db = to_device(cpu.bias().value);
    DeviceArray dy(static_cast<std::size_t>(s.rows) * s.out);
    linear(dx.data(), s.rows, s.in, dw.data(), db.data(), s.out, dy.data());
    expect_gemm_close(to_host(dy, s.rows, s.out), want,
                      product_scale(x, cpu.weight().value, cpu.bias().value));
  }
}

TEST(HipKernels, GemmFusedGeluAndInPlaceResidualMatchTheCpuMlpPath) {
  RTDA_SKIP_WITHOUT_GPU("GEMM GELU and residual epilogues not checked");
  std::mt19937_64 rng(kSeed + 1);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 1));
  const int rows = 77, in = 48, out = 100;
  surrogate::Linear fc("test.fc", in, out, kSeed);
  fc.bias().value = random_normal(1, out, rng, 0.3);
  surrogate::Gelu act;
  const Mat x = random_normal(rows, in, rng);
  const Mat h = random_normal(rows, out, rng);
  const Mat pre = fc.forward(x);
  const Mat want = act.forward(pre) + h;

  const DeviceArray dx = to_device(x);
  const DeviceArray dw = to_device(fc.weight().value);
  const DeviceArray db = to_device(fc.bias().value);
  DeviceArray dh = to_device(h);
  // In place: the output is the residual stream itself, as in the transformer blocks.
  linear(dx.data(), rows, in, dw.data(), db.data(), out, dh.data(), /*gelu=*/true,
         /*residual=*/dh.data());
  // The GEMM bound carried through GELU (|gelu'| <= 1.13), plus 1e-4 x 1e-3 |h| = 1e-7 |h|
  // for the rounding of the residual add (one ulp of h is 6e-8 |h|).
  const Mat scale =
      product_scale(x, fc.weight().value, fc.bias().value) * 1.13f + h.cwiseAbs() * 1e-3f;
  expect_gemm_close(to_host(dh, rows, out), want, scale);
}

TEST(HipKernels, BatchedStridedTransposedGemmMatchesEigenPerMatrix) {
  RTDA_SKIP_WITHOUT_GPU("batched, strided, transposed GEMM not checked");
  std::mt19937_64 rng(kSeed + 2);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 2));
  // A 2 x 3 batch of column slices, as attention uses: A_oi and B_oi are the i-th 9-column
  // slice of block o of a [2 * 70][27] matrix; C = 0.5 A B^T + R, R = C (in place).
  const int outer = 2, inner = 3, m = 70, n = 70, k = 9;
  const Mat a = random_normal(outer * m, inner * k, rng);
  const Mat b = random_normal(outer * n, inner * k, rng);
  const Mat r = random_normal(outer * inner * m, n, rng);
  Mat want = r;
  Mat scale(outer * inner * m, n);
  for (int o = 0; o < outer; ++o) {
    for (int i = 0; i < inner; ++i) {
      const auto ab = a.block(o * m, i * k, m, k);
      const auto bb = b.block(o * n, i * k, n, k);
      want.middleRows((o * inner + i) * m, m) += 0.5f * ab * bb.transpose();
      // The GEMM bound of 0.5 A B^T, plus 1e-7 |r| for the residual add (as above).
      scale.middleRows((o * inner + i) * m, m) =
          0.5f * ab.cwiseAbs() * bb.cwiseAbs().transpose() +
          r.middleRows((o * inner + i) * m, m).cwiseAbs() * 1e-3f;
    }
  }
  const DeviceArray da = to_device(a);
  const DeviceArray db = to_device(b);
  DeviceArray dc = to_device(r);
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch_outer = outer;
  g.batch_inner = inner;
  g.a = da.data();
  g.a_layout = {inner * k, static_cast<std::int64_t>(m) * inner * k, k};
  g.b = db.data();
  g.b_layout = {inner * k, static_cast<std::int64_t>(n) * inner * k, k};
  g.transpose_b = true;
  g.c = dc.data();
  g.c_layout = {n, static_cast<std::int64_t>(inner) * m * n, static_cast<std::int64_t>(m) * n};
  g.alpha = 0.5f;
  g.residual = dc.data();
  g.residual_layout = g.c_layout;
  gemm(g);
  expect_gemm_close(to_host(dc, outer * inner * m, n), want, scale);
}

TEST(HipKernels, GemmRejectsInconsistentArguments) {
  RTDA_SKIP_WITHOUT_GPU("GEMM argument checks not exercised");
  DeviceArray buffer(16);
  GemmArgs g;
  g.m = 2;
  g.n = 2;
  g.k = 2;
  g.a = buffer.data();
  g.a_layout.ld = 1;  // < k
  g.b = buffer.data();
  g.b_layout.ld = 2;
  g.c = buffer.data();
  g.c_layout.ld = 2;
  EXPECT_THROW(gemm(g), std::invalid_argument);
  g.a_layout.ld = 2;
  g.k = 0;
  EXPECT_THROW(gemm(g), std::invalid_argument);
}

TEST(HipKernels, LayerNormMatchesTheCpuLayerNorm) {
  RTDA_SKIP_WITHOUT_GPU("layer-norm kernel parity not checked");
  std::mt19937_64 rng(kSeed + 3);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 3));
  // cols 128 (one element per thread), 300 (several, uneven), 5 (most threads idle).
  for (int cols : {128, 300, 5}) {
    SCOPED_TRACE("cols " + std::to_string(cols));
    const int rows = 37;
    surrogate::LayerNorm cpu("test.norm", cols);
    cpu.gamma().value = random_normal(1, cols, rng, 0.5);
    cpu.beta().value = random_normal(1, cols, rng, 0.5);
    Mat x = random_normal(rows, cols, rng, 2.0);
    x.array() += 3.0f;  // a mean offset, as residual streams have
    const Mat want = cpu.forward(x);

    DeviceArray dx = to_device(x);
    const DeviceArray dg = to_device(cpu.gamma().value);
    const DeviceArray db = to_device(cpu.beta().value);
    DeviceArray dy(dx.size());
    layer_norm(dx.data(), dy.data(), dg.data(), db.data(), rows, cols,
               surrogate::nn::kLayerNormEps);
    // Mean and variance are sums of <= 300 terms in another order: ~1e-6 relative each, and
    // x_hat = (x - mean) / std is O(few); 1e-5 of (|gamma| |x_hat| + |beta|) ~ 1e-5 absolute.
    const Mat got = to_host(dy, rows, cols);
    EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-5 * std::max(1.0, max_abs(want)));
    // In place gives the same.
    layer_norm(dx.data(), dx.data(), dg.data(), db.data(), rows, cols,
               surrogate::nn::kLayerNormEps);
    EXPECT_EQ(to_host(dx, rows, cols), got);
  }
}

TEST(HipKernels, GeluKernelMatchesTheCpuGelu) {
  RTDA_SKIP_WITHOUT_GPU("GELU kernel parity not checked");
  std::mt19937_64 rng(kSeed + 4);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 4));
  const Mat x = random_normal(1, 100003, rng, 4.0);  // more elements than one grid stride
  surrogate::Gelu cpu;
  const Mat want = cpu.forward(x);
  DeviceArray dx = to_device(x);
  DeviceArray dy(dx.size());
  gelu(dx.data(), dy.data(), static_cast<std::int64_t>(dx.size()));
  const Mat got = to_host(dy, 1, x.cols());
  // Same function, evaluated with FMA contraction on the device: u's rounding is amplified by
  // |2u| in exp (|x| <= ~20 here), a few 1e-6 of |x| at most.
  for (Eigen::Index j = 0; j < x.cols(); ++j)
    ASSERT_NEAR(got(0, j), want(0, j), 1e-5 * std::fabs(x(0, j)) + 1e-7) << "x = " << x(0, j);
  gelu(dx.data(), dx.data(), static_cast<std::int64_t>(dx.size()));  // in place
  EXPECT_EQ(to_host(dx, 1, x.cols()), got);
}

TEST(HipKernels, AddInPlaceIsExact) {
  RTDA_SKIP_WITHOUT_GPU("residual-add kernel not checked");
  std::mt19937_64 rng(kSeed + 5);
  const Mat a = random_normal(3, 1001, rng);
  const Mat b = random_normal(3, 1001, rng);
  DeviceArray da = to_device(a);
  const DeviceArray db = to_device(b);
  add_in_place(da.data(), db.data(), static_cast<std::int64_t>(da.size()));
  const Mat want = a + b;  // one rounding per element on both sides
  EXPECT_EQ(to_host(da, 3, 1001), want);
}

TEST(HipKernels, SoftmaxRowsMatchTheSharedRowSoftmax) {
  RTDA_SKIP_WITHOUT_GPU("softmax kernel parity not checked");
  std::mt19937_64 rng(kSeed + 6);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 6));
  for (int cols : {256, 37, 300, 1}) {
    SCOPED_TRACE("cols " + std::to_string(cols));
    const int rows = 50;
    Mat s = random_normal(rows, cols, rng, 10.0);
    s.row(3).array() += 1e4f;  // huge logits: stable by the shift
    s(4, 0) = 3e38f;           // one extreme logit dominates its row
    const float scale = surrogate::nn::attention_scale(32);
    Mat want = s;
    for (int r = 0; r < rows; ++r)
      surrogate::nn::softmax_row(want.data() + static_cast<std::ptrdiff_t>(r) * cols, cols, scale);
    DeviceArray ds = to_device(s);
    softmax_rows(ds.data(), rows, cols, scale);
    const Mat got = to_host(ds, rows, cols);
    // Probabilities in [0, 1]; the row max is exact in any order, the exponentials match to
    // FMA rounding (~2 ulp), and the sum of <= 300 terms differs by order: 2e-6 absolute.
    EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 2e-6);
    EXPECT_TRUE(got.allFinite());
  }
}

TEST(HipKernels, AttentionMatchesTheCpuMultiHeadSelfAttention) {
  RTDA_SKIP_WITHOUT_GPU("attention parity with surrogate::MultiHeadSelfAttention not checked");
  std::mt19937_64 rng(kSeed + 7);
  SCOPED_TRACE("seed " + std::to_string(kSeed + 7));
  // T = 37 and 256 (the default model's tokens); dh = 16 and 32.
  struct Shape {
    int batch, tokens, dim, heads;
  };
  for (const Shape& s : {Shape{3, 37, 64, 4}, Shape{2, 256, 128, 4}}) {
    SCOPED_TRACE("batch " + std::to_string(s.batch) + ", tokens " + std::to_string(s.tokens) +
                 ", dim " + std::to_string(s.dim) + ", heads " + std::to_string(s.heads));
    surrogate::MultiHeadSelfAttention cpu("test.attn", s.dim, s.heads, kSeed);
    ParameterList params;
    cpu.collect(params);  // qkv.weight, qkv.bias, proj.weight, proj.bias
    params[1]->value = random_normal(1, 3 * s.dim, rng, 0.2);
    params[3]->value = random_normal(1, s.dim, rng, 0.2);
    const int rows = s.batch * s.tokens;
    const Mat x = random_normal(rows, s.dim, rng);
    const Mat want = cpu.forward(x, s.tokens);

    const DeviceArray dx = to_device(x);
    std::vector<DeviceArray> dp;
    for (const auto* p : params)
      dp.push_back(to_device(p->value));
    DeviceArray qkv(static_cast<std::size_t>(rows) * 3 * s.dim);
    DeviceArray scores(attention_workspace_size(s.batch, s.tokens, s.heads));
    DeviceArray heads(static_cast<std::size_t>(rows) * s.dim);
    DeviceArray y(static_cast<std::size_t>(rows) * s.dim);
    linear(dx.data(), rows, s.dim, dp[0].data(), dp[1].data(), 3 * s.dim, qkv.data());
    attention(qkv.data(), scores.data(), heads.data(), s.batch, s.tokens, s.dim, s.heads);
    linear(heads.data(), rows, s.dim, dp[2].data(), dp[3].data(), s.dim, y.data());
    // Four products in series (k <= 256) and a softmax: each step within ~1e-5 relative of
    // its output scale (the GEMM bound above), the softmax turns a score error d into a
    // relative weight error of scale d. 1e-4 of the output's largest entry, norm-wise.
    const Mat got = to_host(y, rows, s.dim);
    EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-4 * max_abs(want));
  }
}

TEST(HipKernels, PatchifyFollowsTheIndexMapAndUnpatchifyInvertsIt) {
  RTDA_SKIP_WITHOUT_GPU("patchify / unpatchify kernels not checked");
  std::mt19937_64 rng(kSeed + 8);
  const int batch = 3, n = 16, p = 4;
  const int tokens = (n / p) * (n / p), features = 2 * p * p, state = 2 * n * n;
  const Mat x = random_normal(batch, state, rng);
  Mat want(batch * tokens, features);
  for (int s = 0; s < batch; ++s)
    for (int t = 0; t < tokens; ++t)
      for (int f = 0; f < features; ++f)
        want(s * tokens + t, f) = x(s, surrogate::nn::patch_state_index(t, f, n, p));
  const DeviceArray dx = to_device(x);
  DeviceArray patches(static_cast<std::size_t>(batch) * tokens * features);
  patchify(dx.data(), patches.data(), batch, n, p);
  EXPECT_EQ(to_host(patches, batch * tokens, features), want);  // pure copies: exact

  DeviceArray back(dx.size());
  unpatchify(patches.data(), nullptr, back.data(), batch, n, p);
  EXPECT_EQ(to_host(back, batch, state), x);
  unpatchify(patches.data(), back.data(), back.data(), batch, n, p);  // + residual, in place
  EXPECT_EQ(to_host(back, batch, state), Mat(2.0f * x));
}

}  // namespace
}  // namespace rtda::hip::nn
