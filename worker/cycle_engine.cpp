#include "cycle_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>

#include <omp.h>
#include <spdlog/spdlog.h>

#include "filters/inflation.hpp"
#include "hip/cycle_hip.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/nn_hip.hpp"
#include "hip/vit_hip.hpp"
#include "obs/experiments.hpp"
#include "obs/gross_error.hpp"
#include "obs/observation_space.hpp"
#include "sqg/fft_wisdom.hpp"
#include "surrogate/checkpoint.hpp"
#include "surrogate/online.hpp"
#include "surrogate/trainer.hpp"
#include "surrogate/training_data.hpp"
#include "surrogate/vit.hpp"

namespace rtda::worker {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Ensemble mean and standard deviation (n-1) per element of a [member][state] array.
void mean_and_spread(std::span<const double> all, int k, std::size_t n, std::vector<double>& mean,
                     std::vector<double>& spread) {
  mean.assign(n, 0.0);
  spread.assign(n, 0.0);
  for (int m = 0; m < k; ++m) {
    for (std::size_t e = 0; e < n; ++e)
      mean[e] += all[m * n + e];
  }
  for (auto& v : mean)
    v /= k;
  for (int m = 0; m < k; ++m) {
    for (std::size_t e = 0; e < n; ++e) {
      const double d = all[m * n + e] - mean[e];
      spread[e] += d * d;
    }
  }
  for (auto& v : spread)
    v = std::sqrt(v / (k - 1));
}

// Mean and spread of an ensemble held in column layout (cols = [member][level][c - c0] for
// this rank's columns [c0, c1)), assembled on rank 0 as [level][y][x]. Each element is
// summed over the members in the same order as mean_and_spread on the whole ensemble, so the
// result is the same bits; only 4 values per grid column travel to rank 0, instead of the
// whole ensemble.
//
// gather_mean_spread is the second half: `packed` = [mean level 0, mean level 1, spread level
// 0, spread level 1] of this rank's columns (4 (c1 - c0) values, computed on the host or on
// the device), assembled on rank 0.
void gather_mean_spread(const DistributedEnsemble& ens, std::span<const double> packed,
                        MPI_Comm comm, std::vector<double>& mean, std::vector<double>& spread) {
  const int ranks = ens.ranks();
  std::vector<int> counts(static_cast<std::size_t>(ranks)), displs(static_cast<std::size_t>(ranks));
  int offset = 0;
  for (int r = 0; r < ranks; ++r) {
    const auto [b, e] = column_range(ens.grid_n(), ranks, r);
    counts[static_cast<std::size_t>(r)] = static_cast<int>(4 * (e - b));
    displs[static_cast<std::size_t>(r)] = offset;
    offset += counts[static_cast<std::size_t>(r)];
  }
  std::vector<double> all(ens.rank() == 0 ? static_cast<std::size_t>(offset) : 0);
  MPI_Gatherv(packed.data(), static_cast<int>(packed.size()), MPI_DOUBLE, all.data(), counts.data(),
              displs.data(), MPI_DOUBLE, 0, comm);
  if (ens.rank() != 0) return;
  const std::size_t n2 = ens.columns_total();
  mean.assign(2 * n2, 0.0);
  spread.assign(2 * n2, 0.0);
  for (int r = 0; r < ranks; ++r) {
    const auto [b, e] = column_range(ens.grid_n(), ranks, r);
    const std::size_t w = e - b;
    const double* src = all.data() + displs[static_cast<std::size_t>(r)];
    for (int lev = 0; lev < 2; ++lev) {
      std::copy_n(src + lev * w, w, mean.data() + lev * n2 + b);
      std::copy_n(src + (2 + lev) * w, w, spread.data() + lev * n2 + b);
    }
  }
}

// Returns this rank's part, packed as for gather_mean_spread.
std::vector<double> column_mean_spread(const DistributedEnsemble& ens, std::span<const double> cols,
                                       int k, MPI_Comm comm, std::vector<double>& mean,
                                       std::vector<double>& spread) {
  const auto [c0, c1] = ens.columns();
  const std::size_t local = c1 - c0;
  std::vector<double> m, s;
  mean_and_spread(cols, k, 2 * local, m, s);
  std::vector<double> packed;
  packed.reserve(4 * local);
  packed.insert(packed.end(), m.begin(), m.end());
  packed.insert(packed.end(), s.begin(), s.end());
  gather_mean_spread(ens, packed, comm, mean, spread);
  return packed;
}

double rms_difference(std::span<const double> a, std::span<const double> b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

double rms(std::span<const double> a) {
  double s = 0;
  for (double v : a)
    s += v * v;
  return std::sqrt(s / static_cast<double>(a.size()));
}

}  // namespace

void share_fft_wisdom(MPI_Comm comm, const config::Config& cfg) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string text;
  std::string error;
  if (rank == 0) {
    // A failure here is sent to every rank (len = -1) instead of leaving them in the Bcast.
    try {
      const std::string path = cfg.model.fft_planning == sqg::FftPlanning::kMeasure
                                   ? sqg::resolve_fft_wisdom_path(cfg.model.fft_wisdom_file)
                                   : std::string();
      const bool automatic = cfg.model.fft_wisdom_file == "auto";
      try {
        if (!path.empty()) sqg::load_fft_wisdom_file(path);
      } catch (const std::runtime_error&) {
        if (!automatic) throw;  // a stale cache is re-measured and overwritten
      }
      sqg::SqgModel<double> probe(cfg.model.sqg, cfg.model.fft_planning);
      text = sqg::export_fft_wisdom();
      try {
        if (!path.empty()) sqg::save_fft_wisdom_file(path);
      } catch (const std::exception&) {
        if (!automatic) throw;
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  int len = error.empty() ? static_cast<int>(text.size()) : -1;
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  if (len < 0) {
    throw config::ConfigError(rank == 0 ? error : "model.fft_wisdom_file: rank 0 failed to plan");
  }
  text.resize(static_cast<std::size_t>(len));
  MPI_Bcast(text.data(), len, MPI_CHAR, 0, comm);
  if (rank != 0) sqg::import_fft_wisdom(text);
}

namespace {
// Rank 0's online-adapter state to every rank.
void broadcast_state(MPI_Comm comm, surrogate::OnlineState& st) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const auto bcast_string = [&](std::string& v) {
    std::uint64_t len = v.size();
    MPI_Bcast(&len, 1, MPI_UINT64_T, 0, comm);
    v.resize(len);
    MPI_Bcast(v.data(), static_cast<int>(len), MPI_CHAR, 0, comm);
  };
  const auto bcast_map = [&](auto& map, MPI_Datatype type) {
    std::uint64_t count = map.size();
    MPI_Bcast(&count, 1, MPI_UINT64_T, 0, comm);
    auto it = map.begin();
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string name = rank == 0 ? it->first : std::string();
      bcast_string(name);
      auto& values = map[name];
      std::uint64_t len = values.size();
      MPI_Bcast(&len, 1, MPI_UINT64_T, 0, comm);
      values.resize(len);
      MPI_Bcast(values.data(), static_cast<int>(len), type, 0, comm);
      if (rank == 0) ++it;
    }
  };
  bcast_map(st.arrays, MPI_FLOAT);
  bcast_map(st.doubles, MPI_DOUBLE);
  std::uint64_t count = st.attributes.size();
  MPI_Bcast(&count, 1, MPI_UINT64_T, 0, comm);
  auto it = st.attributes.begin();
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string name = rank == 0 ? it->first : std::string();
    std::string value = rank == 0 ? it->second : std::string();
    bcast_string(name);
    bcast_string(value);
    if (rank != 0) st.attributes[name] = value;
    if (rank == 0) ++it;
  }
}

const config::Config& checked(MPI_Comm comm, const config::Config& cfg) {
  if (cfg.model.precision != config::Precision::kFloat64) {
    throw config::ConfigError("model.precision = \"float32\": cycling runs in float64");
  }
  share_fft_wisdom(comm, cfg);
  return cfg;
}
}  // namespace

