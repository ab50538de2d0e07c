// The names of the observation experiments of docs/science.md §2 and what a run of
// `rtda observe` may change: what the configuration holds. The experiments themselves are
// obs/experiments.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/names.hpp"

namespace rtda::obs {

enum class Experiment {
  kLinear,              // exp 1: all points, s*q, sigma 1 K
  kLinearShocks,        // exp 2: exp 1 plus random shocks of std 600..1500
  kArctan,              // exp 3: all points, arctan(s*q), sigma 0.01
  kSparseArctanShocks,  // exp 4: half the points per level, arctan, one fixed shock
};

inline constexpr core::NameTable<Experiment, 4> kExperimentNames{{{
    {Experiment::kLinear, "linear"},
    {Experiment::kLinearShocks, "linear-shocks"},
    {Experiment::kArctan, "arctan"},
    {Experiment::kSparseArctanShocks, "sparse-arctan-shocks"},
}}};
inline std::string_view to_string(Experiment e) {
  return kExperimentNames.name(e);
}
// Throws std::invalid_argument naming `field`, the value and the accepted names.
inline Experiment experiment_from_string(std::string_view s,
                                         std::string_view field = "experiment") {
  return kExperimentNames.parse(s, field);
}

// What a run of `rtda observe` may change; everything else is the experiment's definition.
struct ObserveSettings {
  std::uint64_t seed = 1;          // keys errors, shock schedule and fields, networks
  std::optional<double> error_sd;  // unset: the experiment's (1 K linear_K, 0.01 arctan)
  int cycles = 0;                  // 0: one cycle per nature state
};

}  // namespace rtda::obs
