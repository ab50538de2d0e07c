#include "surrogate/online.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/random.hpp"

namespace rtda::surrogate {
namespace {

std::string exact(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

double parse_double(const std::map<std::string, std::string>& a, const std::string& key) {
  auto it = a.find(key);
  if (it == a.end())
    throw std::invalid_argument("surrogate online state: attribute '" + key + "' missing");
  double v = 0;
  const auto r = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (r.ec != std::errc() || r.ptr != it->second.data() + it->second.size())
    throw std::invalid_argument("surrogate online state: attribute '" + key + "' = '" + it->second +
                                "' is not a number");
  return v;
}

std::uint64_t parse_u64(const std::map<std::string, std::string>& a, const std::string& key) {
  auto it = a.find(key);
  if (it == a.end())
    throw std::invalid_argument("surrogate online state: attribute '" + key + "' missing");
  std::uint64_t v = 0;
  const auto r = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (r.ec != std::errc() || r.ptr != it->second.data() + it->second.size())
    throw std::invalid_argument("surrogate online state: attribute '" + key + "' = '" + it->second +
                                "' is not an unsigned integer");
  return v;
}

AdamWSettings online_adamw(const OnlineSettings& s) {
  AdamWSettings a;
  a.lr = s.lr;
  a.weight_decay = 0.0;  // the trained weights are the prior: do not shrink them
  a.clip_norm = 1.0;
  a.warmup_steps = s.warmup_steps;
  a.total_steps = std::numeric_limits<int>::max() / 2;
  a.min_lr_fraction = 1.0;  // constant after the warm-up
  return a;
}

std::size_t count_values(const ParameterList& params) {
  std::size_t n = 0;
  for (const Parameter* p : params)
    n += static_cast<std::size_t>(p->value.size());
  return n;
}

std::vector<float> flatten(const ParameterList& params, bool grads) {
  std::vector<float> flat;
  flat.reserve(count_values(params));
  for (const Parameter* p : params) {
    const Mat& m = grads ? p->grad : p->value;
    flat.insert(flat.end(), m.data(), m.data() + m.size());
  }
  return flat;
}

void unflatten(std::span<const float> flat, const ParameterList& params, bool grads) {
  std::size_t off = 0;
  for (Parameter* p : params) {
    Mat& m = grads ? p->grad : p->value;
    std::copy_n(flat.data() + off, m.size(), m.data());
    off += static_cast<std::size_t>(m.size());
  }
}

}  // namespace

OnlineAdapter::OnlineAdapter(Vit& model, Normalisation norm, OnlineSettings settings,
                             std::uint64_t seed, std::string identity)
    : model_(model),
      norm_(norm),
      settings_(settings),
      seed_(seed),
      identity_(std::move(identity)),
      grid_n_(model.config().grid_n),
      state_size_(static_cast<std::size_t>(model.state_size())) {
  model_.collect(params_);
  reference_ = std::make_unique<Vit>(model_.config());
  reference_->collect(reference_params_);
  copy_weights(params_, reference_params_);
  reset_optimizer();
}

OnlineAdapter::~OnlineAdapter() = default;

void OnlineAdapter::copy_weights(const ParameterList& from, const ParameterList& to) {
  for (std::size_t i = 0; i < from.size(); ++i)
    to[i]->value = from[i]->value;
}

void OnlineAdapter::reset_optimizer() {
  AdamWSettings a = online_adamw(settings_);
  a.lr = settings_.lr * lr_scale_;
  optimizer_ = std::make_unique<AdamW>(params_, a);
}

std::string OnlineAdapter::weights_name() const {
  return version_ == 0 ? identity_ : identity_ + "+online.v" + std::to_string(version_);
}

void OnlineAdapter::set_previous_analysis(std::span<const double> mean) {
  previous_.assign(mean.begin(), mean.end());
}

std::vector<double> OnlineAdapter::forecast(Vit& model, std::span<const double> state) {
  Mat x(1, static_cast<Eigen::Index>(state_size_));
  norm_.apply(state, std::span<float>(x.data(), state_size_), grid_n_);
  const Mat y = model.forward(x);
  std::vector<double> out(state_size_);
  norm_.invert(std::span<const float>(y.data(), state_size_), out, grid_n_);
  return out;
}

double OnlineAdapter::train_step(std::uint64_t cycle, int step, int part_index, int part_count,
                                 const Reduce& reduce) {
  const int b = settings_.batch;
  const int pairs = static_cast<int>(buffer_x_.size());
  // Which pairs and symmetries: a pure function of (seed, cycle, step), the same on every rank.
  const RandomStream rng(seed_, RandomPurpose::kSurrogateOnline, cycle,
                         static_cast<std::uint64_t>(step));
  std::vector<int> mine;
  for (int j = part_index; j < b; j += part_count)
    mine.push_back(j);
  const auto n = static_cast<Eigen::Index>(state_size_);
  double local_sse = 0;
  for (Parameter* p : params_)
    p->zero_grad();
  if (!mine.empty()) {
    Mat x(static_cast<Eigen::Index>(mine.size()), n), t(static_cast<Eigen::Index>(mine.size()), n);
    std::vector<double> phys(state_size_), moved(state_size_);
    for (std::size_t r = 0; r < mine.size(); ++r) {
      const auto j = static_cast<std::uint64_t>(mine[r]);
      const int pick = std::min(pairs - 1, static_cast<int>(rng.uniform(3 * j) * pairs));
      // The flow's exact symmetries multiply the few pairs the buffer holds.
      const int shift = std::min(grid_n_ - 1, static_cast<int>(rng.uniform(3 * j + 1) * grid_n_));
      const bool flip = rng.uniform(3 * j + 2) <= 0.5;
      const auto place = [&](const std::vector<float>& z, Mat& dst) {
        if (shift == 0 && !flip) {
          std::copy(z.begin(), z.end(), dst.row(static_cast<Eigen::Index>(r)).data());
          return;
        }
        // Symmetries act on physical states; the normalisation is per level and the flip
        // negates, so go through physical units.
        norm_.invert(z, phys, grid_n_);
        apply_symmetry(phys, moved, grid_n_, shift, flip);
        norm_.apply(moved,
                    std::span<float>(dst.row(static_cast<Eigen::Index>(r)).data(), state_size_),
                    grid_n_);
      };
      place(buffer_x_[static_cast<std::size_t>(pick)], x);
      place(buffer_y_[static_cast<std::size_t>(pick)], t);
    }
    const Mat y = model_.forward(x);
    const Mat diff = y - t;
    local_sse = static_cast<double>(diff.cwiseProduct(diff).sum());
    // Loss = sum over the whole batch of squared errors / (b n): each rank's share of it.
    const Mat d = diff * static_cast<Real>(2.0 / (static_cast<double>(b) * n));
    model_.backward(d);
  }
  // Sum the gradients (and the loss) over the ranks.
  std::vector<float> flat = flatten(params_, true);
  flat.push_back(static_cast<float>(local_sse));
  if (reduce) reduce(flat);
  const double sse = flat.back();
  flat.pop_back();
  unflatten(flat, params_, true);
  const double norm = optimizer_->clip_gradients();
  if (!std::isfinite(norm)) {
    optimizer_->zero_grad();
    return std::nan("");  // the guard: a non-finite gradient never reaches the weights
  }
  optimizer_->step();
  optimizer_->zero_grad();
  return sse / (static_cast<double>(b) * n);
}

OnlineReport OnlineAdapter::after_analysis(std::uint64_t cycle, std::span<const double> mean,
                                           const Score& score, int part_index, int part_count,
                                           const Reduce& reduce) {
  if (mean.size() != state_size_)
    throw std::invalid_argument("online adaptation: analysis mean of " +
                                std::to_string(mean.size()) + " values, the surrogate needs " +
                                std::to_string(state_size_));
  OnlineReport rep;
  if (!previous_.empty()) {
    // 1. Out-of-sample innovations of the weights in use and of the accepted weights.
    rep.evaluated = true;
    rep.innovation_current = score(forecast(model_, previous_));
    rep.innovation_reference = version_ == reference_version_
                                   ? rep.innovation_current
                                   : score(forecast(*reference_, previous_));
    if (version_ != reference_version_) {
      window_current_ += rep.innovation_current;
      window_reference_ += rep.innovation_reference;
      ++window_count_;
      // 2. Decide once a window of evidence is in.
      if (window_count_ >= settings_.window) {
        if (!(window_current_ <= window_reference_ * (1.0 + settings_.tolerance))) {
          copy_weights(reference_params_, params_);
          version_ = reference_version_;
          lr_scale_ *= 0.5;
          ++rollbacks_;
          reset_optimizer();
          rep.decision = "rolled back";
        } else if (window_current_ < window_reference_) {
          copy_weights(params_, reference_params_);
          reference_version_ = version_;
          rep.decision = "accepted";
        } else {
          rep.decision = "kept";
        }
        window_current_ = window_reference_ = 0;
        window_count_ = 0;
      }
    }
    // 3. The newest pair joins the replay buffer.
    std::vector<float> zx(state_size_), zy(state_size_);
    norm_.apply(previous_, zx, grid_n_);
    norm_.apply(mean, zy, grid_n_);
    buffer_x_.push_back(std::move(zx));
    buffer_y_.push_back(std::move(zy));
    if (buffer_x_.size() > static_cast<std::size_t>(settings_.buffer)) {
      buffer_x_.erase(buffer_x_.begin());
      buffer_y_.erase(buffer_y_.begin());
    }
  }
  previous_.assign(mean.begin(), mean.end());

  // 4. A few optimiser steps, unless the guard has stopped adaptation.
  if (!buffer_x_.empty() && settings_.steps > 0 && lr_scale_ >= settings_.min_lr_scale) {
    double loss = 0;
    int taken = 0;
    for (int s = 0; s < settings_.steps; ++s) {
      rep.learning_rate = optimizer_->next_learning_rate();
      const double l = train_step(cycle, s, part_index, part_count, reduce);
      if (std::isfinite(l)) {
        loss += l;
        ++taken;
      }
    }
    if (taken > 0) {
      rep.steps_taken = taken;
      rep.loss = loss / taken;
      version_ = next_version_++;
    }
  }
  rep.version = version_;
  return rep;
}

OnlineState OnlineAdapter::save_state() const {
  OnlineState s;
  s.arrays["current"] = flatten(params_, false);
  s.arrays["reference"] = flatten(reference_params_, false);
  std::vector<float> m, v;
  for (const Mat& x : optimizer_->m())
    m.insert(m.end(), x.data(), x.data() + x.size());
  for (const Mat& x : optimizer_->v())
    v.insert(v.end(), x.data(), x.data() + x.size());
  s.arrays["adam_m"] = std::move(m);
  s.arrays["adam_v"] = std::move(v);
  std::vector<float> bx, by;
  for (std::size_t i = 0; i < buffer_x_.size(); ++i) {
    bx.insert(bx.end(), buffer_x_[i].begin(), buffer_x_[i].end());
    by.insert(by.end(), buffer_y_[i].begin(), buffer_y_[i].end());
  }
  s.arrays["buffer_x"] = std::move(bx);
  s.arrays["buffer_y"] = std::move(by);
  s.doubles["previous"] = previous_;
  auto& a = s.attributes;
  a["identity"] = identity_;
  a["parameters"] = std::to_string(count_values(params_));
  a["version"] = std::to_string(version_);
  a["accepted_version"] = std::to_string(reference_version_);
  a["next_version"] = std::to_string(next_version_);
  a["lr_scale"] = exact(lr_scale_);
  a["window_current"] = exact(window_current_);
  a["window_reference"] = exact(window_reference_);
  a["window_count"] = std::to_string(window_count_);
  a["rollbacks"] = std::to_string(rollbacks_);
  a["optimizer_steps"] = std::to_string(optimizer_->steps());
  return s;
}

void OnlineAdapter::restore_state(const OnlineState& s) {
  const std::size_t count = count_values(params_);
  const auto array = [&](const std::string& key) -> const std::vector<float>& {
    auto it = s.arrays.find(key);
    if (it == s.arrays.end())
      throw std::invalid_argument("surrogate online state: array '" + key + "' missing");
    return it->second;
  };
  for (const char* key : {"current", "reference", "adam_m", "adam_v"}) {
    if (array(key).size() != count)
      throw std::invalid_argument("surrogate online state: '" + std::string(key) + "' holds " +
                                  std::to_string(array(key).size()) +
                                  " values, this surrogate has " + std::to_string(count) +
                                  " parameters");
  }
  const auto& bx = array("buffer_x");
  const auto& by = array("buffer_y");
  if (bx.size() != by.size() || bx.size() % state_size_ != 0)
    throw std::invalid_argument("surrogate online state: replay buffer of " +
                                std::to_string(bx.size()) + " values is not whole states of " +
                                std::to_string(state_size_));
  const auto prev_it = s.doubles.find("previous");
  if (prev_it == s.doubles.end())
    throw std::invalid_argument("surrogate online state: array 'previous' missing");
  const std::vector<double>& prev = prev_it->second;
  if (!prev.empty() && prev.size() != state_size_)
    throw std::invalid_argument("surrogate online state: previous analysis of " +
                                std::to_string(prev.size()) + " values, expected " +
                                std::to_string(state_size_));
  const std::uint64_t version = parse_u64(s.attributes, "version");
  const std::uint64_t accepted = parse_u64(s.attributes, "accepted_version");
  const std::uint64_t next = parse_u64(s.attributes, "next_version");
  const double lr_scale = parse_double(s.attributes, "lr_scale");
  const double wc = parse_double(s.attributes, "window_current");
  const double wr = parse_double(s.attributes, "window_reference");
  const auto wn = static_cast<int>(parse_u64(s.attributes, "window_count"));
  const auto rb = static_cast<int>(parse_u64(s.attributes, "rollbacks"));
  const auto steps = static_cast<int>(parse_u64(s.attributes, "optimizer_steps"));

  // Everything checked: apply.
  unflatten(array("current"), params_, false);
  unflatten(array("reference"), reference_params_, false);
  version_ = version;
  reference_version_ = accepted;
  next_version_ = next;
  lr_scale_ = lr_scale;
  window_current_ = wc;
  window_reference_ = wr;
  window_count_ = wn;
  rollbacks_ = rb;
  reset_optimizer();
  std::vector<Mat> m, v;
  std::size_t off = 0;
  for (const Parameter* p : params_) {
    Mat mm(p->value.rows(), p->value.cols()), vv(p->value.rows(), p->value.cols());
    std::copy_n(array("adam_m").data() + off, mm.size(), mm.data());
    std::copy_n(array("adam_v").data() + off, vv.size(), vv.data());
    off += static_cast<std::size_t>(mm.size());
    m.push_back(std::move(mm));
    v.push_back(std::move(vv));
  }
  optimizer_->set_state(steps, std::move(m), std::move(v));
  buffer_x_.clear();
  buffer_y_.clear();
  for (std::size_t off2 = 0; off2 < bx.size(); off2 += state_size_) {
    buffer_x_.emplace_back(bx.begin() + static_cast<std::ptrdiff_t>(off2),
                           bx.begin() + static_cast<std::ptrdiff_t>(off2 + state_size_));
    buffer_y_.emplace_back(by.begin() + static_cast<std::ptrdiff_t>(off2),
                           by.begin() + static_cast<std::ptrdiff_t>(off2 + state_size_));
  }
  previous_ = prev;
}

}  // namespace rtda::surrogate
