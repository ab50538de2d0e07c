#include "surrogate/layers.hpp"

#include <cmath>
#include <random>
#include <stdexcept>

#include "surrogate/nn_math.hpp"

namespace rtda::surrogate {

namespace {

// SplitMix64 finaliser: spreads nearby (seed, name-hash) pairs over the whole 64-bit range.
std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a: a stable hash of the parameter name (std::hash is not specified across libraries).
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

void require_cols(const Mat& m, Eigen::Index cols, const char* layer, const std::string& name) {
  if (m.cols() != cols) {
    throw std::invalid_argument(std::string(layer) + " '" + name + "': input has " +
                                std::to_string(m.cols()) + " columns, expected " +
                                std::to_string(cols));
  }
}

void require_cache(const Mat& cache, Eigen::Index rows, const char* layer) {
  if (cache.rows() != rows || cache.size() == 0) {
    throw std::logic_error(std::string(layer) + "::backward: gradient has " + std::to_string(rows) +
                           " rows but the last forward had " + std::to_string(cache.rows()) +
                           " (backward needs a matching forward)");
  }
}

}  // namespace

std::uint64_t parameter_seed(std::uint64_t seed, const std::string& name) {
  return mix64(mix64(seed) ^ fnv1a(name));
}

void xavier_uniform(Mat& w, std::uint64_t seed, const std::string& name) {
  std::mt19937_64 rng(parameter_seed(seed, name));
  const double a = std::sqrt(6.0 / static_cast<double>(w.rows() + w.cols()));
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    for (Eigen::Index j = 0; j < w.cols(); ++j) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), 53 bits
      w(i, j) = static_cast<Real>(a * (2.0 * u - 1.0));
    }
  }
}

// ---------------------------------------------------------------------------------- Linear

Linear::Linear(const std::string& name, int in_features, int out_features, std::uint64_t seed,
               Init init)
    : weight_(name + ".weight", in_features, out_features), bias_(name + ".bias", 1, out_features) {
  if (in_features <= 0 || out_features <= 0) {
    throw std::invalid_argument("Linear '" + name + "': features must be positive, got " +
                                std::to_string(in_features) + " -> " +
                                std::to_string(out_features));
  }
  if (init == Init::kXavierUniform) xavier_uniform(weight_.value, seed, weight_.name);
}

void Linear::collect(ParameterList& params) {
  params.push_back(&weight_);
  params.push_back(&bias_);
}

Mat Linear::forward(const Mat& x) {
  require_cols(x, weight_.value.rows(), "Linear", weight_.name);
  x_ = x;
  Mat y(x.rows(), weight_.value.cols());
  y.rowwise() = bias_.value.row(0);
  y.noalias() += x * weight_.value;
  return y;
}

Mat Linear::backward(const Mat& dy) {
  require_cache(x_, dy.rows(), "Linear");
  require_cols(dy, weight_.value.cols(), "Linear gradient", weight_.name);
  weight_.grad.noalias() += x_.transpose() * dy;
  bias_.grad += dy.colwise().sum();
  Mat dx(dy.rows(), weight_.value.rows());
  dx.noalias() = dy * weight_.value.transpose();
  return dx;
}

// ------------------------------------------------------------------------------- LayerNorm

LayerNorm::LayerNorm(const std::string& name, int features, Real eps)
    : gamma_(name + ".weight", 1, features), beta_(name + ".bias", 1, features), eps_(eps) {
  if (features <= 0) {
    throw std::invalid_argument("LayerNorm '" + name + "': features must be positive, got " +
                                std::to_string(features));
  }
  gamma_.value.setOnes();
}

void LayerNorm::collect(ParameterList& params) {
  params.push_back(&gamma_);
  params.push_back(&beta_);
}

Mat LayerNorm::forward(const Mat& x) {
  require_cols(x, gamma_.value.cols(), "LayerNorm", gamma_.name);
  const Eigen::Index n = x.rows();
  const int d = static_cast<int>(x.cols());
  x_hat_.resize(n, d);
  inv_std_.resize(n);
  Mat y(n, d);
  // Row by row through the arithmetic the HIP kernel shares (surrogate/nn_math.hpp).
  for (Eigen::Index i = 0; i < n; ++i) {
    inv_std_(i) = nn::layer_norm_row(x.data() + i * d, d, gamma_.value.data(), beta_.value.data(),
                                     eps_, y.data() + i * d, x_hat_.data() + i * d);
  }
  return y;
}

