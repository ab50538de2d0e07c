// rtda analyze | experiment: the analysis on the worker group's code path (MPI, 1..R ranks).
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "comm.hpp"
#include "commands.hpp"
#include "cycle_engine.hpp"
#include "distributed_ensemble.hpp"
#include "experiment.hpp"
#include "filters/ensemble_filter.hpp"
#include "hip/device.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/experiments.hpp"
#include "obs/gross_error.hpp"
#include "progress.hpp"

namespace rtda::cli {
namespace {

// The worker group of one command: MPI under a launcher (mpiexec, srun), else one process
// without MPI (worker/comm.hpp), which costs nothing to start.
struct MpiSession {
  MpiSession() : comm(start()) {
    rank = comm.rank();
    size = comm.size();
  }
  ~MpiSession() {
    if (!comm.uses_mpi()) return;
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
  static worker::Comm start() {
    if (!worker::launched_by_mpi()) return worker::Comm::single();
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) MPI_Init(nullptr, nullptr);
    return worker::Comm(MPI_COMM_WORLD);
  }
  worker::Comm comm;
  int rank = 0, size = 1;
};

// --device auto|cpu|gpu of the offline tools: the worker's choice (kernels/hip/device.hpp),
// reported on stderr by rank 0 and recorded in the file written (worker::device_provenance).
device::Choice choose_device(const std::string& request, int rank) {
  device::Choice c =
      device::choose(device::parse_request(request), device::local_rank_from_environment(rank));
  if (rank == 0) std::fprintf(stderr, "%s\n", c.reason.c_str());
  return c;
}

void add_device_option(CLI::App& cmd, std::string& request) {
  cmd.add_option("--device", request,
                 "auto | cpu | gpu (hip | cuda: gpu of that toolchain): where the filters (and "
                 "the surrogate's forecasts) run; auto takes a GPU when one is visible")
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(device::kRequestNames),
                                                     std::end(device::kRequestNames))));
}

// With --ranks R > 1 outside mpiexec, run this same command under `mpiexec -n R`.
int relaunch_under_mpiexec(int ranks, const std::vector<std::string>& args) {
  if (ranks <= 1 || worker::launched_by_mpi()) return -1;
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

Runner add_ensemble_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "ensemble", "Make an initial ensemble: a nature state plus N(0, sd^2) noise per member");
  auto opts = std::make_shared<ConfigOptions>();
  auto nature = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto index = std::make_shared<int>(-1);
  cmd->add_option("--nature", *nature, "Nature run file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--index", *index,
                  "Nature state to perturb (default: ensemble.climatology_index)");
  cmd->add_option("--out", *out, "Ensemble file q(member, level, y, x)")->required();
  opts->add_to(*cmd);
  return [opts, nature, out, index]() {
    const auto times = io::read_nature_times(*nature);
    const config::Config cfg = opts->load();
    const long k = *index >= 0 ? *index : cfg.ensemble.climatology_index;
    const std::size_t at = k < 0 ? times.size() - 1 : static_cast<std::size_t>(k);
    if (at >= times.size()) {
      throw std::runtime_error("--index " + std::to_string(k) + ": " + *nature + " holds " +
                               std::to_string(times.size()) + " states");
    }
    const io::RunDefaults run_defaults = cfg.model.run_defaults();
    const io::NatureRun run = io::read_nature(*nature, io::IndexRange{at, at + 1}, &run_defaults);
    const auto ens = obs::initial_ensemble(run.state(0), cfg.ensemble.members,
                                           cfg.ensemble.initial_noise_sd_ms, cfg.experiment.seed);
    io::write_ensemble(*out, cfg.model.with_epoch(run.params), run.times_seconds.front(),
                       cfg.ensemble.members, ens,
                       {{"created_by", "rtda ensemble"}, {"rtda_config", config::to_toml(cfg)}});
    std::printf("%d members = nature state %zu (t = %g s) + N(0, %g^2) m/s; wrote %s\n",
                cfg.ensemble.members, at, run.times_seconds.front(),
                cfg.ensemble.initial_noise_sd_ms, out->c_str());
    return 0;
  };
}

