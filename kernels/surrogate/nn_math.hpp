// The element arithmetic of the ViT surrogate (docs/science.md §5) that the CPU layers
// (layers.cpp, vit.cpp) and the HIP kernels (hip/nn_hip.hip) share: GELU, one row of layer
// normalisation, one row of the attention softmax, the patch <-> state index map and the 2-D
// sin-cos position embedding. The CPU tests (tests/hip/nn_math_test.cpp and the surrogate's
// layer tests) exercise exactly what the GPU runs; the matrix products are not here (Eigen on
// the CPU, a tiled kernel on the GPU).
//
// Device-safe by construction (kernels/core/hd.hpp): float, raw pointers and sizes, no Eigen,
// exceptions or allocation. Rows are contiguous float arrays of n >= 1 elements.
#pragma once

#include <cmath>

#include "core/hd.hpp"

namespace rtda::surrogate::nn {

// ------------------------------------------------------------------------- Row reductions
// Sums and maxima of one row with four interleaved partial results, combined as
// (r0 + r1) + (r2 + r3): the four independent chains hide the add latency and let g++
// vectorise the loop (a single running sum is one dependent add per element, ~4x slower),
// and the order is fixed, so results are deterministic. The GPU reduces rows across threads
// instead (hip/nn_hip.hip), in another order.
RTDA_HD inline float row_sum(const float* x, int n) {
  float r0 = 0.0f, r1 = 0.0f, r2 = 0.0f, r3 = 0.0f;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    r0 += x[i];
    r1 += x[i + 1];
    r2 += x[i + 2];
    r3 += x[i + 3];
  }
  for (; i < n; ++i)
    r0 += x[i];
  return (r0 + r1) + (r2 + r3);
}

// sum_i (x_i - shift)^2
RTDA_HD inline float row_sum_sq_centred(const float* x, int n, float shift) {
  float r0 = 0.0f, r1 = 0.0f, r2 = 0.0f, r3 = 0.0f;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const float c0 = x[i] - shift, c1 = x[i + 1] - shift;
    const float c2 = x[i + 2] - shift, c3 = x[i + 3] - shift;
    r0 += c0 * c0;
    r1 += c1 * c1;
    r2 += c2 * c2;
    r3 += c3 * c3;
  }
  for (; i < n; ++i) {
    const float c = x[i] - shift;
    r0 += c * c;
  }
  return (r0 + r1) + (r2 + r3);
}

RTDA_HD inline float max_of(float a, float b) {
  return a < b ? b : a;
}

RTDA_HD inline float min_of(float a, float b) {
  return b < a ? b : a;
}

RTDA_HD inline float row_max(const float* x, int n) {
  float r0 = x[0], r1 = x[0], r2 = x[0], r3 = x[0];
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    r0 = max_of(r0, x[i]);
    r1 = max_of(r1, x[i + 1]);
    r2 = max_of(r2, x[i + 2]);
    r3 = max_of(r3, x[i + 3]);
  }
  for (; i < n; ++i)
    r0 = max_of(r0, x[i]);
  return max_of(max_of(r0, r1), max_of(r2, r3));
}

