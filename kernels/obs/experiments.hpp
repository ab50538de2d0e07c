// The observation experiments of docs/science.md §2: perfect-model twin observations of a
// nature run, with the published networks, operators, errors and shock schedules.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/names.hpp"
#include "io/fields.hpp"
#include "obs/observation.hpp"

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

// The observation operator, default error and network density of an experiment.
struct ExperimentDefinition {
  ObsOperator op;
  double error_sd;
  bool sparse;  // 50 % of points per level, redrawn each cycle
};
ExperimentDefinition definition(Experiment e);

// Standard deviation (m/s) of the shock applied at `cycle`, 0 for none, and the shock field
// itself (2 N^2 values); both are pure functions of (seed, cycle).
double shock_sd(Experiment e, std::uint64_t seed, std::uint64_t cycle);
void shock_field(Experiment e, std::uint64_t seed, std::uint64_t cycle, double sd,
                 std::span<double> out);

// Appends the observations of cycle `c` of truth `state` (2 N^2, before any shock) valid at
// `time_seconds` to `set` (cycle columns included; `set.shock` only for experiments with
// shocks). Every draw is keyed by (settings.seed, purpose, c), so cycles can be made in any
// order or on any process and agree.
void append_cycle_observations(const sqg::SqgParams& params, std::span<const double> state,
                               double time_seconds, std::uint64_t c, Experiment e,
                               const ObserveSettings& settings, ObservationSet& set);

// Observations of cycles 0..C-1, cycle c observing nature state c (plus its shock) at that
// state's time. Observation ids are c * 2N^2 + level * N^2 + j * N + i (the grid point seen).
ObservationSet make_observations(const io::NatureRun& nature, Experiment e,
                                 const ObserveSettings& settings);

// The initial ensemble of docs/science.md §2: member m = climatological state + N(0, sd^2) noise
// (PV units), the noise keyed by (seed, kInitialEnsemble, member). Returns members x 2N^2.
std::vector<double> initial_ensemble(std::span<const double> climatological_state, int members,
                                     double noise_sd_ms, std::uint64_t seed);

}  // namespace rtda::obs