Mat LayerNorm::backward(const Mat& dy) {
  require_cache(x_hat_, dy.rows(), "LayerNorm");
  gamma_.grad += dy.cwiseProduct(x_hat_).colwise().sum();
  beta_.grad += dy.colwise().sum();
  // dx = inv_std (g - mean(g) - x_hat mean(g x_hat)), g = dy gamma (the per-row projection
  // removes the directions that mean and variance normalisation make invisible).
  const Real inv_d = Real(1) / static_cast<Real>(dy.cols());
  Mat dx(dy.rows(), dy.cols());
  for (Eigen::Index i = 0; i < dy.rows(); ++i) {
    dx.row(i) = dy.row(i).cwiseProduct(gamma_.value.row(0));
    const Real mean_g = dx.row(i).sum() * inv_d;
    const Real mean_gx = dx.row(i).dot(x_hat_.row(i)) * inv_d;
    dx.row(i) = ((dx.row(i).array() - mean_g) - x_hat_.row(i).array() * mean_gx) * inv_std_(i);
  }
  return dx;
}

// ------------------------------------------------------------------------------------ GELU

Mat Gelu::forward(const Mat& x) {
  x_ = x;
  gate_.resize(x.rows(), x.cols());
  Mat y(x.rows(), x.cols());
  const Real* in = x.data();
  Real* gate = gate_.data();
  Real* out = y.data();
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    gate[i] = nn::gelu_gate(in[i]);
    out[i] = in[i] * gate[i];  // == nn::gelu(in[i])
  }
  return y;
}

Mat Gelu::backward(const Mat& dy) {
  require_cache(x_, dy.rows(), "Gelu");
  Mat dx(dy.rows(), dy.cols());
  const Real* x = x_.data();
  const Real* gate = gate_.data();
  const Real* g = dy.data();
  Real* out = dx.data();
  for (Eigen::Index i = 0; i < dy.size(); ++i)
    out[i] = g[i] * nn::gelu_derivative_from_gate(x[i], gate[i]);
  return dx;
}

// ---------------------------------------------------------------------------------- Attention

MultiHeadSelfAttention::MultiHeadSelfAttention(const std::string& name, int dim, int heads,
                                               std::uint64_t seed)
    : dim_(dim),
      heads_(heads),
      qkv_(name + ".qkv", dim, 3 * dim, seed),
      proj_(name + ".proj", dim, dim, seed) {
  if (heads <= 0 || dim % heads != 0) {
    throw std::invalid_argument("MultiHeadSelfAttention '" + name + "': dim " +
                                std::to_string(dim) + " is not a multiple of heads " +
                                std::to_string(heads));
  }
}

void MultiHeadSelfAttention::collect(ParameterList& params) {
  qkv_.collect(params);
  proj_.collect(params);
}

Mat MultiHeadSelfAttention::forward(const Mat& x, Eigen::Index tokens_per_sample) {
  const Eigen::Index t = tokens_per_sample;
  if (t <= 0 || x.rows() % t != 0) {
    throw std::invalid_argument("MultiHeadSelfAttention: " + std::to_string(x.rows()) +
                                " rows is not a whole number of samples of " + std::to_string(t) +
                                " tokens");
  }
  tokens_ = t;
  const Eigen::Index batch = x.rows() / t;
  const Eigen::Index dh = dim_ / heads_;
  const Real scale = nn::attention_scale(static_cast<int>(dh));

  qkv_out_ = qkv_.forward(x);
  probs_.resize(batch * heads_ * t, t);
  Mat heads_out(x.rows(), dim_);
  for (Eigen::Index s = 0; s < batch; ++s) {
    for (Eigen::Index h = 0; h < heads_; ++h) {
      const auto q = qkv_out_.block(s * t, h * dh, t, dh);
      const auto k = qkv_out_.block(s * t, dim_ + h * dh, t, dh);
      const auto v = qkv_out_.block(s * t, 2 * dim_ + h * dh, t, dh);
      auto p = probs_.middleRows((s * heads_ + h) * t, t);
      p.noalias() = q * k.transpose();
      // Softmax per row, shifted by the row maximum (surrogate/nn_math.hpp, shared with HIP).
      Real* p_rows = probs_.data() + (s * heads_ + h) * t * t;
      for (Eigen::Index r = 0; r < t; ++r)
        nn::softmax_row(p_rows + r * t, static_cast<int>(t), scale);
      heads_out.block(s * t, h * dh, t, dh).noalias() = p * v;
    }
  }
  return proj_.forward(heads_out);
}

