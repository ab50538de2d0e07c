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
//   time_seconds float64  model time of a file that holds one time, s since model.epoch
// Provenance: every other string attribute (created_by, rtda_version, history, ...), passed
// through unchanged; `rtda_version` is added when the caller gives none.
#pragma once

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/time_units.hpp"
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

// Reads either kind (the `model_kind` attribute decides), validated. Without `run` a missing
// attribute fails naming the file and the attribute; with it, missing ones are the run's (a
// file without any model attribute is of the run's model). Attributes that are present are
// the file's: the callers compare the grid with the run's as for any file.
FieldModel read_field_model(const Object& root, const RunDefaults* run = nullptr);
// The SQG attributes alone (read_field_model of an SQG file).
sqg::SqgParams read_model_attributes(const Object& root, const RunDefaults* run = nullptr);
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

// CF (docs/file-formats.md, "CF conventions"): the version the files follow, written as the
// root attribute `Conventions`.
inline constexpr std::string_view kConventions = "CF-1.8";
void write_conventions(Object& root);

// A coordinate's CF identity: `standard_name` and, when not empty, `axis`.
void set_cf_identity(Object& variable, std::string_view standard_name, std::string_view axis = "");
// A time variable: units "seconds since <epoch>", standard_name time, axis T, calendar
// standard.
void set_time_attributes(Dataset& time, std::string_view epoch, std::string_view long_name);
// Reads a time variable's units (core::TimeAxis); fails naming the variable when they are not
// a time ("s", "hours", "seconds since 2000-01-01T00:00:00Z", ...).
core::TimeAxis read_time_axis(const Dataset& time);
// Its values in seconds: since `epoch` (the run's) when given, else since the file's own
// origin.
std::vector<double> read_times(const Dataset& time, std::string_view epoch = "");

// The `level`, `y`, `x` coordinate variables of the model grid (core::Grid): levels 0 … L-1,
// x at i·L_x/nx and y at j·L_y/ny m (CF projection coordinates, axes X and Y). On the SQG
// plane also `altitude` (level): the height of each boundary, 0 and H m (axis Z), which the
// fields name in their `coordinates` attribute (GridScales::coordinates).
struct GridScales {
  Dataset level;
  Dataset y;
  Dataset x;
  std::optional<Dataset> altitude;
  // The `coordinates` attribute of a field on this grid, with `extra` (e.g. "time") first.
  std::string coordinates(std::string_view extra = "") const;
};
// `prefix` names the variables prefix + "level", ... (an observation file's shock field uses
// "grid_").
GridScales write_grid_coordinates(Group& group, const FieldModel& model,
                                  std::string_view prefix = "");

}  // namespace rtda::io
