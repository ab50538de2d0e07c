// rtda-server: the coordinator (architecture.md §1). `rtda-server --config FILE [--set k=v]`.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <iostream>

#include "config/config.hpp"
#include "server/coordinator.hpp"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop.store(true);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rtda-server: the rtda coordinator (ingest, windows, worker group, publish)"};
  std::string config_path;
  std::vector<std::string> overrides;
  std::string level = "info";
  app.add_option("--config", config_path, "TOML configuration ([server], [window], ...)");
  app.add_option("--set", overrides, "override a key: section.key=value (repeatable)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ rtda-server: %v");
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    const auto cfg = rtda::config::load(
        config_path.empty() ? std::nullopt : std::optional<std::string>(config_path), overrides);
    rtda::server::Coordinator coordinator(cfg);
    coordinator.run(g_stop);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