Runner add_analyze_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("analyze", "One analysis, offline: prior ensemble + observations");
  auto opts = std::make_shared<ConfigOptions>();
  auto prior_path = std::make_shared<std::string>();
  auto obs_path = std::make_shared<std::string>();
  auto filter = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto ranks = std::make_shared<int>(1);
  cmd->add_option("--prior", *prior_path, "Prior ensemble file q(member, level, y, x)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--obs", *obs_path, "Observation file (docs/architecture.md §7)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--filter", *filter, filters::kFilterNames.joined())
      ->required()
      ->check(CLI::IsMember(filters::kFilterNames.names()));
  cmd->add_option("--out", *out, "Posterior ensemble file")->required();
  auto cycle_option = std::make_shared<long long>(-1);
  cmd->add_option("--cycle", *cycle_option,
                  "Cycle number of the analysis (keys the filters' random numbers); default: "
                  "k of the prior's time t = window.t0_seconds + k experiment.cycle_hours, "
                  "else 0");
  cmd->add_option("--ranks", *ranks, "MPI ranks (starts mpiexec when > 1)")
      ->check(CLI::PositiveNumber);
  opts->add_to(*cmd);
  auto device_request = std::make_shared<std::string>("auto");
  add_device_option(*cmd, *device_request);
  return [opts, prior_path, obs_path, filter, out, ranks, device_request, cycle_option]() {
    if (relaunch_under_mpiexec(*ranks, g_raw_args) >= 0) return 0;
    const filters::FilterKind kind = filters::filter_kind_from_string(*filter, "--filter");
    MpiSession mpi;
    const device::Choice dev = choose_device(*device_request, mpi.rank);
    // A prior or observations made by another tool may leave the model attributes out: the
    // configuration's (--config/--set) stand in for them.
    const config::Config given = opts->load();
    const io::RunDefaults run_defaults = given.model.run_defaults();
    io::FieldFile prior = io::read_fields(*prior_path, &run_defaults);
    if (prior.members < 2) {
      throw std::runtime_error("--prior " + *prior_path +
                               ": expected an ensemble file q(member, level, y, x) with at "
                               "least 2 members");
    }
    config::Config base;
    base.model.sqg = prior.params;
    base.model.preset = "N" + std::to_string(prior.params.N);
    base.ensemble.members = prior.members;
    const config::Config cfg = opts->load(&base);
    const io::RunDefaults file_defaults = cfg.model.run_defaults();
    const io::ObservationFile of = io::read_observations(*obs_path, &file_defaults);
    if (of.params.N != prior.params.N || of.params.L_m != prior.params.L_m) {
      throw std::runtime_error("--obs " + *obs_path + ": grid N = " + std::to_string(of.params.N) +
                               " differs from the prior's " + std::to_string(prior.params.N));
    }
    // The window of the prior's valid time t: (t - cycle/2, t + cycle/2] (docs/architecture.md §3).
    const double half = 0.5 * cfg.experiment.cycle_hours * 3600.0;
    obs::ObservationSet window;
    for (std::size_t i = 0; i < of.set.size(); ++i) {
      const double t = of.set.time_seconds[i];
      if (t > prior.time_seconds - half && t <= prior.time_seconds + half) {
        window.push_back(of.set.at(i));
      }
    }
    // The cycle the service would analyse this window as: t = t_0 + k cycle
    // (docs/architecture.md §3); the cycle number keys the filters' random numbers.
    const double cycle_s = 2 * half;
    const double k = (prior.time_seconds - cfg.window.t0_seconds) / cycle_s;
    const std::uint64_t cycle = *cycle_option >= 0 ? static_cast<std::uint64_t>(*cycle_option)
                                : (k >= 0 && std::abs(k - std::round(k)) < 1e-9)
                                    ? static_cast<std::uint64_t>(std::llround(k))
                                    : 0;
    if (cfg.ensemble.members != prior.members) {
      throw std::runtime_error("ensemble.members = " + std::to_string(cfg.ensemble.members) +
                               ": --prior " + *prior_path + " holds " +
                               std::to_string(prior.members) + " members");
    }
    // The service's cycle code: validation, quality control, the filter's usable
    // observations, inflation, the filter (worker/cycle_engine.hpp).
    worker::CycleEngine engine(mpi.comm, cfg, dev.backend, /*prepare_forecasts=*/false);
    engine.start_from_members(mpi.rank == 0 ? std::span<const double>(prior.q)
                                            : std::span<const double>());
    const auto t0 = std::chrono::steady_clock::now();
    const worker::CycleOutcome result =
        engine.analyse(kind, window, cycle, prior.time_seconds, {}, true);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (mpi.rank == 0) {
      for (const auto& r : result.refused) {
        std::fprintf(stderr, "observation %llu refused (%s): %s\n",
                     static_cast<unsigned long long>(r.id),
                     r.kind == "gross_error" ? "gross error" : r.kind.c_str(), r.reason.c_str());
      }
      const auto& rec = result.record;
      if (rec.observations_used == 0) {
        std::fprintf(stderr,
                     "warning: no usable observation in (t - %g h, t + %g h] around "
                     "t = %g s; the posterior equals the prior\n",
                     half / 3600, half / 3600, prior.time_seconds);
      }
      io::Provenance provenance{{"created_by", "rtda analyze"},
                                {"filter", *filter},
                                {"analysis_cycle", std::to_string(cycle)},
                                {"rtda_config", config::to_toml(cfg)}};
      provenance.merge(worker::device_provenance(dev));
      io::write_ensemble(*out, cfg.model.with_epoch(prior.params), prior.time_seconds,
                         prior.members, result.members, provenance);
      std::printf(
          "%s analysis (cycle %llu) of %d members with %.0f observations (%.0f rejected, %.0f "
          "refused by quality control) in %.3f s on %d rank%s",
          filter->c_str(), static_cast<unsigned long long>(cycle), prior.members,
          rec.observations_used, rec.observations_rejected, rec.observations_refused_qc, secs,
          mpi.size, mpi.size == 1 ? "" : "s");
      for (const auto& [name, d] : result.diagnostics) {
        if (name.rfind("letkf_", 0) == 0 || name.rfind("ensf_", 0) == 0 ||
            name == "inflation_factor")
          std::printf(", %s %g", name.c_str(), d.value);
      }
      std::printf("\nwrote %s\n", out->c_str());
    }
    return 0;
  };
}

