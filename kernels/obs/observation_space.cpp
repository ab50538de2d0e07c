#include "obs/observation_space.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace rtda::obs {

double operator_value(io::ObsOperator op, double q_ms, double kelvin_per_pv) {
  switch (op) {
    case io::ObsOperator::kLinearK:
      return kelvin_per_pv * q_ms;
    case io::ObsOperator::kArctan:
      return std::atan(kelvin_per_pv * q_ms);
    case io::ObsOperator::kIdentity:
      return q_ms;
  }
  throw std::invalid_argument("unknown observation operator code " +
                              std::to_string(static_cast<int>(op)));
}

double operator_derivative(io::ObsOperator op, double q_ms, double kelvin_per_pv) {
  switch (op) {
    case io::ObsOperator::kLinearK:
      return kelvin_per_pv;
    case io::ObsOperator::kArctan: {
      const double u = kelvin_per_pv * q_ms;
      return kelvin_per_pv / (1.0 + u * u);
    }
    case io::ObsOperator::kIdentity:
      return 1.0;
  }
  throw std::invalid_argument("unknown observation operator code " +
                              std::to_string(static_cast<int>(op)));
}

namespace {

std::string describe(const char* field, double value, const char* expected) {
  std::ostringstream m;
  m.precision(17);
  m << field << " = " << value << ": " << expected;
  return m.str();
}

struct RowProblem {
  std::string field, reason, kind = "invalid";
  bool empty() const { return reason.empty(); }
};

RowProblem invalid(const char* field, double value, const char* expected) {
  return {field, describe(field, value, expected)};
}

// Why row i cannot be used, or an empty problem when it can.
RowProblem check_row(const io::ObservationSet& set, std::size_t i, double l_m,
                     const PlausibilityLimits* limits, double kelvin_per_pv) {
  if (!std::isfinite(set.value[i]))
    return invalid("value", set.value[i], "expected a finite number");
  if (!std::isfinite(set.error_sd[i]) || !(set.error_sd[i] > 0)) {
    return invalid("error_sd", set.error_sd[i], "expected a positive finite number");
  }
  const int op = static_cast<int>(set.op[i]);
  if (op < 0 || op > 2) {
    return invalid("operator", op, "expected 0 (linear_K), 1 (arctan) or 2 (identity)");
  }
  if (set.level[i] != 0 && set.level[i] != 1) {
    return invalid("level", set.level[i], "expected 0 (surface) or 1 (lid)");
  }
  if (!std::isfinite(set.x_m[i]) || set.x_m[i] < 0 || set.x_m[i] >= l_m) {
    return invalid("x_m", set.x_m[i], ("expected 0 <= x < L = " + std::to_string(l_m)).c_str());
  }
  if (!std::isfinite(set.y_m[i]) || set.y_m[i] < 0 || set.y_m[i] >= l_m) {
    return invalid("y_m", set.y_m[i], ("expected 0 <= y < L = " + std::to_string(l_m)).c_str());
  }
  if (!std::isfinite(set.time_seconds[i])) {
    return invalid("time", set.time_seconds[i], "expected a finite time");
  }
  if (limits) {
    std::string why =
        implausible_observation(op, set.value[i], set.error_sd[i], *limits, kelvin_per_pv);
    if (!why.empty()) {
      std::string field = plausibility_field(why);
      return {std::move(field), std::move(why), "implausible"};
    }
  }
  return {};
}

// Grid coordinate of a position and whether it sits on a grid line (to round-off).
std::pair<int, double> grid_coordinate(double pos_m, double dx_m, int n) {
  const double f = pos_m / dx_m;
  const double nearest = std::round(f);
  if (std::abs(f - nearest) <= 1e-9 * std::max(1.0, std::abs(f))) {
    return {static_cast<int>(nearest) % n, 0.0};
  }
  const double fl = std::floor(f);
  return {static_cast<int>(fl) % n, f - fl};
}

}  // namespace

ObservationSpace::ObservationSpace(const sqg::SqgParams& grid, const io::ObservationSet& set,
                                   std::vector<Rejection>* rejections, std::size_t begin,
                                   std::size_t end) {
  build(grid, set, rejections, begin, end, nullptr);
}

ObservationSpace::ObservationSpace(const sqg::SqgParams& grid, const io::ObservationSet& set,
                                   const PlausibilityLimits& limits,
                                   std::vector<Rejection>* rejections) {
  build(grid, set, rejections, 0, set.size(), &limits);
}

