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
  // diagnostics. Collective.
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
    std::vector<double> hx_stats;          // filters::observation_moments of h(x_b)
    filters::InflationEstimate inflation;
    std::map<std::string, double> extra;
    std::vector<double> posterior;  // every member (rank 0), when asked for
  };
  DeviceStage analyse_on_device(SlabAnalysis& analysis, const obs::ObservationSpace& space,
                                std::uint64_t cycle, bool gather_members, CycleOutcome& out);

  MPI_Comm comm_;
  config::Config cfg_;
  device::Backend backend_;
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

// Every rank plans its FFTs with the same algorithms: rank 0 plans (with the wisdom file when
// there is one) and broadcasts its wisdom before the others plan. Collective.
void share_fft_wisdom(MPI_Comm comm, const config::Config& cfg);

}  // namespace rtda::worker
