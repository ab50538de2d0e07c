#include "config/config.hpp"

#include "filters/ensemble_filter.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>

namespace rtda::config {

std::string_view to_string(Precision p) {
  return kPrecisionNames.name(p);
}

namespace {

// One configuration key: how to read it from a TOML node into the struct, how to print its
// current value, and what it means. The registry below is the single list of keys.
struct Key {
  std::string name;
  std::string type;
  std::string doc;
  std::function<void(Config&, const toml::node&, const std::string& where)> set;
  std::function<std::string(const Config&)> show;
};

std::string node_repr(const toml::node& n) {
  std::ostringstream s;
  if (auto t = n.as_string()) {
    s << '"' << t->get() << '"';
  } else {
    n.visit([&](auto&& v) { s << v; });
  }
  return s.str();
}

[[noreturn]] void fail(const std::string& where, const std::string& key, const toml::node& n,
                       const std::string& expected) {
  throw ConfigError(where + key + " = " + node_repr(n) + ": expected " + expected);
}

// Shortest text that reads back as the same double (9.8, not 9.8000000000000007).
std::string fmt_double(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string r(buf, res.ptr);
  if (r.find_first_of(".eEn") == std::string::npos) r += ".0";
  return r;
}

template <typename Field>
Key real_key(std::string name, Field field, std::string doc) {
  Key k{name, "float", std::move(doc), nullptr, nullptr};
  k.set = [name, field](Config& c, const toml::node& n, const std::string& where) {
    std::optional<double> v = n.value<double>();  // integers convert too
    if (!v || std::isnan(*v)) fail(where, name, n, "a number");
    field(c) = *v;
  };
  k.show = [field](const Config& c) { return fmt_double(field(const_cast<Config&>(c))); };
  return k;
}

template <typename Field>
Key int_key(std::string name, Field field, std::string doc) {
  Key k{name, "integer", std::move(doc), nullptr, nullptr};
  k.set = [name, field](Config& c, const toml::node& n, const std::string& where) {
    if (!n.is_integer()) fail(where, name, n, "an integer");
    using T = std::remove_reference_t<decltype(field(c))>;
    const auto v = n.as_integer()->get();
    const bool in_range = std::is_signed_v<T>
                              ? (v >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                                 v <= static_cast<std::int64_t>(std::numeric_limits<T>::max()))
                              : v >= 0;  // every non-negative int64 fits a uint64
    if (!in_range) {
      fail(where, name, n, std::is_signed_v<T> ? "an integer in range" : "a non-negative integer");
    }
    field(c) = static_cast<T>(v);
  };
  k.show = [field](const Config& c) { return std::to_string(field(const_cast<Config&>(c))); };
  return k;
}

template <typename Field>
Key bool_key(std::string name, Field field, std::string doc) {
  Key k{name, "boolean", std::move(doc), nullptr, nullptr};
  k.set = [name, field](Config& c, const toml::node& n, const std::string& where) {
    if (!n.is_boolean()) fail(where, name, n, "true or false");
    field(c) = n.as_boolean()->get();
  };
  k.show = [field](const Config& c) { return field(const_cast<Config&>(c)) ? "true" : "false"; };
  return k;
}

// A string key with a fixed set of spellings mapped to enum values.
template <typename Field, typename Enum>
Key choice_key(std::string name, Field field, std::vector<std::pair<std::string, Enum>> choices,
               std::string doc);
// The same with the enum's name table (core/names.hpp).
template <typename Field, typename Enum, std::size_t Count>
Key choice_key(std::string name, Field field, const core::NameTable<Enum, Count>& table,
               std::string doc) {
  std::vector<std::pair<std::string, Enum>> choices;
  for (const auto& [value, text] : table.entries)
    choices.emplace_back(std::string(text), value);
  return choice_key(std::move(name), field, std::move(choices), std::move(doc));
}
// The spellings of a table as the values of a string key.
template <typename Enum, std::size_t Count>
std::vector<std::pair<std::string, std::string>> spellings(const core::NameTable<Enum, Count>& t) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& name : t.names())
    out.emplace_back(name, name);
  return out;
}
template <typename Field, typename Enum>
Key choice_key(std::string name, Field field, std::vector<std::pair<std::string, Enum>> choices,
               std::string doc) {
  std::string spellings;
  for (auto& [s, e] : choices)
    spellings += (spellings.empty() ? "\"" : " | \"") + s + "\"";
  Key k{name, "string: " + spellings, std::move(doc), nullptr, nullptr};
  k.set = [name, field, choices, spellings](Config& c, const toml::node& n,
                                            const std::string& where) {
    if (auto s = n.as_string()) {
      for (auto& [text, e] : choices) {
        if (s->get() == text) {
          field(c) = e;
          return;
        }
      }
    }
    fail(where, name, n, "one of " + spellings);
  };
  k.show = [field, choices](const Config& c) {
    for (auto& [text, e] : choices) {
      if (field(const_cast<Config&>(c)) == e) return "\"" + text + "\"";
    }
    return std::string("?");
  };
  return k;
}

