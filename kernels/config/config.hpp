// rtda's configuration: one typed struct, defaults in one place, read from TOML and `--set`
// overrides (docs/architecture.md §7). Every key is declared once in the registry (the
// keys_*.cpp files, one per group of sections; config/keys.hpp), which also produces the
// reference documentation (`rtda config --markdown`). Settings only: the configuration links
// no model, filter or file code, so the coordinator can hold it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/log_sync.hpp"
#include "core/names.hpp"
#include "filters/settings.hpp"
#include "io/field_model.hpp"
#include "l96/lorenz96_params.hpp"
#include "obs/experiment_settings.hpp"
#include "sqg/sqg_params.hpp"
#include "surrogate/embedding.hpp"
#include "surrogate/online_settings.hpp"

namespace rtda::config {

enum class Precision { kFloat64, kFloat32 };
inline constexpr core::NameTable<Precision, 2> kPrecisionNames{{{
    {Precision::kFloat64, "float64"},
    {Precision::kFloat32, "float32"},
}}};

// The forecast model of the cycle (model.kind).
enum class ModelKind { kSqg, kVit, kLorenz96 };
inline constexpr core::NameTable<ModelKind, 3> kModelKindNames{{{
    {ModelKind::kSqg, "sqg"},
    {ModelKind::kVit, "vit"},
    {ModelKind::kLorenz96, "lorenz96"},
}}};

// How the initial ensemble is drawn (ensemble.initial).
enum class InitialEnsemble { kPerturbedState, kClimatology };
inline constexpr core::NameTable<InitialEnsemble, 2> kInitialEnsembleNames{{{
    {InitialEnsemble::kPerturbedState, "perturbed-state"},
    {InitialEnsemble::kClimatology, "climatology"},
}}};

// What the coordinator does when closed windows pile up (server.behind_policy).
enum class BehindPolicy { kDegrade, kQueue };
inline constexpr core::NameTable<BehindPolicy, 2> kBehindPolicyNames{{{
    {BehindPolicy::kDegrade, "degrade"},
    {BehindPolicy::kQueue, "queue"},
}}};

// Where an observation for a closed window goes (window.late_policy).
enum class LatePolicy { kNext, kReject };
inline constexpr core::NameTable<LatePolicy, 2> kLatePolicyNames{{{
    {LatePolicy::kNext, "next"},
    {LatePolicy::kReject, "reject"},
}}};

struct ModelConfig {
  // Named reference configuration (docs/science.md §1) applied before the explicit keys: "N32",
  // "N64", "N128", "N256", "N512", "N1024".
  std::string preset = "N64";
  sqg::SqgParams sqg;  // physics and numerics, keys model.<field>
  Precision precision = Precision::kFloat64;
  sqg::FftPlanning fft_planning = sqg::FftPlanning::kMeasure;
  // FFTW wisdom shared by processes that must agree bitwise (see fft_wisdom.hpp): a path,
  // "auto" (a per-machine file in the user's cache directory) or "" (none).
  std::string fft_wisdom_file = "auto";
  int threads =
      0;  // threads per rank; 0 = OMP_NUM_THREADS, else the cores shared among local ranks
  // The forecast model of the cycle: "sqg" (the physics), "vit" (the surrogate in
  // surrogate.weights, one 12-hour step per cycle) or "lorenz96" (the toy model on a ring,
  // keys model.l96_*; docs/science.md §7).
  ModelKind kind = ModelKind::kSqg;
  l96::Lorenz96Params l96;  // keys model.l96_<field>, used when kind = "lorenz96"
  // The instant model time 0 stands for (ISO 8601, UTC); files give times as seconds since it.
  std::string epoch = std::string(core::kDefaultEpoch);