Runner add_experiment_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "experiment", "Run a twin experiment (docs/science.md §2): cycles of forecast + analysis");
  auto opts = std::make_shared<ConfigOptions>();
  auto filter = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto ranks = std::make_shared<int>(1);
  opts->add_to(*cmd);
  cmd->add_option("--filter", *filter, "letkf | ensf | none (free-running ensemble)")
      ->required()
      ->check(CLI::IsMember(filters::kFilterNames.names()));
  cmd->add_option("--ranks", *ranks, "MPI ranks (starts mpiexec when > 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", *out, "Analysis archive (HDF5)")->required();
  auto device_request = std::make_shared<std::string>("auto");
  add_device_option(*cmd, *device_request);
  return [opts, filter, out, ranks, device_request]() {
    const config::Config cfg = opts->load();
    if (relaunch_under_mpiexec(*ranks, g_raw_args) >= 0) return 0;
    MpiSession mpi;
    const device::Choice dev = choose_device(*device_request, mpi.rank);
    const int stats_from = cfg.experiment.statistics_from_cycle;
    if (mpi.rank == 0) {
      const std::string grid = cfg.model.field_model().describe_grid();
      const std::string u = cfg.model.diagnostic_units();
      std::printf("experiment %s with %s: %s, %d members, %d cycles of %g h, %d rank%s\n",
                  cfg.experiment.observations.c_str(), filter->c_str(), grid.c_str(),
                  cfg.ensemble.members, cfg.experiment.cycles, cfg.experiment.cycle_hours, mpi.size,
                  mpi.size == 1 ? "" : "s");
      std::printf("%6s %8s %9s %9s %9s %9s %7s %7s %7s\n", "cycle", "day", ("rmse_b " + u).c_str(),
                  ("rmse_a " + u).c_str(), ("sprd_b " + u).c_str(), ("sprd_a " + u).c_str(), "obs",
                  "fc s", "an s");
      std::fflush(stdout);
    }
    const auto result = worker::run_experiment(
        mpi.comm, cfg, *filter, *out,
        [&](const worker::CycleRecord& r) {
          std::printf("%6d %8.1f %9.3f %9.3f %9.3f %9.3f %7.0f %7.2f %7.3f%s\n", r.cycle,
                      r.time_seconds / 86400.0, r.rmse_background_K, r.rmse_analysis_K,
                      r.spread_background_K, r.spread_analysis_K, r.observations_used,
                      r.seconds_forecast, r.seconds_analysis, r.shock_sd > 0 ? "  shock" : "");
          std::fflush(stdout);
        },
        dev);
    if (mpi.rank == 0) {
      std::printf("\nsummary over cycles %d..%d (%s, %s):\n", stats_from, cfg.experiment.cycles - 1,
                  cfg.experiment.observations.c_str(), filter->c_str());
      const char* u = cfg.model.diagnostic_units();
      std::printf(
          "  analysis RMSE %.3f %s, spread %.3f %s; background RMSE %.3f %s, spread %.3f %s\n",
          result.mean_rmse_analysis_K, u, result.mean_spread_analysis_K, u,
          result.mean_rmse_background_K, u, result.mean_spread_background_K, u);
      if (cfg.qc.gross_error_sigmas > 0 ||
          std::any_of(result.cycles.begin(), result.cycles.end(),
                      [](const worker::CycleRecord& r) { return r.observations_refused_qc > 0; })) {
        double all = 0, from = 0;
        for (const auto& r : result.cycles) {
          all += r.observations_refused_qc;
          if (r.cycle >= stats_from) from += r.observations_refused_qc;
        }
        std::printf(
            "  quality control (qc.gross_error_sigmas = %g) refused %.0f observations, "
            "%.0f of them in cycles %d..%d\n",
            cfg.qc.gross_error_sigmas, all, from, stats_from, cfg.experiment.cycles - 1);
      }
      std::printf("wrote %s\n", std::filesystem::absolute(*out).c_str());
    }
    return 0;
  };
}

}  // namespace rtda::cli
