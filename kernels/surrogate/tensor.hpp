// Shared conventions of the ViT surrogate (docs/science.md §5): float32 row-major matrices, and
// named trainable parameters with their gradients, which layers own and the optimizer and the
// checkpoint files see through a ParameterList in a fixed order.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <vector>

namespace rtda::surrogate {

using Real = float;
// Activations are [tokens][features] (one row per token); weights are [in][out], so a linear
// layer is y = x W + b.
using Mat = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowVec = Eigen::Matrix<Real, 1, Eigen::Dynamic, Eigen::RowMajor>;

struct Parameter {
  std::string name;  // dotted path, e.g. "blocks.3.attn.qkv.weight"
  Mat value;
  Mat grad;  // same shape as value; accumulated by backward(), cleared by zero_grad()
  Parameter() = default;
  Parameter(std::string n, Eigen::Index rows, Eigen::Index cols)
      : name(std::move(n)), value(Mat::Zero(rows, cols)), grad(Mat::Zero(rows, cols)) {}
  void zero_grad() { grad.setZero(); }
};

// Non-owning, in registration order (the order of checkpoint groups and optimizer state).
using ParameterList = std::vector<Parameter*>;

}  // namespace rtda::surrogate
