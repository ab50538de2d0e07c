// Observation sets on disk (docs/architecture.md §7).
//
// Along the dimension `obs` (a netCDF dimension without coordinate values):
//   time      float64  s since the run's epoch (model.epoch)
//   level     int32    0 = surface, 1 = lid
//   x, y      float64  m
//   value     float64  in the operator's units: linear_K K, arctan 1, identity m s-1
//   error_sd  float64  same units as value
//   operator  int8     flag_values 0 1 2, flag_meanings "linear_K arctan identity"
//   id        uint64
// Along the dimension `cycle` (coordinate variable `cycle` = 0..C-1):
//   cycle_time  float64  s, the analysis time of each cycle
//   shock_sd    float64  m s-1, standard deviation of the shock added to the truth; 0 = none
//   shock       float64  (cycle, grid_level, grid_y, grid_x), m s-1, optional, deflated
//               (mostly zeros). Its grid dimensions are not called level/y/x because the
//               observation columns own those names, and netCDF-4 cannot have a variable `x`
//               along `obs` and a dimension `x` in the same group.
// The per-cycle time is `cycle_time`, not `time`, for the same reason.
// Root attributes: `experiment` (string), `seed` (uint64), the model configuration and
// provenance of io/conventions.hpp, file_kind = "observation_set".
#pragma once

#include <filesystem>
#include <optional>

#include "io/conventions.hpp"
#include "obs/observation.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

// The records are obs/observation.hpp's. The io:: spellings remain for the filters and the
// cycle engine (kernels/filters/ensf.cpp, worker/cycle_engine.hpp); new code writes obs::.
using ObsOperator = obs::ObsOperator;
using ObservationSet = obs::ObservationSet;

// Checks column lengths, levels, operator codes, finite values, positive error_sd and the
// per-cycle columns; the message names the file, the variable, the first bad row and value.
void validate(const obs::ObservationSet& set, const FieldModel& model,
              const std::filesystem::path& path);

void write_observations(const std::filesystem::path& path, const obs::ObservationSet& set,
                        const FieldModel& model, const Provenance& provenance = {});

struct ObservationFile {
  sqg::SqgParams params;                   // the SQG model's (defaults for Lorenz-96)
  std::optional<l96::Lorenz96Params> l96;  // set for Lorenz-96 observations
  FieldModel model() const {
    FieldModel m(params);
    m.l96 = l96;
    return m;
  }
  obs::ObservationSet set;
  Provenance provenance;
};
// Needs only the columns along `obs`; `experiment`, `seed` and the per-cycle variables are
// optional. With `run`, missing model attributes are the run's (one warning) and times in
// any CF time units become seconds since the run's epoch.
ObservationFile read_observations(const std::filesystem::path& path,
                                  const RunDefaults* run = nullptr);

}  // namespace rtda::io
