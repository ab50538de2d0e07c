// Building blocks of the ViT surrogate (docs/science.md §5), forward and backward written by
// hand on Eigen.
//
// Conventions shared by every layer:
// - Activations are a *stacked batch*: a Mat with one row per token and the tokens of sample
//   s in rows [s T, (s+1) T). Linear, LayerNorm, GELU and Mlp act row by row, so they run one
//   GEMM over all B T rows (far faster than B small GEMMs); only the attention mixes rows,
//   and it does so per sample (and per head), one GEMM each, on blocks of the stacked matrix.
// - forward() caches what backward() needs (one forward, then at most one backward per
//   forward; a second forward overwrites the cache).
// - backward(dY) returns dX and ACCUMULATES parameter gradients into Parameter::grad, so the
//   caller zeroes them (Parameter::zero_grad) once per optimiser step.
// - collect() appends the layer's parameters in a fixed order; the pointers stay valid while
//   the layer is not moved, so collect after the model is in its final place.
// - Initialisation is a pure function of (model seed, parameter name): each weight matrix
//   draws from its own std::mt19937_64 keyed by both, converted to floats by our own code (not
//   std:: distributions, whose output differs between standard libraries).
// Threads: none are created here; Eigen's GEMM uses the OpenMP threads the caller configured
// (Eigen::setNbThreads). Results are deterministic for a given seed and thread count.
#pragma once

#include <cstdint>
#include <string>

#include "surrogate/nn_math.hpp"
#include "surrogate/tensor.hpp"

namespace rtda::surrogate {

// The 64-bit seed of the stream that initialises parameter `name` of a model seeded `seed`.
std::uint64_t parameter_seed(std::uint64_t seed, const std::string& name);

// Fills w [in][out] from U(-a, a), a = sqrt(6 / (in + out)) (Glorot & Bengio 2010), from the
// stream parameter_seed(seed, name).
void xavier_uniform(Mat& w, std::uint64_t seed, const std::string& name);

// y = x W + b with W [in][out], b [1][out].
class Linear {
 public:
  enum class Init { kXavierUniform, kZero };  // bias is zero either way

  // `name` is the dotted prefix of the parameters ("blocks.0.attn.qkv" -> ".weight", ".bias").
  Linear(const std::string& name, int in_features, int out_features, std::uint64_t seed,
         Init init = Init::kXavierUniform);

  void collect(ParameterList& params);
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);

  int in_features() const { return static_cast<int>(weight_.value.rows()); }
  int out_features() const { return static_cast<int>(weight_.value.cols()); }
  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }

 private:
  Parameter weight_;
  Parameter bias_;
  Mat x_;  // input of the last forward
};

// Per-row layer normalisation, y = (x - mean) / sqrt(var + eps) * gamma + beta, with the
// biased variance over the row's features (as torch.nn.LayerNorm).
class LayerNorm {
 public:
  LayerNorm(const std::string& name, int features, Real eps = nn::kLayerNormEps);

  void collect(ParameterList& params);
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);

  Parameter& gamma() { return gamma_; }
  Parameter& beta() { return beta_; }

 private:
  Parameter gamma_;  // named ".weight" as in PyTorch
  Parameter beta_;   // named ".bias"
  Real eps_;
  Mat x_hat_;                                       // normalised input
  Eigen::Matrix<Real, Eigen::Dynamic, 1> inv_std_;  // 1 / sqrt(var + eps) per row
};

// GELU, tanh approximation (Hendrycks & Gimpel 2016; PyTorch approximate="tanh"):
//   gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// element by element through surrogate/nn_math.hpp (shared with the HIP kernels). It needs
// one exp per element instead of erf; the difference to the exact erf form is below 1e-3, far
// under what the surrogate resolves.
class Gelu {
 public:
  void collect(ParameterList& /*params*/) {}  // no parameters
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);

 private:
  Mat x_;
  Mat gate_;  // (1 + tanh(u(x))) / 2 = gelu(x) / x, reused by the derivative
};

