// rtda demo: what the README's first command runs. The real service end to end on one machine:
// a fresh nature run and experiment 2's observations (linear + shocks), then rtda-server, a
// worker group under mpiexec, a feeder replaying the observations with the truth, and a
// watcher printing one line per cycle; a summary at the end. Every process it starts is
// stopped on the way out, also on Ctrl-C.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "commands.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/experiments.hpp"
#include "service_client.hpp"

extern char** environ;

namespace rtda::cli {
namespace fs = std::filesystem;
namespace {

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) {
  g_interrupted.store(true);
}

// A child process in its own process group, stopped (TERM, then KILL) when this goes away.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const fs::path& log) {
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    const int rc = posix_spawn(&pid_, args[0], &fa, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ~Child() { stop(5.0); }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  // Waits up to `seconds` for a clean exit, then TERM, then KILL the whole group.
  void stop(double seconds) {
    for (int sig : {0, SIGTERM, SIGKILL}) {
      if (!running()) return;
      if (sig) kill(-pid_, sig);
      for (int i = 0; i < static_cast<int>(seconds * 20) && running(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  pid_t pid_ = -1;
};

// rtda-server / rtda-worker next to this program (installed) or in the build tree.
std::string find_program(const std::string& name, const std::string& build_subdir) {
  const fs::path self = fs::canonical("/proc/self/exe").parent_path();
  for (const fs::path& p : {self / name, self.parent_path() / build_subdir / name}) {
    if (fs::exists(p)) return p.string();
  }
  throw std::runtime_error("cannot find " + name + " next to " + self.string() +
                           " or in the build tree");
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string all = path ? path : "/usr/bin:/bin";
  std::size_t at = 0;
  while (at <= all.size()) {
    const std::size_t end = std::min(all.find(':', at), all.size());
    const fs::path p = fs::path(all.substr(at, end - at)) / name;
    if (!p.empty() && fs::exists(p)) return p.string();
    at = end + 1;
  }
  throw std::runtime_error("cannot find " + name + " in PATH (install openmpi-bin)");
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))];
}

}  // namespace

Runner add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Run the real-time service end to end on this machine: nature run, experiment-2 "
      "observations, rtda-server, a 2-rank worker group, a feeder and a watcher");
  auto opts = std::make_shared<ConfigOptions>();
  auto dir = std::make_shared<std::string>("rtda-demo");
  auto cycles = std::make_shared<int>(40);
  auto ranks = std::make_shared<int>(2);
  auto window_seconds = std::make_shared<double>(1.0);
  cmd->add_option("--dir", *dir, "directory for the demo's files")->capture_default_str();
  cmd->add_option("--cycles", *cycles, "analysis cycles to run")->capture_default_str();
  cmd->add_option("--ranks", *ranks, "MPI ranks of the worker group")->capture_default_str();
  cmd->add_option("--window-seconds", *window_seconds,
                  "wall-clock seconds between windows of the replayed feed")
      ->capture_default_str();
  opts->add_to(*cmd);
  return [opts, dir, cycles, ranks, window_seconds]() {
    config::Config cfg = opts->load();
    const fs::path root = fs::absolute(*dir);
    fs::create_directories(root);
    const fs::path nature = root / "nature.h5";
    const fs::path obs_path = root / "obs-linear-shocks.h5";
    std::printf("== rtda demo 1/3: nature run ==\n");
    run_nature_to_file(cfg, nature.string(), "rtda demo");
    const io::NatureRun run = io::read_nature(nature);
    if (static_cast<std::size_t>(*cycles) > run.size()) {
      throw config::ConfigError("--cycles " + std::to_string(*cycles) + ": the nature run holds " +
                                std::to_string(run.size()) + " states");
    }

    std::printf("\n== rtda demo 2/3: observations of experiment 2 (linear + shocks) ==\n");
    obs::ObserveSettings observe = cfg.observe;
    observe.seed = cfg.experiment.seed;
    observe.cycles = *cycles;
    const obs::ObservationSet set =
        obs::make_observations(run, obs::Experiment::kLinearShocks, observe);
    io::write_observations(obs_path, set, cfg.model.with_epoch(run.params),
                           {{"created_by", "rtda demo"}});
    std::printf("%zu windows x %zu observations -> %s\n", set.cycles(), set.size() / set.cycles(),
                obs_path.c_str());

    // The service's configuration: sockets under the demo directory, a fresh data directory.
    cfg.experiment.nature_file = nature.string();
    cfg.experiment.observations = "linear-shocks";
    cfg.window.t0_seconds = set.cycle_time_seconds.front();  // cycle 0 = the first nature state
    const std::string ipc = "ipc://" + root.string() + "/";
    cfg.server.ingest = ipc + "ingest.sock";
    cfg.server.publish = ipc + "publish.sock";
    cfg.server.control = ipc + "control.sock";
    cfg.server.workers = ipc + "workers.sock";
    cfg.server.data_dir = (root / "data").string();
    fs::remove_all(root / "data");
    const fs::path cfg_path = root / "service.toml";
    {
      std::FILE* f = std::fopen(cfg_path.c_str(), "w");
      if (!f) throw std::runtime_error("cannot write " + cfg_path.string());
      const std::string text = config::to_toml(cfg);
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }

    std::printf("\n== rtda demo 3/3: the service, %d cycles, filter %s, %d worker ranks ==\n",
                *cycles, cfg.server.filter.c_str(), *ranks);
    std::printf("config %s; logs %s/server.log, %s/worker.log\n", cfg_path.c_str(), root.c_str(),
                root.c_str());
    g_interrupted = false;
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    Child server({find_program("rtda-server", "server"), "--config", cfg_path.string()},
                 root / "server.log");
    Child workers(
        {find_in_path("mpiexec"), "-n", std::to_string(*ranks), "--oversubscribe", "--bind-to",
         "none", find_program("rtda-worker", "worker"), "--server", cfg.server.workers},
        root / "worker.log");

    // The watcher: every analysis on rtda.summary.
    std::mutex mu;
    std::vector<wire::Analysis> seen;
    std::atomic<bool> stop_watch{false};
    std::thread watcher([&] {
      zmq::context_t ctx{1};
      zmq::socket_t sub(ctx, zmq::socket_type::sub);
      sub.set(zmq::sockopt::subscribe, "rtda.summary");
      sub.set(zmq::sockopt::rcvtimeo, 200);
      sub.set(zmq::sockopt::linger, 0);
      sub.connect(cfg.server.publish);
      while (!stop_watch) {
        zmq::message_t topic, body;
        if (!sub.recv(topic)) continue;
        if (!sub.recv(body)) continue;
        wire::Analysis a;
        if (!a.ParseFromArray(body.data(), static_cast<int>(body.size()))) continue;
        std::printf("%s\n", format_analysis_line(a).c_str());
        std::fflush(stdout);
        std::lock_guard<std::mutex> lock(mu);
        seen.push_back(std::move(a));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the SUB connects first

    FeedOptions feed;
    feed.obs_file = obs_path.string();
    feed.server = cfg.server.ingest;
    feed.source = "rtda-demo";
    feed.truth_file = nature.string();
    feed.cycles = *cycles;
    feed.window_t0_seconds = cfg.window.t0_seconds;
    feed.cycle_seconds = cfg.experiment.cycle_hours * 3600.0;
    feed.run = cfg.model.run_defaults();
    // One window per wall second, as a real-time feed would deliver them (a 12 h window in 1 s).
    feed.realtime = true;
    feed.speedup = cfg.experiment.cycle_hours * 3600.0 / *window_seconds;
    int rc = 0;
    try {
      const auto fs_summary = feed_observations(feed, &g_interrupted);
      // Wait for the analyses (a worker group plans its FFTs first).
      const auto t0 = std::chrono::steady_clock::now();
      while (!g_interrupted) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (static_cast<int>(seen.size()) >= *cycles) break;
        }
        if (!server.running() || !workers.running()) {
          std::fprintf(stderr, "rtda demo: the %s exited early; see its log in %s\n",
                       server.running() ? "worker group" : "server", root.c_str());
          rc = 1;
          break;
        }
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(120 + 10 * *cycles)) {
          std::fprintf(stderr, "rtda demo: timed out waiting for the analyses\n");
          rc = 1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      std::printf("\nfed %llu observations in %llu batches (%llu rejected)\n",
                  static_cast<unsigned long long>(fs_summary.accepted),
                  static_cast<unsigned long long>(fs_summary.batches),
                  static_cast<unsigned long long>(fs_summary.rejected));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rtda demo: %s\n", e.what());
      rc = 1;
    }
    if (g_interrupted) std::printf("\ninterrupted: stopping the service\n");
    try {
      wire::ControlRequest q;
      q.set_version(wire::PROTOCOL_VERSION_1);
      q.set_command(wire::COMMAND_SHUTDOWN);
      control_request(cfg.server.control, q, {}, 2.0);
    } catch (const std::exception&) {
    }
    stop_watch = true;
    watcher.join();
    server.stop(10);
    workers.stop(10);

    std::lock_guard<std::mutex> lock(mu);
    std::vector<double> rmse, spread, latency, overhead;
    for (const auto& a : seen) {
      if (auto it = a.diagnostics().find("rmse_analysis"); it != a.diagnostics().end())
        rmse.push_back(it->second);
      if (auto it = a.diagnostics().find("spread_analysis"); it != a.diagnostics().end())
        spread.push_back(it->second);
      latency.push_back(a.latency().total_seconds());
      overhead.push_back(a.latency().overhead_seconds());
    }
    const auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v)
        s += x;
      return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
    };
    std::printf("\n== summary: %zu of %d cycles published ==\n", seen.size(), *cycles);
    std::printf("analysis RMSE vs truth: mean %.3f K (last %.3f K); spread mean %.3f K\n",
                mean(rmse), rmse.empty() ? std::nan("") : rmse.back(), mean(spread));
    std::printf(
        "latency (last observation in -> published): p50 %.1f ms, p99 %.1f ms; "
        "overhead p50 %.2f ms, p99 %.2f ms\n",
        quantile(latency, 0.5) * 1e3, quantile(latency, 0.99) * 1e3, quantile(overhead, 0.5) * 1e3,
        quantile(overhead, 0.99) * 1e3);
    std::printf("analyses in %s/data/analyses, checkpoints in %s/data/checkpoints\n", root.c_str(),
                root.c_str());
    if (static_cast<int>(seen.size()) < *cycles) rc = rc ? rc : 1;
    return g_interrupted ? 130 : rc;
  };
}

}  // namespace rtda::cli
