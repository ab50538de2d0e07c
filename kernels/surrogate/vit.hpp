// The ViT surrogate of docs/science.md §5 (the "small CPU probe" shape by default): joint
// 2-channel patch embedding (or, with embedding = "per-level", one Linear per level merged by
// the cross-attention of LevelAggregation, as [SC]/ClimaX), fixed 2-D sin-cos position
// embedding, `depth` pre-norm transformer blocks, final LayerNorm, a Linear head to patch
// pixels, unpatchified to 2 x N x N.
// With predict_increment the output is x + head(...), and the head starts at zero so the
// untrained model is exactly persistence.
//
// States are rows of 2 N^2 floats laid out [level][y][x], already normalised by the caller
// (one mean/std per level, §5). Token (i, j) of the (N/p) x (N/p) patch grid is row
// i (N/p) + j of a sample; its 2 p^2 features are ordered [level][dy][dx].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "surrogate/embedding.hpp"
#include "surrogate/layers.hpp"

namespace rtda::surrogate {

struct VitConfig {
  int grid_n = 64;                // N: the state is 2 x N x N
  int patch = 4;                  // p: patches of p x p on both levels; N % p == 0
  int dim = 128;                  // token width; a multiple of 4 (sin-cos embedding) and heads
  int depth = 4;                  // transformer blocks
  int heads = 4;                  // attention heads
  int mlp_ratio = 4;              // MLP hidden width = mlp_ratio * dim
  bool predict_increment = true;  // output = x + network(x)
  std::uint64_t seed = 1;         // parameter initialisation
  // Patch embedding (embedding.hpp); per level, LevelAggregation merges the two tokens.
  PatchEmbedding embedding = PatchEmbedding::kJoint;

  // Throws std::invalid_argument naming `surrogate.<key>` and the offending value.
  void validate() const;
};

class Vit {
 public:
  explicit Vit(VitConfig config);
  // The layers inside own the parameters and a ParameterList points at them: no copies, and a
  // ParameterList collected before a move dangles (collect again after moving).
  Vit(const Vit&) = delete;
  Vit& operator=(const Vit&) = delete;
  Vit(Vit&&) = default;
  Vit& operator=(Vit&&) = default;

  // Appends every trainable parameter, in a fixed order: the embedding (joint: patch_embed;
  // per-level: embed.level0, embed.level1, aggregate.{query, level_embed, kv, proj}),
  // blocks.0 ... blocks.{d-1} (norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2), norm, head.
  void collect(ParameterList& params);

  // x: [batch][2 N^2]; returns the predicted states, same shape. Caches for backward.
  Mat forward(const Mat& x);
  // d_out: dLoss/d(output) of the last forward, [batch][2 N^2]. Accumulates parameter
  // gradients and returns dLoss/dx.
  Mat backward(const Mat& d_out);

  const VitConfig& config() const { return config_; }
  int tokens_per_sample() const { return static_cast<int>(tokens_); }
  int state_size() const { return 2 * config_.grid_n * config_.grid_n; }
  std::int64_t parameter_count();
  // Multiply-add flops (2 m n k per product) of one sample's forward pass: every Linear and
  // the two attention products (of the blocks and of the level aggregation); elementwise work
  // (norms, GELU, softmax, adding embeddings) is not counted.
  std::int64_t flops_per_sample() const;

  const Mat& position_embedding() const { return pos_embed_; }  // [tokens][dim], fixed

 private:
  Mat patchify(const Mat& states) const;     // [B][2 N^2] -> [B T][2 p^2]
  Mat unpatchify(const Mat& patches) const;  // inverse

  VitConfig config_;
  Eigen::Index tokens_;
  Eigen::Index patch_dim_;
  bool per_level_;
  std::optional<Linear> embed_;                // joint: 2 p^2 -> dim
  std::vector<Linear> level_embeds_;           // per-level: p^2 -> dim, one per level
  std::optional<LevelAggregation> aggregate_;  // per-level: 2 tokens -> 1
  Mat pos_embed_;
  std::vector<TransformerBlock> blocks_;
  LayerNorm norm_;
  Linear head_;
  Eigen::Index batch_ = 0;  // rows of the last forward
};

}  // namespace rtda::surrogate