// A TOML basic string: quotes, backslashes and control characters escaped, so the text reads
// back as the same value (the worker group receives the server's configuration this way).
std::string toml_quoted(const std::string& v) {
  std::string out = "\"";
  for (const char ch : v) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

Key string_key(std::string name, std::function<std::string&(Config&)> field, std::string doc,
               std::function<std::string(const std::string&)> check = nullptr) {
  Key k{name, "string", std::move(doc), nullptr, nullptr};
  k.set = [name, field, check](Config& c, const toml::node& n, const std::string& where) {
    if (!n.is_string()) fail(where, name, n, "a string");
    const std::string v = n.as_string()->get();
    if (check) {
      const std::string expected = check(v);
      if (!expected.empty()) fail(where, name, n, expected);
    }
    field(c) = v;
  };
  k.show = [field](const Config& c) { return toml_quoted(field(const_cast<Config&>(c))); };
  return k;
}

// A ZeroMQ endpoint rtda binds or connects: tcp:// or ipc:// (and inproc:// for tests).
std::string check_endpoint(const std::string& v) {
  for (const char* scheme : {"tcp://", "ipc://", "inproc://"}) {
    if (v.rfind(scheme, 0) == 0 && v.size() > std::string(scheme).size()) return {};
  }
  return "a ZeroMQ endpoint tcp://HOST:PORT or ipc://PATH";
}

std::string check_optional_endpoint(const std::string& v) {
  return v.empty() ? std::string() : check_endpoint(v);
}

const std::vector<Key>& registry() {
  static const std::vector<Key> keys = [] {
    std::vector<Key> r;
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
        "model.H_m", [](Config& c) -> double& { return c.model.sqg.H_m; },
        "Lid height in metres."));
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
        "model.precision", [](Config& c) -> Precision& { return c.model.precision; },
        kPrecisionNames, "Arithmetic of the forecast model. Files are always float64."));
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
        "model.kind", [](Config& c) -> std::string& { return c.model.kind; },
        std::vector<std::pair<std::string, std::string>>{{"sqg", "sqg"}, {"vit", "vit"}},
        "Forecast model of the cycle: the SQG physics, or the ViT surrogate of "
        "surrogate.weights (one step per cycle of experiment.cycle_hours)."));
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
        if (!v || !(*v > 0) || !std::isfinite(*v))
          fail(where, "observe.error_sd", n, "a number > 0");
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
        "ensemble.initial", [](Config& c) -> std::string& { return c.ensemble.initial; },
        std::vector<std::pair<std::string, std::string>>{{"perturbed-state", "perturbed-state"},
                                                         {"climatology", "climatology"}},
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
        "ensemble.climatology_index",
        [](Config& c) -> int& { return c.ensemble.climatology_index; },
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
    // [letkf]
    m.push_back(real_key(
        "letkf.localization_radius_km",
        [](Config& c) -> double& { return c.letkf.localization_radius_km; },
        "Gaspari-Cohn cut-off L_h (eq. 7): the taper reaches 0 at this distance, km."));
    m.push_back(real_key(
        "letkf.rtps", [](Config& c) -> double& { return c.letkf.rtps; },
        "Relaxation to prior spread alpha (eq. 10); 0 = off."));
    m.push_back(real_key(
        "letkf.vertical_distance_km",
        [](Config& c) -> double& { return c.letkf.vertical_distance_km; },
        "L_r: other-level observations are weighted by rho(L_r) (eq. 7), km."));
    m.push_back(real_key(
        "letkf.weight_cutoff", [](Config& c) -> double& { return c.letkf.weight_cutoff; },
        "Observations with localization weight <= this are dropped."));
    m.push_back(bool_key(
        "letkf.localize", [](Config& c) -> bool& { return c.letkf.localize; },
        "false: one global domain, every observation weight 1."));
    // [ensf]
    m.push_back(choice_key(
        "ensf.mode", [](Config& c) -> filters::EnsfMode& { return c.ensf.mode; },
        std::vector<std::pair<std::string, filters::EnsfMode>>{
            {"paper", filters::EnsfMode::kPaper}, {"standard", filters::EnsfMode::kStandard}},
        "\"paper\": what [MWR]/[SC] ran (paired score, normalization, stopping rule); "
        "\"standard\": the textbook filter (Monte-Carlo score, to t = 0). Sets that mode's "
        "defaults for every other ensf key before they are read."));
    m.push_back(int_key(
        "ensf.steps", [](Config& c) -> int& { return c.ensf.steps; },
        "Nominal pseudo-time steps, dt = 1/steps (paper 1000, standard 500)."));
    m.push_back(int_key(
        "ensf.max_steps", [](Config& c) -> int& { return c.ensf.max_steps; },
        "Cap on steps taken; 0 = all (to t = 0). Paper 502, standard 0."));
    m.push_back(real_key(
        "ensf.eps_alpha", [](Config& c) -> double& { return c.ensf.eps_alpha; },
        "epsilon_alpha of eq. 11 (paper 0.05, standard 0.5)."));
    m.push_back(real_key(
        "ensf.eps_beta", [](Config& c) -> double& { return c.ensf.eps_beta; },
        "epsilon_beta of eq. 11 (paper 0, standard 0.025)."));
    m.push_back(bool_key(
        "ensf.damping", [](Config& c) -> bool& { return c.ensf.damping; },
        "Damp the likelihood score by h(t) = 1 - t (eq. 14)."));
    m.push_back(bool_key(
        "ensf.early_stopping", [](Config& c) -> bool& { return c.ensf.early_stopping; },
        "The paper's stopping rule on the moving ensemble mean of z."));
    m.push_back(int_key(
        "ensf.stop_window", [](Config& c) -> int& { return c.ensf.stop_window; },
        "W of the stopping rule, steps (paper 200)."));
    m.push_back(real_key(
        "ensf.stop_tolerance", [](Config& c) -> double& { return c.ensf.stop_tolerance; },
        "Per-step tolerance of the stopping rule (threshold tolerance * W)."));
    m.push_back(real_key(
        "ensf.arctan_sigma_factor", [](Config& c) -> double& { return c.ensf.arctan_sigma_factor; },
        "Paper arctan heuristic: sigma' = factor * s_K * sigma_o (5)."));
    m.push_back(real_key(
        "ensf.arctan_clip_sigmas", [](Config& c) -> double& { return c.ensf.arctan_clip_sigmas; },
        "Paper arctan heuristic: clip y to |y| <= pi/2 - this * sigma_o before "
        "tan(y) (rtda's guard against saturated observations; not in the "
        "papers)."));
    m.push_back(bool_key(
        "ensf.normalize", [](Config& c) -> bool& { return c.ensf.normalize; },
        "Work in per-dimension normalized coordinates (prior mean, std)."));
    m.push_back(choice_key(
        "ensf.spread_target",
        [](Config& c) -> filters::EnsfSpreadTarget& { return c.ensf.spread_target; },
        std::vector<std::pair<std::string, filters::EnsfSpreadTarget>>{
            {"initial", filters::EnsfSpreadTarget::kInitial},
            {"prior", filters::EnsfSpreadTarget::kPrior},
            {"none", filters::EnsfSpreadTarget::kNone}},
        "Rescale analysis perturbations per dimension to the first cycle's spread "
        "(\"initial\", what the authors' code does), this cycle's prior spread, or not."));
    m.push_back(real_key(
        "ensf.rtps", [](Config& c) -> double& { return c.ensf.rtps; },
        "Relaxation to prior spread (eq. 10) before the spread target; 0 = off."));
    // [inflation]
    m.push_back(choice_key(
        "inflation.mode", [](Config& c) -> filters::InflationMode& { return c.inflation.mode; },
        std::vector<std::pair<std::string, filters::InflationMode>>{
            {"none", filters::InflationMode::kNone},
            {"fixed", filters::InflationMode::kFixed},
            {"adaptive", filters::InflationMode::kAdaptive}},
        "Multiplicative prior inflation before every filter: none, the fixed inflation.factor, "
        "or estimated each cycle from the innovations (lambda^2 = (d^T d - tr R) / tr HPH^T, "
        "clamped to [1, inflation.max])."));
    m.push_back(real_key(
        "inflation.factor", [](Config& c) -> double& { return c.inflation.factor; },
        "lambda of inflation.mode = \"fixed\" (>= 1)."));
    m.push_back(real_key(
        "inflation.max", [](Config& c) -> double& { return c.inflation.max; },
        "Upper bound of the adaptive lambda (>= 1); 5 with surrogate.online, whose training "
        "costs ensemble spread (docs/surrogate.md)."));
    // [server]
    m.push_back(string_key(
        "server.ingest", [](Config& c) -> std::string& { return c.server.ingest; },
        "Feeders' endpoint (ROUTER): ObservationBatch -> IngestAck.", check_endpoint));
    m.push_back(string_key(
        "server.publish", [](Config& c) -> std::string& { return c.server.publish; },
        "Analyses for consumers (PUB): topics rtda.summary, rtda.analysis, rtda.ensemble.",
        check_endpoint));
    m.push_back(string_key(
        "server.control", [](Config& c) -> std::string& { return c.server.control; },
        "Status and control (ROUTER): ControlRequest -> ControlReply.", check_endpoint));
    m.push_back(string_key(
        "server.workers", [](Config& c) -> std::string& { return c.server.workers; },
        "Worker group link (ROUTER); rank 0 of rtda-worker connects here.", check_endpoint));
    m.push_back(string_key(
        "server.metrics", [](Config& c) -> std::string& { return c.server.metrics; },
        "Prometheus metrics over HTTP (tcp://HOST:PORT, GET /metrics); \"\" = off.",
        check_optional_endpoint));
    m.push_back(string_key(
        "server.data_dir", [](Config& c) -> std::string& { return c.server.data_dir; },
        "Observation log, checkpoints, per-cycle analyses and the archive (shared with the "
        "worker group, which writes the checkpoints)."));
    m.push_back(choice_key(
        "server.filter", [](Config& c) -> std::string& { return c.server.filter; },
        spellings(filters::kFilterNames),
        "Filter of the service's analyses (changeable at run time: rtda set-filter)."));
    m.push_back(choice_key(
        "server.log_sync", [](Config& c) -> std::string& { return c.server.log_sync; },
        std::vector<std::pair<std::string, std::string>>{
            {"always", "always"}, {"interval", "interval"}, {"never", "never"}},
        "Observation log durability before an ack: fdatasync every commit (\"always\"), at "
        "most every log_sync_interval_seconds, or never (the OS decides)."));
    m.push_back(real_key(
        "server.log_sync_interval_seconds",
        [](Config& c) -> double& { return c.server.log_sync_interval_seconds; },
        "Longest time between fdatasyncs with log_sync = \"interval\"."));
    m.push_back(int_key(
        "server.log_segment_mb", [](Config& c) -> int& { return c.server.log_segment_mb; },
        "Observation log segment size, MiB."));
    m.push_back(real_key(
        "server.heartbeat_seconds", [](Config& c) -> double& { return c.server.heartbeat_seconds; },
        "Heartbeat period of the worker link, both directions, s."));
    m.push_back(real_key(
        "server.worker_timeout_seconds",
        [](Config& c) -> double& { return c.server.worker_timeout_seconds; },
        "A worker group silent this long is lost; its cycle is re-dispatched on reconnect, s."));
    m.push_back(int_key(
        "server.checkpoint_every", [](Config& c) -> int& { return c.server.checkpoint_every; },
        "Checkpoint the ensemble after every n-th analysis (1 = each)."));
    m.push_back(int_key(
        "server.checkpoint_keep", [](Config& c) -> int& { return c.server.checkpoint_keep; },
        "Newest checkpoints kept on disk (older ones are deleted)."));
    m.push_back(bool_key(
        "server.publish_members", [](Config& c) -> bool& { return c.server.publish_members; },
        "Also publish every analysis member (topic rtda.ensemble)."));
    m.push_back(real_key(
        "server.cycle_timeout_seconds",
        [](Config& c) -> double& { return c.server.cycle_timeout_seconds; },
        "A dispatched cycle not done this long after dispatch is a failure of the worker group "
        "(it heartbeats but makes no progress): the group is dropped and the failure counts "
        "toward the poison-window pause; 0 = no deadline, s."));
    m.push_back(int_key(
        "server.archive_keep_cycles",
        [](Config& c) -> int& { return c.server.archive_keep_cycles; },
        "Analysis files kept in data_dir/analyses (the newest); 0 = keep every cycle."));
    m.push_back(int_key(
        "server.idempotency_window", [](Config& c) -> int& { return c.server.idempotency_window; },
        "Recent sequence numbers remembered per source (with a content hash, for duplicates "
        "and conflicts); an older seq than these is refused as stale."));
    m.push_back(choice_key(
        "server.behind_policy", [](Config& c) -> std::string& { return c.server.behind_policy; },
        std::vector<std::pair<std::string, std::string>>{{"degrade", "degrade"},
                                                         {"queue", "queue"}},
        "When more than server.max_backlog_cycles closed windows wait: run the older ones "
        "with filter \"none\" (forecast only, flagged degraded) until caught up (\"degrade\"), "
        "or let them queue (\"queue\": every window analysed, latency grows)."));
    m.push_back(int_key(
        "server.max_backlog_cycles", [](Config& c) -> int& { return c.server.max_backlog_cycles; },
        "Closed windows allowed to wait before server.behind_policy applies."));
    m.push_back(bool_key(
        "server.insecure", [](Config& c) -> bool& { return c.server.insecure; },
        "Allow endpoints on non-loopback addresses without CURVE (a deliberately insecure "
        "deployment); false refuses to start."));
    // [window]
    m.push_back(real_key(
        "window.t0_seconds", [](Config& c) -> double& { return c.window.t0_seconds; },
        "Analysis time of cycle 0; cycle k analyses t0 + k * experiment.cycle_hours, model s."));
    m.push_back(choice_key(
        "window.late_policy", [](Config& c) -> std::string& { return c.window.late_policy; },
        std::vector<std::pair<std::string, std::string>>{{"next", "next"}, {"reject", "reject"}},
        "An observation for a window already closed: assimilate it in the oldest open window "
        "(\"next\") or refuse it (\"reject\"). Both are counted."));
    m.push_back(real_key(
        "window.deadline_seconds", [](Config& c) -> double& { return c.window.deadline_seconds; },
        "Close a window this long (wall clock) after its first observation; 0 = never by "
        "deadline, s."));
    m.push_back(real_key(
        "window.grace_seconds", [](Config& c) -> double& { return c.window.grace_seconds; },
        "Close a window once observations of a later window arrived this long ago, s."));
    m.push_back(int_key(
        "window.max_windows_ahead", [](Config& c) -> int& { return c.window.max_windows_ahead; },
        "Refuse observations more than this many windows after the oldest open one."));
    // [limits]
    m.push_back(int_key(
        "limits.max_message_mb", [](Config& c) -> int& { return c.limits.max_message_mb; },
        "Largest message accepted on any endpoint, MiB; 0 = what a batch of "
        "max_batch_observations observations plus a truth field needs. Messages up to twice "
        "this get an error reply; larger ones are dropped by libzmq (ZMQ_MAXMSGSIZE)."));
    m.push_back(int_key(
        "limits.max_batch_observations",
        [](Config& c) -> int& { return c.limits.max_batch_observations; },
        "Most observations in one batch."));
    m.push_back(real_key(
        "limits.source_rate_observations_per_second",
        [](Config& c) -> double& { return c.limits.source_rate_observations_per_second; },
        "Sustained observations per second per feeder source; 0 = unlimited."));
    m.push_back(real_key(
        "limits.source_burst_observations",
        [](Config& c) -> double& { return c.limits.source_burst_observations; },
        "Burst allowance of the per-source rate limit, observations."));
    m.push_back(int_key(
        "limits.max_sources", [](Config& c) -> int& { return c.limits.max_sources; },
        "Feeder sources the server keeps idempotency records for; a batch from a new source "
        "beyond this is refused."));
    m.push_back(real_key(
        "limits.latest_analysis_per_second",
        [](Config& c) -> double& { return c.limits.latest_analysis_per_second; },
        "LATEST_ANALYSIS requests with fields per control peer and second (burst 4)."));
    // [qc]
    m.push_back(real_key(
        "qc.gross_error_sigmas", [](Config& c) -> double& { return c.qc.gross_error_sigmas; },
        "Refuse an observation before the filter when |y - mean h(x_b)| exceeds this many "
        "sqrt(error_sd^2 + spread(h(x_b))^2); 0 = off."));
    m.push_back(real_key(
        "qc.max_abs_kelvin", [](Config& c) -> double& { return c.qc.max_abs_kelvin; },
        "Ingest plausibility: |value| of a linear_K observation (identity: scaled to K) above "
        "this is refused, K."));
    m.push_back(real_key(
        "qc.max_error_sd_kelvin", [](Config& c) -> double& { return c.qc.max_error_sd_kelvin; },
        "Ingest plausibility: error_sd above this (linear_K, identity scaled to K) is refused, "
        "K; arctan observations need error_sd <= 1."));
    // [security]
    m.push_back(bool_key(
        "security.curve", [](Config& c) -> bool& { return c.security.curve; },
        "Require ZeroMQ CURVE encryption and authentication on every endpoint."));
    m.push_back(string_key(
        "security.server_key", [](Config& c) -> std::string& { return c.security.server_key; },
        "The server's secret key file (rtda keys --out NAME writes NAME.key_secret)."));
    m.push_back(string_key(
        "security.feeder_keys", [](Config& c) -> std::string& { return c.security.feeder_keys; },
        "Feeders allowed to ingest: a file of public keys or a directory of .key files; \"\" "
        "= any client that knows the server's public key."));
    m.push_back(string_key(
        "security.control_keys", [](Config& c) -> std::string& { return c.security.control_keys; },
        "Clients allowed on the control endpoint (same forms as feeder_keys)."));
    m.push_back(string_key(
        "security.worker_keys", [](Config& c) -> std::string& { return c.security.worker_keys; },
        "Worker groups allowed to connect (same forms as feeder_keys)."));
    m.push_back(bool_key(
        "security.control_allow_any",
        [](Config& c) -> bool& { return c.security.control_allow_any; },
        "With CURVE and control_keys = \"\": let any holder of the server's public key "
        "control the server (false refuses to start)."));
    m.push_back(bool_key(
        "security.worker_allow_any", [](Config& c) -> bool& { return c.security.worker_allow_any; },
        "With CURVE and worker_keys = \"\": let any holder of the server's public key join "
        "as the worker group (false refuses to start)."));
    // [surrogate]
    m.push_back(int_key(
        "surrogate.patch", [](Config& c) -> int& { return c.surrogate.patch; },
        "ViT patch size p (p x p on both levels, one token); N % p == 0."));
    m.push_back(choice_key(
        "surrogate.embedding", [](Config& c) -> std::string& { return c.surrogate.embedding; },
        std::vector<std::pair<std::string, std::string>>{{"joint", "joint"},
                                                         {"per-level", "per-level"}},
        "ViT patch embedding: one Linear on the 2p^2 values of both levels (joint), or one "
        "Linear per level merged into one token by cross-attention from a learned query "
        "(per-level, docs/science.md §5)."));
    m.push_back(int_key(
        "surrogate.dim", [](Config& c) -> int& { return c.surrogate.dim; },
        "ViT token width (a multiple of 4 and of heads)."));
    m.push_back(int_key(
        "surrogate.depth", [](Config& c) -> int& { return c.surrogate.depth; },
        "ViT transformer blocks."));
    m.push_back(int_key(
        "surrogate.heads", [](Config& c) -> int& { return c.surrogate.heads; },
        "Attention heads per block."));
    m.push_back(int_key(
        "surrogate.mlp_ratio", [](Config& c) -> int& { return c.surrogate.mlp_ratio; },
        "MLP hidden width / token width."));
    m.push_back(bool_key(
        "surrogate.predict_increment",
        [](Config& c) -> bool& { return c.surrogate.predict_increment; },
        "The network predicts the 12-hour increment (output = input + network)."));
    m.push_back(int_key(
        "surrogate.seed", [](Config& c) -> std::uint64_t& { return c.surrogate.seed; },
        "Seed of the initial weights, the batch order and the augmentation."));
    m.push_back(int_key(
        "surrogate.batch", [](Config& c) -> int& { return c.surrogate.batch; },
        "Training batch size (pairs per optimizer step)."));
    m.push_back(real_key(
        "surrogate.lr", [](Config& c) -> double& { return c.surrogate.lr; },
        "Peak learning rate of AdamW (after warm-up, before cosine decay)."));
    m.push_back(real_key(
        "surrogate.weight_decay", [](Config& c) -> double& { return c.surrogate.weight_decay; },
        "AdamW decoupled weight decay (weights only)."));
    m.push_back(real_key(
        "surrogate.clip_norm", [](Config& c) -> double& { return c.surrogate.clip_norm; },
        "Global gradient-norm clipping; 0 = off."));
    m.push_back(int_key(
        "surrogate.warmup_steps", [](Config& c) -> int& { return c.surrogate.warmup_steps; },
        "Linear learning-rate warm-up, steps."));
    m.push_back(int_key(
        "surrogate.steps", [](Config& c) -> int& { return c.surrogate.steps; },
        "Training steps of the schedule (cosine decay ends here)."));
    m.push_back(real_key(
        "surrogate.max_minutes", [](Config& c) -> double& { return c.surrogate.max_minutes; },
        "Training wall-clock budget, minutes (the best checkpoint is kept)."));
    m.push_back(int_key(
        "surrogate.eval_every", [](Config& c) -> int& { return c.surrogate.eval_every; },
        "Steps between validations (12-hour RMSE in K) and checkpoints."));
    m.push_back(int_key(
        "surrogate.patience", [](Config& c) -> int& { return c.surrogate.patience; },
        "Validations without improvement before early stopping."));
    m.push_back(bool_key(
        "surrogate.augment", [](Config& c) -> bool& { return c.surrogate.augment; },
        "Augment with the flow's symmetries (x shifts; flip with half-domain y shift)."));
    m.push_back(int_key(
        "surrogate.threads", [](Config& c) -> int& { return c.surrogate.threads; },
        "Threads of the surrogate's matrix products; 0 = OpenMP default."));
    m.push_back(string_key(
        "surrogate.weights", [](Config& c) -> std::string& { return c.surrogate.weights; },
        "Trained surrogate checkpoint (rtda train --out) used when the model is the ViT."));
    m.push_back(bool_key(
        "surrogate.online", [](Config& c) -> bool& { return c.surrogate.online.enabled; },
        "Adapt the surrogate while cycling: after each analysis, a few AdamW steps on "
        "(previous analysis mean -> analysis mean) pairs from a replay buffer, kept only while "
        "the adapted weights' innovations are no worse than the last accepted weights'."));
    m.push_back(real_key(
        "surrogate.online_lr", [](Config& c) -> double& { return c.surrogate.online.lr; },
        "Peak learning rate of the online steps (constant after the warm-up; halved by each "
        "rollback)."));
    m.push_back(int_key(
        "surrogate.online_steps", [](Config& c) -> int& { return c.surrogate.online.steps; },
        "Optimiser steps after each analysis."));
    m.push_back(int_key(
        "surrogate.online_batch", [](Config& c) -> int& { return c.surrogate.online.batch; },
        "Pairs per online step, drawn from the replay buffer (split over the worker ranks)."));
    m.push_back(int_key(
        "surrogate.online_buffer", [](Config& c) -> int& { return c.surrogate.online.buffer; },
        "Replay buffer capacity in pairs (the newest are kept)."));
    m.push_back(int_key(
        "surrogate.online_warmup_steps",
        [](Config& c) -> int& { return c.surrogate.online.warmup_steps; },
        "Linear warm-up of the online learning rate, in optimiser steps."));
    m.push_back(int_key(
        "surrogate.online_window", [](Config& c) -> int& { return c.surrogate.online.window; },
        "Cycles of out-of-sample innovation statistics behind each accept/rollback decision."));
    m.push_back(real_key(
        "surrogate.online_tolerance",
        [](Config& c) -> double& { return c.surrogate.online.tolerance; },
        "Roll back when the adapted weights' mean squared normalised innovation exceeds the "
        "accepted weights' by more than this fraction over a window."));
    m.push_back(real_key(
        "surrogate.online_min_lr_scale",
        [](Config& c) -> double& { return c.surrogate.online.min_lr_scale; },
        "Learning-rate guard: each rollback halves the online learning rate; below this "
        "fraction of surrogate.online_lr adaptation stops."));
    return r;
  }();
  return keys;
}

