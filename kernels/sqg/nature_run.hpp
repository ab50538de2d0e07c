// The nature run of docs/science.md §1: a long free integration from a noisy state with an
// isolated lid bump, kept at a fixed interval after a spin-up.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "sqg/sqg_model.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::sqg {

// The recipe's initial condition, grid layout [level][y][x], area mean removed per level.
std::vector<double> nature_initial_state(const SqgParams& params, const NatureSettings& s);

struct NatureProgress {
  long steps_done;
  long steps_total;
  int states_written;
};

// Runs the recipe. `on_state(index, time_seconds, q)` receives each kept state; `on_progress`
// (optional) is called about once per kept interval during spin-up and output.
void run_nature(const SqgModel<double>& model, const NatureSettings& s,
                const std::function<void(int, double, std::span<const double>)>& on_state,
                const std::function<void(const NatureProgress&)>& on_progress = {});

// Per-level spatial standard deviation of q (population, over the N^2 points of each level).
std::array<double, 2> level_std(std::span<const double> q, int N);

}  // namespace rtda::sqg
