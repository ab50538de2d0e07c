// rtda analyze | experiment: the analysis on the worker group's code path (MPI, 1..R ranks).
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "commands.hpp"
#include "distributed_ensemble.hpp"
#include "experiment.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "progress.hpp"
#include "slab_analysis.hpp"

namespace rtda::cli {
namespace {

// MPI for the lifetime of one command; works under mpiexec and as a singleton.
struct MpiSession {
  MpiSession() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) MPI_Init(nullptr, nullptr);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  ~MpiSession() {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
  int rank = 0, size = 1;
};

// With --ranks R > 1 outside mpiexec, run this same command under `mpiexec -n R`.
int relaunch_under_mpiexec(int ranks, const std::vector<std::string>& args) {
  if (ranks <= 1 || std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE")) return -1;
  std::vector<std::string> cmd = {"mpiexec", "-n", std::to_string(ranks), "--oversubscribe"};
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");
  cmd.push_back(std::filesystem::read_symlink("/proc/self/exe").string());
  cmd.insert(cmd.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : cmd)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  execvp("mpiexec", argv.data());
  throw std::runtime_error("--ranks " + std::to_string(ranks) +
                           ": could not start mpiexec (is openmpi-bin installed?)");
}

}  // namespace

extern std::vector<std::string> g_raw_args;

Runner add_experiment_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "experiment", "Run a twin experiment (science.md §2): cycles of forecast + analysis");
  auto opts = std::make_shared<ConfigOptions>();
  auto filter = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto ranks = std::make_shared<int>(1);
  opts->add_to(*cmd);
  cmd->add_option("--filter", *filter, "letkf | ensf | none (free-running ensemble)")
      ->required()
      ->check(CLI::IsMember({"letkf", "ensf", "none"}));
  cmd->add_option("--ranks", *ranks, "MPI ranks (starts mpiexec when > 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", *out, "Analysis archive (HDF5)")->required();
  return [opts, filter, out, ranks]() {
    const config::Config cfg = opts->load();
    if (relaunch_under_mpiexec(*ranks, g_raw_args) >= 0) return 0;
    MpiSession mpi;
    const int stats_from = cfg.experiment.statistics_from_cycle;
    if (mpi.rank == 0) {
      std::printf("experiment %s with %s: N = %d, %d members, %d cycles of %g h, %d rank%s\n",
                  cfg.experiment.observations.c_str(), filter->c_str(), cfg.model.sqg.N,
                  cfg.ensemble.members, cfg.experiment.cycles, cfg.experiment.cycle_hours, mpi.size,
                  mpi.size == 1 ? "" : "s");
      std::printf("%6s %8s %9s %9s %9s %9s %7s %7s %7s\n", "cycle", "day", "rmse_b K", "rmse_a K",
                  "sprd_b K", "sprd_a K", "obs", "fc s", "an s");
      std::fflush(stdout);
    }
    const auto result = worker::run_experiment(
        MPI_COMM_WORLD, cfg, *filter, *out, [&](const worker::CycleRecord& r) {
          std::printf("%6d %8.1f %9.3f %9.3f %9.3f %9.3f %7.0f %7.2f %7.3f%s\n", r.cycle,
                      r.time_seconds / 86400.0, r.rmse_background_K, r.rmse_analysis_K,
                      r.spread_background_K, r.spread_analysis_K, r.observations_used,
                      r.seconds_forecast, r.seconds_analysis, r.shock_sd > 0 ? "  shock" : "");
          std::fflush(stdout);
        });
    if (mpi.rank == 0) {
      std::printf("\nsummary over cycles %d..%d (%s, %s):\n", stats_from, cfg.experiment.cycles - 1,
                  cfg.experiment.observations.c_str(), filter->c_str());
      std::printf("  analysis RMSE %.3f K, spread %.3f K; background RMSE %.3f K, spread %.3f K\n",
                  result.mean_rmse_analysis_K, result.mean_spread_analysis_K,
                  result.mean_rmse_background_K, result.mean_spread_background_K);
      std::printf("wrote %s\n", std::filesystem::absolute(*out).c_str());
    }
    return 0;
  };
}

}  // namespace rtda::cli
