#include "obs/observation_space.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "obs/validity.hpp"

namespace rtda::obs {

namespace {

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

ObservationSpace::ObservationSpace(const core::Grid& grid, double kelvin_per_pv,
                                   const ObservationSet& set, std::vector<Rejection>* rejections,
                                   std::size_t begin, std::size_t end) {
  build(grid, kelvin_per_pv, set, rejections, begin, end, nullptr);
}

ObservationSpace::ObservationSpace(const core::Grid& grid, double kelvin_per_pv,
                                   const ObservationSet& set, const PlausibilityLimits& limits,
                                   std::vector<Rejection>* rejections) {
  build(grid, kelvin_per_pv, set, rejections, 0, set.size(), &limits);
}

ObservationSpace ObservationSpace::subset(std::span<const std::size_t> keep) const {
  ObservationSpace s;
  s.grid_ = grid_;
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

void ObservationSpace::build(const core::Grid& grid, double kelvin_per_pv,
                             const ObservationSet& set, std::vector<Rejection>* rejections,
                             std::size_t begin, std::size_t end, const PlausibilityLimits* limits) {
  grid_ = grid;
  s_ = kelvin_per_pv;
  end = std::min(end, set.size());
  const std::size_t cols[] = {set.level.size(),    set.x_m.size(), set.y_m.size(), set.value.size(),
                              set.error_sd.size(), set.op.size(),  set.id.size()};
  for (std::size_t c : cols) {
    if (c != set.size()) {
      throw std::invalid_argument("observation set: columns of unequal length");
    }
  }
  const double dx = grid.dx_m();
  const int nx = grid.nx, ny = grid.ny;
  const std::size_t nn = grid.columns();
  ValidityRules rules{grid, std::nullopt, s_};
  if (limits) rules.plausibility = *limits;
  for (std::size_t i = begin; i < end; ++i) {
    ObservationProblem why =
        check_observation({set.time_seconds[i], set.level[i], set.x_m[i], set.y_m[i], set.value[i],
                           set.error_sd[i], static_cast<std::int64_t>(set.op[i])},
                          rules);
    if (!why.empty()) {
      if (rejections) {
        rejections->push_back(
            {i, set.id[i], std::move(why.reason), std::move(why.field), why.kind});
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
    const auto [i0, ax] = grid_coordinate(set.x_m[i], dx, nx);
    const auto [j0, ay] = grid_coordinate(set.y_m[i], dx, ny);
    const std::size_t base = static_cast<std::size_t>(set.level[i]) * nn;
    const auto at = [&](int jj, int ii) {
      return static_cast<std::uint32_t>(base + static_cast<std::size_t>(jj % ny) * nx + ii % nx);
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
  if (state.size() != grid_.state_size() || out.size() != size()) {
    throw std::invalid_argument("ObservationSpace::apply: size mismatch");
  }
  for (std::size_t o = 0; o < size(); ++o) {
    const Stencil& st = stencil_[o];
    const double q = stencil_value(state.data(), st.index.data(), st.weight.data(), st.count);
    out[o] = operator_value(op_[o], q, s_);
  }
}

void ObservationSpace::log_likelihood_gradient(std::span<const double> state,
                                               std::span<double> grad) const {
  if (state.size() != grad.size() || state.size() != grid_.state_size()) {
    throw std::invalid_argument("ObservationSpace::log_likelihood_gradient: size mismatch");
  }
  std::fill(grad.begin(), grad.end(), 0.0);
  for (std::size_t o = 0; o < size(); ++o) {
    const Stencil& st = stencil_[o];
    const double q = stencil_value(state.data(), st.index.data(), st.weight.data(), st.count);
    // eq. 14: -(h(q) - y) / sigma^2 * h'(q), then the adjoint of the interpolation.
    const double g = log_likelihood_slope(op_[o], q, value_[o], error_sd_[o], s_);
    for (int k = 0; k < st.count; ++k)
      grad[st.index[k]] += st.weight[k] * g;
  }
}

}  // namespace rtda::obs