CycleEngine::CycleEngine(MPI_Comm comm, const config::Config& cfg, device::Backend backend)
    : comm_(comm),
      cfg_(checked(comm, cfg)),
      backend_(backend),
      threads_(resolve_threads(comm, cfg_.model.threads)),
      model_(std::make_unique<sqg::SqgModel<double>>(cfg_.model.sqg, cfg_.model.fft_planning)),
      ensemble_(comm, cfg_.ensemble.members, cfg_.model.sqg.N),
      stepper_(std::make_unique<sqg::EnsembleStepper<double>>(*model_, threads_.threads)),
      steps_per_cycle_(static_cast<int>(
          std::lround(cfg_.experiment.cycle_hours * 3600.0 / cfg_.model.sqg.dt_s))) {
  // The filters' OpenMP loops (and Eigen's, for the surrogate) take the same share of the
  // node as the ensemble steps; thread counts do not change any result.
  omp_set_num_threads(threads_.threads);
  if (ensemble_.rank() == 0) spdlog::info("{}", threads_.reason);
  if (cfg_.model.kind == "vit") load_surrogate_weights();
  // With Backend::kHip the ensemble lives on the device between the stages (docs/hip.md).
  if (backend_ == device::Backend::kHip)
    device_ = std::make_unique<DeviceEnsemble>(comm_, ensemble_);
  device_bytes_mark_ = hip::detail::host_device_bytes();
}

struct CycleEngine::Surrogate {
  std::unique_ptr<surrogate::Vit> vit;
  surrogate::Normalisation norm;
  std::string identity;
  // surrogate.online: the adapter, and what the last analysis left for it.
  std::unique_ptr<surrogate::OnlineAdapter> online;
  // Backend::kHip: the forward pass on the device, its weights re-uploaded after adaptation.
  std::unique_ptr<hip::VitForwardHip> device_forward;
  std::uint64_t device_version = 0;
  hip::nn::DeviceArray device_batch;  // the normalised members, float, in and out of the ViT
  struct Pending {
    std::uint64_t cycle = 0;
    obs::ObservationSpace space;
    std::vector<double> mean;
  };
  std::optional<Pending> pending;
  surrogate::OnlineReport last;  // the last adaptation, reported with the next analysis
};

