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
#include "filters/make_filter.hpp"
#include "obs/experiments.hpp"
#include "obs/gross_error.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_model.hpp"

namespace rtda::worker {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Mean and spread of an ensemble held in column layout (cols = [member][level][c - c0] for
// this rank's columns [c0, c1)), assembled on rank 0 as [level][y][x]. Each element is
// summed over the members in the same order as mean_and_spread on the whole ensemble, so the
// result is the same bits; only 4 values per grid column travel to rank 0, instead of the
// whole ensemble.
//
// gather_mean_spread is the second half: `packed` = [mean of each level, spread of each level]
// of this rank's columns (2 levels (c1 - c0) values, computed on the host or on the device),
// assembled on rank 0.
void gather_mean_spread(const DistributedEnsemble& ens, std::span<const double> packed,
                        const Comm& comm, std::vector<double>& mean, std::vector<double>& spread) {
  const int ranks = ens.ranks();
  std::vector<int> counts(static_cast<std::size_t>(ranks)), displs(static_cast<std::size_t>(ranks));
  const std::size_t levels = ens.levels();
  int offset = 0;
  for (int r = 0; r < ranks; ++r) {
    const auto [b, e] = column_range(ens.grid(), ranks, r);
    counts[static_cast<std::size_t>(r)] = static_cast<int>(2 * levels * (e - b));
    displs[static_cast<std::size_t>(r)] = offset;
    offset += counts[static_cast<std::size_t>(r)];
  }
  std::vector<double> all(ens.rank() == 0 ? static_cast<std::size_t>(offset) : 0);
  comm.gatherv(packed.data(), static_cast<int>(packed.size()), MPI_DOUBLE, all.data(),
               counts.data(), displs.data(), 0);
  if (ens.rank() != 0) return;
  const std::size_t n2 = ens.columns_total();
  mean.assign(levels * n2, 0.0);
  spread.assign(levels * n2, 0.0);
  for (int r = 0; r < ranks; ++r) {
    const auto [b, e] = column_range(ens.grid(), ranks, r);
    const std::size_t w = e - b;
    const double* src = all.data() + displs[static_cast<std::size_t>(r)];
    for (std::size_t lev = 0; lev < levels; ++lev) {
      std::copy_n(src + lev * w, w, mean.data() + lev * n2 + b);
      std::copy_n(src + (levels + lev) * w, w, spread.data() + lev * n2 + b);
    }
  }
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

namespace {
// Rank 0's forecast-model state to every rank.
void broadcast_state(const Comm& comm, ModelState& st) {
  const int rank = comm.rank();
  const auto bcast_string = [&](std::string& v) {
    std::uint64_t len = v.size();
    comm.bcast(&len, 1, MPI_UINT64_T, 0);
    v.resize(len);
    comm.bcast(v.data(), static_cast<int>(len), MPI_CHAR, 0);
  };
  const auto bcast_map = [&](auto& map, MPI_Datatype type) {
    std::uint64_t count = map.size();
    comm.bcast(&count, 1, MPI_UINT64_T, 0);
    auto it = map.begin();
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string name = rank == 0 ? it->first : std::string();
      bcast_string(name);
      auto& values = map[name];
      std::uint64_t len = values.size();
      comm.bcast(&len, 1, MPI_UINT64_T, 0);
      values.resize(len);
      comm.bcast(values.data(), static_cast<int>(len), type, 0);
      if (rank == 0) ++it;
    }
  };
  bcast_map(st.arrays, MPI_FLOAT);
  bcast_map(st.doubles, MPI_DOUBLE);
  std::uint64_t count = st.attributes.size();
  comm.bcast(&count, 1, MPI_UINT64_T, 0);
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

const config::Config& checked(const config::Config& cfg) {
  if (cfg.model.precision != config::Precision::kFloat64) {
    throw config::ConfigError("model.precision = \"float32\": cycling runs in float64");
  }
  return cfg;
}
}  // namespace

CycleEngine::CycleEngine(Comm comm, const config::Config& cfg, device::Backend backend,
                         bool prepare_forecasts)
    : comm_(comm),
      cfg_(checked(cfg)),
      backend_(backend),
      threads_(resolve_threads(comm, cfg_.model.threads)),
      ensemble_(comm, cfg_.ensemble.members, cfg_.model.grid()),
      // With Backend::kGpu the ensemble lives on the device between the stages (docs/gpu.md).
      buffer_(make_ensemble_buffer(comm, ensemble_, backend)) {
  // The filters' OpenMP loops (and Eigen's, for the surrogate) take the same share of the
  // node as the ensemble steps; thread counts do not change any result.
  omp_set_num_threads(threads_.threads);
  if (ensemble_.rank() == 0) spdlog::info("{}", threads_.reason);
  model_ = make_forecast_model(cfg_, backend_, threads_.threads, comm_);
  if (prepare_forecasts) model_->prepare();
  buffer_->take_transfer_bytes();
}

CycleEngine::~CycleEngine() = default;

std::string CycleEngine::model_identity() const {
  return model_->identity();
}

std::uint64_t CycleEngine::surrogate_version() const {
  return model_->version();
}

void CycleEngine::adapt_surrogate() {
  if (!pending_) return;
  const Pending& p = *pending_;
  AnalysisFeedback fb;
  fb.cycle = p.cycle;
  fb.observations = &p.space;
  fb.analysis_mean = p.mean;
  fb.rank = ensemble_.rank();
  fb.ranks = ensemble_.ranks();
  // Sums on rank 0 and broadcast: every rank then holds the same bits.
  if (ensemble_.ranks() > 1) {
    fb.sum_over_ranks = [this](std::span<float> g) {
      comm_.reduce_in_place(g.data(), static_cast<int>(g.size()), MPI_FLOAT, MPI_SUM, 0);
      comm_.bcast(g.data(), static_cast<int>(g.size()), MPI_FLOAT, 0);
    };
  }
  model_->after_analysis(fb);
  pending_.reset();
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
  const bool climatology = cfg_.ensemble.initial == config::InitialEnsemble::kClimatology;
  if (climatology &&
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
    if (climatology) {
      // Member m: nature state clim - m * stride instead of the shared state (same noise).
      const long stride = cfg_.ensemble.climatology_stride;
      const auto shared = nature.state(clim);
      for (int m = 0; m < k; ++m) {
        const auto own = nature.state(clim - static_cast<std::size_t>(m * stride));
        for (std::size_t e = 0; e < n; ++e)
          initial[m * n + e] += own[e] - shared[e];
      }
    }
    start_from_members(initial);
  } else {
    start_from_members({});
  }
}

void CycleEngine::start_from_members(std::span<const double> members) {
  buffer_->host_members();  // the host copy becomes the current one
  ensemble_.scatter(members, 0);
  filters_.clear();
  pending_.reset();
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
      shape.l96 = c.l96;
      io::check_compatible(shape, cfg_.model.field_model(), path);
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
  comm_.bcast(&len, 1, MPI_INT, 0);
  if (len > 0) {
    error.resize(static_cast<std::size_t>(len));
    comm_.bcast(error.data(), len, MPI_CHAR, 0);
    throw std::runtime_error(error);
  }
  start_from_members(c.q);
  std::int64_t cycle = c.cycle;
  comm_.bcast(&cycle, 1, MPI_INT64_T, 0);
  // EnSF's spread target travels with the checkpoint (every rank keeps its own slab of it).
  int has_spread = c.ensf_initial_spread.empty() ? 0 : 1;
  comm_.bcast(&has_spread, 1, MPI_INT, 0);
  if (has_spread) {
    std::vector<double> spread(ensemble_.state_size());
    if (ensemble_.rank() == 0) spread = c.ensf_initial_spread;
    comm_.bcast(spread.data(), static_cast<int>(spread.size()), MPI_DOUBLE, 0);
    filter(filters::FilterKind::kEnsf).restore_carried_state(std::move(spread));
  }
  ModelState st{std::move(c.surrogate_online.arrays), std::move(c.surrogate_online.doubles),
                std::move(c.surrogate_online.attributes)};
  broadcast_state(comm_, st);
  model_->restore_state(st);
  return cycle;
}

io::Checkpoint CycleEngine::checkpoint(std::int64_t cycle, double time_seconds) const {
  io::Checkpoint c;
  c.params = cfg_.model.sqg;
  c.l96 = cfg_.model.field_model().l96;
  c.cycle = cycle;
  c.time_seconds = time_seconds;
  c.members = ensemble_.members();
  c.config_hash = config::science_hash(cfg_);
  buffer_->sync_host();  // the device copy may be the current one
  c.q = ensemble_.gather(0);
  // The model's state is identical on every rank: saved from rank 0.
  if (ensemble_.rank() == 0) {
    ModelState st = model_->save_state();
    c.surrogate_online.arrays = std::move(st.arrays);
    c.surrogate_online.doubles = std::move(st.doubles);
    c.surrogate_online.attributes = std::move(st.attributes);
  }
  // Each element of the spread target is set on exactly one rank (NaN elsewhere); spreads are
  // >= 0, so a MAX over ranks with NaN sent as -1 assembles it.
  int has = 0;
  std::vector<double> spread;
  if (auto it = filters_.find(filters::FilterKind::kEnsf); it != filters_.end()) {
    spread = it->second->carried_state();
    has = spread.empty() ? 0 : 1;
  }
  comm_.allreduce_in_place(&has, 1, MPI_INT, MPI_MAX);
  if (has) {
    spread.resize(ensemble_.state_size(), std::numeric_limits<double>::quiet_NaN());
    for (auto& v : spread)
      if (std::isnan(v)) v = -1.0;
    comm_.reduce_in_place(spread.data(), static_cast<int>(spread.size()), MPI_DOUBLE, MPI_MAX, 0);
    for (auto& v : spread)
      if (v < 0) v = std::numeric_limits<double>::quiet_NaN();
    if (ensemble_.rank() == 0) c.ensf_initial_spread = std::move(spread);
  }
  return c;
}

double CycleEngine::forecast_cycle() {
  const auto t0 = Clock::now();
  model_->advance(*buffer_, cfg_.experiment.cycle_hours * 3600.0);
  return seconds_since(t0);
}

void require_finite_analysis(const Comm& comm, const DistributedEnsemble& ens,
                             const std::string& what, std::span<const double> post_cols,
                             std::span<const double> packed) {
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
      const std::size_t lw = ens.levels() * w;
      const std::size_t m = i / lw, r = i % lw, lev = r / w, j = r % w;
      first[0] = std::min<unsigned long long>(first[0], m * n + lev * n2 + c0 + j);
    }
    for (std::size_t i = 0; i < packed.size(); ++i) {
      if (std::isfinite(packed[i])) continue;
      ++counts[1];
      const std::size_t lev = (i / w) % ens.levels(), j = i % w;
      first[1] = std::min<unsigned long long>(first[1], lev * n2 + c0 + j);
    }
  }
  comm.allreduce_in_place(counts, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM);
  if (counts[0] == 0 && counts[1] == 0) return;  // the same on every rank
  comm.allreduce_in_place(first, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN);
  const auto where = [&](unsigned long long e) {
    const std::size_t gn = static_cast<std::size_t>(ens.grid().nx);
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

filters::EnsembleFilter& CycleEngine::filter(filters::FilterKind kind) {
  auto it = filters_.find(kind);
  if (it == filters_.end())
    it = filters_.emplace(kind, filters::make_filter(kind, cfg_.letkf, cfg_.ensf, backend_)).first;
  return *it->second;
}

CycleOutcome CycleEngine::analyse(const std::string& filter_name, const io::ObservationSet& set,
                                  std::uint64_t cycle, double time_seconds,
                                  std::span<const double> truth, bool gather_members) {
  return analyse(filters::filter_kind_from_string(filter_name), set, cycle, time_seconds, truth,
                 gather_members);
}

CycleOutcome CycleEngine::analyse(filters::FilterKind kind, const io::ObservationSet& set,
                                  std::uint64_t cycle, double time_seconds,
                                  std::span<const double> truth, bool gather_members) {
  const int k = ensemble_.members();
  const std::size_t n = ensemble_.state_size();
  const double s = cfg_.model.kelvin_per_pv();
  filters::EnsembleFilter& analysis = filter(kind);
  EnsembleBuffer& ens = *buffer_;

  CycleOutcome out;
  CycleRecord& rec = out.record;
  rec.cycle = static_cast<int>(cycle);
  rec.time_seconds = time_seconds;
  const auto t0 = Clock::now();
  // Validation, then the ingest plausibility with the server's limits (qc.*): an observation
  // the server would have refused is refused here too (obs/plausibility.hpp).
  std::vector<obs::Rejection> rejected;
  obs::ObservationSpace space(
      ensemble_.grid(), s, set,
      obs::PlausibilityLimits{cfg_.qc.max_abs_kelvin, cfg_.qc.max_error_sd_kelvin}, &rejected);
  std::size_t invalid = 0;
  for (auto& r : rejected) {
    if (r.kind == "invalid") {
      ++invalid;
    } else {
      out.refused.push_back(std::move(r));
    }
  }
  // What this filter cannot assimilate is left out and counted as rejected.
  const std::vector<std::size_t> usable = analysis.usable(space);
  const std::size_t dropped = space.size() - usable.size();
  if (dropped > 0) space = space.subset(usable);
  rec.observations_rejected = static_cast<double>(invalid + dropped);
  rec.shock_sd = set.shock_sd.empty() ? 0.0 : set.shock_sd.front();
  if (!set.id.empty()) {
    out.first_observation_id = *std::min_element(set.id.begin(), set.id.end());
    out.last_observation_id = *std::max_element(set.id.begin(), set.id.end());
  }

  // h(x_b) and its moments per observation (2 values per observation on the host): the
  // gross-error check, the innovation diagnostics and the inflation factor. Every rank holds
  // all of h(x), so every rank takes the same decisions.
  double* hx = ens.observe_all(space);
  std::vector<double> moments = ens.observation_moments(space.size());
  if (space.size() > 0) {
    obs::GrossErrorResult qc = obs::gross_error_check(space, moments, cfg_.qc.gross_error_sigmas);
    if (!qc.refused.empty()) {
      moments = obs::select_moments(moments, qc.kept);
      space = space.subset(qc.kept);
      hx = ens.observe_all(space);  // the kept observations' h(x): the same values
    }
    for (auto& r : qc.refused)
      out.refused.push_back(std::move(r));
  }
  const std::size_t po = space.size();
  double* cols = ens.to_columns();
  const auto [c0, c1] = ensemble_.columns();
  const std::size_t dim = ensemble_.levels() * (c1 - c0);
  std::vector<double> mean_b, spread_b;
  const std::vector<double> local_b = ens.column_mean_spread(cols);
  gather_mean_spread(ensemble_, local_b, comm_, mean_b, spread_b);
  // Prior inflation (filters/inflation.hpp) after the background diagnostics, which stay the
  // forecast's own.
  const filters::InflationEstimate inflation =
      filters::estimate_inflation_from_moments(cfg_.inflation, moments, space);
  if (inflation.factor != 1.0) {
    analysis.see_uninflated_spread(c0, c1, ensemble_.columns_total(), ensemble_.levels(),
                                   std::span<const double>(local_b).subspan(dim));
    ens.inflate(cols, k, dim, inflation.factor);
    if (po > 0) ens.inflate(hx, k, po, inflation.factor);
  }
  const filters::ColumnBlock block{ens.memory(), k, c0, c1, ensemble_.levels(), cols, cols};
  filters::Reducer reducer;
  if (ensemble_.ranks() > 1) {
    reducer.max = [this](std::span<double> v) {
      comm_.allreduce_in_place(v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX);
    };
    reducer.sum = [this](std::span<double> v) {
      comm_.allreduce_in_place(v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM);
    };
  }
  const filters::AnalysisDiagnostics fd =
      analysis.analyse(block, {hx, moments}, space, {cfg_.experiment.seed, cycle}, reducer);
  const std::vector<double> local_a = ens.column_mean_spread(cols);
  gather_mean_spread(ensemble_, local_a, comm_, out.mean, out.spread);
  // Never a non-finite analysis: decided on every rank together, before the ensemble takes
  // the posterior (in host memory it keeps the prior when this throws).
  require_finite_analysis(
      comm_, ensemble_,
      "cycle " + std::to_string(cycle) + ", filter " + std::string(analysis.name()),
      ens.host_columns(cols), local_a);
  ens.from_columns(cols);
  std::vector<double> posterior;
  if (gather_members) {
    ens.sync_host();
    posterior = ensemble_.gather(0);
  }
  rec.observations_used = static_cast<double>(po);
  std::sort(out.refused.begin(), out.refused.end(),
            [](const obs::Rejection& a, const obs::Rejection& b) { return a.index < b.index; });
  for (const auto& r : out.refused)
    ++out.refused_by_reason[r.kind];
  rec.observations_refused_qc = static_cast<double>(out.refused.size());
  // Residency (docs/gpu.md): bytes copied between host and device since the previous
  // analysis (this cycle's forecast and analysis), summed over the ranks that use a device.
  unsigned long long moved[2] = {0, 0};
  if (ens.memory() == filters::MemorySpace::kDevice) {
    moved[0] = ens.take_transfer_bytes();
    moved[1] = 1;
  }
  comm_.reduce_in_place(moved, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0);
  if (model_->wants_analysis()) {
    // Every rank runs the model's hook: give them the analysis mean and the observations.
    Pending pending{cycle, space, std::vector<double>(n)};
    if (ensemble_.rank() == 0) pending.mean = out.mean;
    comm_.bcast(pending.mean.data(), static_cast<int>(n), MPI_DOUBLE, 0);
    pending_ = std::move(pending);
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
  // Innovations d = y - mean_i h(x_b^(i)) of the uninflated background (from the filter's
  // entry point); consistency = E[d^2] / (HPH^T + R), both averaged over the observations (1
  // when the ensemble spread is right).
  rec.innovation_mean = fd.innovation_mean;
  rec.innovation_rms = fd.innovation_rms;
  rec.consistency_ratio = filters::innovation_stats(moments, space).consistency;
  // The stage ends with the products: mean, spread and the diagnostics (rank 0's view).
  rec.seconds_analysis = seconds_since(t0);
  auto& diag = out.diagnostics;
  const std::string units = cfg_.model.diagnostic_units();
  if (known) {
    diag["rmse_background"] = {rec.rmse_background_K, units, "background mean RMSE vs truth"};
    diag["rmse_analysis"] = {rec.rmse_analysis_K, units, "analysis mean RMSE vs truth"};
  }
  diag["spread_background"] = {rec.spread_background_K, units, "background ensemble spread"};
  diag["spread_analysis"] = {rec.spread_analysis_K, units, "analysis ensemble spread"};
  // In the observations' unit; a window that mixes operators sums values of several units
  // (docs/file-formats.md, "Units").
  const std::string_view obs_units = obs::common_units(space.op());
  const bool mixed = obs_units == obs::kMixedUnits;
  diag["innovation_mean"] = {
      rec.innovation_mean, std::string(mixed ? "1" : obs_units),
      mixed ? "mean of y - H(x_b), each in its operator's unit" : "mean of y - H(x_b)"};
  diag["innovation_rms"] = {
      rec.innovation_rms, std::string(mixed ? "1" : obs_units),
      mixed ? "RMS of y - H(x_b), each in its operator's unit" : "RMS of y - H(x_b)"};
  diag["consistency_ratio"] = {rec.consistency_ratio, "1",
                               "mean innovation^2 / (HPH^T + R): 1 when consistent"};
  diag["observations_used"] = {rec.observations_used, "1", "observations assimilated"};
  diag["observations_rejected"] = {rec.observations_rejected, "1", "observations refused"};
  diag["observations_refused_qc"] = {static_cast<double>(out.refused.size()), "1",
                                     "observations refused by quality control before the filter "
                                     "(qc.*: implausible, gross error against the background)"};
  diag["shock_sd"] = {rec.shock_sd, "m s-1", "std of the shock added to the truth (0: none)"};
  diag["seconds_analysis"] = {rec.seconds_analysis, "s", "wall time of the analysis stage"};
  for (const auto& [name, value] : fd.extra)
    diag[name] = {value, "1", name};
  if (moved[1] > 0) {
    diag["device_host_bytes"] = {static_cast<double>(moved[0]), "byte",
                                 "bytes copied between host and device since the previous "
                                 "analysis, summed over the ranks (docs/gpu.md, residency)"};
  }
  if (cfg_.inflation.mode != filters::InflationMode::kNone) {
    diag["inflation_factor"] = {inflation.factor, "1",
                                "multiplicative prior inflation applied before the filter"};
  }
  model_->add_diagnostics(diag);
  if (gather_members) out.members = std::move(posterior);
  return out;
}

}  // namespace rtda::worker
