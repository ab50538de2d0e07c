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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "device_ensemble.hpp"
#include "distributed_ensemble.hpp"
#include "filters/inflation.hpp"
#include "hip/device.hpp"
#include "io/archive.hpp"
#include "io/checkpoint.hpp"
#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "obs/observation_space.hpp"
#include "slab_analysis.hpp"
#include "sqg/sqg_model.hpp"

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
  // Collective: plans the FFTs the same way on every rank (rank 0's wisdom). With
  // Backend::kHip the filters and the surrogate's forward pass run on this rank's HIP device
  // (device::choose has selected it), with the ensemble resident there between the stages;
  // the SQG physics stays on the CPU (FFTW).
  CycleEngine(MPI_Comm comm, const config::Config& cfg,
              device::Backend backend = device::Backend::kCpu);
  device::Backend backend() const { return backend_; }
  ~CycleEngine();

  const config::Config& config() const { return cfg_; }
  // "sqg", or "vit:<weights file>" (the lineage of published analyses).
  std::string model_identity() const;
  int rank() const { return ensemble_.rank(); }
  int ranks() const { return ensemble_.ranks(); }
  int members() const { return ensemble_.members(); }
  std::size_t state_size() const { return ensemble_.state_size(); }
  int steps_per_cycle() const { return steps_per_cycle_; }
  // model.threads as resolved for this rank (resolve_threads), and why.
  const ThreadChoice& threads() const { return threads_; }

  // The initial ensemble of science.md §2 (ensemble.* keys) around nature state
  // ensemble.climatology_index. Collective.
  void start_from_nature(const io::NatureRun& nature);
  // Collective; rank 0 reads `path`. Returns the checkpoint's cycle.
  std::int64_t start_from_checkpoint(const std::string& path);
  // Collective: the ensemble and filter state for a checkpoint (complete on rank 0). With
  // Backend::kHip it first brings the host copy of the ensemble up to date (a cache: the
  // ensemble itself does not change).
  io::Checkpoint checkpoint(std::int64_t cycle, double time_seconds) const;

  // Advances every member by one cycle length (the SQG model, or one step of the ViT surrogate
  // with model.kind = "vit", members batched). Every rank calls it.
  double forecast_cycle();

  // Analyses the current ensemble with `filter` ("letkf", "ensf", "none") and the
  // observations `obs` (identical on every rank). `truth` (rank 0; empty = unknown) gives RMSE
  // diagnostics. Collective. Before the filter: the plausibility rule (qc.max_abs_kelvin,
  // qc.max_error_sd_kelvin) and, with qc.gross_error_sigmas > 0, the gross-error check
  // (CycleOutcome::refused). After it: a member, mean or spread value that is NaN or inf on
  // any rank makes every rank throw std::runtime_error (cycle, filter, counts, first index);
  // the ensemble then keeps its prior (CPU path).
  CycleOutcome analyse(const std::string& filter, const io::ObservationSet& obs,
                       std::uint64_t cycle, double time_seconds, std::span<const double> truth,
                       bool gather_members);

  // With surrogate.online: the adaptation step after the last analysis (surrogate/online.hpp)
  // — scores the weights in use and the accepted ones on that cycle's observations, rolls
  // back or accepts, then trains on the replay buffer. Collective; call it after analyse()
  // (the service calls it once the analysis is published) and before the next forecast.
  // Does nothing without online adaptation or when already done for that analysis.
  void adapt_surrogate();
  // Version of the surrogate weights in use (0 = as loaded; always 0 without adaptation).
  std::uint64_t surrogate_version() const;

 private:
  SlabAnalysis& filter(const std::string& name);
  void keep_uninflated_spread_target(SlabAnalysis& analysis, std::span<const double> local_spread);
  void load_surrogate_weights();
  // Backend::kHip: the ViT step and the analysis with the ensemble resident on the device.
  void forecast_surrogate_on_device();
  struct DeviceStage {
    std::vector<double> mean_b, spread_b;  // background mean and spread (rank 0)
    std::vector<obs::Rejection> refused;   // by the gross-error check
    std::vector<double> hx_stats;          // filters::observation_moments of h(x_b)
    filters::InflationEstimate inflation;
    std::map<std::string, double> extra;
    std::vector<double> posterior;  // every member (rank 0), when asked for
  };
  // `space` loses the observations the gross-error check refuses.
  DeviceStage analyse_on_device(SlabAnalysis& analysis, obs::ObservationSpace& space,
                                std::uint64_t cycle, bool gather_members, CycleOutcome& out);

  MPI_Comm comm_;
  config::Config cfg_;
  device::Backend backend_;
  ThreadChoice threads_;  // before stepper_, which it sizes
  std::unique_ptr<sqg::SqgModel<double>> model_;
  DistributedEnsemble ensemble_;
  std::unique_ptr<sqg::EnsembleStepper<double>> stepper_;
  std::map<std::string, std::unique_ptr<SlabAnalysis>> filters_;
  int steps_per_cycle_;
  struct Surrogate;
  std::unique_ptr<Surrogate> surrogate_;  // model.kind = "vit"
  // Backend::kHip: the device mirror of ensemble_ (which copy is current, lazy syncs), and the
  // transfer counter's value at the end of the previous analysis.
  std::unique_ptr<DeviceEnsemble> device_;
  std::uint64_t device_bytes_mark_ = 0;
};

// Never a non-finite analysis. Collective: every rank throws std::runtime_error ("<what>: the
// analysis is not finite: ...", with the counts and the first index) when any rank's analysis
// columns (`post_cols`, [member][level][c - c0] of ens.columns(); may be empty) or packed
// analysis mean/spread (`packed`: [mean level 0 | 1, spread level 0 | 1] of those columns; may
// be empty) hold a NaN or inf; otherwise it returns on every rank.
void require_finite_analysis(MPI_Comm comm, const DistributedEnsemble& ens, const std::string& what,
                             std::span<const double> post_cols, std::span<const double> packed);

// Every rank plans its FFTs with the same algorithms: rank 0 plans (with the wisdom file when
// there is one) and broadcasts its wisdom before the others plan. Collective.
void share_fft_wisdom(MPI_Comm comm, const config::Config& cfg);

}  // namespace rtda::worker
