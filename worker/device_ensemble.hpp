// The device mirror of a worker rank's ensemble (--device hip; docs/gpu.md, "Residency"):
// this rank's forecast members ([member][level][y][x], as DistributedEnsemble::local_states)
// in HIP device memory, so that a cycle's stages — the ViT forecast, h(x), the filter and the
// ensemble statistics — run on the device without the ensemble crossing to the host.
//
// Two copies, one record of which is current. Whoever writes one copy says so
// (host_written / device_written); whoever reads one asks for it first (to_host / to_device),
// which copies only when that copy is stale. Every host consumer of the ensemble — the SQG
// physics forecast (the CPU's: Debian 12 has no rocFFT), checkpoints, gathering the members,
// the scatter of a start — goes through the host copy, so it syncs first.
//
// The analysis' column layout: with one rank the member layout of all members is the column
// layout of all columns ([member][level][c]), so to_columns() hands out the member array
// itself. With R ranks the two MPI_Alltoallv transposes of DistributedEnsemble run on host
// buffers (MPI here is not assumed GPU-aware): pack on the device, one copy down, MPI, one
// copy up (and the reverse, unpacking on the device), in the host transposes' order, so the
// columns are the CPU's bits.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "distributed_ensemble.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "obs/observation_space.hpp"

namespace rtda::worker {

class DeviceEnsemble {
 public:
  enum class Current { kHost, kDevice, kBoth };

  // Allocates the mirror on this rank's current HIP device; the host copy is current. Throws
  // std::runtime_error without a usable device (or without the HIP backend). `ensemble`
  // must outlive this object.
  DeviceEnsemble(const Comm& comm, DistributedEnsemble& ensemble);

  Current current() const { return current_; }
  // Copies the host members up when the device copy is stale (then both are current).
  void to_device();
  // Copies the device members down when the host copy is stale (then both are current).
  void to_host();
  // The host members were written (scatter, a CPU forecast): the device copy is stale.
  void host_written() { current_ = Current::kHost; }
  // The device members were written (a device forecast, the analysis): the host copy is stale.
  void device_written() { current_ = Current::kDevice; }

  // The members on the device (local_members × state, [member][level][y][x]); call
  // to_device() before reading them.
  double* states() { return states_.get(); }

  // Member layout -> column layout on the device: members × 2 × local columns,
  // [member][level][c − c0] (DistributedEnsemble::to_columns). With one rank this is states()
  // itself; with R ranks a device buffer filled through host staging. Needs to_device().
  double* to_columns();
  // Column layout -> member layout (the inverse; `cols` as returned by to_columns, possibly
  // analysed in place). Leaves the device copy current.
  void from_columns(const double* cols);

  // h(x) of every member for every observation, [member][obs], on the device of every rank:
  // each rank applies the operators to its members on the device (the shared arithmetic of
  // obs/observation_math.hpp); with R ranks the rows are exchanged through the host
  // (members × observations doubles, as DistributedEnsemble::observe_all). Needs to_device().
  hip::detail::DeviceArray<double> observe_all(const obs::ObservationSpace& space);

 private:
  void alltoall(const std::vector<double>& send, const std::vector<int>& send_counts,
                const std::vector<int>& send_displs, std::vector<double>& recv,
                const std::vector<int>& recv_counts, const std::vector<int>& recv_displs,
                const char* what);

  Comm comm_;
  DistributedEnsemble& host_;
  Current current_ = Current::kHost;
  hip::detail::DeviceArray<double> states_;   // local members × state
  hip::detail::DeviceArray<double> columns_;  // R > 1: members × 2 × local columns
  hip::detail::DeviceArray<double> staging_;  // R > 1: local members × state (send / receive)
  std::vector<double> host_send_, host_recv_;
};

}  // namespace rtda::worker
