// rtda train: the ViT surrogate from nature runs (docs/science.md §5, docs/surrogate.md).
#include <Eigen/Core>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "io/fields.hpp"
#include "surrogate/checkpoint.hpp"
#include "surrogate/trainer.hpp"

namespace rtda::cli {

Runner add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "train", "Train the ViT surrogate on pairs of nature states one cycle apart");
  auto opts = std::make_shared<ConfigOptions>();
  auto data = std::make_shared<std::vector<std::string>>();
  auto validation = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto resume = std::make_shared<std::string>();
  cmd->add_option("--data", *data, "training nature runs (rtda nature), one or more")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--validation", *validation,
                  "held-out nature run (another seed) for the validation RMSE")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", *out, "checkpoint to write (the best so far, HDF5)")->required();
  cmd->add_option("--resume", *resume,
                  "continue from a resume file (OUT-resume.h5: weights and optimizer state)");
  opts->add_to(*cmd);
  return [opts, data, validation, out, resume]() {
    const config::Config cfg = opts->load();
    const auto& s = cfg.surrogate;
    std::vector<io::NatureRun> runs;
    for (const auto& path : *data)
      runs.push_back(io::read_nature(path));
    const io::NatureRun val = io::read_nature(*validation);
    const double cycle_seconds = cfg.experiment.cycle_hours * 3600.0;
    const double interval = runs.front().times_seconds.size() > 1
                                ? runs.front().times_seconds[1] - runs.front().times_seconds[0]
                                : cycle_seconds;
    const int pair_steps = static_cast<int>(std::lround(cycle_seconds / interval));
    if (pair_steps < 1 || std::abs(pair_steps * interval - cycle_seconds) > 1e-6) {
      throw config::ConfigError(
          "experiment.cycle_hours = " + std::to_string(cfg.experiment.cycle_hours) +
          ": not a multiple of the nature run's state interval (" + std::to_string(interval) +
          " s)");
    }
    if (s.threads > 0) Eigen::setNbThreads(s.threads);
    surrogate::VitConfig vc;
    vc.grid_n = runs.front().params.N;
    vc.patch = s.patch;
    vc.dim = s.dim;
    vc.depth = s.depth;
    vc.heads = s.heads;
    vc.mlp_ratio = s.mlp_ratio;
    vc.predict_increment = s.predict_increment;
    vc.seed = s.seed;
    vc.embedding = s.embedding;
    surrogate::Vit model(vc);
    const surrogate::Normalisation norm = surrogate::normalisation_of(runs);
    surrogate::TrainSettings ts;
    ts.batch = s.batch;
    ts.adamw.lr = s.lr;
    ts.adamw.weight_decay = s.weight_decay;
    ts.adamw.clip_norm = s.clip_norm;
    ts.adamw.warmup_steps = s.warmup_steps;
    ts.adamw.total_steps = s.steps;
    ts.max_minutes = s.max_minutes;
    ts.eval_every = s.eval_every;
    ts.patience = s.patience;
    ts.augment = s.augment;
    ts.seed = s.seed;
    std::string data_list;
    for (const auto& d : *data)
      data_list += (data_list.empty() ? "" : " ") + std::filesystem::path(d).filename().string();
    const std::map<std::string, std::string> provenance = {
        {"created_by", "rtda train"},
        {"data", data_list},
        {"validation", std::filesystem::path(*validation).filename().string()},
        {"seed", std::to_string(s.seed)},
        {"rtda_config", config::to_toml(cfg)}};
    std::printf(
        "training a ViT of %lld parameters (%.2f GFLOP per forward) on %zu pairs from %zu "
        "run(s); validation on %s\n",
        static_cast<long long>(model.parameter_count()),
        static_cast<double>(model.flops_per_sample()) * 1e-9,
        surrogate::make_pairs(runs, pair_steps).size(), runs.size(), validation->c_str());
    const auto report = surrogate::train_surrogate(
        model, runs, val, norm, pair_steps, ts, *out, provenance, *resume,
        [](const surrogate::EvalPoint& p, int total) {
          const double eta = p.step > 0 ? p.elapsed_seconds / p.step * (total - p.step) : 0;
          std::printf(
              "step %6d/%d  loss %.5f  validation 12-h RMSE %.3f K  %.0f s elapsed, "
              "ETA %.0f s\n",
              p.step, total, p.train_loss, p.val_rmse_K, p.elapsed_seconds, eta);
          std::fflush(stdout);
        });
    std::printf(
        "%s after %d steps; best validation RMSE %.3f K at step %d (persistence %.3f K); "
        "wrote %s\n",
        report.stop_reason.c_str(), report.steps, report.best_val_rmse_K, report.best_step,
        report.persistence_rmse_K, out->c_str());
    return 0;
  };
}

Runner add_surrogate_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "surrogate-eval",
      "Forecast RMSE of a trained surrogate on a nature run, by lead (autoregressive), next to "
      "persistence");
  auto weights = std::make_shared<std::string>();
  auto nature = std::make_shared<std::string>();
  auto leads = std::make_shared<int>(4);
  auto starts = std::make_shared<int>(64);
  cmd->add_option("--weights", *weights, "checkpoint from rtda train")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--nature", *nature, "nature run the surrogate did not see")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--leads", *leads, "cycles ahead (each one 12-hour step)")->capture_default_str();
  cmd->add_option("--starts", *starts, "initial states, evenly spaced")->capture_default_str();
  return [weights, nature, leads, starts]() {
    surrogate::Vit model(
        surrogate::vit_config_from(surrogate::read_surrogate_architecture(*weights)));
    surrogate::ParameterList params;
    model.collect(params);
    const auto f = surrogate::load_surrogate(*weights, params);
    surrogate::Normalisation norm;
    norm.mean = {f.norm_mean.at(0), f.norm_mean.at(1)};
    norm.std = {f.norm_std.at(0), f.norm_std.at(1)};
    const io::NatureRun run = io::read_nature(*nature);
    const auto vit = surrogate::autoregressive_rmse_K(model, run, norm, 1, *leads, *starts);
    const auto pers = surrogate::autoregressive_rmse_K(model, run, norm, 1, *leads, *starts, true);
    std::printf("| lead (h) | ViT RMSE (K) | persistence RMSE (K) |\n|---|---|---|\n");
    const double hours = run.size() > 1 ? (run.times_seconds[1] - run.times_seconds[0]) / 3600 : 12;
    for (int l = 0; l < *leads; ++l)
      std::printf("| %.0f | %.3f | %.3f |\n", (l + 1) * hours, vit[static_cast<std::size_t>(l)],
                  pers[static_cast<std::size_t>(l)]);
    return 0;
  };
}

}  // namespace rtda::cli