const Key* find_key(const std::string& name) {
  for (const auto& k : registry()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// Flattens a TOML table into "section.key" -> node, rejecting anything not in the registry.
void collect(const toml::table& t, const std::string& prefix,
             std::vector<std::pair<std::string, const toml::node*>>& out,
             const std::string& where) {
  for (auto&& [k, v] : t) {
    const std::string name =
        prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      collect(*sub, name, out, where);
      continue;
    }
    if (!find_key(name)) {
      std::string known;
      const std::string section = name.substr(0, name.find('.'));
      for (const auto& key : registry()) {
        if (key.name.rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + key.name;
      }
      throw ConfigError(where + "unknown key '" + name + "'" +
                        (known.empty() ? std::string(" (no such section)")
                                       : " (keys in [" + section + "]: " + known + ")"));
    }
    out.emplace_back(name, &v);
  }
}

void apply_preset(Config& c, const std::string& where) {
  const std::string& p = c.model.preset;
  int n = 0;
  if (p.size() > 1 && p[0] == 'N') n = std::atoi(p.c_str() + 1);
  try {
    const sqg::SqgParams ref = sqg::reference_preset(n);
    c.model.sqg.N = ref.N;
    c.model.sqg.dt_s = ref.dt_s;
    c.model.sqg.diff_efold_s = ref.diff_efold_s;
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where + "model.preset = \"" + p + "\": " + e.what());
  }
}

}  // namespace

