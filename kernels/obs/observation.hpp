// Observations as rtda holds them (docs/architecture.md §7): one record, the columns of a set
// with its per-cycle shock schedule, and the operator names. No HDF5 here: files are
// io/observations_file.hpp's, the wire form proto/rtda.proto's, the intake check
// obs/validity.hpp's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/names.hpp"
#include "obs/observation_math.hpp"

namespace rtda::obs {

// The spellings of the files' flag_meanings and of messages, in code order.
inline constexpr core::NameTable<ObsOperator, 3> kOperatorNames{{{
    {ObsOperator::kLinearK, "linear_K"},
    {ObsOperator::kArctan, "arctan"},
    {ObsOperator::kIdentity, "identity"},
}}};
inline std::string_view to_string(ObsOperator op) {
  return kOperatorNames.name(op);
}
// Throws std::invalid_argument naming `field`, the value and the accepted names.
inline ObsOperator operator_from_string(std::string_view s, std::string_view field = "operator") {
  return kOperatorNames.parse(s, field);
}
// What a message expects of an operator code.
inline constexpr std::string_view kOperatorCodes = "0 (linear_K), 1 (arctan) or 2 (identity)";

// The UDUNITS unit of an operator's values and error standard deviations.
inline std::string_view operator_units(ObsOperator op) {
  switch (op) {
    case ObsOperator::kLinearK:
      return "K";
    case ObsOperator::kArctan:
      return "1";
    case ObsOperator::kIdentity:
      return "m s-1";
  }
  return "1";
}
// What common_units returns for a mix of operators, and how files and diagnostics then name
// the units.
inline constexpr std::string_view kMixedUnits = "mixed";
inline constexpr std::string_view kUnitsByOperator = "linear_K: K, arctan: 1, identity: m s-1";
// The unit shared by every operator in `ops` (an empty list: "1"), or kMixedUnits.
template <class Ops>
std::string_view common_units(const Ops& ops) {
  std::string_view units;
  for (const ObsOperator op : ops) {
    const std::string_view u = operator_units(op);
    if (units.empty()) {
      units = u;
    } else if (u != units) {
      return kMixedUnits;
    }
  }
  return units.empty() ? std::string_view("1") : units;
}

// One row of an ObservationSet.
struct Observation {
  double time_seconds = 0;  // s since the run's epoch (model.epoch)
  std::int32_t level = 0;   // 0 = surface, 1 = lid
  double x_m = 0;
  double y_m = 0;
  double value = 0;  // in the operator's units: linear_K K, arctan 1, identity m s-1
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

}  // namespace rtda::obs
