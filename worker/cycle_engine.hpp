// One assimilation cycle on the worker group: forecast the ensemble over a cycle, then analyse
// it with a filter and an observation set, with the diagnostics of the analysis archive. The
// offline experiment (`rtda experiment`) and the service's worker (`rtda-worker`) both run
// cycles through this class, so the same configuration, seed and observations give the same
// analyses bit for bit on either path.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "comm.hpp"
#include "config/config.hpp"
#include "distributed_ensemble.hpp"
#include "ensemble_buffer.hpp"
#include "filters/ensemble_filter.hpp"
#include "forecast_model.hpp"
#include "hip/device.hpp"
#include "io/archive.hpp"
#include "io/checkpoint.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/observation_space.hpp"

namespace rtda::worker {

struct CycleRecord {
  int cycle;
  double time_seconds;
  double rmse_background_K, rmse_analysis_K;  // NaN when the truth is unknown
  double spread_background_K, spread_analysis_K;
  double innovation_mean, innovation_rms, consistency_ratio;
  double observations_used, observations_rejected;
  double observations_refused_qc;  // refused by quality control (CycleOutcome::refused)
  double shock_sd;
  double seconds_forecast, seconds_analysis;
};

// What an analysis produced; the fields and diagnostics are on rank 0 only.
struct CycleOutcome {
  CycleRecord record{};
  std::vector<double> mean, spread;  // analysis, [level][y][x]
  std::vector<double> members;       // every analysis member, when asked for
  std::map<std::string, io::Diagnostic> diagnostics;
  std::uint64_t first_observation_id = 0, last_observation_id = 0;
  // Quality control before the filter (qc.*; on every rank): every observation refused, in
  // order of index = position in the observation set given to analyse(), with field
  // ("value", "error_sd", "innovation"), reason and kind ("implausible": the ingest rule of
  // obs/plausibility.hpp; "gross_error": obs/gross_error.hpp); and the count per kind.
  // These never reach the filter or the inflation estimate.
  std::vector<obs::Rejection> refused;
  std::map<std::string, std::uint64_t> refused_by_reason;
};

class CycleEngine {
 public:
  // Collective. The forecast model is make_forecast_model's for model.kind; with Backend::kGpu the
  // filters and the surrogate's forward pass run on this rank's HIP device (device::choose has
  // selected it), with the ensemble resident there between the stages; the SQG physics stays on the
  // CPU.
  // `prepare_forecasts`: set the model up now (ForecastModel::prepare: a bad FFT wisdom file
  // fails here); false for a tool that only analyses (rtda analyze).
  CycleEngine(Comm comm, const config::Config& cfg, device::Backend backend = device::Backend::kCpu,
              bool prepare_forecasts = true);
  device::Backend backend() const { return backend_; }
  ~CycleEngine();

  const config::Config& config() const { return cfg_; }
  // The forecast model's identity: "sqg", or "vit:<weights file>" (the lineage).
  std::string model_identity() const;
  int rank() const { return ensemble_.rank(); }
  int ranks() const { return ensemble_.ranks(); }
  int members() const { return ensemble_.members(); }
  std::size_t state_size() const { return ensemble_.state_size(); }
  // model.threads as resolved for this rank (resolve_threads), and why.
  const ThreadChoice& threads() const { return threads_; }

  // The initial ensemble of docs/science.md §2 (ensemble.* keys) around nature state
  // ensemble.climatology_index. Collective.
  void start_from_nature(const io::NatureRun& nature);
  // A given ensemble ([member][level][y][x], on rank 0; empty elsewhere). Collective.
  void start_from_members(std::span<const double> members);
  // Collective; rank 0 reads `path`. Returns the checkpoint's cycle.
  std::int64_t start_from_checkpoint(const std::string& path);
  // Collective: the ensemble, the filters' and the model's state for a checkpoint (complete
  // on rank 0).
  io::Checkpoint checkpoint(std::int64_t cycle, double time_seconds) const;

  // Advances every member by one cycle length with the forecast model. Every rank calls it.
  double forecast_cycle();

  // Analyses the current ensemble with `filter` and the observations `obs` (identical on
  // every rank). `truth` (rank 0; empty = unknown) gives RMSE diagnostics. Collective.
  // Before the filter: validation, the plausibility rule (qc.max_abs_kelvin,
  // qc.max_error_sd_kelvin), the filter's usable() observations (the rest counted as
  // rejected), the gross-error check with qc.gross_error_sigmas > 0 (CycleOutcome::refused)
  // and the prior inflation (inflation.*). After it: a member, mean or spread value that is
  // NaN or inf on any rank makes every rank throw std::runtime_error (cycle, filter, counts,
  // first index); the ensemble then keeps its prior (host memory).
  CycleOutcome analyse(filters::FilterKind filter, const io::ObservationSet& obs,
                       std::uint64_t cycle, double time_seconds, std::span<const double> truth,
                       bool gather_members);
  // The same with the filter's name ("letkf", "ensf", "none"; std::invalid_argument else).
  CycleOutcome analyse(const std::string& filter, const io::ObservationSet& obs,
                       std::uint64_t cycle, double time_seconds, std::span<const double> truth,
                       bool gather_members);

  // The forecast model's hook after the last analysis (ForecastModel::after_analysis: the
  // surrogate's online adaptation). Collective; call it after analyse() (the service calls
  // it once the analysis is published) and before the next forecast. Does nothing when the
  // model wants no analyses or when already done for that analysis.
  void adapt_surrogate();
  // Version of the forecast model's state in use (surrogate weights; 0 = as configured).
  std::uint64_t surrogate_version() const;

 private:
  filters::EnsembleFilter& filter(filters::FilterKind kind);

  Comm comm_;
  config::Config cfg_;
  device::Backend backend_;
  ThreadChoice threads_;
  DistributedEnsemble ensemble_;
  std::unique_ptr<EnsembleBuffer> buffer_;  // where ensemble_ lives (host or device)
  std::unique_ptr<ForecastModel> model_;
  std::map<filters::FilterKind, std::unique_ptr<filters::EnsembleFilter>> filters_;
  // What the last analysis leaves for ForecastModel::after_analysis.
  struct Pending {
    std::uint64_t cycle = 0;
    obs::ObservationSpace space;
    std::vector<double> mean;
  };
  std::optional<Pending> pending_;
};

// Never a non-finite analysis. Collective: every rank throws std::runtime_error ("<what>: the
// analysis is not finite: ...", with the counts and the first index) when any rank's analysis
// columns (`post_cols`, [member][level][c - c0] of ens.columns(); may be empty) or packed
// analysis mean/spread (`packed`: [mean level 0 | 1, spread level 0 | 1] of those columns; may
// be empty) hold a NaN or inf; otherwise it returns on every rank.
void require_finite_analysis(const Comm& comm, const DistributedEnsemble& ens,
                             const std::string& what, std::span<const double> post_cols,
                             std::span<const double> packed);

}  // namespace rtda::worker