namespace {
// The text of a configuration received from elsewhere (the server sends its own to the
// worker group); load_text parses it in place of a file named `name`.
thread_local const std::string* text_source = nullptr;
}  // namespace

Config load_text(const std::string& toml_text, const std::string& name,
                 const std::vector<std::string>& overrides) {
  text_source = &toml_text;
  try {
    Config c = load(name, overrides);
    text_source = nullptr;
    return c;
  } catch (...) {
    text_source = nullptr;
    throw;
  }
}

Config load(const std::optional<std::string>& toml_path, const std::vector<std::string>& overrides,
            const Config* base) {
  Config c = base ? *base : Config{};
  // Parse everything first so the preset can be applied before the other keys.
  std::vector<std::pair<std::string, const toml::node*>> entries;
  std::vector<std::string> entry_where;
  toml::table file_table;
  if (toml_path) {
    try {
      file_table =
          text_source ? toml::parse(*text_source, *toml_path) : toml::parse_file(*toml_path);
    } catch (const toml::parse_error& e) {
      std::ostringstream m;
      m << *toml_path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
      throw ConfigError(m.str());
    }
    std::vector<std::pair<std::string, const toml::node*>> found;
    collect(file_table, "", found, *toml_path + ": ");
    for (auto& f : found) {
      entries.push_back(f);
      entry_where.push_back(*toml_path + ": ");
    }
  }
  // Each override is parsed as a TOML value; a bare word that is not valid TOML is a string
  // (so --set model.dynamics=exact needs no quotes).
  std::vector<toml::table> override_tables;
  override_tables.reserve(overrides.size());
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError("--set " + o + ": expected section.key=value");
    }
    const std::string key = o.substr(0, eq);
    const std::string value = o.substr(eq + 1);
    if (!find_key(key)) {
      throw ConfigError("--set " + o + ": unknown key '" + key +
                        "' (see `rtda config --markdown`)");
    }
    toml::table t;
    try {
      t = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      t.insert("v", value);
    }
    override_tables.push_back(std::move(t));
    entries.emplace_back(key, override_tables.back().get("v"));
    entry_where.push_back("--set ");
  }

  // Preset: explicit model.preset wins; else model.N selects its reference configuration.
  bool preset_given = false;
  bool n_given = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == "model.preset") {
      find_key("model.preset")->set(c, *entries[i].second, entry_where[i]);
      preset_given = true;
    }
  }
  if (!preset_given) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].first != "model.N") continue;
      n_given = true;
      if (auto v = entries[i].second->value<std::int64_t>()) {
        const auto res = sqg::reference_preset_resolutions();
        if (std::find(res.begin(), res.end(), *v) != res.end()) {
          c.model.preset = "N" + std::to_string(*v);
        }
      }
    }
  }
  if (!base || preset_given || n_given) apply_preset(c, "");
  // ensf.mode picks that mode's defaults for the other ensf keys, like model.preset.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first != "ensf.mode") continue;
    find_key("ensf.mode")->set(c, *entries[i].second, entry_where[i]);
    c.ensf = c.ensf.mode == filters::EnsfMode::kStandard ? filters::EnsfSettings::standard()
                                                         : filters::EnsfSettings::paper();
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == "model.preset") continue;
    find_key(entries[i].first)->set(c, *entries[i].second, entry_where[i]);
  }
  try {
    c.model.sqg.validate();
    c.nature.validate(c.model.sqg);
    c.letkf.validate();
    c.ensf.validate();
    c.inflation.validate();
  } catch (const std::invalid_argument& e) {
    throw ConfigError((toml_path ? *toml_path + ": " : std::string()) + e.what());
  }
  if (c.model.threads < 0)
    throw ConfigError("model.threads = " + std::to_string(c.model.threads) + ": expected >= 0");
  if (c.ensemble.members < 2) {
    throw ConfigError("ensemble.members = " + std::to_string(c.ensemble.members) +
                      ": expected at least 2");
  }
  if (!(c.ensemble.initial_noise_sd_ms >= 0)) {
    throw ConfigError("ensemble.initial_noise_sd_ms = " +
                      std::to_string(c.ensemble.initial_noise_sd_ms) + ": expected >= 0");
  }
  if (c.experiment.cycles < 1) {
    throw ConfigError("experiment.cycles = " + std::to_string(c.experiment.cycles) +
                      ": expected at least 1");
  }
  {
    const double steps = c.experiment.cycle_hours * 3600.0 / c.model.sqg.dt_s;
    if (!(c.experiment.cycle_hours > 0) || std::abs(steps - std::round(steps)) > 1e-9) {
      throw ConfigError(
          "experiment.cycle_hours = " + fmt_double(c.experiment.cycle_hours) +
          ": expected a positive multiple of model.dt_s = " + fmt_double(c.model.sqg.dt_s) + " s");
    }
  }
  if (c.observe.cycles < 0)
    throw ConfigError("observe.cycles = " + std::to_string(c.observe.cycles) + ": expected >= 0");
  const auto require = [](bool ok, const std::string& key, const std::string& value,
                          const std::string& expected) {
    if (!ok) throw ConfigError(key + " = " + value + ": expected " + expected);
  };
  require(c.server.heartbeat_seconds > 0, "server.heartbeat_seconds",
          fmt_double(c.server.heartbeat_seconds), "> 0");
  require(c.server.worker_timeout_seconds > c.server.heartbeat_seconds,
          "server.worker_timeout_seconds", fmt_double(c.server.worker_timeout_seconds),
          "more than server.heartbeat_seconds = " + fmt_double(c.server.heartbeat_seconds));
  require(c.server.log_sync_interval_seconds > 0, "server.log_sync_interval_seconds",
          fmt_double(c.server.log_sync_interval_seconds), "> 0");
  require(c.server.log_segment_mb >= 1, "server.log_segment_mb",
          std::to_string(c.server.log_segment_mb), ">= 1");
  require(c.server.checkpoint_every >= 1, "server.checkpoint_every",
          std::to_string(c.server.checkpoint_every), ">= 1");
  require(c.server.checkpoint_keep >= 1, "server.checkpoint_keep",
          std::to_string(c.server.checkpoint_keep), ">= 1");
  require(!c.server.data_dir.empty(), "server.data_dir", "\"\"", "a directory");
  require(c.window.deadline_seconds >= 0, "window.deadline_seconds",
          fmt_double(c.window.deadline_seconds), ">= 0");
  require(c.window.grace_seconds >= 0, "window.grace_seconds", fmt_double(c.window.grace_seconds),
          ">= 0");
  require(c.window.max_windows_ahead >= 1, "window.max_windows_ahead",
          std::to_string(c.window.max_windows_ahead), ">= 1");
  require(std::isfinite(c.window.t0_seconds), "window.t0_seconds", fmt_double(c.window.t0_seconds),
          "a finite time");
  require(c.limits.max_message_mb >= 0, "limits.max_message_mb",
          std::to_string(c.limits.max_message_mb), ">= 0 (0 = derived)");
  require(c.limits.max_sources >= 1, "limits.max_sources", std::to_string(c.limits.max_sources),
          ">= 1");
  require(c.limits.latest_analysis_per_second > 0, "limits.latest_analysis_per_second",
          fmt_double(c.limits.latest_analysis_per_second), "> 0");
  require(c.server.cycle_timeout_seconds >= 0, "server.cycle_timeout_seconds",
          fmt_double(c.server.cycle_timeout_seconds), ">= 0 (0 = no deadline)");
  require(c.server.archive_keep_cycles >= 0, "server.archive_keep_cycles",
          std::to_string(c.server.archive_keep_cycles), ">= 0 (0 = keep all)");
  require(c.server.idempotency_window >= 16, "server.idempotency_window",
          std::to_string(c.server.idempotency_window), ">= 16");
  require(c.server.max_backlog_cycles >= 1, "server.max_backlog_cycles",
          std::to_string(c.server.max_backlog_cycles), ">= 1");
  require(c.qc.gross_error_sigmas >= 0 && std::isfinite(c.qc.gross_error_sigmas),
          "qc.gross_error_sigmas", fmt_double(c.qc.gross_error_sigmas), ">= 0 (0 = off)");
  require(c.qc.max_abs_kelvin > 0 && std::isfinite(c.qc.max_abs_kelvin), "qc.max_abs_kelvin",
          fmt_double(c.qc.max_abs_kelvin), "> 0");
  require(c.qc.max_error_sd_kelvin > 0 && std::isfinite(c.qc.max_error_sd_kelvin),
          "qc.max_error_sd_kelvin", fmt_double(c.qc.max_error_sd_kelvin), "> 0");
  require(c.limits.max_batch_observations >= 1, "limits.max_batch_observations",
          std::to_string(c.limits.max_batch_observations), ">= 1");
  require(c.limits.source_rate_observations_per_second >= 0,
          "limits.source_rate_observations_per_second",
          fmt_double(c.limits.source_rate_observations_per_second), ">= 0 (0 = unlimited)");
  require(c.limits.source_burst_observations >= 1, "limits.source_burst_observations",
          fmt_double(c.limits.source_burst_observations), ">= 1");
  require(c.model.kind != "vit" || !c.surrogate.weights.empty(), "surrogate.weights", "\"\"",
          "a trained checkpoint (rtda train --out) when model.kind = \"vit\"");
  require(c.surrogate.batch >= 1, "surrogate.batch", std::to_string(c.surrogate.batch), ">= 1");
  require(c.surrogate.steps >= 1, "surrogate.steps", std::to_string(c.surrogate.steps), ">= 1");
  require(c.surrogate.eval_every >= 1, "surrogate.eval_every",
          std::to_string(c.surrogate.eval_every), ">= 1");
  require(c.surrogate.lr > 0, "surrogate.lr", fmt_double(c.surrogate.lr), "> 0");
  require(c.surrogate.max_minutes > 0, "surrogate.max_minutes", fmt_double(c.surrogate.max_minutes),
          "> 0");
  const auto& on = c.surrogate.online;
  require(on.lr > 0 && std::isfinite(on.lr), "surrogate.online_lr", fmt_double(on.lr), "> 0");
  require(on.steps >= 0, "surrogate.online_steps", std::to_string(on.steps), ">= 0");
  require(on.batch >= 1, "surrogate.online_batch", std::to_string(on.batch), ">= 1");
  require(on.buffer >= 1, "surrogate.online_buffer", std::to_string(on.buffer), ">= 1");
  require(on.warmup_steps >= 0, "surrogate.online_warmup_steps", std::to_string(on.warmup_steps),
          ">= 0");
  require(on.window >= 1, "surrogate.online_window", std::to_string(on.window), ">= 1");
  require(on.tolerance >= 0 && std::isfinite(on.tolerance), "surrogate.online_tolerance",
          fmt_double(on.tolerance), ">= 0");
  require(on.min_lr_scale > 0 && on.min_lr_scale <= 1, "surrogate.online_min_lr_scale",
          fmt_double(on.min_lr_scale), "in (0, 1]");
  require(!on.enabled || c.model.kind == "vit", "surrogate.online", "true",
          "model.kind = \"vit\" (only the surrogate adapts)");
  require(!c.security.curve || !c.security.server_key.empty(), "security.server_key", "\"\"",
          "a key file when security.curve = true (make one with `rtda keys --out NAME`)");
  return c;
}

