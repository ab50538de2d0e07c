// This rank's ensemble where it lives — host memory, or a GPU's with a host mirror — and the
// operations one cycle applies to it. The cycle's forecast (ForecastModel) and analysis
// (CycleEngine::analyse) are written once over this interface; the host and the device
// implementation differ only in where each operation computes.
//
// Layouts: members are this rank's forecast members ([member][level][y][x], as
// DistributedEnsemble::local_states); columns are every member's values of this rank's grid
// columns ([member][level][c - c0], DistributedEnsemble::to_columns); h(x) is [member][obs]
// for every member and observation, the same on every rank.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "distributed_ensemble.hpp"
#include "filters/ensemble_filter.hpp"
#include "hip/device.hpp"

namespace rtda::worker {

class EnsembleBuffer {
 public:
  virtual ~EnsembleBuffer() = default;
  virtual filters::MemorySpace memory() const = 0;
  DistributedEnsemble& ensemble() { return ens_; }
  const DistributedEnsemble& ensemble() const { return ens_; }

  // The members on the host, current; the caller may write them (the device copy is then
  // stale). For the CPU forecast models, checkpoints, gathers and starts.
  virtual std::span<double> host_members() = 0;
  // The host copy is current (a cache refresh before reading it through ensemble()).
  virtual void sync_host() {}
  // The members on the device, current, for a device forecast that writes them; only with
  // memory() == kDevice (std::logic_error otherwise).
  virtual double* device_members();

  // h(x) of every member for every observation on every rank, in memory(); valid until the
  // next call. Collective.
  virtual double* observe_all(const obs::ObservationSpace& space) = 0;
  // observation_moments of the last observe_all (host: [mean | variance] per observation).
  virtual std::vector<double> observation_moments(std::size_t observations) = 0;
  // The columns of this rank, in memory(), for an analysis in place. Collective.
  virtual double* to_columns() = 0;
  // This rank's packed [mean level 0 | 1, spread level 0 | 1] of `cols` (host).
  virtual std::vector<double> column_mean_spread(const double* cols) = 0;
  // values ([member][stride], in memory()) inflated about their member mean by `factor`.
  virtual void inflate(double* values, int members, std::size_t stride, double factor) = 0;
  // The members from the (analysed) columns. Collective.
  virtual void from_columns(const double* cols) = 0;
  // Host memory: the columns as a span, for the finiteness check of every value (device
  // buffers: empty; their non-finite values show in the column statistics).
  virtual std::span<const double> host_columns(const double* cols) const = 0;

  // Bytes copied between host and device since the last call (0 on the host).
  virtual std::uint64_t take_transfer_bytes() { return 0; }

 protected:
  explicit EnsembleBuffer(DistributedEnsemble& ens) : ens_(ens) {}
  DistributedEnsemble& ens_;
};

// `ensemble` must outlive the buffer. Backend::kGpu: the device mirror of
// device_ensemble.hpp (throws std::runtime_error without a usable device).
std::unique_ptr<EnsembleBuffer> make_ensemble_buffer(const Comm& comm,
                                                     DistributedEnsemble& ensemble,
                                                     device::Backend backend);

// The host implementation (memory() == kHost).
std::unique_ptr<EnsembleBuffer> make_host_buffer(DistributedEnsemble& ensemble);
// The device implementation (device_ensemble.cpp).
std::unique_ptr<EnsembleBuffer> make_device_buffer(const Comm& comm, DistributedEnsemble& ensemble);

// Ensemble mean and standard deviation (n-1) per element of a [member][n] array.
void mean_and_spread(std::span<const double> all, int members, std::size_t n,
                     std::vector<double>& mean, std::vector<double>& spread);

}  // namespace rtda::worker
