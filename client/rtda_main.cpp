// rtda: the command-line tool (docs/architecture.md §1).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "commands.hpp"

namespace rtda::cli {
void set_command_line(const std::string& s);
// The arguments after the program name, for commands that re-launch themselves.
std::vector<std::string> g_raw_args;
}  // namespace rtda::cli

int main(int argc, char** argv) {
  using namespace rtda::cli;
  CLI::App app{"rtda: real-time ensemble data assimilation (SQG turbulence, EnSF, LETKF)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rtda " RTDA_VERSION);
  std::map<CLI::App*, Runner> runners;
  auto reg = [&](Runner r) { runners[app.get_subcommands({}).back()] = std::move(r); };
  reg(add_nature_command(app));
  reg(add_forecast_command(app));
  reg(add_observe_command(app));
  reg(add_config_command(app));
  reg(add_demo_command(app));
  reg(add_experiment_command(app));
  reg(add_analyze_command(app));
  reg(add_ensemble_command(app));
  reg(add_feed_command(app));
  reg(add_watch_command(app));
  reg(add_status_command(app));
  {
    auto control = add_control_commands(app);
    const auto subs = app.get_subcommands({});
    for (std::size_t i = 0; i < control.size(); ++i)
      runners[subs[subs.size() - control.size() + i]] = std::move(control[i]);
  }
  reg(add_keys_command(app));
  reg(add_plot_command(app));
  reg(add_train_command(app));
  reg(add_surrogate_eval_command(app));
  CLI11_PARSE(app, argc, argv);
  g_raw_args.assign(argv + 1, argv + argc);
  set_command_line(command_line_of(argc, argv));
  try {
    for (auto* sub : app.get_subcommands())
      return runners.at(sub)();
  } catch (const rtda::config::ConfigError& e) {
    std::fprintf(stderr, "rtda: configuration error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rtda: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
