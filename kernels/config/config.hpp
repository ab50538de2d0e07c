// rtda's configuration: one typed struct, defaults in one place, read from TOML and `--set`
// overrides (architecture.md §7). Every key is declared once in config.cpp's registry, which
// also produces the reference documentation (`rtda config --markdown`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "filters/ensf.hpp"
#include "filters/letkf.hpp"
#include "obs/experiments.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::config {

enum class Precision { kFloat64, kFloat32 };

struct ModelConfig {
  // Named reference configuration (science.md §1) applied before the explicit keys: "N32",
  // "N64", "N128", "N256", "N512", "N1024".
  std::string preset = "N64";
  sqg::SqgParams sqg;  // physics and numerics, keys model.<field>
  Precision precision = Precision::kFloat64;
  sqg::FftPlanning fft_planning = sqg::FftPlanning::kMeasure;
  // FFTW wisdom shared by processes that must agree bitwise (see fft_wisdom.hpp): a path,
  // "auto" (a per-machine file in the user's cache directory) or "" (none).
  std::string fft_wisdom_file = "auto";
  int threads = 0;  // threads for ensemble steps; 0 = OMP_NUM_THREADS / all cores
};

struct ObserveConfig {
  std::uint64_t seed = 1;          // keys observation errors, shocks and networks
  std::optional<double> error_sd;  // unset: the experiment's (1 K linear, 0.01 arctan)
  int cycles = 0;                  // 0: one cycle per nature state
};

// The ensemble and the twin experiment of science.md §2.
struct EnsembleConfig {
  // "perturbed-state": every member is one climatological state plus noise (science.md §2);
  // "climatology": member m is nature state (climatology_index - m * climatology_stride) plus
  // noise, i.e. a sample of the climate with realistic, flow-shaped differences.
  std::string initial = "perturbed-state";
  int climatology_stride = 7;  // states between members of a "climatology" ensemble
  int members = 20;
  double initial_noise_sd_ms = 1000.0;  // member = climatological state + N(0, sd^2)
  int climatology_index = -1;           // nature state used as the climatological state; -1 = last
};

struct ExperimentConfig {
  std::string observations = "linear-shocks";  // one of obs::Experiment's names
  int cycles = 300;
  std::uint64_t seed = 1;           // observations, initial ensemble and filter noise
  std::string nature_file;          // "" = run the nature run (and keep it next to the output)
  int statistics_from_cycle = 100;  // summary statistics over cycles [this, cycles)
  double cycle_hours = 12.0;        // forecast length between analyses (a multiple of dt)
  bool store_members = false;       // also archive every analysis member
};

struct Config {
  ModelConfig model;
  sqg::NatureSettings nature;
  obs::ObserveSettings observe;
  EnsembleConfig ensemble;
  ExperimentConfig experiment;
  filters::LetkfSettings letkf;
  filters::EnsfSettings ensf;  // ensf.mode selects that mode's defaults before other keys
};

// Thrown for any configuration problem; the message names the key, the value and what was
// expected (and the file, when one was read).
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Defaults, then the TOML file (if any), then each "section.key=value" override in order.
// Unknown sections or keys, wrong types and invalid values throw ConfigError.
// With `base`, start from it instead of the defaults (e.g. the configuration recorded in an
// input file); its preset is then not re-applied unless model.preset or model.N is given.
Config load(const std::optional<std::string>& toml_path,
            const std::vector<std::string>& overrides = {}, const Config* base = nullptr);

// The whole effective configuration as TOML (recorded in output files for provenance).
std::string to_toml(const Config& c);

// Markdown reference of every key: name, type, default, meaning.
std::string reference_markdown();

std::string_view to_string(Precision p);

}  // namespace rtda::config
