// Whether one observation may enter the system (docs/service.md "Ingest" and "Quality
// control"): the one check the server applies to each observation of a batch and the worker
// applies again when it builds the observations of an analysis (ObservationSpace), so the two
// refuse the same observations with the same words.
//
// In this order: time finite; level in [0, grid.levels); 0 <= x < L_x and 0 <= y < L_y (y = 0
// on a ring); value finite; error_sd finite and
// > 0; a known operator code; then, when limits are given, the plausibility of
// obs/plausibility.hpp. The reason names the field (as in proto/rtda.proto's Observation) and
// its value, e.g. "x_m = 1e12: expected a position in [0, L = …) m".
//
// HDF5-free and free of the grid's model: the check needs only the grid and f theta0 / g.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/grid.hpp"
#include "obs/plausibility.hpp"

namespace rtda::obs {

// The fields of one observation as received, codes read wide so that a bad one cannot wrap.
struct ObservationFields {
  double time_seconds = 0;
  std::int64_t level = 0;
  double x_m = 0;
  double y_m = 0;
  double value = 0;
  double error_sd = 0;
  std::int64_t op = 0;  // an ObsOperator code
};

struct ValidityRules {
  core::Grid grid;                                 // levels and positions [0, L_x) x [0, L_y)
  std::optional<PlausibilityLimits> plausibility;  // none: validity only (the filters' tests)
  double kelvin_per_pv = 0;                        // f theta0 / g, for the plausibility
};

// Why an observation is refused; empty when it is not.
struct ObservationProblem {
  std::string field;   // "time_seconds", "level", "x_m", "y_m", "value", "error_sd" or "op"
  std::string reason;  // "<field> = <value>: expected ..."
  // "invalid" (unusable) or "implausible" (obs::implausible_observation).
  const char* kind = "invalid";
  bool empty() const { return reason.empty(); }
};

ObservationProblem check_observation(const ObservationFields& o, const ValidityRules& rules);

}  // namespace rtda::obs
