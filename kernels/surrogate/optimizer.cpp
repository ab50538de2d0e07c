#include "surrogate/optimizer.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>

namespace rtda::surrogate {

namespace {

std::string shape_string(Eigen::Index rows, Eigen::Index cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

}  // namespace

void validate(const AdamWSettings& s) {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("AdamW settings: " + what);
  };
  if (!(s.lr >= 0) || !std::isfinite(s.lr))
    fail("lr = " + std::to_string(s.lr) + ", expected >= 0");
  if (!(s.beta1 >= 0 && s.beta1 < 1))
    fail("beta1 = " + std::to_string(s.beta1) + ", expected in [0, 1)");
  if (!(s.beta2 >= 0 && s.beta2 < 1))
    fail("beta2 = " + std::to_string(s.beta2) + ", expected in [0, 1)");
  if (!(s.eps > 0)) fail("eps = " + std::to_string(s.eps) + ", expected > 0");
  if (!(s.weight_decay >= 0))
    fail("weight_decay = " + std::to_string(s.weight_decay) + ", expected >= 0");
  if (!(s.clip_norm >= 0))
    fail("clip_norm = " + std::to_string(s.clip_norm) + ", expected >= 0 (0 = off)");
  if (s.warmup_steps < 0)
    fail("warmup_steps = " + std::to_string(s.warmup_steps) + ", expected >= 0");
  if (s.total_steps < s.warmup_steps) {
    fail("total_steps = " + std::to_string(s.total_steps) +
         ", expected >= warmup_steps = " + std::to_string(s.warmup_steps));
  }
  if (!(s.min_lr_fraction >= 0 && s.min_lr_fraction <= 1))
    fail("min_lr_fraction = " + std::to_string(s.min_lr_fraction) + ", expected in [0, 1]");
}

double learning_rate(const AdamWSettings& s, int step) {
  if (step < 0) step = 0;
  const double min_lr = s.min_lr_fraction * s.lr;
  if (step < s.warmup_steps) return s.lr * step / s.warmup_steps;
  if (step >= s.total_steps) return min_lr;
  const double progress = double(step - s.warmup_steps) / double(s.total_steps - s.warmup_steps);
  return min_lr + 0.5 * (s.lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

bool is_weight_decayed(std::string_view name) {
  return name.ends_with(".weight");
}

AdamW::AdamW(ParameterList parameters, AdamWSettings settings)
    : parameters_(std::move(parameters)), settings_(settings) {
  validate(settings_);
  std::unordered_set<std::string> names;
  m_.reserve(parameters_.size());
  v_.reserve(parameters_.size());
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Parameter* p = parameters_[i];
    if (p == nullptr)
      throw std::invalid_argument("AdamW: parameter " + std::to_string(i) + " is null");
    if (!names.insert(p->name).second)
      throw std::invalid_argument("AdamW: parameter \"" + p->name + "\" is listed twice");
    if (p->grad.rows() != p->value.rows() || p->grad.cols() != p->value.cols()) {
      throw std::invalid_argument("AdamW: parameter \"" + p->name + "\": grad shape " +
                                  shape_string(p->grad.rows(), p->grad.cols()) +
                                  ", expected the value's " +
                                  shape_string(p->value.rows(), p->value.cols()));
    }
    m_.push_back(Mat::Zero(p->value.rows(), p->value.cols()));
    v_.push_back(Mat::Zero(p->value.rows(), p->value.cols()));
  }
}

double AdamW::clip_gradients() {
  // Accumulated in double, in parameter order: deterministic and free of float round-off for
  // the ~1e8 squares of a large model.
  double sum = 0;
  for (const Parameter* p : parameters_) {
    const Real* g = p->grad.data();
    for (Eigen::Index k = 0; k < p->grad.size(); ++k)
      sum += double(g[k]) * double(g[k]);
  }
  const double norm = std::sqrt(sum);
  if (settings_.clip_norm > 0 && std::isfinite(norm) && norm > settings_.clip_norm) {
    const Real scale = Real(settings_.clip_norm / norm);
    for (Parameter* p : parameters_)
      p->grad *= scale;
  }
  return norm;
}

void AdamW::step() {
  // Checked before anything moves, so a model resized behind the optimizer's back fails cleanly.
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Parameter& p = *parameters_[i];
    if (p.grad.rows() != p.value.rows() || p.grad.cols() != p.value.cols() ||
        m_[i].rows() != p.value.rows() || m_[i].cols() != p.value.cols()) {
      throw std::logic_error("AdamW::step: parameter \"" + p.name + "\": value shape " +
                             shape_string(p.value.rows(), p.value.cols()) + ", grad shape " +
                             shape_string(p.grad.rows(), p.grad.cols()) + ", moments shape " +
                             shape_string(m_[i].rows(), m_[i].cols()));
    }
  }
  ++steps_;
  const double lr = learning_rate(settings_, steps_);
  const Real b1 = Real(settings_.beta1);
  const Real b2 = Real(settings_.beta2);
  // 1 - beta in double: 1 - float(0.999) is off by 1e-5 relative, which would not cancel
  // against the bias correction below.
  const Real one_minus_b1 = Real(1.0 - settings_.beta1);
  const Real one_minus_b2 = Real(1.0 - settings_.beta2);
  // Bias corrections in double: 1 - 0.999^t loses digits in float for small t.
  const Real correction1 = Real(1.0 / (1.0 - std::pow(settings_.beta1, steps_)));
  const Real correction2 = Real(1.0 / (1.0 - std::pow(settings_.beta2, steps_)));
  const Real step_size = Real(lr);
  const Real eps = Real(settings_.eps);
  const Real decay = Real(1.0 - lr * settings_.weight_decay);
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Parameter& p = *parameters_[i];
    m_[i] = b1 * m_[i] + one_minus_b1 * p.grad;
    v_[i] = b2 * v_[i] + one_minus_b2 * p.grad.cwiseProduct(p.grad);
    if (settings_.weight_decay > 0 && is_weight_decayed(p.name)) p.value *= decay;
    p.value.array() -=
        step_size * (m_[i].array() * correction1) / ((v_[i].array() * correction2).sqrt() + eps);
  }
}

