// rtda demo: what the README's first command runs. Until the real-time service lands it
// runs the data pipeline end to end on the default configuration: a nature run, then the
// observations of experiment 2 (linear + shocks), with a summary of both.
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/experiments.hpp"

namespace rtda::cli {

void set_command_line(const std::string& s);

Runner add_demo_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("demo",
                         "Run the pipeline end to end on the default configuration (nature run, "
                         "experiment-2 observations)");
  auto opts = std::make_shared<ConfigOptions>();
  auto dir = std::make_shared<std::string>("rtda-demo");
  cmd->add_option("--dir", *dir, "Directory for the demo's files")->capture_default_str();
  opts->add_to(*cmd);
  return [opts, dir]() {
    const config::Config cfg = opts->load();
    std::filesystem::create_directories(*dir);
    const std::string nature = (std::filesystem::path(*dir) / "nature.h5").string();
    const std::string obs_path = (std::filesystem::path(*dir) / "obs-linear-shocks.h5").string();
    std::printf("== rtda demo: step 1/2, nature run ==\n");
    run_nature_to_file(cfg, nature, "rtda demo");

    std::printf("\n== rtda demo: step 2/2, observations of experiment 2 (linear + shocks) ==\n");
    const io::NatureRun run = io::read_nature(nature);
    const io::ObservationSet set =
        obs::make_observations(run, obs::Experiment::kLinearShocks, cfg.observe);
    io::write_observations(obs_path, set, run.params,
                           {{"created_by", "rtda demo"}, {"rtda_config", config::to_toml(cfg)}});
    int shocked = 0;
    double shock_sum = 0;
    for (double sd : set.shock_sd) {
      shocked += sd > 0;
      shock_sum += sd;
    }
    std::printf(
        "%zu cycles x %zu observations (linear_K, sigma %.2g K); %d shocked cycles, "
        "mean shock std %.0f m/s\n",
        set.cycles(), set.size() / set.cycles(), set.error_sd.front(), shocked,
        shocked ? shock_sum / shocked : 0.0);
    std::printf("wrote %s\n", std::filesystem::absolute(obs_path).c_str());
    std::printf(
        "\nNext: `rtda forecast --in ... --steps 36` advances a state 12 h; the "
        "analysis and the real-time service arrive with issues 3 and 4.\n");
    return 0;
  };
}

}  // namespace rtda::cli
