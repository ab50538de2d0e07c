// The forecast model seam: what advances a worker rank's members between analyses. The cycle
// engine holds one ForecastModel and never asks which one runs; `make_forecast_model` is
// the one place that reads model.kind.
//
// Implementations: the SQG physics (FFTW, on the host), the ViT surrogate on the host
// (Eigen) and the ViT surrogate on the device (kernels/hip), the latter two with the optional
// online adaptation of surrogate/online.hpp, and the Lorenz-96 toy model (host) on its ring.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "comm.hpp"
#include "config/config.hpp"
#include "ensemble_buffer.hpp"
#include "hip/device.hpp"
#include "io/archive.hpp"
#include "obs/observation_space.hpp"

namespace rtda::worker {

// State a model carries across cycles that a restart must restore (the checkpoint's
// "surrogate_online" group): named float and double arrays and string attributes. Empty for
// a stateless model. Identical on every rank.
struct ModelState {
  std::map<std::string, std::vector<float>> arrays;
  std::map<std::string, std::vector<double>> doubles;
  std::map<std::string, std::string> attributes;
  bool empty() const { return arrays.empty() && doubles.empty() && attributes.empty(); }
};

// What an analysis tells the model afterwards (online adaptation), on every rank.
struct AnalysisFeedback {
  std::uint64_t cycle = 0;
  const obs::ObservationSpace* observations = nullptr;  // those the analysis assimilated
  std::span<const double> analysis_mean;                // [level][y][x]
  int rank = 0, ranks = 1;
  // Sums a float buffer over the ranks in place, the same bits on every rank.
  std::function<void(std::span<float>)> sum_over_ranks;
};

class ForecastModel {
 public:
  virtual ~ForecastModel() = default;
  // What the lineage of an analysis names: "sqg", "vit:<weights>" (+ "+online.v<N>").
  virtual std::string identity() const = 0;
  // Forecasts are whole multiples of this length, s.
  virtual double step_seconds() const = 0;
  // Whatever the first forecast would set up (the SQG model's FFT plans), now, so that a
  // configuration problem surfaces at start. Collective. A tool that only analyses skips it.
  virtual void prepare() {}
  // Advances this rank's members by `seconds` (a whole multiple of step_seconds(); 0 leaves
  // them unchanged). Throws std::invalid_argument otherwise. Called by every rank.
  virtual void advance(EnsembleBuffer& members, double seconds) = 0;

  // Checkpointed state (rank 0 saves; every rank restores the same state).
  virtual ModelState save_state() const { return {}; }
  virtual void restore_state(const ModelState&) {}
  // After each analysis (once published, in the service): whether the model wants the
  // analysis (then the engine broadcasts the mean), and the hook itself.
  virtual bool wants_analysis() const { return false; }
  virtual void after_analysis(const AnalysisFeedback&) {}
  // Version of the state that makes forecasts (0 = as configured; surrogate weights).
  virtual std::uint64_t version() const { return 0; }
  // Model diagnostics of the analysis archive (every cycle the same names).
  virtual void add_diagnostics(std::map<std::string, io::Diagnostic>&) const {}
};

// The number of whole steps of `step_s` in `seconds` (std::invalid_argument when it is not a
// whole multiple, to 1e-9 relative).
int whole_steps(double seconds, double step_s, const std::string& model);

// model.kind = "sqg" | "vit" | "lorenz96"; Backend::kGpu runs the ViT on the device (the SQG
// physics stays on the host). `threads`: the OpenMP threads of this rank; `comm`: the worker group
// (the SQG model plans its FFTs with rank 0's wisdom at the first forecast).
std::unique_ptr<ForecastModel> make_forecast_model(const config::Config& cfg,
                                                   device::Backend backend, int threads,
                                                   const Comm& comm = Comm::single());

// Every rank plans its FFTs with the same algorithms: rank 0 plans (with the wisdom file when
// there is one) and broadcasts its wisdom before the others plan. Collective.
void share_fft_wisdom(const Comm& comm, const config::Config& cfg);

}  // namespace rtda::worker