// Multi-head self-attention: one fused Linear to [q | k | v] (each dim wide, head h in columns
// [h dh, (h+1) dh) of its third, dh = dim / heads), softmax(q k^T / sqrt(dh)) v per sample and
// head (rows of the softmax shifted by their maximum so exp never overflows), heads
// concatenated, then an output Linear.
class MultiHeadSelfAttention {
 public:
  MultiHeadSelfAttention(const std::string& name, int dim, int heads, std::uint64_t seed);

  void collect(ParameterList& params);
  // x: stacked batch [B T][dim]; tokens_per_sample = T (x.rows() must be a multiple).
  Mat forward(const Mat& x, Eigen::Index tokens_per_sample);
  Mat backward(const Mat& dy);

  int heads() const { return heads_; }

 private:
  int dim_;
  int heads_;
  Linear qkv_;
  Linear proj_;
  Eigen::Index tokens_ = 0;
  Mat qkv_out_;  // [B T][3 dim]
  Mat probs_;    // softmax of sample s, head h in rows [(s heads + h) T, ... + T): [B heads T][T]
};

// Variable aggregation of [SC]/ClimaX (docs/science.md §5): merges the L level tokens of one patch
// position into one token by cross-attention from a learned query.
//   z_l = x_l + E_l                       level token plus its learned level embedding E_l
//   [k_l | v_l] = z_l W_kv + b_kv         one fused Linear dim -> 2 dim (".kv")
//   p_hl = softmax_l(q_h . k_lh / sqrt(dh))  per head h over the L levels
//   y = (concat_h sum_l p_hl v_lh) W_o + b_o  (".proj")
// The query q [1][dim] is a parameter shared by every position and sample (a projection of a
// learned query would only reparametrise it, so there is none). Multi-head: with one head the
// merged token is a single convex mixture of the level values, so a position whose softmax
// favours one level suppresses the other in every channel; with several heads each group of
// dh channels takes its own mixture and some heads can keep each level (cost: L scores per head
// and position, nothing next to the Linears).
// Input rows hold the L level tokens side by side: x [R][L dim], level l in columns
// [l dim, (l+1) dim); output [R][dim]. Rows are independent (R = batch * positions).
// Parameters, in collect() order: query [1][dim], level_embed [L][dim], kv.weight, kv.bias,
// proj.weight, proj.bias; query and level_embed Xavier-initialised like the Linears.
class LevelAggregation {
 public:
  LevelAggregation(const std::string& name, int dim, int heads, int levels, std::uint64_t seed);

  void collect(ParameterList& params);
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);

  int levels() const { return levels_; }
  int heads() const { return heads_; }

 private:
  int dim_;
  int heads_;
  int levels_;
  Parameter query_;
  Parameter level_embed_;
  Linear kv_;
  Linear proj_;
  Mat kv_out_;  // [R L][2 dim]: row r L + l holds [k | v] of level l at row r
  Mat probs_;   // [R][heads L]: softmax weights, head h in columns [h L, (h+1) L)
};

// Linear(dim -> ratio dim) - GELU - Linear(ratio dim -> dim).
class Mlp {
 public:
  Mlp(const std::string& name, int dim, int ratio, std::uint64_t seed);

  void collect(ParameterList& params);
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);

 private:
  Linear fc1_;
  Gelu act_;
  Linear fc2_;
};

// Pre-norm transformer block: h = x + attn(norm1(x)); y = h + mlp(norm2(h)).
class TransformerBlock {
 public:
  TransformerBlock(const std::string& name, int dim, int heads, int mlp_ratio, std::uint64_t seed);

  void collect(ParameterList& params);
  Mat forward(const Mat& x, Eigen::Index tokens_per_sample);
  Mat backward(const Mat& dy);

 private:
  LayerNorm norm1_;
  MultiHeadSelfAttention attn_;
  LayerNorm norm2_;
  Mlp mlp_;
};

}  // namespace rtda::surrogate
