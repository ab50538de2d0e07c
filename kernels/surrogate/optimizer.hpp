// AdamW with warm-up and cosine decay (docs/science.md §5): the optimizer of the ViT surrogate.
//
// One training step is
//   norm = opt.clip_gradients();   // global L2 norm before clipping, for the training log
//   opt.step();
//   opt.zero_grad();
// Everything is sequential float32/double arithmetic in parameter order, so two runs from the
// same state produce bitwise-identical parameters.
#pragma once

#include <string_view>
#include <vector>

#include "surrogate/tensor.hpp"

namespace rtda::surrogate {

struct AdamWSettings {
  double lr = 1e-3;  // peak learning rate, reached at the end of the warm-up
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // decoupled (Loshchilov & Hutter), only on ".weight" parameters
  double clip_norm = 1.0;      // global gradient L2 norm limit; 0 = off
  int warmup_steps = 500;      // linear warm-up from 0 to lr
  int total_steps = 10000;     // cosine decay reaches min_lr_fraction * lr here, constant after
  double min_lr_fraction = 0.05;
};

// Throws std::invalid_argument naming the first unusable setting.
void validate(const AdamWSettings& settings);

// The schedule: lr * step / warmup_steps for step < warmup_steps; then cosine decay from lr
// to min_lr_fraction * lr at total_steps; min_lr_fraction * lr from total_steps on.
double learning_rate(const AdamWSettings& settings, int step);

// Whether decoupled weight decay applies to a parameter: only matrices of linear maps, whose
// names end with ".weight". Biases, norm gains/shifts and embeddings (position, class tokens)
// are left alone, since shrinking them towards zero only biases the model.
bool is_weight_decayed(std::string_view parameter_name);

class AdamW {
 public:
  // `parameters` must outlive the optimizer; each grad must have its value's shape.
  AdamW(ParameterList parameters, AdamWSettings settings);

  // Scales all gradients together so their global L2 norm is at most clip_norm (when
  // clip_norm > 0) and returns the norm before clipping. A non-finite norm leaves the
  // gradients untouched and is returned as is, so the caller can skip the step.
  double clip_gradients();

  // One AdamW update of every parameter. Update t (1-based, t = steps() afterwards) uses
  // learning_rate(settings, t) and the bias corrections 1 - beta^t:
  //   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
  //   p -= lr_t wd p                          (".weight" parameters only)
  //   p -= lr_t (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step();

  // Number of updates made (restored by set_state).
  int steps() const { return steps_; }
  // Changes the peak learning rate of the schedule (the online adapter's guard scales it).
  void set_peak_learning_rate(double lr);
  // The learning rate the next step() will use.
  double next_learning_rate() const { return learning_rate(settings_, steps_ + 1); }
  void zero_grad();

  const ParameterList& parameters() const { return parameters_; }
  const AdamWSettings& settings() const { return settings_; }

  // Optimizer state for checkpoints: first and second moments, one per parameter in order.
  const std::vector<Mat>& m() const { return m_; }
  const std::vector<Mat>& v() const { return v_; }
  // Restores a saved state; throws std::invalid_argument naming each parameter whose moment
  // has the wrong shape (nothing is changed then).
  void set_state(int steps, std::vector<Mat> m, std::vector<Mat> v);

 private:
  ParameterList parameters_;
  AdamWSettings settings_;
  std::vector<Mat> m_;
  std::vector<Mat> v_;
  int steps_ = 0;
};

}  // namespace rtda::surrogate
