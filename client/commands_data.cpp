// rtda nature | forecast | observe | config: the offline data tools.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "commands.hpp"
#include "experiment.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/experiments.hpp"
#include "progress.hpp"
#include "sqg/fft_wisdom.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"

namespace rtda::cli {

void ConfigOptions::add_to(CLI::App& app) {
  app.add_option("--config", file, "TOML configuration file (see docs/configuration.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sets, "Override one key: section.key=value (repeatable)");
}

config::Config ConfigOptions::load(const config::Config* base) const {
  return config::load(file, sets, base);
}

std::string command_line_of(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i)
    s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

namespace {

std::string g_command_line;

io::Provenance provenance(const std::string& what, const config::Config& cfg) {
  return {{"created_by", what}, {"history", g_command_line}, {"rtda_config", config::to_toml(cfg)}};
}

// The configuration an input file was made with, as the base that options refine.
config::Config config_from_file_params(const sqg::SqgParams& p) {
  config::Config c;
  c.model.sqg = p;
  c.model.preset = "N" + std::to_string(p.N);
  return c;
}

}  // namespace

ModelPlanning::ModelPlanning(const config::Config& cfg)
    : path_(cfg.model.fft_planning == sqg::FftPlanning::kMeasure
                ? sqg::resolve_fft_wisdom_path(cfg.model.fft_wisdom_file)
                : std::string()),
      automatic_(cfg.model.fft_wisdom_file == "auto") {
  if (path_.empty()) return;
  try {
    sqg::load_fft_wisdom_file(path_);
  } catch (const std::runtime_error& e) {
    if (!automatic_) throw;
    // A cache from another FFTW build: measure afresh and overwrite it.
    std::fprintf(stderr, "rtda: ignoring FFTW wisdom cache (%s)\n", e.what());
  }
}

void ModelPlanning::planned() const {
  if (path_.empty()) return;
  try {
    sqg::save_fft_wisdom_file(path_);
  } catch (const std::exception& e) {
    if (!automatic_) throw;
    std::fprintf(stderr, "rtda: could not save FFTW wisdom cache (%s)\n", e.what());
  }
}

std::array<double, 2> run_nature_to_file(const config::Config& cfg, const std::string& out,
                                         const std::string& command_line) {
  g_command_line = command_line;
  const auto& p = cfg.model.sqg;
  const auto& ns = cfg.nature;
  const ModelPlanning planning(cfg);
  sqg::SqgModel<double> model(p, cfg.model.fft_planning);
  planning.planned();
  const double s = p.kelvin_per_pv();
  std::printf("nature run: N = %d, dt = %g s, dynamics = %s, seed = %llu\n", p.N, p.dt_s,
              std::string(sqg::to_string(p.dynamics)).c_str(),
              static_cast<unsigned long long>(ns.seed));
  std::printf("  spin-up %g days, then %d states every %g h (%.1f days kept)\n", ns.spinup_days,
              ns.states, ns.interval_hours, (ns.states - 1) * ns.interval_hours / 24.0);
  std::fflush(stdout);

  io::NatureWriter writer(out, cfg.model.with_epoch(p), provenance("rtda nature", cfg));
  Progress bar("nature", ns.spinup_steps(p) + ns.steps_per_interval(p) * (ns.states - 1));
  std::array<double, 2> sum{0, 0};
  double lo = INFINITY, hi = 0;
  sqg::run_nature(
      model, ns,
      [&](int, double t, std::span<const double> q) {
        writer.append(t, q);
        const auto sd = sqg::level_std(q, p.N);
        for (int l = 0; l < 2; ++l) {
          sum[l] += sd[l];
          lo = std::min(lo, sd[l]);
          hi = std::max(hi, sd[l]);
        }
        if (!std::isfinite(sd[0] + sd[1])) {
          throw std::runtime_error("nature run blew up at t = " + std::to_string(t / 86400.0) +
                                   " days (non-finite q); reduce model.dt_s");
        }
      },
      [&](const sqg::NatureProgress& pr) {
        char note[64];
        std::snprintf(note, sizeof note, "day %.1f", pr.steps_done * p.dt_s / 86400.0);
        bar.update(pr.steps_done, note);
      });
  writer.close();
  bar.finish();
  const std::array<double, 2> mean{sum[0] / ns.states, sum[1] / ns.states};
  std::printf("climatology over the %d kept states (per-level spatial std of q):\n", ns.states);
  std::printf("  surface %7.1f m/s (%5.2f K)   lid %7.1f m/s (%5.2f K)   range %.0f..%.0f m/s\n",
              mean[0], mean[0] * s, mean[1], mean[1] * s, lo, hi);
  std::printf("  reference (docs/science.md, N = 64): ~2660 / ~2710 m/s (~8.2 K)\n");
  std::printf("wrote %s (%d states, q(time, level, y, x) in m s-1)\n",
              std::filesystem::absolute(out).c_str(), ns.states);
  return mean;
}

Runner add_nature_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("nature", "Run the SQG nature run (docs/science.md §1) to a file");
  auto opts = std::make_shared<ConfigOptions>();
  auto out = std::make_shared<std::string>();
  opts->add_to(*cmd);
  cmd->add_option("--out", *out, "Output HDF5 file")->required();
  return [opts, out]() {
    const auto cfg = opts->load();
    run_nature_to_file(cfg, *out, g_command_line);
    return 0;
  };
}

namespace {

template <typename Real>
void advance_fields(const config::Config& cfg, std::vector<double>& q, int members, int steps) {
  // Zero steps: leave the input bit for bit (float32 conversion or a grid round trip would not).
  if (steps == 0) return;
  const ModelPlanning planning(cfg);
  sqg::SqgModel<Real> model(cfg.model.sqg, cfg.model.fft_planning);
  planning.planned();
  sqg::EnsembleStepper<Real> stepper(model, cfg.model.threads);
  std::vector<Real> grid(q.begin(), q.end());
  Progress bar("forecast", static_cast<long>(steps) * members);
  // Chunks keep the progress bar moving; the spectral state is kept between the steps of a
  // chunk, and a chunk ends on a grid round trip only every ~5 % of the run.
  const int chunk = std::max(1, steps / 20);
  int done = 0;
  if (chunk == steps || steps <= 20) {
    stepper.advance_grid(grid, members, steps);
    done = steps;
  } else {
    typename sqg::SqgModel<Real>::SpectralVector spec(model.spectral_size() * members);
    auto ws = model.make_workspace();
    for (int m = 0; m < members; ++m) {
      model.to_spectral(
          std::span<const Real>(grid).subspan(m * model.grid_size(), model.grid_size()),
          std::span(spec).subspan(m * model.spectral_size(), model.spectral_size()), ws);
    }
    while (done < steps) {
      const int n = std::min(chunk, steps - done);
      stepper.advance(spec, members, n);
      done += n;
      bar.update(static_cast<long>(done) * members);
    }
    for (int m = 0; m < members; ++m) {
      model.to_grid(std::span(spec).subspan(m * model.spectral_size(), model.spectral_size()),
                    std::span<Real>(grid).subspan(m * model.grid_size(), model.grid_size()), ws);
    }
  }
  bar.finish();
  std::copy(grid.begin(), grid.end(), q.begin());
}

}  // namespace

Runner add_forecast_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("forecast", "Advance a state or ensemble file by a number of model steps");
  auto opts = std::make_shared<ConfigOptions>();
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto steps = std::make_shared<int>(0);
  auto index = std::make_shared<int>(-1);
  cmd->add_option("--in", *in,
                  "State file q(level,y,x), ensemble file q(member,level,y,x), or a nature run "
                  "with --nature-index")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--steps", *steps, "Model steps to advance")
      ->required()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", *out, "Output HDF5 file (same kind as the input)")->required();
  cmd->add_option("--nature-index", *index,
                  "Start from state K of a nature-run file (the output is a state file)")
      ->check(CLI::NonNegativeNumber);
  opts->add_to(*cmd);
  return [opts, in, out, steps, index]() {
    io::FieldFile f;
    if (*index >= 0) {
      const auto k = static_cast<std::size_t>(*index);
      const auto times = io::read_nature_times(*in);
      if (k >= times.size()) {
        throw std::runtime_error("--nature-index " + std::to_string(k) + ": " + *in + " holds " +
                                 std::to_string(times.size()) + " states");
      }
      io::NatureRun run = io::read_nature(*in, io::IndexRange{k, k + 1});
      f.params = run.params;
      f.time_seconds = run.times_seconds.front();
      f.q = std::move(run.q);
    } else {
      f = io::read_fields(*in);
    }
    // The file's own configuration, refined by --config/--set (e.g. model.dynamics=exact).
    const config::Config base = config_from_file_params(f.params);
    const config::Config cfg = opts->load(&base);
    io::check_compatible(f, cfg.model.sqg, *in);
    const int members = std::max(f.members, 1);
    if (cfg.model.precision == config::Precision::kFloat32) {
      advance_fields<float>(cfg, f.q, members, *steps);
    } else {
      advance_fields<double>(cfg, f.q, members, *steps);
    }
    for (double v : f.q) {
      if (!std::isfinite(v)) {
        throw std::runtime_error("forecast produced non-finite values; reduce model.dt_s");
      }
    }
    const double t = f.time_seconds + *steps * cfg.model.sqg.dt_s;
    // The SQG physics always runs on the CPU (docs/architecture.md §6); the file says so, as
    // the analysis tools' files say where they ran.
    auto prov = provenance("rtda forecast", cfg);
    prov.merge(worker::device_provenance(device::choose(device::Request::kCpu, 0)));
    if (f.members == 0) {
      io::write_state(*out, cfg.model.with_epoch(cfg.model.sqg), t, f.q, prov);
    } else {
      io::write_ensemble(*out, cfg.model.with_epoch(cfg.model.sqg), t, f.members, f.q, prov);
    }
    std::printf("advanced %d %s by %d steps (%g h) to t = %g s; wrote %s\n", members,
                members == 1 ? "state" : "members", *steps, *steps * cfg.model.sqg.dt_s / 3600.0, t,
                out->c_str());
    return 0;
  };
}

