// The types every analysis method shares: ensemble views, the keys of an analysis'
// randomness, the diagnostics. The interface the programs call is EnsembleFilter
// (ensemble_filter.hpp); the algorithms' whole-domain entry points take these views.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::filters {

// An ensemble of `members` states of 2 N^2 values each, member-major ([member][level][y][x]).
struct EnsembleView {
  int members = 0;
  std::size_t state_size = 0;
  std::span<double> data;
  std::span<double> member(int m) const { return data.subspan(m * state_size, state_size); }
};
struct ConstEnsembleView {
  int members = 0;
  std::size_t state_size = 0;
  std::span<const double> data;
  std::span<const double> member(int m) const { return data.subspan(m * state_size, state_size); }
};

// Keys of all randomness an analysis draws (docs/architecture.md §4).
struct AnalysisContext {
  std::uint64_t seed = 0;
  std::uint64_t cycle = 0;
};

// Scalars a filter reports about one analysis (all in observation units unless named).
struct AnalysisDiagnostics {
  std::size_t observations_used = 0;
  double innovation_mean = 0;  // mean of y - mean_i h(x_b^(i))
  double innovation_rms = 0;
  double seconds = 0;
  std::map<std::string, double> extra;  // filter-specific (e.g. ensf_steps, letkf_mean_local_obs)
};

}  // namespace rtda::filters