// Every rank reads the weights (a few MB) itself.
void CycleEngine::load_surrogate_weights() {
  const std::string& path = cfg_.surrogate.weights;
  surrogate_ = std::make_unique<Surrogate>();
  const surrogate::VitConfig vc =
      surrogate::vit_config_from(surrogate::read_surrogate_architecture(path));
  if (vc.grid_n != cfg_.model.sqg.N) {
    throw config::ConfigError("surrogate.weights = \"" + path +
                              "\": trained for N = " + std::to_string(vc.grid_n) +
                              ", the model has N = " + std::to_string(cfg_.model.sqg.N));
  }
  surrogate_->vit = std::make_unique<surrogate::Vit>(vc);
  surrogate::ParameterList params;
  surrogate_->vit->collect(params);
  const surrogate::SurrogateFile f = surrogate::load_surrogate(path, params);
  if (f.norm_mean.size() != 2 || f.norm_std.size() != 2) {
    throw config::ConfigError("surrogate.weights = \"" + path +
                              "\": no per-level normalisation (norm_mean, norm_std)");
  }
  surrogate_->norm.mean = {f.norm_mean[0], f.norm_mean[1]};
  surrogate_->norm.std = {f.norm_std[0], f.norm_std[1]};
  surrogate_->identity = "vit:" + std::filesystem::path(path).filename().string();
  if (backend_ == device::Backend::kHip)
    surrogate_->device_forward = std::make_unique<hip::VitForwardHip>(*surrogate_->vit);
  if (cfg_.surrogate.online.enabled) {
    surrogate_->online = std::make_unique<surrogate::OnlineAdapter>(
        *surrogate_->vit, surrogate_->norm, cfg_.surrogate.online, cfg_.experiment.seed,
        std::filesystem::path(path).filename().string());
  }
}

std::uint64_t CycleEngine::surrogate_version() const {
  return surrogate_ && surrogate_->online ? surrogate_->online->version() : 0;
}

void CycleEngine::adapt_surrogate() {
  if (!surrogate_ || !surrogate_->online || !surrogate_->pending) return;
  const Surrogate::Pending& p = *surrogate_->pending;
  // Mean squared normalised innovation of a forecast against the cycle's observations.
  const auto score = [&](std::span<const double> state) {
    const std::size_t po = p.space.size();
    if (po == 0) return 0.0;
    std::vector<double> hx(po);
    p.space.apply(state, hx);
    double sum = 0;
    for (std::size_t o = 0; o < po; ++o) {
      const double d = (p.space.value()[o] - hx[o]) / p.space.error_sd()[o];
      sum += d * d;
    }
    return sum / static_cast<double>(po);
  };
  // Gradients summed on rank 0 and broadcast: every rank then holds the same bits.
  const auto reduce = [&](std::span<float> g) {
    if (ensemble_.ranks() == 1) return;
    MPI_Reduce(ensemble_.rank() == 0 ? MPI_IN_PLACE : g.data(), g.data(),
               static_cast<int>(g.size()), MPI_FLOAT, MPI_SUM, 0, comm_);
    MPI_Bcast(g.data(), static_cast<int>(g.size()), MPI_FLOAT, 0, comm_);
  };
  surrogate_->last = surrogate_->online->after_analysis(p.cycle, p.mean, score, ensemble_.rank(),
                                                        ensemble_.ranks(), reduce);
  surrogate_->pending.reset();
}

CycleEngine::~CycleEngine() = default;

std::string CycleEngine::model_identity() const {
  if (surrogate_ && surrogate_->online) return "vit:" + surrogate_->online->weights_name();
  return surrogate_ ? surrogate_->identity : std::string("sqg");
}

void CycleEngine::start_from_nature(const io::NatureRun& nature) {
  const int k = ensemble_.members();
  const std::size_t n = ensemble_.state_size();
  const std::size_t clim = cfg_.ensemble.climatology_index < 0
                               ? nature.size() - 1
                               : static_cast<std::size_t>(cfg_.ensemble.climatology_index);
  if (clim >= nature.size()) {
    throw config::ConfigError(
        "ensemble.climatology_index = " + std::to_string(cfg_.ensemble.climatology_index) +
        ": outside the nature run");
  }
  // Checked on every rank, before any collective, so a bad setting fails everywhere at once.
  if (cfg_.ensemble.initial == "climatology" &&
      (cfg_.ensemble.climatology_stride < 1 ||
       static_cast<long>(clim) - static_cast<long>(k - 1) * cfg_.ensemble.climatology_stride < 0)) {
    throw config::ConfigError("ensemble.initial = \"climatology\": " + std::to_string(k) +
                              " members " + std::to_string(cfg_.ensemble.climatology_stride) +
                              " states apart do not fit before nature state " +
                              std::to_string(clim));
  }
  if (ensemble_.rank() == 0) {
    auto initial = obs::initial_ensemble(nature.state(clim), k, cfg_.ensemble.initial_noise_sd_ms,
                                         cfg_.experiment.seed);
    if (cfg_.ensemble.initial == "climatology") {
      // Member m: nature state clim - m * stride instead of the shared state (same noise).
      const long stride = cfg_.ensemble.climatology_stride;
      const auto shared = nature.state(clim);
      for (int m = 0; m < k; ++m) {
        const auto own = nature.state(clim - static_cast<std::size_t>(m * stride));
        for (std::size_t e = 0; e < n; ++e)
          initial[m * n + e] += own[e] - shared[e];
      }
    }
    ensemble_.scatter(initial, 0);
  } else {
    ensemble_.scatter({}, 0);
  }
  if (device_) device_->host_written();
  filters_.clear();
}

