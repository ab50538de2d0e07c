// rtda-server: the coordinator (docs/architecture.md §1). `rtda-server --config FILE [--set k=v]`.
#include <malloc.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <iostream>

#include "config/config.hpp"
#include "server/coordinator.hpp"
#include "server/systemd.hpp"

namespace {
// Exit codes (docs/service.md): 0 stopped cleanly; 1 a failure a restart may cure (a port
// in use, an I/O error); 2 a command-line error; these two a restart cannot cure, so the
// systemd unit does not restart on them (RestartPreventExitStatus):
constexpr int kExitData = 65;    // EX_DATAERR: the observation log is damaged
constexpr int kExitConfig = 78;  // EX_CONFIG: the configuration is refused
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_signal(int) {
  g_stop.store(true);
}
void on_hangup(int) {
  g_reload.store(true);
}

// Log lines (docs/service.md "Logs"): on stderr with a UTC timestamp and its offset, or, when
// stderr is the journal (systemd's $JOURNAL_STREAM) or --log-target journal says so, straight
// to journald with the line's priority (error -> 3, warn -> 4, info -> 6, debug -> 7).
void set_up_logging(const std::string& target, const std::string& level) {
  const bool journal =
      target == "journal" || (target == "auto" && rtda::server::stderr_is_journal());
  std::shared_ptr<spdlog::logger> logger;
  if (journal) {
    logger = std::make_shared<spdlog::logger>(
        "rtda-server", std::make_shared<spdlog::sinks::systemd_sink_mt>("rtda-server"));
  } else {
    logger = std::make_shared<spdlog::logger>(
        "rtda-server", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ rtda-server: %v",
                        spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
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
  std::string log_target = "auto";
  app.add_option("--log-target", log_target,
                 "auto (the journal when stderr is systemd's journal stream, else stderr), "
                 "stderr or journal")
      ->check(CLI::IsMember({"auto", "stderr", "journal"}));
  CLI11_PARSE(app, argc, argv);
  set_up_logging(log_target, level);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // SIGHUP re-reads the CURVE allow-lists (docs/deployment.md §3).
  std::signal(SIGHUP, on_hangup);
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
    coordinator.run(g_stop, &g_reload);
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