Mat MultiHeadSelfAttention::backward(const Mat& dy) {
  require_cache(qkv_out_, dy.rows(), "MultiHeadSelfAttention");
  const Eigen::Index t = tokens_;
  const Eigen::Index batch = dy.rows() / t;
  const Eigen::Index dh = dim_ / heads_;
  const Real scale = nn::attention_scale(static_cast<int>(dh));

  const Mat d_heads = proj_.backward(dy);
  Mat d_qkv(dy.rows(), 3 * dim_);
  Mat d_p(t, t);
  for (Eigen::Index s = 0; s < batch; ++s) {
    for (Eigen::Index h = 0; h < heads_; ++h) {
      const auto q = qkv_out_.block(s * t, h * dh, t, dh);
      const auto k = qkv_out_.block(s * t, dim_ + h * dh, t, dh);
      const auto v = qkv_out_.block(s * t, 2 * dim_ + h * dh, t, dh);
      const auto p = probs_.middleRows((s * heads_ + h) * t, t);
      const auto d_o = d_heads.block(s * t, h * dh, t, dh);
      d_p.noalias() = d_o * v.transpose();
      d_qkv.block(s * t, 2 * dim_ + h * dh, t, dh).noalias() = p.transpose() * d_o;
      // Softmax Jacobian per row: dS = P o (dP - rowsum(dP o P)); the 1/sqrt(dh) of the
      // scores folds into dS.
      const Eigen::Matrix<Real, Eigen::Dynamic, 1> row_dot = d_p.cwiseProduct(p).rowwise().sum();
      d_p = (p.array() * (d_p.array().colwise() - row_dot.array())) * scale;
      d_qkv.block(s * t, h * dh, t, dh).noalias() = d_p * k;
      d_qkv.block(s * t, dim_ + h * dh, t, dh).noalias() = d_p.transpose() * q;
    }
  }
  return qkv_.backward(d_qkv);
}

// ------------------------------------------------------------------------- LevelAggregation

LevelAggregation::LevelAggregation(const std::string& name, int dim, int heads, int levels,
                                   std::uint64_t seed)
    : dim_(dim),
      heads_(heads),
      levels_(levels),
      query_(name + ".query", 1, dim),
      level_embed_(name + ".level_embed", levels, dim),
      kv_(name + ".kv", dim, 2 * dim, seed),
      proj_(name + ".proj", dim, dim, seed) {
  if (heads <= 0 || dim % heads != 0) {
    throw std::invalid_argument("LevelAggregation '" + name + "': dim " + std::to_string(dim) +
                                " is not a multiple of heads " + std::to_string(heads));
  }
  if (levels <= 0) {
    throw std::invalid_argument("LevelAggregation '" + name + "': levels must be positive, got " +
                                std::to_string(levels));
  }
  xavier_uniform(query_.value, seed, query_.name);
  xavier_uniform(level_embed_.value, seed, level_embed_.name);
}

void LevelAggregation::collect(ParameterList& params) {
  params.push_back(&query_);
  params.push_back(&level_embed_);
  kv_.collect(params);
  proj_.collect(params);
}

Mat LevelAggregation::forward(const Mat& x) {
  require_cols(x, static_cast<Eigen::Index>(levels_) * dim_, "LevelAggregation", query_.name);
  const Eigen::Index rows = x.rows();
  const Eigen::Index levels = levels_;
  const Eigen::Index dh = dim_ / heads_;
  const Real scale = nn::attention_scale(static_cast<int>(dh));
  // Row-major [R][L dim] is the same memory as [R L][dim]: one row per level token, so the
  // key/value map is one GEMM over all R L tokens.
  Mat z = Eigen::Map<const Mat>(x.data(), rows * levels, dim_);
  for (Eigen::Index r = 0; r < rows; ++r)
    z.middleRows(r * levels, levels) += level_embed_.value;
  kv_out_ = kv_.forward(z);
  probs_.resize(rows, heads_ * levels);
  Mat mixed = Mat::Zero(rows, dim_);
  const auto q = query_.value.row(0);
  for (Eigen::Index r = 0; r < rows; ++r) {
    for (Eigen::Index h = 0; h < heads_; ++h) {
      Real* p = probs_.data() + (r * heads_ + h) * levels;
      for (Eigen::Index l = 0; l < levels; ++l)
        p[l] = kv_out_.row(r * levels + l).segment(h * dh, dh).dot(q.segment(h * dh, dh));
      // Softmax over the levels, shifted by the maximum (surrogate/nn_math.hpp).
      nn::softmax_row(p, levels_, scale);
      for (Eigen::Index l = 0; l < levels; ++l) {
        mixed.row(r).segment(h * dh, dh) +=
            p[l] * kv_out_.row(r * levels + l).segment(dim_ + h * dh, dh);
      }
    }
  }
  return proj_.forward(mixed);
}

