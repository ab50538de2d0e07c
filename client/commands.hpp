// Subcommands of the `rtda` command-line tool. Each registers its options on a CLI11 app and
// returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace rtda::cli {

// --config FILE and repeatable --set section.key=value, shared by every command.
struct ConfigOptions {
  std::optional<std::string> file;
  std::vector<std::string> sets;
  void add_to(CLI::App& app);
  config::Config load(const config::Config* base = nullptr) const;
};

using Runner = std::function<int()>;

// Shares FFTW wisdom through model.fft_wisdom_file: imported on construction (before any
// model is planned), saved by planned() once the models exist.
class ModelPlanning {
 public:
  explicit ModelPlanning(const config::Config& cfg);
  void planned() const;

 private:
  std::string path_;
  bool automatic_;
};

Runner add_nature_command(CLI::App& app);
Runner add_forecast_command(CLI::App& app);
Runner add_observe_command(CLI::App& app);
Runner add_config_command(CLI::App& app);
Runner add_demo_command(CLI::App& app);
Runner add_experiment_command(CLI::App& app);
Runner add_analyze_command(CLI::App& app);
Runner add_ensemble_command(CLI::App& app);
Runner add_feed_command(CLI::App& app);
Runner add_watch_command(CLI::App& app);
Runner add_status_command(CLI::App& app);
std::vector<Runner> add_control_commands(
    CLI::App& app);  // pause resume checkpoint set-filter shutdown
Runner add_keys_command(CLI::App& app);
Runner add_plot_command(CLI::App& app);
Runner add_train_command(CLI::App& app);
Runner add_surrogate_eval_command(CLI::App& app);

// Shared by nature and demo: runs the nature-run recipe with a progress bar, writes `out`,
// prints the climatology; returns the per-level std averaged over the kept states (m/s).
std::array<double, 2> run_nature_to_file(const config::Config& cfg, const std::string& out,
                                         const std::string& command_line);

std::string command_line_of(int argc, char** argv);

}  // namespace rtda::cli
