// Observation sets on disk (architecture.md §7).
//
// Along the dimension `obs` (a netCDF dimension without coordinate values):
//   time      float64  s since the experiment epoch
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

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "io/conventions.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

// Codes stored in `operator`. Part of the file format: append only.
enum class ObsOperator : std::int8_t {
  kLinearK = 0,   // f·θ₀/g·q, kelvin
  kArctan = 1,    // arctan(f·θ₀/g·q)
  kIdentity = 2,  // q, m s-1
};
std::string_view to_string(ObsOperator op);

// One row of an ObservationSet.
struct Observation {
  double time_seconds = 0;
  std::int32_t level = 0;
  double x_m = 0;
  double y_m = 0;
  double value = 0;
  double error_sd = 1;
  ObsOperator op = ObsOperator::kIdentity;
  std::uint64_t id = 0;
};

// Columns of observations plus the per-cycle shock schedule.
struct ObservationSet {
  std::string experiment;
  std::uint64_t seed = 0;

  // One entry per observation.
  std::vector<double> time_seconds;
  std::vector<std::int32_t> level;
  std::vector<double> x_m;
  std::vector<double> y_m;
  std::vector<double> value;
  std::vector<double> error_sd;
  std::vector<ObsOperator> op;
  std::vector<std::uint64_t> id;

  // One entry per cycle.
  std::vector<double> cycle_time_seconds;
  std::vector<double> shock_sd;  // m s-1; 0 = no shock that cycle
  std::vector<double> shock;     // empty, or cycles() x 2 x N x N, m s-1

  std::size_t size() const { return time_seconds.size(); }
  std::size_t cycles() const { return cycle_time_seconds.size(); }
  void push_back(const Observation& o);
  Observation at(std::size_t i) const;
};

// Checks column lengths, levels, operator codes, finite values, positive error_sd and the
// per-cycle columns; the message names the file, the variable, the first bad row and value.
void validate(const ObservationSet& set, const sqg::SqgParams& params,
              const std::filesystem::path& path);

void write_observations(const std::filesystem::path& path, const ObservationSet& set,
                        const sqg::SqgParams& params, const Provenance& provenance = {});

struct ObservationFile {
  sqg::SqgParams params;
  ObservationSet set;
  Provenance provenance;
};
ObservationFile read_observations(const std::filesystem::path& path);

}  // namespace rtda::io
