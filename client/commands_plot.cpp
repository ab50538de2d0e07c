// rtda plot: field maps (PNG) of one cycle of an analysis archive, drawn by the Python client's
// maps module (client/python/rtda_client/maps.py) with matplotlib; this command picks the
// interpreter and runs `python -m rtda_client plot` with the same options.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"

#ifndef RTDA_PY_VENV
#define RTDA_PY_VENV ""
#endif

namespace rtda::cli {
namespace {

struct PlotOptions {
  std::string archive, out, truth, title, python;
  long long cycle = -1;
};

// --python, else $RTDA_PYTHON, else the build tree's venv (the one the tests install the
// package into), else Debian's interpreter.
std::string pick_python(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("RTDA_PYTHON"); env != nullptr && *env != '\0') return env;
  const std::filesystem::path venv = std::filesystem::path(RTDA_PY_VENV) / "bin" / "python";
  std::error_code ec;
  if (!std::string(RTDA_PY_VENV).empty() && std::filesystem::exists(venv, ec)) {
    return venv.string();
  }
  return "/usr/bin/python3";
}

}  // namespace

Runner add_plot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plot",
      "Field maps (PNG) of one cycle of an analysis archive: mean, spread and, with --truth, the "
      "error (drawn by the Python client, python -m rtda_client plot)");
  auto o = std::make_shared<PlotOptions>();
  cmd->add_option("--archive", o->archive,
                  "data_dir/analyses, a data_dir, or an rtda experiment archive")
      ->required();
  cmd->add_option("--cycle", o->cycle, "the cycle to map")
      ->required()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o->out, "PNG file to write")->required();
  cmd->add_option("--truth", o->truth, "nature run: also map the error against it");
  cmd->add_option("--title", o->title, "figure title (default: the cycle and its valid time)");
  cmd->add_option("--python", o->python,
                  "Python interpreter with rtda_client installed (default: $RTDA_PYTHON, else "
                  "the build tree's python-venv, else /usr/bin/python3)");
  return [o]() {
    const std::string python = pick_python(o->python);
    std::vector<std::string> args = {
        python,      "-m",       "rtda_client", "plot",
        "--archive", o->archive, "--cycle",     std::to_string(o->cycle),
        "--out",     o->out};
    if (!o->truth.empty()) args.insert(args.end(), {"--truth", o->truth});
    if (!o->title.empty()) args.insert(args.end(), {"--title", o->title});
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "rtda plot: fork failed: %s\n", std::strerror(errno));
      return 1;
    }
    if (pid == 0) {
      execvp(argv[0], argv.data());
      std::fprintf(stderr, "rtda plot: cannot run %s: %s\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        std::fprintf(stderr, "rtda plot: waitpid failed: %s\n", std::strerror(errno));
        return 1;
      }
    }
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc != 0) {
      std::fprintf(stderr,
                   "rtda plot: %s -m rtda_client plot exited %d (needs the Python client: pip "
                   "install ./client/python, docs/python.md; or pass --python)\n",
                   python.c_str(), rc);
    }
    return rc;
  };
}

}  // namespace rtda::cli
