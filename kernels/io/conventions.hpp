// What every rtda file shares (docs/architecture.md §7): root attributes holding the model
// configuration, free-form provenance, and the grid coordinate variables.
//
// Root attributes, one per SqgParams field (units fixed by the name, listed here because an
// attribute cannot carry its own `units`):
//   N            int32    grid points per direction
//   L            float64  domain side, m
//   H            float64  lid height, m
//   U            float64  jet speed, m s-1
//   f            float64  Coriolis parameter, s-1
//   nsq          float64  Brunt–Väisälä frequency squared, s-2
//   g            float64  gravity, m s-2
//   theta0       float64  reference potential temperature, K
//   tdiab        float64  thermal relaxation time, s (inf = no relaxation)
//   ekman_r      float64  Ekman damping rate, m s-1 (0 = off)
//   diff_order   int32    hyperdiffusion order
//   diff_efold   float64  hyperdiffusion e-folding time at the cutoff wavenumber, s (inf = off)
//   dt           float64  model time step, s
//   symmetric    int32    1 = symmetric jet, 0 = not
//   dealias      int32    1 = 3/2-rule dealiasing, 0 = not
//   advection    int32    1 = advection on (optional when reading; absent means 1)
//   dynamics     string   "sqgturb" or "exact"
// A Lorenz-96 file (docs/science.md §7) has instead:
//   model_kind   string   "lorenz96" (absent: the SQG model above)
//   l96_n        int32    variables on the ring
//   l96_forcing  float64  F
//   l96_dt       float64  RK4 step, model time units
// and its fields are (level, y, x) = (1, 1, n), x at i · 1000 m.
// Describing the file:
//   file_kind    string   "state", "ensemble", "nature_run" or "observation_set"
//   time_seconds float64  model time of a file that holds one time, s since the experiment epoch
// Provenance: every other string attribute (created_by, rtda_version, history, ...), passed
// through unchanged; `rtda_version` is added when the caller gives none.
#pragma once

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "io/field_model.hpp"
#include "io/hdf5_file.hpp"

namespace rtda::io {

// Free-form string root attributes, e.g. {"created_by", "rtda nature"}.
using Provenance = std::map<std::string, std::string, std::less<>>;

// PV fields are stored in velocity units (docs/science.md §1).
inline constexpr std::string_view kPvUnits = "m s-1";
inline constexpr std::string_view kPvLongName =
    "boundary potential vorticity (potential temperature in velocity units)";

// Names that provenance may not use, because rtda's own attributes live there.
bool is_reserved_attribute(std::string_view name);

void write_model_attributes(Object& root, const FieldModel& model);
// Reads either kind (the `model` attribute decides), validated.
FieldModel read_field_model(const Object& root);
// Rebuilds and validates SqgParams; a missing attribute or an unusable value fails naming the
// file and the attribute.
sqg::SqgParams read_model_attributes(const Object& root);
// Convenience: opens `path` and reads its model attributes.
sqg::SqgParams read_params(const std::filesystem::path& path);

// Writes the entries of `provenance` (plus rtda_version when absent); a reserved name fails.
void write_provenance(Object& root, const Provenance& provenance);
// Every string root attribute that is not reserved.
Provenance read_provenance(const Object& root);

void write_file_kind(Object& root, std::string_view kind);
// Fails (`file_kind is "nature_run", expected "state" or "ensemble"`) for another kind;
// a file without `file_kind` (written by another tool) passes and is judged by its contents.
void require_file_kind(const Object& root, std::initializer_list<std::string_view> kinds);

// The `level`, `y`, `x` coordinate variables of the model grid (core::Grid): levels 0 … L-1,
// x at i·L_x/nx and y at j·L_y/ny m.
struct GridScales {
  Dataset level;
  Dataset y;
  Dataset x;
};
GridScales write_grid_coordinates(Group& group, const core::Grid& grid,
                                  std::string_view level_name = "level",
                                  std::string_view y_name = "y", std::string_view x_name = "x");

}  // namespace rtda::io
