#include "surrogate/vit.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "surrogate/nn_math.hpp"

namespace rtda::surrogate {

namespace {

constexpr int kLevels = 2;

void fail(const std::string& key, const std::string& value, const std::string& expected) {
  throw std::invalid_argument("surrogate." + key + " = " + value + ": expected " + expected);
}

void fail(const std::string& key, long long value, const std::string& expected) {
  fail(key, std::to_string(value), expected);
}

// The fixed 2-D sin-cos position embedding [tokens][dim] (nn::sincos_position_value, MAE,
// He et al. 2022), computed in double and stored as float.
Mat sincos_position_embedding(int grid, int dim) {
  Mat e(static_cast<Eigen::Index>(grid) * grid, dim);
  for (int i = 0; i < grid; ++i) {
    for (int j = 0; j < grid; ++j) {
      const Eigen::Index row = static_cast<Eigen::Index>(i) * grid + j;
      for (int f = 0; f < dim; ++f)
        e(row, f) = static_cast<Real>(nn::sincos_position_value(i, j, f, dim));
    }
  }
  return e;
}

const VitConfig& validated(const VitConfig& c) {
  c.validate();
  return c;
}

}  // namespace

void VitConfig::validate() const {
  if (patch <= 0) fail("patch", patch, "a positive patch size");
  if (grid_n <= 0 || grid_n % patch != 0) {
    fail("grid_n", grid_n, "a positive multiple of patch = " + std::to_string(patch));
  }
  if (heads <= 0) fail("heads", heads, "a positive number of heads");
  if (dim <= 0 || dim % 4 != 0 || dim % heads != 0) {
    fail("dim", dim,
         "a positive multiple of 4 (sin-cos embedding) and of heads = " + std::to_string(heads));
  }
  if (depth < 0) fail("depth", depth, "a non-negative number of blocks");
  if (mlp_ratio <= 0) fail("mlp_ratio", mlp_ratio, "a positive MLP width ratio");
}

Vit::Vit(VitConfig config)
    : config_(validated(config)),
      tokens_(static_cast<Eigen::Index>(config.grid_n / config.patch) *
              (config.grid_n / config.patch)),
      patch_dim_(2 * static_cast<Eigen::Index>(config.patch) * config.patch),
      per_level_(config.embedding == PatchEmbedding::kPerLevel),
      pos_embed_(sincos_position_embedding(config.grid_n / config.patch, config.dim)),
      norm_("norm", config.dim),
      // Zero head: the untrained increment model is exactly persistence.
      head_("head", config.dim, static_cast<int>(patch_dim_), config.seed, Linear::Init::kZero) {
  if (per_level_) {
    const int level_dim = config.patch * config.patch;
    level_embeds_.reserve(kLevels);
    for (int l = 0; l < kLevels; ++l) {
      level_embeds_.emplace_back("embed.level" + std::to_string(l), level_dim, config.dim,
                                 config.seed);
    }
    aggregate_.emplace("aggregate", config.dim, config.heads, kLevels, config.seed);
  } else {
    embed_.emplace("patch_embed", static_cast<int>(patch_dim_), config.dim, config.seed);
  }
  blocks_.reserve(static_cast<std::size_t>(config.depth));
  for (int b = 0; b < config.depth; ++b) {
    blocks_.emplace_back("blocks." + std::to_string(b), config.dim, config.heads, config.mlp_ratio,
                         config.seed);
  }
}

void Vit::collect(ParameterList& params) {
  if (embed_) embed_->collect(params);
  for (auto& level : level_embeds_)
    level.collect(params);
  if (aggregate_) aggregate_->collect(params);
  for (auto& block : blocks_)
    block.collect(params);
  norm_.collect(params);
  head_.collect(params);
}

std::int64_t Vit::parameter_count() {
  ParameterList params;
  collect(params);
  std::int64_t n = 0;
  for (const Parameter* p : params)
    n += p->value.size();
  return n;
}

std::int64_t Vit::flops_per_sample() const {
  const std::int64_t t = tokens_;
  const std::int64_t d = config_.dim;
  const std::int64_t pd = patch_dim_;
  const std::int64_t hidden = static_cast<std::int64_t>(config_.mlp_ratio) * d;
  const std::int64_t block = 2 * t * d * (3 * d)        // qkv
                             + 2 * 2 * t * t * d        // q k^T and p v, summed over heads
                             + 2 * t * d * d            // output projection
                             + 2 * 2 * t * d * hidden;  // fc1 and fc2
  // Joint: one product [T][2 p^2] x [2 p^2][dim]. Per-level: the same flops split over the two
  // level Linears, then the aggregation's key/value map over 2 T tokens, the query-key scores
  // and the weighted values (2 levels each) and its output projection.
  const std::int64_t levels = kLevels;
  const std::int64_t aggregation = per_level_ ? 2 * (levels * t) * d * (2 * d)  // kv
                                                    + 2 * 2 * t * levels * d    // q k, p v
                                                    + 2 * t * d * d             // proj
                                              : 0;
  return 2 * t * pd * d + aggregation + config_.depth * block + 2 * t * d * pd;
}

// Both directions use the index map that the HIP kernels share (nn::patch_state_index).
Mat Vit::patchify(const Mat& states) const {
  const int n = config_.grid_n;
  const int p = config_.patch;
  const int t = static_cast<int>(tokens_);
  const int f = static_cast<int>(patch_dim_);
  Mat out(states.rows() * tokens_, patch_dim_);
  for (Eigen::Index s = 0; s < states.rows(); ++s) {
    const Real* state = states.row(s).data();
    for (int token = 0; token < t; ++token) {
      Real* patch = out.row(s * tokens_ + token).data();
      for (int feature = 0; feature < f; ++feature)
        patch[feature] = state[nn::patch_state_index(token, feature, n, p)];
    }
  }
  return out;
}

Mat Vit::unpatchify(const Mat& patches) const {
  const int n = config_.grid_n;
  const int p = config_.patch;
  const int t = static_cast<int>(tokens_);
  const int f = static_cast<int>(patch_dim_);
  const Eigen::Index batch = patches.rows() / tokens_;
  Mat out(batch, 2 * static_cast<Eigen::Index>(n) * n);
  for (Eigen::Index s = 0; s < batch; ++s) {
    Real* state = out.row(s).data();
    for (int token = 0; token < t; ++token) {
      const Real* patch = patches.row(s * tokens_ + token).data();
      for (int feature = 0; feature < f; ++feature)
        state[nn::patch_state_index(token, feature, n, p)] = patch[feature];
    }
  }
  return out;
}

Mat Vit::forward(const Mat& x) {
  if (x.cols() != state_size() || x.rows() == 0) {
    throw std::invalid_argument("Vit::forward: input is " + std::to_string(x.rows()) + " x " +
                                std::to_string(x.cols()) + ", expected [batch >= 1][" +
                                std::to_string(state_size()) + "] (2 levels x " +
                                std::to_string(config_.grid_n) + "^2)");
  }
  batch_ = x.rows();
  Mat h;
  if (per_level_) {
    const Mat patches = patchify(x);  // features [level][dy][dx]: level l in a column block
    const Eigen::Index level_dim = patch_dim_ / kLevels;
    Mat level_tokens(patches.rows(), kLevels * static_cast<Eigen::Index>(config_.dim));
    for (int l = 0; l < kLevels; ++l) {
      level_tokens.middleCols(l * config_.dim, config_.dim) =
          level_embeds_[static_cast<std::size_t>(l)].forward(
              patches.middleCols(l * level_dim, level_dim));
    }
    h = aggregate_->forward(level_tokens);
  } else {
    h = embed_->forward(patchify(x));
  }
  for (Eigen::Index s = 0; s < batch_; ++s)
    h.middleRows(s * tokens_, tokens_) += pos_embed_;
  for (auto& block : blocks_)
    h = block.forward(h, tokens_);
  Mat out = unpatchify(head_.forward(norm_.forward(h)));
  if (config_.predict_increment) out += x;
  return out;
}

Mat Vit::backward(const Mat& d_out) {
  if (batch_ == 0 || d_out.rows() != batch_ || d_out.cols() != state_size()) {
    throw std::logic_error("Vit::backward: gradient is " + std::to_string(d_out.rows()) + " x " +
                           std::to_string(d_out.cols()) + " but the last forward produced " +
                           std::to_string(batch_) + " x " + std::to_string(state_size()));
  }
  Mat dh = norm_.backward(head_.backward(patchify(d_out)));
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it)
    dh = it->backward(dh);
  // The position embedding is a fixed additive term: its gradient passes straight through.
  Mat d_patches;
  if (per_level_) {
    const Mat d_tokens = aggregate_->backward(dh);
    const Eigen::Index level_dim = patch_dim_ / kLevels;
    d_patches.resize(d_tokens.rows(), patch_dim_);
    for (int l = 0; l < kLevels; ++l) {
      d_patches.middleCols(l * level_dim, level_dim) =
          level_embeds_[static_cast<std::size_t>(l)].backward(
              d_tokens.middleCols(l * config_.dim, config_.dim));
    }
  } else {
    d_patches = embed_->backward(dh);
  }
  Mat d_x = unpatchify(d_patches);
  if (config_.predict_increment) d_x += d_out;
  return d_x;
}

}  // namespace rtda::surrogate