std::int64_t CycleEngine::start_from_checkpoint(const std::string& path) {
  // Rank 0 reads; a failure reaches every rank before any other collective.
  io::Checkpoint c;
  std::string error;
  if (ensemble_.rank() == 0) {
    try {
      c = io::read_checkpoint(path);
      io::FieldFile shape;
      shape.params = c.params;
      io::check_compatible(shape, cfg_.model.sqg, path);
      if (c.members != ensemble_.members()) {
        throw std::runtime_error(
            "checkpoint \"" + path + "\": " + std::to_string(c.members) +
            " members, expected ensemble.members = " + std::to_string(ensemble_.members()));
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  int len = static_cast<int>(error.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, comm_);
  if (len > 0) {
    error.resize(static_cast<std::size_t>(len));
    MPI_Bcast(error.data(), len, MPI_CHAR, 0, comm_);
    throw std::runtime_error(error);
  }
  ensemble_.scatter(c.q, 0);
  if (device_) device_->host_written();
  std::int64_t cycle = c.cycle;
  MPI_Bcast(&cycle, 1, MPI_INT64_T, 0, comm_);
  // EnSF's spread target travels with the checkpoint (every rank keeps its own slab of it).
  int has_spread = c.ensf_initial_spread.empty() ? 0 : 1;
  MPI_Bcast(&has_spread, 1, MPI_INT, 0, comm_);
  filters_.clear();
  if (has_spread) {
    std::vector<double> spread(ensemble_.state_size());
    if (ensemble_.rank() == 0) spread = c.ensf_initial_spread;
    MPI_Bcast(spread.data(), static_cast<int>(spread.size()), MPI_DOUBLE, 0, comm_);
    filter("ensf").restore_carried_state(std::move(spread));
  }
  if (surrogate_ && surrogate_->online) {
    surrogate::OnlineState st;
    st.arrays = std::move(c.surrogate_online.arrays);
    st.doubles = std::move(c.surrogate_online.doubles);
    st.attributes = std::move(c.surrogate_online.attributes);
    broadcast_state(comm_, st);
    surrogate_->pending.reset();
    // A checkpoint without adapter state (written without surrogate.online) starts the
    // adaptation afresh from the weights file.
    if (!st.attributes.empty()) surrogate_->online->restore_state(st);
    surrogate_->device_version = std::numeric_limits<std::uint64_t>::max();  // re-upload
  }
  return cycle;
}

io::Checkpoint CycleEngine::checkpoint(std::int64_t cycle, double time_seconds) const {
  io::Checkpoint c;
  c.params = cfg_.model.sqg;
  c.cycle = cycle;
  c.time_seconds = time_seconds;
  c.members = ensemble_.members();
  c.config_hash = config::science_hash(cfg_);
  if (device_) device_->to_host();  // the device copy may be the current one
  c.q = ensemble_.gather(0);
  // The adapted surrogate is part of the state: identical on every rank, saved from rank 0.
  if (surrogate_ && surrogate_->online && ensemble_.rank() == 0) {
    surrogate::OnlineState st = surrogate_->online->save_state();
    c.surrogate_online.arrays = std::move(st.arrays);
    c.surrogate_online.doubles = std::move(st.doubles);
    c.surrogate_online.attributes = std::move(st.attributes);
  }
  // Each element of the spread target is set on exactly one rank (NaN elsewhere); spreads are
  // >= 0, so a MAX over ranks with NaN sent as -1 assembles it.
  int has = 0;
  std::vector<double> spread;
  if (auto it = filters_.find("ensf"); it != filters_.end()) {
    spread = it->second->carried_state();
    has = spread.empty() ? 0 : 1;
  }
  MPI_Allreduce(MPI_IN_PLACE, &has, 1, MPI_INT, MPI_MAX, comm_);
  if (has) {
    spread.resize(ensemble_.state_size(), std::numeric_limits<double>::quiet_NaN());
    for (auto& v : spread)
      if (std::isnan(v)) v = -1.0;
    MPI_Reduce(ensemble_.rank() == 0 ? MPI_IN_PLACE : spread.data(), spread.data(),
               static_cast<int>(spread.size()), MPI_DOUBLE, MPI_MAX, 0, comm_);
    for (auto& v : spread)
      if (v < 0) v = std::numeric_limits<double>::quiet_NaN();
    if (ensemble_.rank() == 0) c.ensf_initial_spread = std::move(spread);
  }
  return c;
}

double CycleEngine::forecast_cycle() {
  const auto t0 = Clock::now();
  if (!surrogate_) {
    // The SQG physics runs on the CPU (FFTW) with either backend.
    if (device_) device_->to_host();
    stepper_->advance_grid(ensemble_.local_states(), ensemble_.local_members(), steps_per_cycle_);
    if (device_) device_->host_written();
    return seconds_since(t0);
  }
  // The surrogate: this rank's members as one batch through the ViT (one cycle per step).
  const int m = ensemble_.local_members();
  if (m == 0) return seconds_since(t0);
  if (device_) {
    forecast_surrogate_on_device();
    return seconds_since(t0);
  }
  const std::size_t n = ensemble_.state_size();
  const int grid = cfg_.model.sqg.N;
  auto states = ensemble_.local_states();
  surrogate::Mat x(m, static_cast<Eigen::Index>(n));
  for (int r = 0; r < m; ++r) {
    surrogate_->norm.apply(states.subspan(static_cast<std::size_t>(r) * n, n),
                           std::span<float>(x.row(r).data(), n), grid);
  }
  const surrogate::Mat y = surrogate_->vit->forward(x);
  for (int r = 0; r < m; ++r) {
    surrogate_->norm.invert(std::span<const float>(y.row(r).data(), n),
                            states.subspan(static_cast<std::size_t>(r) * n, n), grid);
  }
  return seconds_since(t0);
}

// The ViT step with the members on the device: normalise (double -> float), the forward pass
// (the increment added inside), restore (float -> double), with the per-element arithmetic of
// the CPU path (surrogate/normalisation_math.hpp). Nothing crosses to the host but the weights
// after online adaptation changed them.
void CycleEngine::forecast_surrogate_on_device() {
  Surrogate& sur = *surrogate_;
  // Weights changed by online adaptation (or a restart) reach the device before use.
  const std::uint64_t version = surrogate_version();
  if (version != sur.device_version) {
    sur.device_forward->upload_weights(*sur.vit);
    sur.device_version = version;
  }
  device_->to_device();
  const std::size_t m = static_cast<std::size_t>(ensemble_.local_members());
  const std::size_t n2 = ensemble_.columns_total();
  if (sur.device_batch.size() != m * 2 * n2) sur.device_batch = hip::nn::DeviceArray(m * 2 * n2);
  hip::cycle::LevelScaling scaling;
  for (int l = 0; l < 2; ++l) {
    scaling.mean[l] = sur.norm.mean[static_cast<std::size_t>(l)];
    scaling.std_dev[l] = sur.norm.std[static_cast<std::size_t>(l)];
    scaling.inv_std[l] =
        1.0 / sur.norm.std[static_cast<std::size_t>(l)];  // as Normalisation::apply
  }
  float* batch = sur.device_batch.data();
  hip::cycle::normalise(device_->states(), batch, m, n2, scaling);
  sur.device_forward->forward_device(batch, batch, static_cast<int>(m));
  hip::cycle::denormalise(batch, device_->states(), m, n2, scaling);
  device_->device_written();
  hip::detail::synchronize("the ViT forecast");  // the stage's wall time; errors surface here
}

// The analysis with the ensemble on the device (docs/hip.md, "Residency"): h(x) of every
// member, the column layout, the background statistics, the prior inflation, the filter and the
// analysis statistics all on the device; to the host go the 4 values per grid column of each
// mean/spread pair, 2 per observation for the innovation diagnostics (rank 0), h(x) when
// inflation is on, and the members only when asked for.
CycleEngine::DeviceStage CycleEngine::analyse_on_device(SlabAnalysis& analysis,
                                                        obs::ObservationSpace& space,
                                                        std::uint64_t cycle, bool gather_members,
                                                        CycleOutcome& out) {
  using hip::detail::DeviceArray;
  DeviceStage st;
  const int k = ensemble_.members();
  std::size_t p = space.size();
  device_->to_device();
  DeviceArray<double> hx = device_->observe_all(space);
  // The moments of h(x) per observation (filters::observation_moments' sums), 2 values per
  // observation to the host: the gross-error check, the innovation diagnostics and the
  // inflation factor. Every rank holds all of h(x), so every rank takes the same decisions.
  if (p > 0) {
    DeviceArray<double> moments(2 * p, "h(x) statistics");
    hip::cycle::observation_mean_and_variance(hx.get(), static_cast<std::size_t>(k), p,
                                              moments.get());
    st.hx_stats = moments.download();
    obs::GrossErrorResult qc =
        obs::gross_error_check(space, st.hx_stats, cfg_.qc.gross_error_sigmas);
    if (!qc.refused.empty()) {
      // h(x) of the kept observations only, again on the device (the same values).
      space = space.subset(qc.kept);
      p = space.size();
      st.hx_stats = obs::select_moments(st.hx_stats, qc.kept);
      hx = p > 0 ? device_->observe_all(space) : DeviceArray<double>();
    }
    st.refused = std::move(qc.refused);
  }
  double* cols = device_->to_columns();
  const std::size_t dim = 2 * ensemble_.local_columns();
  DeviceArray<double> packed(2 * dim, "the ensemble's mean and spread");
  std::vector<double> local;  // this rank's columns: [mean (dim) | spread (dim)]
  const auto mean_spread = [&](std::vector<double>& mean, std::vector<double>& spread) {
    hip::cycle::mean_and_spread(cols, static_cast<std::size_t>(k), dim, packed.get());
    local = packed.download();
    gather_mean_spread(ensemble_, local, comm_, mean, spread);
  };
  mean_spread(st.mean_b, st.spread_b);
  if (cfg_.inflation.mode != filters::InflationMode::kNone) {
    st.inflation = filters::estimate_inflation_from_moments(cfg_.inflation, st.hx_stats, space);
    if (st.inflation.factor != 1.0) {
      keep_uninflated_spread_target(analysis, std::span<const double>(local).subspan(dim));
      hip::cycle::inflate(cols, k, dim, st.inflation.factor);
      hip::cycle::inflate(hx.get(), k, p, st.inflation.factor);
    }
  }
  const auto [c0, c1] = ensemble_.columns();
  analysis.analyse_columns_device(cols, hx.get(), k, space, {cfg_.experiment.seed, cycle}, c0, c1,
                                  cols, comm_, st.extra);
  mean_spread(out.mean, out.spread);
  // Every member's non-finite value shows in its column's mean or spread (NaN and inf
  // propagate), so the 4 values per column already on the host are enough to decide.
  require_finite_analysis(
      comm_, ensemble_,
      "cycle " + std::to_string(cycle) + ", filter " + std::string(analysis.name()), {}, local);
  device_->from_columns(cols);
  if (gather_members) {
    device_->to_host();
    st.posterior = ensemble_.gather(0);
  }
  return st;
}

// EnSF's spread target "initial" is the initial ensemble's spread (science.md §4), not the
// inflated one: before the first inflated prior reaches EnSF, it is given the uninflated
// spread of this rank's columns (`local_spread` = [level][c - c0]).
void CycleEngine::keep_uninflated_spread_target(SlabAnalysis& analysis,
                                                std::span<const double> local_spread) {
  if (analysis.name() != "ensf" || cfg_.ensf.spread_target != filters::EnsfSpreadTarget::kInitial ||
      !analysis.carried_state().empty()) {
    return;
  }
  const auto [c0, c1] = ensemble_.columns();
  const std::size_t width = c1 - c0, n2 = ensemble_.columns_total();
  std::vector<double> initial(ensemble_.state_size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t lev = 0; lev < 2; ++lev)
    for (std::size_t j = 0; j < width; ++j)
      initial[lev * n2 + c0 + j] = local_spread[lev * width + j];
  analysis.restore_carried_state(std::move(initial));
}

void require_finite_analysis(MPI_Comm comm, const DistributedEnsemble& ens, const std::string& what,
                             std::span<const double> post_cols, std::span<const double> packed) {
  const auto [c0, c1] = ens.columns();
  const std::size_t w = c1 - c0, n2 = ens.columns_total(), n = ens.state_size();
  constexpr unsigned long long kNone = std::numeric_limits<unsigned long long>::max();
  // counts: non-finite member values, non-finite mean/spread values; first: the smallest
  // [member][level][y][x] index of a member value, and [level][y][x] of a mean/spread value.
  unsigned long long counts[2] = {0, 0}, first[2] = {kNone, kNone};
  if (w > 0) {
    for (std::size_t i = 0; i < post_cols.size(); ++i) {
      if (std::isfinite(post_cols[i])) continue;
      ++counts[0];
      const std::size_t m = i / (2 * w), r = i % (2 * w), lev = r / w, j = r % w;
      first[0] = std::min<unsigned long long>(first[0], m * n + lev * n2 + c0 + j);
    }
    for (std::size_t i = 0; i < packed.size(); ++i) {
      if (std::isfinite(packed[i])) continue;
      ++counts[1];
      const std::size_t lev = (i / w) % 2, j = i % w;
      first[1] = std::min<unsigned long long>(first[1], lev * n2 + c0 + j);
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
  if (counts[0] == 0 && counts[1] == 0) return;  // the same on every rank
  MPI_Allreduce(MPI_IN_PLACE, first, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm);
  const auto where = [&](unsigned long long e) {
    const std::size_t gn = static_cast<std::size_t>(ens.grid_n());
    return "level " + std::to_string(e / n2) + ", y " + std::to_string(e % n2 / gn) + ", x " +
           std::to_string(e % gn);
  };
  std::string msg = what + ": the analysis is not finite:";
  if (counts[0] > 0) {
    msg += " " + std::to_string(counts[0]) + " member values are NaN or inf (first: member " +
           std::to_string(first[0] / n) + ", " + where(first[0] % n) + ", state index " +
           std::to_string(first[0] % n) + ")";
  }
  if (counts[1] > 0) {
    msg += std::string(counts[0] > 0 ? ";" : "") + " " + std::to_string(counts[1]) +
           " mean/spread values are NaN or inf (first: " + where(first[1]) + ", state index " +
           std::to_string(first[1]) + ")";
  }
  msg += "; not published";
  throw std::runtime_error(msg);
}

SlabAnalysis& CycleEngine::filter(const std::string& name) {
  auto it = filters_.find(name);
  if (it == filters_.end())
    it = filters_.emplace(name, make_slab_analysis(name, cfg_, backend_)).first;
  return *it->second;
}

CycleOutcome CycleEngine::analyse(const std::string& filter_name, const io::ObservationSet& set,
                                  std::uint64_t cycle, double time_seconds,
                                  std::span<const double> truth, bool gather_members) {
  const sqg::SqgParams& p = cfg_.model.sqg;
  const int k = ensemble_.members();
  const std::size_t n = ensemble_.state_size();
  const double s = p.kelvin_per_pv();
  SlabAnalysis& analysis = filter(filter_name);

  CycleOutcome out;
  CycleRecord& rec = out.record;
  rec.cycle = static_cast<int>(cycle);
  rec.time_seconds = time_seconds;
  const auto t0 = Clock::now();
  // Validation, then the ingest plausibility with the server's limits (qc.*): an observation
  // the server would have refused is refused here too (obs/plausibility.hpp).
  std::vector<obs::Rejection> rejected;
  obs::ObservationSpace space(
      p, set, obs::PlausibilityLimits{cfg_.qc.max_abs_kelvin, cfg_.qc.max_error_sd_kelvin},
      &rejected);
  std::size_t invalid = 0;
  for (auto& r : rejected) {
    if (r.kind == "invalid") {
      ++invalid;
    } else {
      out.refused.push_back(std::move(r));
    }
  }
  std::size_t dropped = 0;
  if (filter_name == "ensf" && cfg_.ensf.mode == filters::EnsfMode::kPaper &&
      !space.all_at_grid_points()) {
    // Paper-mode EnSF is defined per state dimension: observations between grid points are
    // left out (and counted as rejected) rather than failing the whole cycle.
    std::vector<std::size_t> on_grid;
    for (std::size_t o = 0; o < space.size(); ++o) {
      if (space.stencil(o).count == 1) on_grid.push_back(o);
    }
    dropped = space.size() - on_grid.size();
    space = space.subset(on_grid);
  }
  rec.observations_rejected = static_cast<double>(invalid + dropped);
  rec.shock_sd = set.shock_sd.empty() ? 0.0 : set.shock_sd.front();
  if (!set.id.empty()) {
    out.first_observation_id = *std::min_element(set.id.begin(), set.id.end());
    out.last_observation_id = *std::max_element(set.id.begin(), set.id.end());
  }

  std::vector<double> mean_b, spread_b;
  std::vector<double> hx_stats;  // filters::observation_moments of h(x_b)
  filters::InflationEstimate inflation;
  std::map<std::string, double> extra;
  std::vector<double> posterior;
  std::vector<obs::Rejection> gross;  // refused by the gross-error check
  if (device_) {
    DeviceStage st = analyse_on_device(analysis, space, cycle, gather_members, out);
    mean_b = std::move(st.mean_b);
    spread_b = std::move(st.spread_b);
    hx_stats = std::move(st.hx_stats);
    inflation = st.inflation;
    extra = std::move(st.extra);
    posterior = std::move(st.posterior);
    gross = std::move(st.refused);
  } else {
    std::vector<double> hx = ensemble_.observe_all(space);
    hx_stats = filters::observation_moments(hx, k);
    // Quality control against the background (qc.gross_error_sigmas), before the filter and
    // the inflation estimate. Every rank holds all of h(x): every rank refuses the same.
    if (space.size() > 0) {
      obs::GrossErrorResult qc =
          obs::gross_error_check(space, hx_stats, cfg_.qc.gross_error_sigmas);
      if (!qc.refused.empty()) {
        hx = obs::select_columns(hx, space.size(), qc.kept);
        hx_stats = obs::select_moments(hx_stats, qc.kept);
        space = space.subset(qc.kept);
      }
      gross = std::move(qc.refused);
    }
    std::vector<double> cols, post;
    ensemble_.to_columns(cols);
    const std::vector<double> local =
        column_mean_spread(ensemble_, cols, k, comm_, mean_b, spread_b);
    // Prior inflation (filters/inflation.hpp) after the background diagnostics, which stay the
    // forecast's own. Every rank holds all of h(x), so every rank finds the same factor.
    inflation = filters::estimate_inflation_from_moments(cfg_.inflation, hx_stats, space);
    std::vector<double> hx_inflated;
    std::span<const double> hx_used = hx;
    if (inflation.factor != 1.0) {
      keep_uninflated_spread_target(analysis,
                                    std::span<const double>(local).subspan(local.size() / 2));
      filters::inflate(cols, k, inflation.factor);
      hx_inflated = hx;
      filters::inflate(hx_inflated, k, inflation.factor);
      hx_used = hx_inflated;
    }
    post.assign(cols.size(), 0.0);
    const auto [c0, c1] = ensemble_.columns();
    analysis.analyse_columns(cols, hx_used, k, space, {cfg_.experiment.seed, cycle}, c0, c1, post,
                             comm_, extra);
    const std::vector<double> local_a =
        column_mean_spread(ensemble_, post, k, comm_, out.mean, out.spread);
    // Never a non-finite analysis: decided on every rank together, before the ensemble takes
    // the posterior (it keeps the prior when this throws).
    require_finite_analysis(
        comm_, ensemble_,
        "cycle " + std::to_string(cycle) + ", filter " + std::string(analysis.name()), post,
        local_a);
    ensemble_.from_columns(post);
    if (gather_members) posterior = ensemble_.gather(0);
  }
  rec.observations_used = static_cast<double>(space.size());
  for (auto& r : gross)
    out.refused.push_back(std::move(r));
  std::sort(out.refused.begin(), out.refused.end(),
            [](const obs::Rejection& a, const obs::Rejection& b) { return a.index < b.index; });
  for (const auto& r : out.refused)
    ++out.refused_by_reason[r.kind];
  rec.observations_refused_qc = static_cast<double>(out.refused.size());
  // Residency (docs/hip.md): bytes copied between host and device since the previous
  // analysis (this cycle's forecast and analysis), summed over the ranks that use a device.
  unsigned long long moved[2] = {0, 0};
  if (device_) {
    const std::uint64_t now = hip::detail::host_device_bytes();
    moved[0] = now - device_bytes_mark_;
    moved[1] = 1;
    device_bytes_mark_ = now;
  }
  MPI_Reduce(ensemble_.rank() == 0 ? MPI_IN_PLACE : moved, moved, 2, MPI_UNSIGNED_LONG_LONG,
             MPI_SUM, 0, comm_);
  if (surrogate_ && surrogate_->online) {
    // Every rank adapts the surrogate: give them the analysis mean and the observations.
    Surrogate::Pending pending{cycle, space, std::vector<double>(n)};
    if (ensemble_.rank() == 0) pending.mean = out.mean;
    MPI_Bcast(pending.mean.data(), static_cast<int>(n), MPI_DOUBLE, 0, comm_);
    surrogate_->pending = std::move(pending);
  }
  if (ensemble_.rank() != 0) {
    rec.seconds_analysis = seconds_since(t0);
    return out;
  }

  const bool known = truth.size() == n;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  rec.rmse_background_K = known ? s * rms_difference(mean_b, truth) : nan;
  rec.rmse_analysis_K = known ? s * rms_difference(out.mean, truth) : nan;
  rec.spread_background_K = s * rms(spread_b);
  rec.spread_analysis_K = s * rms(out.spread);
  // Innovations d = y - mean_i h(x_b^(i)); consistency = E[d^2] / (HPH^T + R), both averaged
  // over the observations (1 when the ensemble spread is right).
  const std::size_t po = space.size();
  double dsum = 0, d2 = 0, hvar = 0, r = 0;
  for (std::size_t o = 0; o < po; ++o) {
    const double hm = hx_stats[o];
    hvar += hx_stats[po + o];
    const double d = space.value()[o] - hm;
    dsum += d;
    d2 += d * d;
    r += space.error_sd()[o] * space.error_sd()[o];
  }
  const double np = std::max<double>(1.0, static_cast<double>(po));
  rec.innovation_mean = dsum / np;
  rec.innovation_rms = std::sqrt(d2 / np);
  rec.consistency_ratio = po > 0 ? (d2 / np) / ((hvar + r) / np) : nan;
  // The stage ends with the products: mean, spread and the diagnostics (rank 0's view).
  rec.seconds_analysis = seconds_since(t0);
  auto& diag = out.diagnostics;
  if (known) {
    diag["rmse_background"] = {rec.rmse_background_K, "K", "background mean RMSE vs truth"};
    diag["rmse_analysis"] = {rec.rmse_analysis_K, "K", "analysis mean RMSE vs truth"};
  }
  diag["spread_background"] = {rec.spread_background_K, "K", "background ensemble spread"};
  diag["spread_analysis"] = {rec.spread_analysis_K, "K", "analysis ensemble spread"};
  diag["innovation_mean"] = {rec.innovation_mean, "observation units", "mean of y - H(x_b)"};
  diag["innovation_rms"] = {rec.innovation_rms, "observation units", "RMS of y - H(x_b)"};
  diag["consistency_ratio"] = {rec.consistency_ratio, "1",
                               "mean innovation^2 / (HPH^T + R): 1 when consistent"};
  diag["observations_used"] = {rec.observations_used, "1", "observations assimilated"};
  diag["observations_rejected"] = {rec.observations_rejected, "1", "observations refused"};
  diag["observations_refused_qc"] = {static_cast<double>(out.refused.size()), "1",
                                     "observations refused by quality control before the filter "
                                     "(qc.*: implausible, gross error against the background)"};
  diag["shock_sd"] = {rec.shock_sd, "m s-1", "std of the shock added to the truth (0: none)"};
  diag["seconds_analysis"] = {rec.seconds_analysis, "s", "wall time of the analysis stage"};
  for (const auto& [name, value] : extra)
    diag[name] = {value, "1", name};
  if (moved[1] > 0) {
    diag["device_host_bytes"] = {static_cast<double>(moved[0]), "B",
                                 "bytes copied between host and device since the previous "
                                 "analysis, summed over the ranks (docs/hip.md, residency)"};
  }
  if (cfg_.inflation.mode != filters::InflationMode::kNone) {
    diag["inflation_factor"] = {inflation.factor, "1",
                                "multiplicative prior inflation applied before the filter"};
  }
  if (surrogate_ && surrogate_->online) {
    // The weights that made this background, and what the adaptation before it found.
    const surrogate::OnlineReport& rep = surrogate_->last;
    diag["surrogate_version"] = {static_cast<double>(surrogate_->online->version()), "1",
                                 "version of the surrogate weights that made the background"};
    diag["surrogate_accepted_version"] = {
        static_cast<double>(surrogate_->online->accepted_version()), "1",
        "last surrogate version accepted by the innovation check"};
    diag["surrogate_rollbacks"] = {static_cast<double>(surrogate_->online->rollbacks()), "1",
                                   "rollbacks of the online adaptation so far"};
    diag["surrogate_lr_scale"] = {surrogate_->online->learning_rate_scale(), "1",
                                  "online learning-rate guard (1 = full rate)"};
    // Every cycle carries the same diagnostics (the archive's variables): NaN = not measured.
    diag["surrogate_innovation_current"] = {
        rep.evaluated ? rep.innovation_current : nan, "1",
        "mean squared normalised innovation of the previous weights in use (one-cycle "
        "forecast of the previous analysis mean)"};
    diag["surrogate_innovation_accepted"] = {rep.evaluated ? rep.innovation_reference : nan, "1",
                                             "the same for the accepted weights"};
    diag["surrogate_online_loss"] = {rep.steps_taken > 0 ? rep.loss : nan, "1",
                                     "normalised MSE of the online steps"};
    diag["surrogate_online_lr"] = {rep.steps_taken > 0 ? rep.learning_rate : 0.0, "1",
                                   "learning rate of the online steps (0: none taken)"};
  }
  if (gather_members) out.members = std::move(posterior);
  return out;
}

}  // namespace rtda::worker
