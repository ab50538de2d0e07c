// The observation experiments of docs/science.md §2: perfect-model twin observations of a
// nature run, with the published networks, operators, errors and shock schedules.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "io/fields.hpp"
#include "obs/experiment_settings.hpp"
#include "obs/observation.hpp"

namespace rtda::obs {

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

// Appends the observations of cycle `c` of truth `state` (one state, before any shock) valid at
// `time_seconds` to `set` (cycle columns included; `set.shock` only for experiments with
// shocks). Every draw is keyed by (settings.seed, purpose, c), so cycles can be made in any
// order or on any process and agree.
// On any model grid (core::Grid; every level, every point), `kelvin_per_pv` scaling the
// operator as in ObservationSpace.
void append_cycle_observations(const core::Grid& grid, double kelvin_per_pv,
                               std::span<const double> state, double time_seconds, std::uint64_t c,
                               Experiment e, const ObserveSettings& settings, ObservationSet& set);
inline void append_cycle_observations(const sqg::SqgParams& params, std::span<const double> state,
                                      double time_seconds, std::uint64_t c, Experiment e,
                                      const ObserveSettings& settings, ObservationSet& set) {
  append_cycle_observations(params.grid(), params.kelvin_per_pv(), state, time_seconds, c, e,
                            settings, set);
}

// Observations of cycles 0..C-1, cycle c observing nature state c (plus its shock) at that
// state's time. Observation ids are c * 2N^2 + level * N^2 + j * N + i (the grid point seen).
ObservationSet make_observations(const io::NatureRun& nature, Experiment e,
                                 const ObserveSettings& settings);

// The initial ensemble of docs/science.md §2: member m = climatological state + N(0, sd^2) noise
// (PV units), the noise keyed by (seed, kInitialEnsemble, member). Returns members x 2N^2.
std::vector<double> initial_ensemble(std::span<const double> climatological_state, int members,
                                     double noise_sd_ms, std::uint64_t seed);

}  // namespace rtda::obs