Runner add_observe_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "observe", "Make the synthetic observations of one experiment (docs/science.md §2)");
  auto opts = std::make_shared<ConfigOptions>();
  auto nature = std::make_shared<std::string>();
  auto experiment = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--nature", *nature,
                  "Nature run file (required, except for model.kind = \"lorenz96\", whose truth "
                  "is made in memory as rtda experiment makes it)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--experiment", *experiment,
                  "linear | linear-shocks | arctan | sparse-arctan-shocks")
      ->required()
      ->check(CLI::IsMember({"linear", "linear-shocks", "arctan", "sparse-arctan-shocks"}));
  cmd->add_option("--out", *out, "Output observation file")->required();
  opts->add_to(*cmd);
  return [opts, nature, experiment, out]() {
    const auto e = obs::experiment_from_string(*experiment);
    const config::Config probe = opts->load();
    if (probe.model.lorenz96()) {
      if (!nature->empty()) {
        throw std::runtime_error("--nature: model.kind = \"lorenz96\" makes its truth in memory");
      }
      // experiment.cycles states, as rtda experiment observes them.
      const io::NatureRun run = worker::lorenz96_nature(probe);
      const obs::ObservationSet set = obs::make_observations(run, e, probe.observe);
      io::write_observations(*out, set, probe.model.with_epoch(run.model()),
                             provenance("rtda observe", probe));
      std::printf("experiment %s: %zu cycles, %zu observations of %s\nwrote %s\n",
                  experiment->c_str(), set.cycles(), set.size(),
                  run.model().describe_grid().c_str(), out->c_str());
      return 0;
    }
    if (nature->empty()) throw std::runtime_error("--nature is required");
    const auto times = io::read_nature_times(*nature);
    const std::size_t cycles =
        probe.observe.cycles > 0 ? static_cast<std::size_t>(probe.observe.cycles) : times.size();
    if (cycles > times.size()) {
      throw std::runtime_error("observe.cycles = " + std::to_string(cycles) + ": " + *nature +
                               " holds only " + std::to_string(times.size()) + " states");
    }
    const io::NatureRun run = io::read_nature(*nature, io::IndexRange{0, cycles});
    const config::Config base = config_from_file_params(run.params);
    const config::Config cfg = opts->load(&base);
    const obs::ObservationSet set = obs::make_observations(run, e, cfg.observe);
    io::write_observations(*out, set, cfg.model.with_epoch(run.params),
                           provenance("rtda observe", cfg));
    int shocked = 0;
    for (double sd : set.shock_sd)
      shocked += sd > 0;
    std::printf(
        "experiment %s: %zu cycles, %zu observations (%zu per cycle), %d shocked "
        "cycles, seed %llu\nwrote %s\n",
        experiment->c_str(), set.cycles(), set.size(), set.size() / set.cycles(), shocked,
        static_cast<unsigned long long>(set.seed), out->c_str());
    return 0;
  };
}

Runner add_config_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("config", "Print the effective configuration or the key reference");
  auto opts = std::make_shared<ConfigOptions>();
  auto markdown = std::make_shared<bool>(false);
  opts->add_to(*cmd);
  cmd->add_flag("--markdown", *markdown, "Print the reference of every key as Markdown");
  return [opts, markdown]() {
    if (*markdown) {
      std::printf("%s", config::reference_markdown().c_str());
    } else {
      std::printf("%s", config::to_toml(opts->load()).c_str());
    }
    return 0;
  };
}

void set_command_line(const std::string& s) {
  g_command_line = s;
}

}  // namespace rtda::cli