  bool lorenz96() const { return kind == ModelKind::kLorenz96; }
  // The grid the state lives on: the SQG plane (sqg and vit) or the Lorenz-96 ring.
  core::Grid grid() const { return field_model().grid(); }
  // Observation operators' scale (ObsOperator) and the factor from state to the units of
  // the RMSE and spread diagnostics: f theta0 / g (kelvin) on the SQG plane, 1 for
  // Lorenz-96, whose state is already in its observation units.
  double kelvin_per_pv() const { return field_model().kelvin_per_pv(); }
  // Units of those diagnostics: "K", or "1" for Lorenz-96.
  const char* diagnostic_units() const { return lorenz96() ? "1" : "K"; }
  // What files written for this model say about it (io/conventions.hpp).
  io::FieldModel field_model() const {
    io::FieldModel m = lorenz96() ? io::FieldModel(l96) : io::FieldModel(sqg);
    m.epoch = epoch;
    return m;
  }
  // `m` (a file's model) stamped with this run's epoch, for the files written from it.
  io::FieldModel with_epoch(io::FieldModel m) const {
    m.epoch = epoch;
    return m;
  }
  // What readers of other tools' files take from this run (io::RunDefaults).
  io::RunDefaults run_defaults() const { return io::RunDefaults{field_model(), {}}; }
  // Length of one model step, s.
  double step_seconds() const { return lorenz96() ? l96.step_seconds() : sqg.dt_s; }
};

// The ensemble and the twin experiment of docs/science.md §2.
struct EnsembleConfig {
  // "perturbed-state": every member is one climatological state plus noise (docs/science.md §2);
  // "climatology": member m is nature state (climatology_index - m * climatology_stride) plus
  // noise, i.e. a sample of the climate with realistic, flow-shaped differences.
  InitialEnsemble initial = InitialEnsemble::kPerturbedState;
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
  std::string observations_file;    // "" = make the observations of `observations`
  int statistics_from_cycle = 100;  // summary statistics over cycles [this, cycles)
  double cycle_hours = 12.0;        // forecast length between analyses (a multiple of dt)
  bool store_members = false;       // also archive every analysis member
};

// The coordinator (rtda-server) and its worker link: addresses, storage, cycling, reliability.
struct ServerConfig {
  // ZeroMQ endpoints (docs/architecture.md §2): tcp://HOST:PORT or ipc://PATH.
  std::string ingest = "tcp://127.0.0.1:5560";
  std::string publish = "tcp://127.0.0.1:5561";
  std::string control = "tcp://127.0.0.1:5562";
  std::string workers = "tcp://127.0.0.1:5563";
  std::string metrics;  // "" = off; else tcp://HOST:PORT serving GET /metrics (Prometheus)
  std::string data_dir = "rtda-data";  // observation log, checkpoints, analyses, archive
  std::string filter = "ensf";         // "letkf" | "ensf" | "none"; `rtda set-filter` changes it
  LogSync log_sync = LogSync::kAlways;
  double log_sync_interval_seconds = 0.05;
  int log_segment_mb = 64;
  double heartbeat_seconds = 1.0;       // worker link heartbeats, both ways
  double worker_timeout_seconds = 5.0;  // no heartbeat this long: the worker group is lost
  int checkpoint_every = 1;             // checkpoint the ensemble after every n-th analysis
  int checkpoint_keep = 3;              // newest checkpoints kept on disk
  bool publish_members = false;         // also publish every member (topic rtda.ensemble)
  // A dispatched cycle not finished this long after dispatch counts as a failure of the
  // worker group (one that heartbeats but makes no progress); 0 = no deadline.
  double cycle_timeout_seconds = 600.0;
  int archive_keep_cycles = 0;    // analysis files kept (newest); 0 = keep every cycle
  int idempotency_window = 4096;  // recent (seq, content hash) records kept per source
  // Falling behind: when more than max_backlog_cycles closed windows wait, the older ones run
  // with filter "none" (forecast only, flagged degraded) until the group has caught up.
  BehindPolicy behind_policy = BehindPolicy::kDegrade;  // kQueue: wait, latency grows
  int max_backlog_cycles = 2;
  // A non-loopback endpoint without CURVE is refused unless the deployment says it is
  // deliberately insecure (for example a private network with its own protection).
  bool insecure = false;
};

// Assimilation windows (docs/architecture.md §3): cycle k analyses t0 + k * experiment.cycle_hours.
struct WindowConfig {
  double t0_seconds = 0.0;
  LatePolicy late_policy = LatePolicy::kNext;  // kNext: assimilate in the next open window
  double deadline_seconds = 10.0;  // close a window this long (wall clock) after its first
                                   // observation; 0 = only by marker or later window
  double grace_seconds = 2.0;      // close a window once a later window's data is this old
  int max_windows_ahead = 64;      // refuse observations further ahead than this many windows
};

// What one client may send (docs/architecture.md §2).
struct LimitsConfig {
  int max_message_mb = 0;  // 0 = what max_batch_observations and the grid's truth need
  int max_batch_observations = 100000;
  double source_rate_observations_per_second = 0;  // per feeder source; 0 = unlimited
  double source_burst_observations = 1e6;
  int max_sources = 10000;                // feeder sources the server keeps records of
  double latest_analysis_per_second = 2;  // LATEST_ANALYSIS with fields, per control peer
};

// Quality control of observations before any filter (docs/service.md, "Quality control").
struct QcConfig {
  // Refuse an observation whose innovation |y - mean h(x_b)| exceeds this many
  // sqrt(error_sd^2 + spread of h(x_b)^2); 0 = off.
  double gross_error_sigmas = 0.0;
  // Plausibility at ingest, in kelvin for linear_K (and q scaled by f theta0 / g for identity):
  // larger |value| or error_sd is refused as absurd. arctan values must lie in (-pi/2, pi/2)
  // widened by 10 error_sd, with error_sd <= 1.
  double max_abs_kelvin = 500.0;
  double max_error_sd_kelvin = 100.0;
};

// ZeroMQ CURVE on every endpoint (keys from `rtda keys`).
struct SecurityConfig {
  bool curve = false;
  std::string server_key;    // the server's .key_secret file
  std::string feeder_keys;   // allowed feeder public keys (file or directory); "" = any
  std::string control_keys;  // allowed control clients; "" = any client with the server key
  std::string worker_keys;   // allowed worker groups; "" = any
  // With CURVE, an empty control_keys or worker_keys refuses to start unless the matching
  // allow_any says that any holder of the server's public key may take that role.
  bool control_allow_any = false;
  bool worker_allow_any = false;
};

// The ViT surrogate (docs/science.md §5): architecture and training (`rtda train`).
struct SurrogateConfig {
  int patch = 4;  // p x p patches on both levels
  int dim = 128;  // token width
  int depth = 4;  // transformer blocks
  int heads = 4;
  int mlp_ratio = 4;
  surrogate::PatchEmbedding embedding =
      surrogate::PatchEmbedding::kJoint;  // surrogate/embedding.hpp
  bool predict_increment = true;          // the network predicts x(t + 12 h) - x(t)
  std::uint64_t seed = 1;                 // parameter initialisation, batch order, augmentation
  int batch = 16;
  double lr = 1e-3;  // peak learning rate (AdamW)
  double weight_decay = 0.01;
  double clip_norm = 1.0;
  int warmup_steps = 300;
  int steps = 20000;                 // schedule length (cosine decay ends here)
  double max_minutes = 60.0;         // training wall-clock budget
  int eval_every = 250;              // steps between validations and checkpoints
  int patience = 8;                  // validations without improvement before early stopping
  bool augment = true;               // symmetry augmentation (x shifts, flip)
  int threads = 0;                   // Eigen threads for training; 0 = OpenMP default
  std::string weights;               // trained checkpoint for model.kind = "vit"
  surrogate::OnlineSettings online;  // surrogate.online*: adaptation while cycling
};

struct Config {
  ModelConfig model;
  sqg::NatureSettings nature;
  obs::ObserveSettings observe;
  EnsembleConfig ensemble;
  ExperimentConfig experiment;
  filters::LetkfSettings letkf;
  filters::EnsfSettings ensf;            // ensf.mode selects that mode's defaults before other keys
  filters::InflationSettings inflation;  // prior inflation before any filter
  ServerConfig server;
  WindowConfig window;
  LimitsConfig limits;
  SecurityConfig security;
  QcConfig qc;
  SurrogateConfig surrogate;
};

// Fingerprint (FNV-1a 64, 16 hex digits) of the configuration that determines the analyses: every
// key except where files live, addresses, threads and other settings that cannot change a
// number. Equal hashes mean the worker group and the server agree.
std::string science_hash(const Config& c);

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

// As load(), with the TOML text given instead of read from a file (`name` labels messages).
Config load_text(const std::string& toml_text, const std::string& name,
                 const std::vector<std::string>& overrides = {});

// The whole effective configuration as TOML (recorded in output files for provenance).
std::string to_toml(const Config& c);

// Markdown reference of every key: name, type, default, meaning.
std::string reference_markdown();

std::string_view to_string(Precision p);

// The largest message the server accepts, bytes: limits.max_message_mb, or when that is 0 what
// a batch of limits.max_batch_observations observations (64 encoded bytes each at most, as
// messages or columns) plus a truth field of the grid needs, with 64 KiB for the rest.
std::size_t max_message_bytes(const Config& c);

}  // namespace rtda::config
