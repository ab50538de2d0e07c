// The ensemble score filter, EnSF (docs/science.md §4, eq. 11–15): a training-free diffusion-model
// filter. Both modes of docs/science.md §4 live here:
//   paper     what [MWR]/[SC] ran for SQG: normalized coordinates, the *paired* prior score,
//             per-dimension likelihood scores (linear_K exact, arctan heuristic), the W-step
//             stopping rule and the rescaling to a target spread.
//   standard  the textbook filter: Monte-Carlo prior score over all members (eq. 13), the
//             general likelihood gradient (eq. 14, any operator, bilinear stencils),
//             integration to t = 0, optional normalization and RTPS (eq. 10).
//
// Randomness: member i draws from NormalBatchStream(ctx.seed, kEnsfNoise, ctx.cycle, i) at
// (row, global state index): row 0 is z(1), row k + 1 the ξ of pseudo-time step k. The
// global state index is level·nx·ny + j·nx + i, so no result depends on how the state is split
// over threads or MPI ranks (docs/architecture.md §4–5).
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "filters/ensf_math.hpp"
#include "filters/filter.hpp"
#include "filters/settings.hpp"

namespace rtda::filters {

// eq. 13 for one particle: the paired score uses prior member `pair` only; the Monte-Carlo
// estimator uses all members with softmax weights (stable: the largest exponent is
// subtracted). `prior` is members × dim, member-major. Exposed for tests.
void ensf_paired_score(std::span<const double> z, std::span<const double> x_pair, double t,
                       double eps_alpha, double eps_beta, std::span<double> score);
void ensf_monte_carlo_score(std::span<const double> z, std::span<const double> prior, int members,
                            double t, double eps_alpha, double eps_beta, std::span<double> score);

// Host-side bookkeeping of one slab analysis that both backends share (the loop over the
// stages, ensf_stages.hpp, and the stages of ensf_cpu.cpp and hip/ensf_hip.cpp): the shape
// checks, which observations the slab owns, and the target spread. Not part of the filter's
// interface; exposed so the backends cannot drift apart.
struct EnsfEnsembleShape {
  int members = 0;
  std::size_t state_size = 0;  // values per member
  std::size_t values = 0;      // values in the whole ensemble
};
struct EnsfSlabPlan {
  std::size_t nx = 0;       // grid points per row (core::Grid::nx)
  std::size_t ny = 0;       // grid rows
  std::size_t levels = 0;   // grid levels
  std::size_t n2 = 0;       // nx ny, columns per level
  std::size_t c0 = 0;       // first column of the slab
  std::size_t nc = 0;       // columns in the slab
  std::size_t dim = 0;      // levels nc local elements, [level][c − c0]
  std::size_t members = 0;  // k
  // Grid-point observations this slab owns (index into obs, local element), in obs order.
  std::vector<std::size_t> grid_obs, grid_elem;
  // Observations between grid points (standard mode), in obs order; every slab lists all.
  std::vector<std::size_t> off_obs;
  bool has_arctan = false;  // any arctan observation (paper mode's heuristic term)
  // Global state index of local element e (level·nx·ny + c).
  std::size_t global(std::size_t e) const { return (e / nc) * n2 + c0 + e % nc; }
  // Local element of global index g, or false when another slab owns it.
  bool local(std::size_t g, std::size_t& e) const {
    const std::size_t level = g / n2, c = g % n2;
    if (c < c0 || c >= c0 + nc) return false;
    e = level * nc + (c - c0);
    return true;
  }
};
// Throws std::invalid_argument (the messages of EnsfAnalysis::analyse_slab) when the slab,
// the ensemble shapes or the observations do not fit the settings.
EnsfSlabPlan ensf_plan_slab(const EnsfSettings& settings, const obs::ObservationSpace& obs,
                            std::size_t col_begin, std::size_t col_end, EnsfEnsembleShape prior,
                            EnsfEnsembleShape posterior);
// τ_d of the slab's elements for the spread target (empty for "none"), from the prior
// spread sd (per local element); "initial" fills the run's stored spread (a state, NaN where
// unseen) on first sight.
std::vector<double> ensf_target_spread(EnsfSpreadTarget target, const EnsfSlabPlan& plan,
                                       const std::vector<double>& sd,
                                       std::vector<double>& initial_spread);

// What a slab of the state needs from the other slabs (docs/architecture.md §5). Both act in
// place on a vector of the same length on every slab. Leave both empty for a single slab.
struct EnsfReducer {
  // Element-wise maximum over slabs (paper stopping rule; exact in any order).
  std::function<void(std::span<double>)> max;
  // Element-wise sum over slabs. EnSF only passes vectors in which each element has a
  // non-zero contribution from at most one slab (the rest add +0.0), so every summation
  // order gives the same bits: MPI_Allreduce(MPI_SUM) is fine.
  std::function<void(std::span<double>)> sum;
};

class EnsfAnalysis {
 public:
  // Throws std::invalid_argument (settings.validate()).
  explicit EnsfAnalysis(EnsfSettings settings);

  std::string_view name() const { return "ensf"; }
  const EnsfSettings& settings() const { return settings_; }

  // Whole domain: equal, bit for bit, to analyse_slab over any split into slabs.
  // Paper mode refuses observations between grid points (std::invalid_argument naming the
  // observation): its likelihood formulas are defined per state dimension.
  AnalysisDiagnostics analyse(ConstEnsembleView prior, const obs::ObservationSpace& obs,
                              const AnalysisContext& ctx, EnsembleView posterior);

  // The state elements of grid columns [col_begin, col_end) (column c = j·nx + i), every
  // level: prior and posterior are members × levels·(col_end − col_begin), laid out
  // [member][level][c − col_begin]. `obs` is the full observation set (every slab sees all
  // of it). Every slab of one analysis must call this together (the reducer is collective
  // once per pseudo-time step). Standard mode needs whole grid rows per slab (col_begin and
  // col_end multiples of nx): its k×k member distances are summed per grid row and the rows
  // in ascending order, so the sum has the same bits for any split.
  // Off-grid observations (standard mode) exchange their stencil values through `sum`.
  AnalysisDiagnostics analyse_slab(std::size_t col_begin, std::size_t col_end,
                                   ConstEnsembleView prior, const obs::ObservationSpace& obs,
                                   const AnalysisContext& ctx, EnsembleView posterior,
                                   const EnsfReducer& reducer);

  // The per-dimension target spread of spread_target = "initial" over the whole state
  // (a state, NaN where not yet seen): save it with a checkpoint and restore it on restart so
  // a restarted run keeps the spread of the run's first cycle.
  const std::vector<double>& initial_spread() const { return initial_spread_; }
  void set_initial_spread(std::vector<double> spread) { initial_spread_ = std::move(spread); }

 private:
  EnsfSettings settings_;
  std::vector<double> initial_spread_;
};

}  // namespace rtda::filters