std::size_t max_message_bytes(const Config& c) {
  if (c.limits.max_message_mb > 0) return static_cast<std::size_t>(c.limits.max_message_mb) << 20;
  const std::size_t n = static_cast<std::size_t>(c.model.sqg.N);
  return static_cast<std::size_t>(c.limits.max_batch_observations) * 64 + 2 * n * n * 8 +
         (64u << 10);
}

std::string science_hash(const Config& c) {
  // Keys that cannot change an analysis: where things live, how they are served, threads.
  // [surrogate] holds training settings; the cycle runs the SQG model (model.kind arrives with
  // the surrogate in the cycle, and its weights' identity will then enter the hash).
  static const std::vector<std::string> excluded_sections = {"server", "window", "limits",
                                                             "security", "surrogate"};
  static const std::vector<std::string> excluded_keys = {"model.threads",
                                                         "model.fft_wisdom_file",
                                                         "experiment.nature_file",
                                                         "experiment.store_members",
                                                         "experiment.statistics_from_cycle",
                                                         "experiment.cycles",
                                                         "observe.cycles"};
  std::string text;
  for (const auto& k : registry()) {
    const std::string sec = k.name.substr(0, k.name.find('.'));
    if (std::find(excluded_sections.begin(), excluded_sections.end(), sec) !=
            excluded_sections.end() ||
        std::find(excluded_keys.begin(), excluded_keys.end(), k.name) != excluded_keys.end()) {
      continue;
    }
    text += k.name + "=" + k.show(c) + "\n";
  }
  // The surrogate's weights decide its forecasts: name them (file name) when it is in use.
  // Online adaptation changes them cycle by cycle, so its settings count too.
  if (c.model.kind == "vit") {
    text += "surrogate.weights=" + c.surrogate.weights + "\n";
    for (const auto& k : registry())
      if (k.name.rfind("surrogate.online", 0) == 0) text += k.name + "=" + k.show(c) + "\n";
  }
  // FNV-1a, 64 bit: a fingerprint to compare configurations, not a security measure.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string to_toml(const Config& c) {
  std::ostringstream out;
  std::string section;
  for (const auto& k : registry()) {
    const auto dot = k.name.find('.');
    const std::string sec = k.name.substr(0, dot);
    if (sec != section) {
      out << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
      section = sec;
    }
    const std::string v = k.show(c);
    if (v.front() == '(') {
      out << "# " << k.name.substr(dot + 1) << " unset " << v << "\n";
    } else {
      out << k.name.substr(dot + 1) << " = " << v << "\n";
    }
  }
  return out.str();
}

std::string reference_markdown() {
  const Config defaults;
  std::ostringstream out;
  std::string section;
  for (const auto& k : registry()) {
    const std::string sec = k.name.substr(0, k.name.find('.'));
    if (sec != section) {
      out << "\n## [" << sec << "]\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
      section = sec;
    }
    // A '|' splits a table cell even inside code (GitHub-flavoured Markdown): escape it.
    const auto cell = [](std::string text) {
      for (std::size_t at = text.find('|'); at != std::string::npos; at = text.find('|', at + 2))
        text.insert(at, "\\");
      return text;
    };
    out << "| `" << k.name << "` | " << cell(k.type) << " | `" << cell(k.show(defaults)) << "` | "
        << cell(k.doc) << " |\n";
  }
  return out.str();
}

}  // namespace rtda::config
