// The configuration keys of [model], [nature], [observe], [ensemble] and [experiment] (the
// registry: config/keys.hpp).
#include "config/keys.hpp"
#include "core/time_units.hpp"

namespace rtda::config::detail {

void add_model_keys(std::vector<Key>& r) {
  auto& m = r;
  // [model]
  m.push_back(choice_key(
      "model.preset", [](Config& c) -> std::string& { return c.model.preset; },
      std::vector<std::pair<std::string, std::string>>{{"N32", "N32"},
                                                       {"N64", "N64"},
                                                       {"N128", "N128"},
                                                       {"N256", "N256"},
                                                       {"N512", "N512"},
                                                       {"N1024", "N1024"}},
      "Reference configuration of docs/science.md §1 (sets N, dt_s, diff_efold_s); applied "
      "before every other key. Without it, setting model.N picks the matching preset."));
  m.push_back(int_key(
      "model.N", [](Config& c) -> int& { return c.model.sqg.N; },
      "Grid points per direction (even)."));
  m.push_back(real_key(
      "model.L_m", [](Config& c) -> double& { return c.model.sqg.L_m; },
      "Domain side length in metres."));
  m.push_back(real_key(
      "model.H_m", [](Config& c) -> double& { return c.model.sqg.H_m; }, "Lid height in metres."));
  m.push_back(real_key(
      "model.U_ms", [](Config& c) -> double& { return c.model.sqg.U_ms; },
      "Jet speed in m/s (eq. 3)."));
  m.push_back(real_key(
      "model.f_per_s", [](Config& c) -> double& { return c.model.sqg.f_per_s; },
      "Coriolis parameter f in 1/s."));
  m.push_back(real_key(
      "model.nsq_per_s2", [](Config& c) -> double& { return c.model.sqg.nsq_per_s2; },
      "Brunt-Vaisala frequency squared in 1/s^2."));
  m.push_back(real_key(
      "model.g_ms2", [](Config& c) -> double& { return c.model.sqg.g_ms2; },
      "Gravity in m/s^2 (only converts q to kelvin)."));
  m.push_back(real_key(
      "model.theta0_K", [](Config& c) -> double& { return c.model.sqg.theta0_K; },
      "Reference potential temperature in K (only converts q to kelvin)."));
  m.push_back(real_key(
      "model.tdiab_s", [](Config& c) -> double& { return c.model.sqg.tdiab_s; },
      "Thermal relaxation time toward the jet in s (eq. 2); inf = none."));
  m.push_back(real_key(
      "model.ekman_r_ms", [](Config& c) -> double& { return c.model.sqg.ekman_r_ms; },
      "Ekman damping rate in m/s (eq. 4); 0 = off (paper setting)."));
  m.push_back(int_key(
      "model.diff_order", [](Config& c) -> int& { return c.model.sqg.diff_order; },
      "Hyperdiffusion order (eq. 5)."));
  m.push_back(real_key(
      "model.diff_efold_s", [](Config& c) -> double& { return c.model.sqg.diff_efold_s; },
      "Hyperdiffusion e-folding time at K_c = pi N / L, in s; inf = none."));
  m.push_back(real_key(
      "model.dt_s", [](Config& c) -> double& { return c.model.sqg.dt_s; },
      "Model time step in s."));
  m.push_back(bool_key(
      "model.symmetric", [](Config& c) -> bool& { return c.model.sqg.symmetric; },
      "Symmetric jet (true) or no flow at the surface (false), eq. 3."));
  m.push_back(bool_key(
      "model.dealias", [](Config& c) -> bool& { return c.model.sqg.dealias; },
      "3/2-rule dealiasing of the Jacobian (eq. 6)."));
  m.push_back(bool_key(
      "model.advection", [](Config& c) -> bool& { return c.model.sqg.advection; },
      "Include the advection J(psi, q); false leaves only the linear terms."));
  m.push_back(choice_key(
      "model.dynamics", [](Config& c) -> sqg::Dynamics& { return c.model.sqg.dynamics; },
      sqg::kDynamicsNames,
      "\"sqgturb\": the community benchmark's conventions (Jacobian 2.25x, float32 "
      "derivative factors), comparable with published numbers. \"exact\": physically "
      "normalised advection, double-precision wavenumbers."));
  m.push_back(choice_key(
      "model.precision", [](Config& c) -> Precision& { return c.model.precision; }, kPrecisionNames,
      "Arithmetic of the forecast model. Files are always float64."));
  m.push_back(choice_key(
      "model.fft_planning", [](Config& c) -> sqg::FftPlanning& { return c.model.fft_planning; },
      sqg::kFftPlanningNames,
      "FFTW planning. \"measure\" times candidate algorithms (about 1.7x faster steps at "
      "N = 64); which ones win can differ between processes and changes round-off, so the "
      "choice is recorded in model.fft_wisdom_file and reused. \"estimate\" picks the same "
      "algorithms everywhere without a record."));
  {
    Key k{"model.fft_wisdom_file", "string",
          "FFTW wisdom file: imported before planning if it exists, written after, so runs "
          "that share it use identical algorithms and give bit-identical results. \"auto\" "
          "= $XDG_CACHE_HOME/rtda (or ~/.cache/rtda)/fftw-wisdom-HOST.txt; \"\" = none.",
          nullptr, nullptr};
    k.set = [](Config& c, const toml::node& n, const std::string& where) {
      if (!n.is_string()) fail(where, "model.fft_wisdom_file", n, "a path string");
      c.model.fft_wisdom_file = n.as_string()->get();
    };
    k.show = [](const Config& c) { return toml_quoted(c.model.fft_wisdom_file); };
    m.push_back(k);
  }
  m.push_back(int_key(
      "model.threads", [](Config& c) -> int& { return c.model.threads; },
      "Threads per rank, stepping ensemble members and in the filters; 0 = OMP_NUM_THREADS "
      "when set, else max(1, cores / ranks on this node) (rank 0 logs the choice). Thread "
      "counts never change a result."));
  m.push_back(choice_key(
      "model.kind", [](Config& c) -> ModelKind& { return c.model.kind; }, kModelKindNames,
      "Forecast model of the cycle: the SQG physics, the ViT surrogate of "
      "surrogate.weights (one step per cycle of experiment.cycle_hours), or the Lorenz-96 "
      "toy model on a ring (model.l96_*; one model time unit = 5 days, so dt = 0.05 is 6 "
      "hours)."));
  m.push_back(int_key(
      "model.l96_n", [](Config& c) -> int& { return c.model.l96.n; },
      "Lorenz-96: variables on the ring (>= 4), 1 km apart."));
  m.push_back(real_key(
      "model.l96_forcing", [](Config& c) -> double& { return c.model.l96.forcing; },
      "Lorenz-96: the forcing F."));
  m.push_back(real_key(
      "model.l96_dt", [](Config& c) -> double& { return c.model.l96.dt; },
      "Lorenz-96: the RK4 step in model time units (one unit = 5 days)."));
  m.push_back(string_key(
      "model.epoch", [](Config& c) -> std::string& { return c.model.epoch; },
      "The instant model time 0 stands for (ISO 8601, UTC or with an offset): files give "
      "times as \"seconds since\" it (CF), and times of files made by other tools are "
      "converted to it.",
      [](const std::string& v) {
        return core::parse_instant(v) ? std::string()
                                      : std::string("an instant YYYY-MM-DDThh:mm:ssZ");
      }));
  // [nature]
  m.push_back(int_key(
      "nature.seed", [](Config& c) -> std::uint64_t& { return c.nature.seed; },
      "Seed of the initial noise."));
  m.push_back(real_key(
      "nature.noise_sd_ms", [](Config& c) -> double& { return c.nature.noise_sd_ms; },
      "Standard deviation of the initial noise on both levels, m/s."));
  m.push_back(real_key(
      "nature.bump_amplitude_ms", [](Config& c) -> double& { return c.nature.bump_amplitude_ms; },
      "Amplitude of the isolated lid bump, m/s."));
  m.push_back(real_key(
      "nature.spinup_days", [](Config& c) -> double& { return c.nature.spinup_days; },
      "Integration before the first kept state, days."));
  m.push_back(int_key(
      "nature.states", [](Config& c) -> int& { return c.nature.states; },
      "Number of states kept (the first at the end of the spin-up)."));
  m.push_back(real_key(
      "nature.interval_hours", [](Config& c) -> double& { return c.nature.interval_hours; },
      "Time between kept states, hours (a multiple of model.dt_s)."));
  // [observe]
  m.push_back(int_key(
      "observe.seed", [](Config& c) -> std::uint64_t& { return c.observe.seed; },
      "Seed of observation errors, shock schedule and fields, networks."));
  {
    Key k{"observe.error_sd", "float",
          "Observation error standard deviation; unset = the experiment's (1 K for "
          "linear_K, 0.01 for arctan).",
          nullptr, nullptr};
    k.set = [](Config& c, const toml::node& n, const std::string& where) {
      auto v = n.value<double>();
      if (!v || !(*v > 0) || !std::isfinite(*v)) fail(where, "observe.error_sd", n, "a number > 0");
      c.observe.error_sd = *v;
    };
    k.show = [](const Config& c) {
      return c.observe.error_sd ? fmt_double(*c.observe.error_sd) : std::string("(experiment)");
    };
    m.push_back(k);
  }
  m.push_back(int_key(
      "observe.cycles", [](Config& c) -> int& { return c.observe.cycles; },
      "Cycles to observe; 0 = one per nature state."));
  // [ensemble]
  m.push_back(choice_key(
      "ensemble.initial", [](Config& c) -> InitialEnsemble& { return c.ensemble.initial; },
      kInitialEnsembleNames,
      "Initial ensemble: one climatological state plus noise per member (docs/science.md §2), or "
      "distinct nature states (climatology_index, then every climatology_stride-th state "
      "before it) plus noise."));
  m.push_back(int_key(
      "ensemble.climatology_stride",
      [](Config& c) -> int& { return c.ensemble.climatology_stride; },
      "Nature states between the members of a \"climatology\" initial ensemble."));
  m.push_back(int_key(
      "ensemble.members", [](Config& c) -> int& { return c.ensemble.members; },
      "Ensemble size k (at least 2, and at least the number of MPI ranks)."));
  m.push_back(real_key(
      "ensemble.initial_noise_sd_ms",
      [](Config& c) -> double& { return c.ensemble.initial_noise_sd_ms; },
      "Initial ensemble: climatological state + N(0, sd^2) noise per member, m/s."));
  m.push_back(int_key(
      "ensemble.climatology_index", [](Config& c) -> int& { return c.ensemble.climatology_index; },
      "Nature state used as the climatological state of the initial ensemble; -1 = the last "
      "(far from the truth of the first cycles)."));
  // [experiment]
  m.push_back(choice_key(
      "experiment.observations",
      [](Config& c) -> std::string& { return c.experiment.observations; },
      spellings(obs::kExperimentNames), "Observation experiment of docs/science.md §2."));
  m.push_back(int_key(
      "experiment.cycles", [](Config& c) -> int& { return c.experiment.cycles; },
      "Number of analysis cycles."));
  m.push_back(int_key(
      "experiment.seed", [](Config& c) -> std::uint64_t& { return c.experiment.seed; },
      "Seed of the observations, the initial ensemble and the filters' noise."));
  {
    Key k{"experiment.nature_file", "string",
          "Nature run to use; \"\" = run one (nature.* keys) and keep it next to the output.",
          nullptr, nullptr};
    k.set = [](Config& c, const toml::node& n, const std::string& where) {
      if (!n.is_string()) fail(where, "experiment.nature_file", n, "a path string");
      c.experiment.nature_file = n.as_string()->get();
    };
    k.show = [](const Config& c) { return toml_quoted(c.experiment.nature_file); };
    m.push_back(k);
  }
  m.push_back(string_key(
      "experiment.observations_file",
      [](Config& c) -> std::string& { return c.experiment.observations_file; },
      "Observations to assimilate instead of making them (experiment.observations): a file "
      "with the observation columns (docs/file-formats.md); cycle c takes those in (t_c - "
      "cycle/2, t_c + cycle/2] around the nature state's time t_c. \"\" = make them."));
  m.push_back(int_key(
      "experiment.statistics_from_cycle",
      [](Config& c) -> int& { return c.experiment.statistics_from_cycle; },
      "Summary statistics average cycles [this, cycles) (docs/science.md: 100-299)."));
  m.push_back(real_key(
      "experiment.cycle_hours", [](Config& c) -> double& { return c.experiment.cycle_hours; },
      "Forecast length between analyses, hours (a multiple of model.dt_s)."));
  m.push_back(bool_key(
      "experiment.store_members", [](Config& c) -> bool& { return c.experiment.store_members; },
      "Also archive every analysis member (cycle, member, level, y, x)."));
}

}  // namespace rtda::config::detail