ObservationSpace ObservationSpace::subset(std::span<const std::size_t> keep) const {
  ObservationSpace s;
  s.n_ = n_;
  s.l_m_ = l_m_;
  s.s_ = s_;
  for (std::size_t o : keep) {
    if (o >= size()) throw std::out_of_range("ObservationSpace::subset: index past the end");
    s.x_m_.push_back(x_m_[o]);
    s.y_m_.push_back(y_m_[o]);
    s.level_.push_back(level_[o]);
    s.value_.push_back(value_[o]);
    s.error_sd_.push_back(error_sd_[o]);
    s.op_.push_back(op_[o]);
    s.id_.push_back(id_[o]);
    s.row_.push_back(row_[o]);
    s.stencil_.push_back(stencil_[o]);
    if (stencil_[o].count != 1) s.all_at_grid_points_ = false;
  }
  return s;
}

void ObservationSpace::build(const sqg::SqgParams& grid, const io::ObservationSet& set,
                             std::vector<Rejection>* rejections, std::size_t begin, std::size_t end,
                             const PlausibilityLimits* limits) {
  n_ = grid.N;
  l_m_ = grid.L_m;
  s_ = grid.kelvin_per_pv();
  end = std::min(end, set.size());
  const std::size_t cols[] = {set.level.size(),    set.x_m.size(), set.y_m.size(), set.value.size(),
                              set.error_sd.size(), set.op.size(),  set.id.size()};
  for (std::size_t c : cols) {
    if (c != set.size()) {
      throw std::invalid_argument("observation set: columns of unequal length");
    }
  }
  const double dx = grid.dx_m();
  const std::size_t nn = static_cast<std::size_t>(n_) * n_;
  for (std::size_t i = begin; i < end; ++i) {
    RowProblem why = check_row(set, i, l_m_, limits, s_);
    if (!why.empty()) {
      if (rejections) {
        rejections->push_back(
            {i, set.id[i], std::move(why.reason), std::move(why.field), std::move(why.kind)});
      }
      continue;
    }
    x_m_.push_back(set.x_m[i]);
    y_m_.push_back(set.y_m[i]);
    level_.push_back(set.level[i]);
    value_.push_back(set.value[i]);
    error_sd_.push_back(set.error_sd[i]);
    op_.push_back(set.op[i]);
    id_.push_back(set.id[i]);
    row_.push_back(i);
    const auto [i0, ax] = grid_coordinate(set.x_m[i], dx, n_);
    const auto [j0, ay] = grid_coordinate(set.y_m[i], dx, n_);
    const std::size_t base = static_cast<std::size_t>(set.level[i]) * nn;
    const auto at = [&](int jj, int ii) {
      return static_cast<std::uint32_t>(base + static_cast<std::size_t>(jj % n_) * n_ + ii % n_);
    };
    Stencil st{};
    if (ax == 0.0 && ay == 0.0) {
      st.count = 1;
      st.index = {at(j0, i0), 0, 0, 0};
      st.weight = {1.0, 0, 0, 0};
    } else {
      all_at_grid_points_ = false;
      st.count = 4;
      st.index = {at(j0, i0), at(j0, i0 + 1), at(j0 + 1, i0), at(j0 + 1, i0 + 1)};
      st.weight = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
    }
    stencil_.push_back(st);
  }
}

void ObservationSpace::apply(std::span<const double> state, std::span<double> out) const {
  if (state.size() != 2 * static_cast<std::size_t>(n_) * n_ || out.size() != size()) {
    throw std::invalid_argument("ObservationSpace::apply: size mismatch");
  }
  for (std::size_t o = 0; o < size(); ++o) {
    const Stencil& st = stencil_[o];
    double q = 0;
    for (int k = 0; k < st.count; ++k)
      q += st.weight[k] * state[st.index[k]];
    out[o] = operator_value(op_[o], q, s_);
  }
}

void ObservationSpace::log_likelihood_gradient(std::span<const double> state,
                                               std::span<double> grad) const {
  if (state.size() != grad.size() || state.size() != 2 * static_cast<std::size_t>(n_) * n_) {
    throw std::invalid_argument("ObservationSpace::log_likelihood_gradient: size mismatch");
  }
  std::fill(grad.begin(), grad.end(), 0.0);
  for (std::size_t o = 0; o < size(); ++o) {
    const Stencil& st = stencil_[o];
    double q = 0;
    for (int k = 0; k < st.count; ++k)
      q += st.weight[k] * state[st.index[k]];
    const double sd = error_sd_[o];
    // eq. 14: -(h(q) - y) / sigma^2 * h'(q), then the adjoint of the interpolation.
    const double g = -(operator_value(op_[o], q, s_) - value_[o]) / (sd * sd) *
                     operator_derivative(op_[o], q, s_);
    for (int k = 0; k < st.count; ++k)
      grad[st.index[k]] += st.weight[k] * g;
  }
}

}  // namespace rtda::obs