void AdamW::zero_grad() {
  for (Parameter* p : parameters_)
    p->zero_grad();
}

void AdamW::set_state(int steps, std::vector<Mat> m, std::vector<Mat> v) {
  if (steps < 0)
    throw std::invalid_argument("AdamW::set_state: steps = " + std::to_string(steps) +
                                ", expected >= 0");
  if (m.size() != parameters_.size() || v.size() != parameters_.size()) {
    throw std::invalid_argument("AdamW::set_state: " + std::to_string(m.size()) + " first and " +
                                std::to_string(v.size()) + " second moments, expected " +
                                std::to_string(parameters_.size()) + " (one per parameter)");
  }
  std::string errors;
  auto check = [&](const char* which, const Mat& got, const Parameter& p) {
    if (got.rows() == p.value.rows() && got.cols() == p.value.cols()) return;
    errors += (errors.empty() ? "" : "; ") + p.name + ": " + which + " shape " +
              shape_string(got.rows(), got.cols()) + ", expected " +
              shape_string(p.value.rows(), p.value.cols());
  };
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    check("m", m[i], *parameters_[i]);
    check("v", v[i], *parameters_[i]);
  }
  if (!errors.empty()) throw std::invalid_argument("AdamW::set_state: " + errors);
  steps_ = steps;
  m_ = std::move(m);
  v_ = std::move(v);
}

void AdamW::set_peak_learning_rate(double lr) {
  AdamWSettings s = settings_;
  s.lr = lr;
  validate(s);
  settings_ = s;
}

}  // namespace rtda::surrogate
