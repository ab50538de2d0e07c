// The gross-error check of quality control (docs/service.md, "Quality control"): before any
// filter, an observation whose innovation against the background ensemble is implausibly large
// for the errors the analysis assumes is refused, so it reaches neither the filter nor the
// inflation estimate.
//
// With m = qc.gross_error_sigmas > 0, observation o is refused when
//   |y_o - mean_j h(x_b^(j))_o| > m sqrt(error_sd_o^2 + var_j h(x_b^(j))_o)
// (the sample variance with k - 1, the moments of filters::observation_moments). The decision
// depends only on the observations and h(x_b) of every member, which every rank of the worker
// group holds, so every rank refuses the same observations.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "obs/observation_space.hpp"

namespace rtda::obs {

struct GrossErrorResult {
  std::vector<std::size_t> kept;  // positions in the space that pass, increasing
  // The refused ones: index = space.row()[o] (position in the set the space was built from),
  // field "innovation", kind "gross_error", the reason naming the innovation and the bound.
  std::vector<Rejection> refused;
};

// `moments`: mean of h(x_b) per observation in [0, p), its (k-1) variance in [p, 2p), p =
// space.size(). sigmas <= 0 keeps every observation. A NaN innovation (a broken prior) is kept:
// what follows the filter reports non-finite analyses.
GrossErrorResult gross_error_check(const ObservationSpace& space, std::span<const double> moments,
                                   double sigmas);

// Columns `keep` of a [row][p] array (h(x) of every member: [member][obs]).
std::vector<double> select_columns(std::span<const double> values, std::size_t p,
                                   std::span<const std::size_t> keep);
// The moments (mean | variance) of the observations `keep`.
std::vector<double> select_moments(std::span<const double> moments,
                                   std::span<const std::size_t> keep);

}  // namespace rtda::obs
