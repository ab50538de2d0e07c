// The configuration keys of [surrogate] (the registry: config/keys.hpp).
#include "config/keys.hpp"

namespace rtda::config::detail {

void add_surrogate_keys(std::vector<Key>& r) {
  auto& m = r;
  // [surrogate]
  m.push_back(int_key(
      "surrogate.patch", [](Config& c) -> int& { return c.surrogate.patch; },
      "ViT patch size p (p x p on both levels, one token); N % p == 0."));
  m.push_back(choice_key(
      "surrogate.embedding",
      [](Config& c) -> surrogate::PatchEmbedding& { return c.surrogate.embedding; },
      surrogate::kPatchEmbeddingNames,
      "ViT patch embedding: one Linear on the 2p^2 values of both levels (joint), or one "
      "Linear per level merged into one token by cross-attention from a learned query "
      "(per-level, docs/science.md §5)."));
  m.push_back(int_key(
      "surrogate.dim", [](Config& c) -> int& { return c.surrogate.dim; },
      "ViT token width (a multiple of 4 and of heads)."));
  m.push_back(int_key(
      "surrogate.depth", [](Config& c) -> int& { return c.surrogate.depth; },
      "ViT transformer blocks."));
  m.push_back(int_key(
      "surrogate.heads", [](Config& c) -> int& { return c.surrogate.heads; },
      "Attention heads per block."));
  m.push_back(int_key(
      "surrogate.mlp_ratio", [](Config& c) -> int& { return c.surrogate.mlp_ratio; },
      "MLP hidden width / token width."));
  m.push_back(bool_key(
      "surrogate.predict_increment",
      [](Config& c) -> bool& { return c.surrogate.predict_increment; },
      "The network predicts the 12-hour increment (output = input + network)."));
  m.push_back(int_key(
      "surrogate.seed", [](Config& c) -> std::uint64_t& { return c.surrogate.seed; },
      "Seed of the initial weights, the batch order and the augmentation."));
  m.push_back(int_key(
      "surrogate.batch", [](Config& c) -> int& { return c.surrogate.batch; },
      "Training batch size (pairs per optimizer step)."));
  m.push_back(real_key(
      "surrogate.lr", [](Config& c) -> double& { return c.surrogate.lr; },
      "Peak learning rate of AdamW (after warm-up, before cosine decay)."));
  m.push_back(real_key(
      "surrogate.weight_decay", [](Config& c) -> double& { return c.surrogate.weight_decay; },
      "AdamW decoupled weight decay (weights only)."));
  m.push_back(real_key(
      "surrogate.clip_norm", [](Config& c) -> double& { return c.surrogate.clip_norm; },
      "Global gradient-norm clipping; 0 = off."));
  m.push_back(int_key(
      "surrogate.warmup_steps", [](Config& c) -> int& { return c.surrogate.warmup_steps; },
      "Linear learning-rate warm-up, steps."));
  m.push_back(int_key(
      "surrogate.steps", [](Config& c) -> int& { return c.surrogate.steps; },
      "Training steps of the schedule (cosine decay ends here)."));
  m.push_back(real_key(
      "surrogate.max_minutes", [](Config& c) -> double& { return c.surrogate.max_minutes; },
      "Training wall-clock budget, minutes (the best checkpoint is kept)."));
  m.push_back(int_key(
      "surrogate.eval_every", [](Config& c) -> int& { return c.surrogate.eval_every; },
      "Steps between validations (12-hour RMSE in K) and checkpoints."));
  m.push_back(int_key(
      "surrogate.patience", [](Config& c) -> int& { return c.surrogate.patience; },
      "Validations without improvement before early stopping."));
  m.push_back(bool_key(
      "surrogate.augment", [](Config& c) -> bool& { return c.surrogate.augment; },
      "Augment with the flow's symmetries (x shifts; flip with half-domain y shift)."));
  m.push_back(int_key(
      "surrogate.threads", [](Config& c) -> int& { return c.surrogate.threads; },
      "Threads of the surrogate's matrix products; 0 = OpenMP default."));
  m.push_back(string_key(
      "surrogate.weights", [](Config& c) -> std::string& { return c.surrogate.weights; },
      "Trained surrogate checkpoint (rtda train --out) used when the model is the ViT."));
  m.push_back(bool_key(
      "surrogate.online", [](Config& c) -> bool& { return c.surrogate.online.enabled; },
      "Adapt the surrogate while cycling: after each analysis, a few AdamW steps on "
      "(previous analysis mean -> analysis mean) pairs from a replay buffer, kept only while "
      "the adapted weights' innovations are no worse than the last accepted weights'."));
  m.push_back(real_key(
      "surrogate.online_lr", [](Config& c) -> double& { return c.surrogate.online.lr; },
      "Peak learning rate of the online steps (constant after the warm-up; halved by each "
      "rollback)."));
  m.push_back(int_key(
      "surrogate.online_steps", [](Config& c) -> int& { return c.surrogate.online.steps; },
      "Optimiser steps after each analysis."));
  m.push_back(int_key(
      "surrogate.online_batch", [](Config& c) -> int& { return c.surrogate.online.batch; },
      "Pairs per online step, drawn from the replay buffer (split over the worker ranks)."));
  m.push_back(int_key(
      "surrogate.online_buffer", [](Config& c) -> int& { return c.surrogate.online.buffer; },
      "Replay buffer capacity in pairs (the newest are kept)."));
  m.push_back(int_key(
      "surrogate.online_warmup_steps",
      [](Config& c) -> int& { return c.surrogate.online.warmup_steps; },
      "Linear warm-up of the online learning rate, in optimiser steps."));
  m.push_back(int_key(
      "surrogate.online_window", [](Config& c) -> int& { return c.surrogate.online.window; },
      "Cycles of out-of-sample innovation statistics behind each accept/rollback decision."));
  m.push_back(real_key(
      "surrogate.online_tolerance",
      [](Config& c) -> double& { return c.surrogate.online.tolerance; },
      "Roll back when the adapted weights' mean squared normalised innovation exceeds the "
      "accepted weights' by more than this fraction over a window."));
  m.push_back(real_key(
      "surrogate.online_min_lr_scale",
      [](Config& c) -> double& { return c.surrogate.online.min_lr_scale; },
      "Learning-rate guard: each rollback halves the online learning rate; below this "
      "fraction of surrogate.online_lr adaptation stops."));
}

}  // namespace rtda::config::detail
