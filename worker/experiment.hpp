// The twin experiment of docs/science.md §2 on the worker group: nature run, observations,
// initial ensemble, then cycles of forecast + analysis, with the analysis archive and
// per-cycle diagnostics written by rank 0. The same code serves 1 and R ranks.
#pragma once

#include "comm.hpp"

#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "cycle_engine.hpp"
#include "hip/device.hpp"
#include "io/conventions.hpp"

namespace rtda::worker {

struct ExperimentResult {
  std::vector<CycleRecord> cycles;  // on rank 0 only
  double mean_rmse_analysis_K = 0, mean_spread_analysis_K = 0;
  double mean_rmse_background_K = 0, mean_spread_background_K = 0;
};

// The Lorenz-96 truth of an experiment (model.kind = "lorenz96"; docs/experiments.md): from
// x_i = F + N(0, 1) (keyed by nature.seed), nature.spinup_days of spin-up, then
// experiment.cycles states experiment.cycle_hours apart, the first at t = 0.
io::NatureRun lorenz96_nature(const config::Config& cfg);

// What computed a file's numbers, for its provenance (docs/file-formats.md): `device` ("cpu"
// or "gpu"), `device_name` and `device_toolchain` of `choice`.
io::Provenance device_provenance(const device::Choice& choice);

// Collective over `comm`. `on_cycle` (rank 0) is called after each cycle.
// `choice`: where this rank computes (device::choose); rank 0's goes into the archive.
ExperimentResult run_experiment(const Comm& comm, const config::Config& cfg,
                                const std::string& filter, const std::string& out_path,
                                const std::function<void(const CycleRecord&)>& on_cycle = {},
                                const device::Choice& choice = device::choose(device::Request::kCpu,
                                                                              0));

}  // namespace rtda::worker
