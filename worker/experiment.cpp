#include "experiment.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "distributed_ensemble.hpp"
#include "io/archive.hpp"
#include "io/fields.hpp"
#include "obs/experiments.hpp"
#include "slab_analysis.hpp"
#include "sqg/fft_wisdom.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"

namespace rtda::worker {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Ensemble mean and standard deviation (n-1) per element of a [member][state] array.
void mean_and_spread(std::span<const double> all, int k, std::size_t n, std::vector<double>& mean,
                     std::vector<double>& spread) {
  mean.assign(n, 0.0);
  spread.assign(n, 0.0);
  for (int m = 0; m < k; ++m) {
    for (std::size_t e = 0; e < n; ++e)
      mean[e] += all[m * n + e];
  }
  for (auto& v : mean)
    v /= k;
  for (int m = 0; m < k; ++m) {
    for (std::size_t e = 0; e < n; ++e) {
      const double d = all[m * n + e] - mean[e];
      spread[e] += d * d;
    }
  }
  for (auto& v : spread)
    v = std::sqrt(v / (k - 1));
}

double rms_difference(std::span<const double> a, std::span<const double> b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

double rms(std::span<const double> a) {
  double s = 0;
  for (double v : a)
    s += v * v;
  return std::sqrt(s / static_cast<double>(a.size()));
}

// Every rank plans its FFTs with the same algorithms: rank 0 plans (importing the wisdom
// file when there is one) and broadcasts its wisdom before the others plan.
void share_fft_wisdom(MPI_Comm comm, const config::Config& cfg) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string text;
  std::string error;
  if (rank == 0) {
    // A failure here is sent to every rank (len = -1) instead of leaving them in the Bcast.
    try {
      const std::string path = cfg.model.fft_planning == sqg::FftPlanning::kMeasure
                                   ? sqg::resolve_fft_wisdom_path(cfg.model.fft_wisdom_file)
                                   : std::string();
      const bool automatic = cfg.model.fft_wisdom_file == "auto";
      try {
        if (!path.empty()) sqg::load_fft_wisdom_file(path);
      } catch (const std::runtime_error&) {
        if (!automatic) throw;  // a stale cache is re-measured and overwritten
      }
      sqg::SqgModel<double> probe(cfg.model.sqg, cfg.model.fft_planning);
      text = sqg::export_fft_wisdom();
      try {
        if (!path.empty()) sqg::save_fft_wisdom_file(path);
      } catch (const std::exception&) {
        if (!automatic) throw;
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  int len = error.empty() ? static_cast<int>(text.size()) : -1;
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  if (len < 0) {
    throw config::ConfigError(rank == 0 ? error : "model.fft_wisdom_file: rank 0 failed to plan");
  }
  text.resize(static_cast<std::size_t>(len));
  MPI_Bcast(text.data(), len, MPI_CHAR, 0, comm);
  if (rank != 0) sqg::import_fft_wisdom(text);
}

}  // namespace

ExperimentResult run_experiment(MPI_Comm comm, const config::Config& cfg, const std::string& filter,
                                const std::string& out_path,
                                const std::function<void(const CycleRecord&)>& on_cycle) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const sqg::SqgParams& p = cfg.model.sqg;
  const auto& ex = cfg.experiment;
  if (cfg.model.precision != config::Precision::kFloat64) {
    throw config::ConfigError("model.precision = \"float32\": the experiment runs in float64");
  }
  const obs::Experiment experiment = obs::experiment_from_string(ex.observations);

  // The nature run: reuse the configured file, or make one next to the output.
  std::string nature_path = ex.nature_file;
  if (nature_path.empty()) {
    const auto out = std::filesystem::path(out_path);
    nature_path = (out.parent_path() / (out.stem().string() + "-nature.h5")).string();
    if (rank == 0 && !std::filesystem::exists(nature_path)) {
      sqg::SqgModel<double> model(p, cfg.model.fft_planning);
      io::NatureWriter writer(nature_path, p, {{"created_by", "rtda experiment"}});
      sqg::run_nature(model, cfg.nature,
                      [&](int, double t, std::span<const double> q) { writer.append(t, q); });
      writer.close();
    }
    MPI_Barrier(comm);
  }
  const io::NatureRun nature = io::read_nature(nature_path);
  if (nature.params.N != p.N || nature.params.L_m != p.L_m) {
    throw std::runtime_error("experiment.nature_file \"" + nature_path + "\": grid N = " +
                             std::to_string(nature.params.N) + ", expected " + std::to_string(p.N));
  }
  if (static_cast<std::size_t>(ex.cycles) > nature.size()) {
    throw config::ConfigError("experiment.cycles = " + std::to_string(ex.cycles) + ": " +
                              nature_path + " holds only " + std::to_string(nature.size()) +
                              " states");
  }
  const std::size_t clim = cfg.ensemble.climatology_index < 0
                               ? nature.size() - 1
                               : static_cast<std::size_t>(cfg.ensemble.climatology_index);
  if (clim >= nature.size()) {
    throw config::ConfigError(
        "ensemble.climatology_index = " + std::to_string(cfg.ensemble.climatology_index) +
        ": outside the nature run");
  }

  share_fft_wisdom(comm, cfg);
  const sqg::SqgModel<double> model(p, cfg.model.fft_planning);
  const int k = cfg.ensemble.members;
  DistributedEnsemble ens(comm, k, p.N);
  sqg::EnsembleStepper<double> stepper(model, cfg.model.threads);
  auto analysis = make_slab_analysis(filter, cfg);

  const std::size_t n = ens.state_size();
  // Checked on every rank, before any collective, so a bad setting fails everywhere at once.
  if (cfg.ensemble.initial == "climatology" &&
      (cfg.ensemble.climatology_stride < 1 ||
       static_cast<long>(clim) - static_cast<long>(k - 1) * cfg.ensemble.climatology_stride < 0)) {
    throw config::ConfigError("ensemble.initial = \"climatology\": " + std::to_string(k) +
                              " members " + std::to_string(cfg.ensemble.climatology_stride) +
                              " states apart do not fit before nature state " +
                              std::to_string(clim));
  }
  if (rank == 0) {
    auto initial =
        obs::initial_ensemble(nature.state(clim), k, cfg.ensemble.initial_noise_sd_ms, ex.seed);
    if (cfg.ensemble.initial == "climatology") {
      // Member m: nature state clim - m * stride instead of the shared state (same noise).
      const long stride = cfg.ensemble.climatology_stride;
      const auto shared = nature.state(clim);
      for (int m = 0; m < k; ++m) {
        const auto own = nature.state(clim - static_cast<std::size_t>(m * stride));
        for (std::size_t e = 0; e < n; ++e)
          initial[m * n + e] += own[e] - shared[e];
      }
    }
    ens.scatter(initial, 0);
  } else {
    ens.scatter({}, 0);
  }

  std::optional<io::ArchiveWriter> archive;
  if (rank == 0) {
    archive.emplace(out_path, p, ex.store_members ? k : 0,
                    io::Provenance{{"created_by", "rtda experiment"},
                                   {"filter", filter},
                                   {"observations", ex.observations},
                                   {"nature_file", std::filesystem::absolute(nature_path).string()},
                                   {"rtda_config", config::to_toml(cfg)}});
  }

  obs::ObserveSettings observe = cfg.observe;
  observe.seed = ex.seed;
  const int steps_per_cycle = static_cast<int>(std::lround(ex.cycle_hours * 3600.0 / p.dt_s));
  const double s = p.kelvin_per_pv();
  ExperimentResult result;
  std::vector<double> cols, post, mean_b, spread_b, mean_a, spread_a;
  for (int c = 0; c < ex.cycles; ++c) {
    CycleRecord rec{};
    rec.cycle = c;
    rec.time_seconds = nature.times_seconds[c];
    auto t0 = Clock::now();
    if (c > 0) stepper.advance_grid(ens.local_states(), ens.local_members(), steps_per_cycle);
    rec.seconds_forecast = seconds_since(t0);

    io::ObservationSet set;
    obs::append_cycle_observations(p, nature.state(c), rec.time_seconds, c, experiment, observe,
                                   set);
    std::vector<obs::Rejection> rejected;
    const obs::ObservationSpace space(p, set, &rejected);
    rec.observations_used = static_cast<double>(space.size());
    rec.observations_rejected = static_cast<double>(rejected.size());
    rec.shock_sd = set.shock_sd.front();
    std::vector<double> truth(nature.state(c).begin(), nature.state(c).end());
    if (!set.shock.empty()) {
      for (std::size_t e = 0; e < n; ++e)
        truth[e] += set.shock[e];
    }

    t0 = Clock::now();
    const std::vector<double> hx = ens.observe_all(space);
    const auto prior = ens.gather(0);
    ens.to_columns(cols);
    post.assign(cols.size(), 0.0);
    std::map<std::string, double> extra;
    const auto [c0, c1] = ens.columns();
    analysis->analyse_columns(cols, hx, k, space, {ex.seed, static_cast<std::uint64_t>(c)}, c0, c1,
                              post, comm, extra);
    ens.from_columns(post);
    rec.seconds_analysis = seconds_since(t0);
    const auto posterior = ens.gather(0);

    if (rank == 0) {
      mean_and_spread(prior, k, n, mean_b, spread_b);
      mean_and_spread(posterior, k, n, mean_a, spread_a);
      rec.rmse_background_K = s * rms_difference(mean_b, truth);
      rec.rmse_analysis_K = s * rms_difference(mean_a, truth);
      rec.spread_background_K = s * rms(spread_b);
      rec.spread_analysis_K = s * rms(spread_a);
      // Innovations d = y - mean_i h(x_b^(i)); consistency = E[d^2] / (HPH^T + R), both
      // averaged over the observations (1 when the ensemble spread is right).
      const std::size_t po = space.size();
      double dsum = 0, d2 = 0, hvar = 0, r = 0;
      for (std::size_t o = 0; o < po; ++o) {
        double hm = 0;
        for (int m = 0; m < k; ++m)
          hm += hx[m * po + o];
        hm /= k;
        double v = 0;
        for (int m = 0; m < k; ++m)
          v += (hx[m * po + o] - hm) * (hx[m * po + o] - hm);
        hvar += v / (k - 1);
        const double d = space.value()[o] - hm;
        dsum += d;
        d2 += d * d;
        r += space.error_sd()[o] * space.error_sd()[o];
      }
      const double np = std::max<double>(1.0, static_cast<double>(po));
      rec.innovation_mean = dsum / np;
      rec.innovation_rms = std::sqrt(d2 / np);
      rec.consistency_ratio = (d2 / np) / ((hvar + r) / np);
      std::map<std::string, io::Diagnostic> diag = {
          {"rmse_background", {rec.rmse_background_K, "K", "background mean RMSE vs truth"}},
          {"rmse_analysis", {rec.rmse_analysis_K, "K", "analysis mean RMSE vs truth"}},
          {"spread_background", {rec.spread_background_K, "K", "background ensemble spread"}},
          {"spread_analysis", {rec.spread_analysis_K, "K", "analysis ensemble spread"}},
          {"innovation_mean", {rec.innovation_mean, "observation units", "mean of y - H(x_b)"}},
          {"innovation_rms", {rec.innovation_rms, "observation units", "RMS of y - H(x_b)"}},
          {"consistency_ratio",
           {rec.consistency_ratio, "1", "mean innovation^2 / (HPH^T + R): 1 when consistent"}},
          {"observations_used", {rec.observations_used, "1", "observations assimilated"}},
          {"observations_rejected", {rec.observations_rejected, "1", "observations refused"}},
          {"shock_sd", {rec.shock_sd, "m s-1", "std of the shock added to the truth (0: none)"}},
          {"seconds_forecast", {rec.seconds_forecast, "s", "wall time of the forecast stage"}},
          {"seconds_analysis", {rec.seconds_analysis, "s", "wall time of the analysis stage"}},
      };
      for (const auto& [name, value] : extra)
        diag[name] = {value, "1", name};
      archive->append(
          rec.time_seconds, mean_a, spread_a, diag,
          ex.store_members ? std::span<const double>(posterior) : std::span<const double>());
      result.cycles.push_back(rec);
      if (on_cycle) on_cycle(rec);
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
