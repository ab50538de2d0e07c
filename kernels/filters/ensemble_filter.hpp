// The analysis interface every filter implements, and the one way the programs call it.
//
// A filter turns this rank's block of a prior ensemble, held in the analysis layout (grid
// columns [c0, c1), [member][level][c - c0]), and h(x_b) of every member for every
// observation into the posterior block. The worker group, `rtda analyze`, `rtda experiment`,
// the benchmarks and the tests all go through `EnsembleFilter::analyse`, which checks the
// shapes, computes the innovation diagnostics once, and calls the implementation.
//
// No MPI here: what a block needs from the other blocks of one analysis comes through the
// injected `Reducer` (docs/architecture.md §5); a single block leaves it empty. Where the
// block's memory lives (host or a GPU) is part of the block: a filter made for the device
// accepts device blocks and host blocks (it copies those), a CPU filter host blocks only.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/names.hpp"
#include "filters/filter.hpp"
#include "filters/settings.hpp"
#include "obs/observation_space.hpp"

namespace rtda::filters {

enum class MemorySpace { kHost, kDevice };

// This rank's part of an ensemble in the analysis layout. prior and posterior hold
// members * levels * (c1 - c0) values, [member][level][c - c0]; posterior may be prior.
struct ColumnBlock {
  MemorySpace memory = MemorySpace::kHost;
  int members = 0;
  std::size_t c0 = 0, c1 = 0;  // grid columns c = j N + i
  std::size_t levels = 2;
  const double* prior = nullptr;
  double* posterior = nullptr;
  std::size_t width() const { return c1 - c0; }
  std::size_t values() const { return static_cast<std::size_t>(members) * levels * width(); }
};

// Element-wise reductions over the blocks of one analysis, in place on a vector of the same
// length on every block. Empty functions: a single block. `sum` is only given vectors whose
// elements have a non-zero contribution from at most one block, or integer-valued counts, so
// every summation order gives the same bits.
struct Reducer {
  std::function<void(std::span<double>)> max;
  std::function<void(std::span<double>)> sum;
  bool single() const { return !max && !sum; }
};

// h(x_b) of every member for every observation: hx ([member][obs], in the block's memory
// space) and its per-observation member mean and (n-1) variance on the host
// (observation_moments: [mean 0..p | variance 0..p]), from the uninflated prior.
struct ObservedPrior {
  const double* hx = nullptr;
  std::span<const double> moments;
};

class EnsembleFilter {
 public:
  virtual ~EnsembleFilter() = default;
  virtual FilterKind kind() const = 0;
  std::string_view name() const { return to_string(kind()); }
  // Where the blocks it analyses should live to avoid copies.
  virtual MemorySpace memory() const { return MemorySpace::kHost; }

  // The one entry point. Checks the block against the observations' grid, the moments and
  // the memory space (std::invalid_argument naming the sizes); then the implementation, or,
  // without observations, the prior itself (the posterior of no information; every filter
  // the same, bit for bit). The diagnostics' innovation statistics are of d = y - mean_i
  // h(x_b^(i)) over `obs`, from the moments; observations_used = obs.size(). Collective over
  // the blocks through `reducer` (the observations are the same on every block).
  AnalysisDiagnostics analyse(const ColumnBlock& block, const ObservedPrior& observed,
                              const obs::ObservationSpace& obs, const AnalysisContext& ctx,
                              const Reducer& reducer = {});

  // Hooks the cycle calls around the analysis.
  // The observations (indices into obs, ascending) this filter can assimilate; the others
  // are left out of the cycle and counted as rejected. Default: all.
  virtual std::vector<std::size_t> usable(const obs::ObservationSpace& obs) const;
  // The uninflated prior's spread of this block ([level][c - c0], host) before inflation
  // changes it; for filters that keep a spread target (EnSF's "initial").
  virtual void see_uninflated_spread(std::size_t /*c0*/, std::size_t /*c1*/,
                                     std::size_t /*columns_total*/, std::size_t /*levels*/,
                                     std::span<const double> /*spread*/) {}
  // State carried from one analysis to the next over the whole state [level][y][x], NaN
  // where this block holds nothing; empty when stateless. Saved with checkpoints.
  virtual std::vector<double> carried_state() const { return {}; }
  virtual void restore_carried_state(std::vector<double>) {}

 protected:
  // The analysis proper: block and h(x) are checked; filter-specific scalars go to `extra`
  // (the same on every block).
  virtual void run(const ColumnBlock& block, const double* hx, const obs::ObservationSpace& obs,
                   const AnalysisContext& ctx, const Reducer& reducer,
                   std::map<std::string, double>& extra) = 0;
  // posterior = prior (host memory here; implementations for device blocks override it).
  virtual void copy_prior(const ColumnBlock& block);
  // The filter-specific scalars of an analysis without observations (the same names as
  // run() reports, so every cycle of an archive carries the same diagnostics).
  virtual void extras_without_observations(const ColumnBlock&,
                                           std::map<std::string, double>&) const {}
};

// The innovation statistics of `obs` from observation_moments (what analyse() reports):
// mean and RMS of d, and E[d^2] / (HPH^T + R) (NaN without observations).
struct InnovationStats {
  double mean = 0, rms = 0, consistency = 0;
};
InnovationStats innovation_stats(std::span<const double> moments, const obs::ObservationSpace& obs);

// A whole ensemble on the host ([member][level][y][x]; the whole domain is one block, whose
// column layout is the member layout): h(x) of every member, then analyse(). For the tools,
// benchmarks and tests that hold the whole ensemble in one process. posterior may alias prior.
AnalysisDiagnostics analyse_whole_domain(EnsembleFilter& filter, ConstEnsembleView prior,
                                         const obs::ObservationSpace& obs,
                                         const AnalysisContext& ctx, EnsembleView posterior);

}  // namespace rtda::filters
