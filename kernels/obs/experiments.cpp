#include "obs/experiments.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/random.hpp"
#include "obs/observation_space.hpp"

namespace rtda::obs {

ExperimentDefinition definition(Experiment e) {
  switch (e) {
    case Experiment::kLinear:
    case Experiment::kLinearShocks:
      return {ObsOperator::kLinearK, 1.0, false};
    case Experiment::kArctan:
      return {ObsOperator::kArctan, 0.01, false};
    case Experiment::kSparseArctanShocks:
      return {ObsOperator::kArctan, 0.01, true};
  }
  throw std::invalid_argument("unknown experiment");
}

double shock_sd(Experiment e, std::uint64_t seed, std::uint64_t cycle) {
  if (cycle == 0) return 0.0;  // the first cycle is never shocked
  const double u = RandomStream(seed, RandomPurpose::kShockSchedule, cycle).uniform(0);
  switch (e) {
    case Experiment::kLinearShocks:
      if (u <= 0.5) return 0.0;
      if (u <= 0.7) return 600.0;
      if (u <= 0.85) return 900.0;
      if (u <= 0.95) return 1200.0;
      return 1500.0;
    case Experiment::kSparseArctanShocks:
      return u <= 0.1 ? 900.0 : 0.0;
    default:
      return 0.0;
  }
}

void shock_field(Experiment e, std::uint64_t seed, std::uint64_t cycle, double sd,
                 std::span<double> out) {
  // Exp 4 applies one fixed field; exp 2 draws a fresh field each shocked cycle.
  const std::uint64_t key_cycle = e == Experiment::kSparseArctanShocks ? 0 : cycle;
  RandomStream(seed, RandomPurpose::kShockField, key_cycle).fill_normal(out, 0.0, sd);
}

namespace {
double checked_sigma(Experiment e, const ObserveSettings& settings) {
  const double sigma = settings.error_sd.value_or(definition(e).error_sd);
  if (!(sigma > 0) || !std::isfinite(sigma)) {
    throw std::invalid_argument("observe.error_sd = " + std::to_string(sigma) +
                                ": expected a positive number");
  }
  return sigma;
}
bool has_shocks(Experiment e) {
  return e == Experiment::kLinearShocks || e == Experiment::kSparseArctanShocks;
}
}  // namespace

void append_cycle_observations(const core::Grid& grid, double s, std::span<const double> state,
                               double t, std::uint64_t c, Experiment e,
                               const ObserveSettings& settings, ObservationSet& set) {
  const int n = grid.nx;
  const std::size_t nn = grid.columns();
  const std::size_t ns = grid.state_size();
  if (state.size() != ns) throw std::invalid_argument("observations: state size mismatch");
  const ExperimentDefinition def = definition(e);
  const double sigma = checked_sigma(e, settings);
  if (set.experiment.empty()) {
    set.experiment = std::string(to_string(e));
    set.seed = settings.seed;
  }
  std::vector<double> truth(state.begin(), state.end());
  set.cycle_time_seconds.push_back(t);
  const double sd = has_shocks(e) ? shock_sd(e, settings.seed, c) : 0.0;
  set.shock_sd.push_back(sd);
  if (has_shocks(e)) {
    const std::size_t at = set.shock.size();
    set.shock.resize(at + ns, 0.0);
    if (sd > 0) {
      std::span<double> shock(set.shock.data() + at, ns);
      shock_field(e, settings.seed, c, sd, shock);
      for (std::size_t k = 0; k < ns; ++k)
        truth[k] += shock[k];
    }
  }
  std::vector<double> errors(ns);
  RandomStream(settings.seed, RandomPurpose::kObservationError, c).fill_normal(errors);
  std::vector<std::uint32_t> points(nn);
  for (int lev = 0; lev < grid.levels; ++lev) {
    std::iota(points.begin(), points.end(), 0u);
    std::size_t count = nn;
    if (def.sparse) {
      // A random half of the points of this level: partial Fisher–Yates shuffle.
      count = nn / 2;
      RandomStream pick(settings.seed, RandomPurpose::kObservationNetwork, c, lev);
      for (std::size_t k = 0; k < count; ++k) {
        const double u = pick.uniform(k);  // (0, 1]
        std::size_t r = k + static_cast<std::size_t>((1.0 - u) * static_cast<double>(nn - k));
        if (r >= nn) r = nn - 1;
        std::swap(points[k], points[r]);
      }
      std::sort(points.begin(), points.begin() + static_cast<std::ptrdiff_t>(count));
    }
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t g = points[k];
      const std::size_t idx = lev * nn + g;
      const int j = static_cast<int>(g / n);
      const int i = static_cast<int>(g % n);
      set.time_seconds.push_back(t);
      set.level.push_back(lev);
      set.x_m.push_back(i * grid.length_x_m / n);
      set.y_m.push_back(j * grid.length_y_m / grid.ny);
      set.value.push_back(operator_value(def.op, truth[idx], s) + sigma * errors[idx]);
      set.error_sd.push_back(sigma);
      set.op.push_back(def.op);
      set.id.push_back(static_cast<std::uint64_t>(c) * ns + idx);
    }
  }
}

ObservationSet make_observations(const io::NatureRun& nature, Experiment e,
                                 const ObserveSettings& settings) {
  const std::size_t cycles =
      settings.cycles > 0 ? static_cast<std::size_t>(settings.cycles) : nature.size();
  if (cycles > nature.size()) {
    throw std::invalid_argument("observe.cycles = " + std::to_string(settings.cycles) +
                                ": the nature run has only " + std::to_string(nature.size()) +
                                " states");
  }
  checked_sigma(e, settings);
  ObservationSet set;
  set.experiment = std::string(to_string(e));
  set.seed = settings.seed;
  for (std::size_t c = 0; c < cycles; ++c) {
    append_cycle_observations(nature.model().grid(), nature.model().kelvin_per_pv(),
                              nature.state(c), nature.times_seconds[c], c, e, settings, set);
  }
  return set;
}

std::vector<double> initial_ensemble(std::span<const double> climatological_state, int members,
                                     double noise_sd_ms, std::uint64_t seed) {
  if (members < 2) {
    throw std::invalid_argument("ensemble members = " + std::to_string(members) +
                                ": expected at least 2");
  }
  const std::size_t n = climatological_state.size();
  std::vector<double> ens(n * static_cast<std::size_t>(members));
  for (int m = 0; m < members; ++m) {
    std::span<double> member(ens.data() + m * n, n);
    RandomStream(seed, RandomPurpose::kInitialEnsemble, 0, static_cast<std::uint64_t>(m))
        .fill_normal(member, 0.0, noise_sd_ms);
    for (std::size_t k = 0; k < n; ++k)
      member[k] += climatological_state[k];
  }
  return ens;
}

}  // namespace rtda::obs