Mat LevelAggregation::backward(const Mat& dy) {
  require_cache(probs_, dy.rows(), "LevelAggregation");
  const Eigen::Index rows = dy.rows();
  const Eigen::Index levels = levels_;
  const Eigen::Index dh = dim_ / heads_;
  const Real scale = nn::attention_scale(static_cast<int>(dh));
  const Mat d_mixed = proj_.backward(dy);
  Mat d_kv(rows * levels, 2 * dim_);
  RowVec d_query = RowVec::Zero(dim_);
  RowVec d_p(levels);
  const auto q = query_.value.row(0);
  for (Eigen::Index r = 0; r < rows; ++r) {
    for (Eigen::Index h = 0; h < heads_; ++h) {
      const Real* p = probs_.data() + (r * heads_ + h) * levels;
      const auto d_o = d_mixed.row(r).segment(h * dh, dh);
      Real p_dot_dp = 0;
      for (Eigen::Index l = 0; l < levels; ++l) {
        d_p(l) = d_o.dot(kv_out_.row(r * levels + l).segment(dim_ + h * dh, dh));
        p_dot_dp += p[l] * d_p(l);
      }
      for (Eigen::Index l = 0; l < levels; ++l) {
        const Eigen::Index row = r * levels + l;
        // Softmax Jacobian dS = p (dP - sum p dP), with the 1/sqrt(dh) of the scores folded in.
        const Real d_score = p[l] * (d_p(l) - p_dot_dp) * scale;
        d_kv.row(row).segment(h * dh, dh) = d_score * q.segment(h * dh, dh);
        d_query.segment(h * dh, dh) += d_score * kv_out_.row(row).segment(h * dh, dh);
        d_kv.row(row).segment(dim_ + h * dh, dh) = p[l] * d_o;
      }
    }
  }
  query_.grad += d_query;
  const Mat d_z = kv_.backward(d_kv);  // [R L][dim]
  // Every level token of every row carries the same level embedding.
  const Eigen::Map<const Mat> d_by_row(d_z.data(), rows, levels * dim_);
  const RowVec d_embed = d_by_row.colwise().sum();
  for (Eigen::Index l = 0; l < levels; ++l)
    level_embed_.grad.row(l) += d_embed.segment(l * dim_, dim_);
  return d_by_row;
}

// ---------------------------------------------------------------------------------------- MLP

Mlp::Mlp(const std::string& name, int dim, int ratio, std::uint64_t seed)
    : fc1_(name + ".fc1", dim, ratio * dim, seed), fc2_(name + ".fc2", ratio * dim, dim, seed) {}

void Mlp::collect(ParameterList& params) {
  fc1_.collect(params);
  fc2_.collect(params);
}

Mat Mlp::forward(const Mat& x) {
  return fc2_.forward(act_.forward(fc1_.forward(x)));
}

Mat Mlp::backward(const Mat& dy) {
  return fc1_.backward(act_.backward(fc2_.backward(dy)));
}

// ------------------------------------------------------------------------- TransformerBlock

TransformerBlock::TransformerBlock(const std::string& name, int dim, int heads, int mlp_ratio,
                                   std::uint64_t seed)
    : norm1_(name + ".norm1", dim),
      attn_(name + ".attn", dim, heads, seed),
      norm2_(name + ".norm2", dim),
      mlp_(name + ".mlp", dim, mlp_ratio, seed) {}

void TransformerBlock::collect(ParameterList& params) {
  norm1_.collect(params);
  attn_.collect(params);
  norm2_.collect(params);
  mlp_.collect(params);
}

Mat TransformerBlock::forward(const Mat& x, Eigen::Index tokens_per_sample) {
  Mat h = attn_.forward(norm1_.forward(x), tokens_per_sample);
  h += x;
  Mat y = mlp_.forward(norm2_.forward(h));
  y += h;
  return y;
}

Mat TransformerBlock::backward(const Mat& dy) {
  Mat dh = norm2_.backward(mlp_.backward(dy));
  dh += dy;
  Mat dx = norm1_.backward(attn_.backward(dh));
  dx += dh;
  return dx;
}

}  // namespace rtda::surrogate