// ------------------------------------------------------------------------------------- exp
// exp(x) in float from arithmetic alone, so that g++ vectorises the CPU loops that call it
// (glibc's expf is a scalar call) and both backends evaluate the same function. Within
// 2 float ulps of the exact value (tested against double exp over the whole range).
//   x = n ln2 + r, n = round(x / ln2), |r| <= ln2/2, with ln2 split as hi + lo (hi carries
//   16 significant bits, so n hi is exact for |n| < 2^8: Cody & Waite 1980);
//   exp(r) by its Taylor series to degree 7 (truncation < 1e-8 relative on |r| <= ln2/2);
//   2^n applied as two exactly representable powers 2^(n/2) 2^(n - n/2), so the results
//   near overflow (n = 128) and the subnormal ones (n down to -150) come out right.
// x > 89 gives +inf, x < -104 gives 0, NaN stays NaN. (The clamps are float comparisons:
// g++ vectorises them only with -fno-trapping-math, which kernels/surrogate/CMakeLists.txt
// sets for layers.cpp.)
RTDA_HD inline float exp_float(float x) {
  constexpr float kLog2e = 1.44269502f;
  constexpr float kLn2Hi = 0.693145751953125f;  // ln 2 with the low 8 mantissa bits cleared
  constexpr float kLn2Lo = 1.42860677e-06f;     // ln 2 - kLn2Hi
  constexpr float kRoundToInt = 12582912.0f;    // 1.5 2^23: (y + k) - k rounds y to integer
  const bool is_nan = !(x == x);
  const float xc = min_of(max_of(is_nan ? 0.0f : x, -104.0f), 89.0f);
  const float n = (xc * kLog2e + kRoundToInt) - kRoundToInt;  // exact integer in [-150, 128]
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int ni = static_cast<int>(n);
  const int half = ni >> 1;  // floor(n / 2); both halves in [-75, 64]: normal floats
  const float scale_a = __builtin_bit_cast(float, (half + 127) << 23);
  const float scale_b = __builtin_bit_cast(float, (ni - half + 127) << 23);
  const float result = p * scale_a * scale_b;
  return is_nan ? x : result;
}

// ------------------------------------------------------------------------------------ GELU
// GELU, tanh approximation (Hendrycks & Gimpel 2016; PyTorch approximate="tanh"):
//   gelu(x) = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3).
// Evaluated through the identity (1 + tanh(u)) / 2 = 1 / (1 + exp(-2u)) (the "gate"): one exp
// instead of one tanh (exp_float vectorises; tanh would need its own rational approximation),
// and no cancellation in 1 + tanh(u) for x << 0. For x -> -inf the gate underflows to 0 and
// gelu to -0; for x -> +inf the gate is 1.
inline constexpr float kGeluCubic = 0.044715f;
inline constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi) rounded to float

// The gate s(x) = (1 + tanh(u(x))) / 2, in [0, 1]; gelu(x) = x s(x).
RTDA_HD inline float gelu_gate(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return 1.0f / (1.0f + exp_float(-2.0f * u));
}

RTDA_HD inline float gelu(float x) {
  return x * gelu_gate(x);
}

// d gelu / dx from x and its gate s = gelu_gate(x) (the CPU layer caches s in forward):
//   s + x s (1 - s) 2 u'(x),  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2),
// which is (1 + t)/2 + x/2 (1 - t^2) u' with t = tanh(u) = 2s - 1.
RTDA_HD inline float gelu_derivative_from_gate(float x, float gate) {
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
  return gate + 2.0f * x * gate * (1.0f - gate) * du;
}

RTDA_HD inline float gelu_derivative(float x) {
  return gelu_derivative_from_gate(x, gelu_gate(x));
}

// ------------------------------------------------------------------------------ Layer norm
// y = (x - mean) / sqrt(var + eps) * gamma + beta per row, with the biased variance over the
// row (as torch.nn.LayerNorm). Two passes (mean, then the centred sum of squares): no
// cancellation when |mean| >> std, unlike E[x^2] - E[x]^2. The GPU kernel computes the same
// two sums by a block reduction and then applies the same element functions.
inline constexpr float kLayerNormEps = 1e-5f;

RTDA_HD inline float layer_norm_inv_std(float variance, float eps) {
  return 1.0f / std::sqrt(variance + eps);
}

// x_hat = (x - mean) inv_std
RTDA_HD inline float layer_norm_normalise(float x, float mean, float inv_std) {
  return (x - mean) * inv_std;
}

RTDA_HD inline float layer_norm_affine(float x_hat, float gamma, float beta) {
  return x_hat * gamma + beta;
}

