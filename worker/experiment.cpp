#include "experiment.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "core/random.hpp"
#include "cycle_engine.hpp"
#include "forecast_model.hpp"
#include "io/archive.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "l96/lorenz96.hpp"
#include "obs/experiments.hpp"
#include "sqg/nature_run.hpp"

namespace rtda::worker {

io::NatureRun lorenz96_nature(const config::Config& cfg) {
  const l96::Lorenz96 model(cfg.model.l96);
  const l96::Lorenz96Params& lp = cfg.model.l96;
  const std::size_t n = static_cast<std::size_t>(lp.n);
  const int spinup =
      static_cast<int>(std::round(cfg.nature.spinup_days * 86400.0 / lp.step_seconds()));
  const int per_cycle =
      whole_steps(cfg.experiment.cycle_hours * 3600.0, lp.step_seconds(), "experiment.cycle_hours");
  io::NatureRun nature;
  nature.l96 = lp;
  std::vector<double> x(n);
  // x_i = F + N(0, 1) keyed by nature.seed, then the spin-up onto the attractor.
  RandomStream(cfg.nature.seed, RandomPurpose::kNatureInitialNoise).fill_normal(x, lp.forcing, 1.0);
  model.advance(x, spinup);
  for (int c = 0; c < cfg.experiment.cycles; ++c) {
    if (c > 0) model.advance(x, per_cycle);
    nature.times_seconds.push_back(c * cfg.experiment.cycle_hours * 3600.0);
    nature.q.insert(nature.q.end(), x.begin(), x.end());
  }
  return nature;
}

io::Provenance device_provenance(const device::Choice& choice) {
  return {{"device", std::string(device::name(choice.backend))},
          {"device_name", choice.device_name},
          {"device_toolchain", choice.toolchain}};
}

ExperimentResult run_experiment(const Comm& comm, const config::Config& cfg,
                                const std::string& filter, const std::string& out_path,
                                const std::function<void(const CycleRecord&)>& on_cycle,
                                const device::Choice& choice) {
  const int rank = comm.rank();
  const sqg::SqgParams& p = cfg.model.sqg;
  const auto& ex = cfg.experiment;
  if (cfg.model.precision != config::Precision::kFloat64) {
    throw config::ConfigError("model.precision = \"float32\": the experiment runs in float64");
  }
  const obs::Experiment experiment = obs::experiment_from_string(ex.observations);

  // The nature run: for SQG reuse the configured file, or make one next to the output; the
  // Lorenz-96 truth is cheap and made in memory (lorenz96_nature).
  std::string nature_path = ex.nature_file;
  io::NatureRun nature;
  if (cfg.model.lorenz96()) {
    if (!nature_path.empty()) {
      throw config::ConfigError("experiment.nature_file = \"" + nature_path +
                                "\": model.kind = \"lorenz96\" makes its truth in memory");
    }
    nature = lorenz96_nature(cfg);
  } else {
    if (nature_path.empty()) {
      const auto out = std::filesystem::path(out_path);
      nature_path = (out.parent_path() / (out.stem().string() + "-nature.h5")).string();
      if (rank == 0 && !std::filesystem::exists(nature_path)) {
        sqg::SqgModel<double> model(p, cfg.model.fft_planning);
        io::NatureWriter writer(nature_path, cfg.model.field_model(),
                                {{"created_by", "rtda experiment"}});
        sqg::run_nature(model, cfg.nature,
                        [&](int, double t, std::span<const double> q) { writer.append(t, q); });
        writer.close();
      }
      comm.barrier();
    }
    const io::RunDefaults run = cfg.model.run_defaults();
    nature = io::read_nature(nature_path, std::nullopt, &run);
    if (nature.params.N != p.N || nature.params.L_m != p.L_m) {
      throw std::runtime_error("experiment.nature_file \"" + nature_path +
                               "\": grid N = " + std::to_string(nature.params.N) + ", expected " +
                               std::to_string(p.N));
    }
  }
  if (static_cast<std::size_t>(ex.cycles) > nature.size()) {
    throw config::ConfigError("experiment.cycles = " + std::to_string(ex.cycles) + ": " +
                              nature_path + " holds only " + std::to_string(nature.size()) +
                              " states");
  }
  CycleEngine engine(comm, cfg, choice.backend);
  engine.start_from_nature(nature);
  const int k = engine.members();
  const std::size_t n = engine.state_size();

  std::optional<io::ArchiveWriter> archive;
  if (rank == 0) {
    io::Provenance provenance{
        {"created_by", "rtda experiment"},
        {"filter", filter},
        {"observations", ex.observations_file.empty()
                             ? ex.observations
                             : std::filesystem::absolute(ex.observations_file).string()},
        {"nature_file", nature_path.empty() ? std::string("(in memory)")
                                            : std::filesystem::absolute(nature_path).string()},
        {"model", engine.model_identity()},
        {"rtda_config", config::to_toml(cfg)}};
    provenance.merge(device_provenance(choice));
    archive.emplace(out_path, cfg.model.field_model(), ex.store_members ? k : 0, provenance);
  }

  obs::ObserveSettings observe = cfg.observe;
  observe.seed = ex.seed;
  // Observations from a file (experiment.observations_file): each cycle takes those of its
  // window (t - cycle/2, t + cycle/2], the service's rule, and a shock the file schedules at
  // that cycle time joins the truth.
  std::optional<io::ObservationFile> given;
  if (!ex.observations_file.empty()) {
    const io::RunDefaults run = cfg.model.run_defaults();
    given = io::read_observations(ex.observations_file, &run);
    const core::Grid g = given->model().grid();
    const core::Grid want = cfg.model.grid();
    if (g.levels != want.levels || g.nx != want.nx || g.ny != want.ny) {
      throw config::ConfigError("experiment.observations_file = \"" + ex.observations_file +
                                "\": its observations are on " + given->model().describe_grid() +
                                ", the run on " + cfg.model.field_model().describe_grid());
    }
  }
  const double half = 0.5 * ex.cycle_hours * 3600.0;
  ExperimentResult result;
  for (int c = 0; c < ex.cycles; ++c) {
    const double seconds_forecast = c > 0 ? engine.forecast_cycle() : 0.0;
    const double t = nature.times_seconds[c];
    obs::ObservationSet set;
    if (given) {
      const obs::ObservationSet& all = given->set;
      for (std::size_t i = 0; i < all.size(); ++i) {
        if (all.time_seconds[i] > t - half && all.time_seconds[i] <= t + half) {
          set.push_back(all.at(i));
        }
      }
      double shock_sd = 0;
      for (std::size_t j = 0; j < all.cycles(); ++j) {
        if (all.cycle_time_seconds[j] == t && !all.shock.empty() && all.shock_sd[j] > 0) {
          const auto shock = std::span<const double>(all.shock).subspan(j * n, n);
          set.shock.assign(shock.begin(), shock.end());
          shock_sd = all.shock_sd[j];
        }
      }
      set.cycle_time_seconds.push_back(t);
      set.shock_sd.push_back(shock_sd);
    } else {
      obs::append_cycle_observations(cfg.model.grid(), cfg.model.kelvin_per_pv(), nature.state(c),
                                     t, c, experiment, observe, set);
    }
    std::vector<double> truth;
    if (rank == 0) {
      truth.assign(nature.state(c).begin(), nature.state(c).end());
      if (!set.shock.empty()) {
        for (std::size_t e = 0; e < n; ++e)
          truth[e] += set.shock[e];
      }
    }
    CycleOutcome out =
        engine.analyse(filter, set, static_cast<std::uint64_t>(c), t, truth, ex.store_members);
    engine.adapt_surrogate();  // surrogate.online: learn from this analysis
    if (rank == 0) {
      out.record.seconds_forecast = seconds_forecast;
      out.diagnostics["seconds_forecast"] = {seconds_forecast, "s",
                                             "wall time of the forecast stage"};
      archive->append(
          t, out.mean, out.spread, out.diagnostics,
          ex.store_members ? std::span<const double>(out.members) : std::span<const double>());
      result.cycles.push_back(out.record);
      if (on_cycle) on_cycle(out.record);
    }
  }
  if (rank == 0) {
    archive->close();
    int used = 0;
    for (const auto& r : result.cycles) {
      if (r.cycle < ex.statistics_from_cycle) continue;
      result.mean_rmse_analysis_K += r.rmse_analysis_K;
      result.mean_spread_analysis_K += r.spread_analysis_K;
      result.mean_rmse_background_K += r.rmse_background_K;
      result.mean_spread_background_K += r.spread_background_K;
      ++used;
    }
    if (used > 0) {
      result.mean_rmse_analysis_K /= used;
      result.mean_spread_analysis_K /= used;
      result.mean_rmse_background_K /= used;
      result.mean_spread_background_K /= used;
    }
  }
  return result;
}

}  // namespace rtda::worker
