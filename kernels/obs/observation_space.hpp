// The observations of one analysis, validated and ready for the filters (docs/science.md §2–4).
//
// Positions are physical (metres on the model's periodic core::Grid; on the SQG plane level
// 0 = surface, 1 = lid). An observation exactly at a grid point reads that point; elsewhere it
// is interpolated bilinearly on the periodic grid (linearly along a ring; docs/architecture.md
// §7). Each observation keeps its interpolation stencil (up to four state indices and weights
// into the [level][y][x] state).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/grid.hpp"
#include "obs/observation.hpp"
#include "obs/plausibility.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::obs {

// Why one observation of a batch was refused; the rest of the batch still counts.
struct Rejection {
  std::size_t index;  // position in the submitted batch
  std::uint64_t id;
  // Names the field and the value, e.g. "x_m = 1e12: expected a position in [0, L = …) m".
  std::string reason;
  std::string field;  // the field the reason names: "x_m", "value", "innovation", ...
  // "invalid" (unusable: not finite, outside the domain, unknown operator), "implausible"
  // (obs::implausible_observation) or "gross_error" (obs::gross_error_check).
  std::string kind = "invalid";
};

class ObservationSpace {
 public:
  struct Stencil {
    std::array<std::uint32_t, 4> index;  // into the state, [level][y][x]
    std::array<double, 4> weight;        // bilinear weights, summing to 1
    int count;                           // 1 at a grid point, else 4
  };

  ObservationSpace() = default;
  // Validates rows [begin, end) of `set` (all rows by default) with obs::check_observation
  // (obs/validity.hpp) without plausibility limits. Refused rows go to `rejections` (if given)
  // with a reason; the accepted rows keep their order. `kelvin_per_pv` scales the operators
  // (ObsOperator; 1 for a model whose state is in observation units).
  ObservationSpace(const core::Grid& grid, double kelvin_per_pv, const ObservationSet& set,
                   std::vector<Rejection>* rejections = nullptr, std::size_t begin = 0,
                   std::size_t end = static_cast<std::size_t>(-1));
  // The same check with the plausibility `limits` (qc.max_abs_kelvin, qc.max_error_sd_kelvin):
  // the server's intake check, so the worker refuses exactly what the server would
  // (Rejection::kind = "implausible").
  ObservationSpace(const core::Grid& grid, double kelvin_per_pv, const ObservationSet& set,
                   const PlausibilityLimits& limits, std::vector<Rejection>* rejections = nullptr);
  // On the SQG grid (SqgParams::grid(), kelvin_per_pv()).
  ObservationSpace(const sqg::SqgParams& p, const ObservationSet& set,
                   std::vector<Rejection>* rejections = nullptr, std::size_t begin = 0,
                   std::size_t end = static_cast<std::size_t>(-1))
      : ObservationSpace(p.grid(), p.kelvin_per_pv(), set, rejections, begin, end) {}
  ObservationSpace(const sqg::SqgParams& p, const ObservationSet& set,
                   const PlausibilityLimits& limits, std::vector<Rejection>* rejections = nullptr)
      : ObservationSpace(p.grid(), p.kelvin_per_pv(), set, limits, rejections) {}

  // The observations at positions `keep` (increasing) of this space, stencils and row() kept.
  ObservationSpace subset(std::span<const std::size_t> keep) const;

  std::size_t size() const { return value_.size(); }
  const core::Grid& grid() const { return grid_; }
  double kelvin_per_pv() const { return s_; }

  // Per-observation columns (accepted observations only).
  std::span<const double> x_m() const { return x_m_; }
  std::span<const double> y_m() const { return y_m_; }
  std::span<const std::int32_t> level() const { return level_; }
  std::span<const double> value() const { return value_; }
  std::span<const double> error_sd() const { return error_sd_; }
  std::span<const ObsOperator> op() const { return op_; }
  std::span<const std::uint64_t> id() const { return id_; }
  // Position of each observation in the set given to the constructor.
  std::span<const std::size_t> row() const { return row_; }
  const Stencil& stencil(std::size_t i) const { return stencil_[i]; }
  // True when every observation sits exactly on a grid point.
  bool all_at_grid_points() const { return all_at_grid_points_; }

  // h(state) for every observation: out.size() == size(); state is one member.
  void apply(std::span<const double> state, std::span<double> out) const;
  // d/dstate of log p(y | state) for Gaussian errors (eq. 14):
  //   -H^T [ (h(x) - y) / sigma^2 * h'(Hx) ],  accumulated into grad (a state, zeroed first).
  void log_likelihood_gradient(std::span<const double> state, std::span<double> grad) const;

 private:
  core::Grid grid_{};
  double s_ = 0;
  bool all_at_grid_points_ = true;
  std::vector<double> x_m_, y_m_, value_, error_sd_;
  std::vector<std::int32_t> level_;
  std::vector<ObsOperator> op_;
  std::vector<std::uint64_t> id_;
  std::vector<std::size_t> row_;
  std::vector<Stencil> stencil_;

  void build(const core::Grid& grid, double kelvin_per_pv, const ObservationSet& set,
             std::vector<Rejection>* rejections, std::size_t begin, std::size_t end,
             const PlausibilityLimits* limits);
};

}  // namespace rtda::obs
