// rtda-server: the coordinator (docs/architecture.md §1). `rtda-server --config FILE [--set k=v]`.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <iostream>

#include "config/config.hpp"
#include "server/coordinator.hpp"

namespace {
// Exit codes (docs/service.md): 0 stopped cleanly; 1 a failure a restart may cure (a port
// in use, an I/O error); 2 a command-line error; these two a restart cannot cure, so the
// systemd unit does not restart on them (RestartPreventExitStatus):
constexpr int kExitData = 65;    // EX_DATAERR: the observation log is damaged
constexpr int kExitConfig = 78;  // EX_CONFIG: the configuration is refused
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
  // A full disk must not kill the server: writes past a file-size limit fail with EFBIG
  // (handled: ingest degrades) instead of raising SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  // Batches of hundreds of kB come and go many times a second: keep freed blocks for reuse
  // instead of mapping fresh (zeroed) pages for each (about 20 % of durable ingest).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  try {
    const auto cfg = rtda::config::load(
        config_path.empty() ? std::nullopt : std::optional<std::string>(config_path), overrides);
    rtda::server::Coordinator coordinator(cfg);
    coordinator.run(g_stop);
  } catch (const rtda::config::ConfigError& e) {
    spdlog::error("configuration: {}", e.what());
    return kExitConfig;
  } catch (const rtda::server::DataError& e) {
    spdlog::error("data directory: {}", e.what());
    return kExitData;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