// Normalises the row x[0, n) into y (y == x is allowed), optionally storing the normalised
// row before the affine map in x_hat (nullptr to skip); returns 1 / sqrt(var + eps).
RTDA_HD inline float layer_norm_row(const float* x, int n, const float* gamma, const float* beta,
                                    float eps, float* y, float* x_hat) {
  const float inv_n = 1.0f / static_cast<float>(n);
  const float mean = row_sum(x, n) * inv_n;
  const float inv_std = layer_norm_inv_std(row_sum_sq_centred(x, n, mean) * inv_n, eps);
  for (int i = 0; i < n; ++i) {
    const float xh = layer_norm_normalise(x[i], mean, inv_std);
    if (x_hat != nullptr) x_hat[i] = xh;
    y[i] = layer_norm_affine(xh, gamma[i], beta[i]);
  }
  return inv_std;
}

// -------------------------------------------------------------------------------- Softmax
// Attention weights of one query row: p_j = exp(scale (s_j - max s)) / sum_k exp(...), with
// scale = 1/sqrt(head_dim) > 0 applied after the shift (so max_j of the scaled scores is the
// scaled max). Shifting by the row maximum makes every exponent <= 0: no overflow for any
// finite scores, and the largest term is exactly 1, so the sum is >= 1 (no division by 0).
RTDA_HD inline float attention_scale(int head_dim) {
  return 1.0f / std::sqrt(static_cast<float>(head_dim));
}

RTDA_HD inline float softmax_weight(float score, float max_score, float scale) {
  return exp_float((score - max_score) * scale);
}

RTDA_HD inline float softmax_normalise(float weight, float weight_sum) {
  return weight / weight_sum;
}

// In place over row[0, n).
RTDA_HD inline void softmax_row(float* row, int n, float scale) {
  const float shift = row_max(row, n);
  for (int j = 0; j < n; ++j)
    row[j] = softmax_weight(row[j], shift, scale);
  const float sum = row_sum(row, n);
  for (int j = 0; j < n; ++j)
    row[j] = softmax_normalise(row[j], sum);
}

// ------------------------------------------------------------------------------- Patches
// A state is 2 x N x N floats laid out [level][y][x]; with patches of p x p the (N/p)^2 tokens
// are numbered ti (N/p) + tj for patch row ti and column tj, and a token's 2 p^2 features are
// [level][dy][dx]. Feature f of token t is the state element returned here (within one
// sample); the map is a bijection of [0, (N/p)^2) x [0, 2 p^2) onto [0, 2 N^2).
RTDA_HD inline int patch_state_index(int token, int feature, int grid_n, int patch) {
  const int grid = grid_n / patch;
  const int ti = token / grid;
  const int tj = token % grid;
  const int level = feature / (patch * patch);
  const int within = feature % (patch * patch);
  const int dy = within / patch;
  const int dx = within % patch;
  return (level * grid_n + ti * patch + dy) * grid_n + tj * patch + dx;
}

// ---------------------------------------------------------------- Sin-cos position embedding
// 2-D sin-cos position embedding (MAE, He et al. 2022) of the token in patch row i, column j:
// the first dim/2 features encode j, the last dim/2 encode i, each as [sin(pos w_k) for k <
// dim/4, cos(pos w_k) for k < dim/4] with w_k = 10000^(-k / (dim/4)). In double (the model
// stores it as float); dim is a multiple of 4.
RTDA_HD inline double sincos_position_value(int i, int j, int feature, int dim) {
  const int quarter = dim / 4;
  const int part = feature / quarter;  // 0: sin(j w), 1: cos(j w), 2: sin(i w), 3: cos(i w)
  const int k = feature % quarter;
  const double w = std::pow(10000.0, -static_cast<double>(k) / quarter);
  const int pos = part < 2 ? j : i;
  return part % 2 == 0 ? std::sin(pos * w) : std::cos(pos * w);
}

}  // namespace rtda::surrogate::nn
