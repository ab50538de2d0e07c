#include "device_ensemble.hpp"

#include <stdexcept>
#include <string>

#include "hip/cycle_hip.hpp"
#include "hip/letkf_hip.hpp"

namespace rtda::worker {

namespace {

void check(int err, const char* what) {
  if (err != MPI_SUCCESS) throw std::runtime_error(std::string("MPI error in ") + what);
}

}  // namespace

DeviceEnsemble::DeviceEnsemble(MPI_Comm comm, DistributedEnsemble& ensemble)
    : comm_(comm),
      host_(ensemble),
      states_(static_cast<std::size_t>(ensemble.local_members()) * ensemble.state_size(),
              "the device ensemble") {
  if (host_.ranks() > 1) {
    columns_ = hip::detail::DeviceArray<double>(
        static_cast<std::size_t>(host_.members()) * 2 * host_.local_columns(),
        "the ensemble's columns");
    staging_ = hip::detail::DeviceArray<double>(states_.size(), "the transposes' staging buffer");
  }
}

void DeviceEnsemble::to_device() {
  if (current_ != Current::kHost) return;
  states_.upload(host_.local_states().data());
  current_ = Current::kBoth;
}

void DeviceEnsemble::to_host() {
  if (current_ != Current::kDevice) return;
  hip::detail::copy_to_host(host_.local_states().data(), states_.get(),
                            states_.size() * sizeof(double));
  current_ = Current::kBoth;
}

void DeviceEnsemble::alltoall(const std::vector<double>& send, const std::vector<int>& send_counts,
                              const std::vector<int>& send_displs, std::vector<double>& recv,
                              const std::vector<int>& recv_counts,
                              const std::vector<int>& recv_displs, const char* what) {
  check(MPI_Alltoallv(send.data(), send_counts.data(), send_displs.data(), MPI_DOUBLE, recv.data(),
                      recv_counts.data(), recv_displs.data(), MPI_DOUBLE, comm_),
        what);
}

double* DeviceEnsemble::to_columns() {
  if (current_ == Current::kHost)
    throw std::logic_error(
        "DeviceEnsemble::to_columns: the device copy is stale (to_device first)");
  const int ranks = host_.ranks();
  if (ranks == 1) return states_.get();
  // Pack on the device in DistributedEnsemble::to_columns' send order, then stage the
  // all-to-all through the host.
  const int grid = host_.grid_n();
  const std::size_t my_k = static_cast<std::size_t>(host_.local_members());
  hip::cycle::pack_columns(states_.get(), my_k, grid, ranks, staging_.get());
  host_send_.resize(staging_.size());
  hip::detail::copy_to_host(host_send_.data(), staging_.get(), staging_.size() * sizeof(double));
  const std::size_t u = static_cast<std::size_t>(ranks);
  std::vector<int> send_counts(u), send_displs(u), recv_counts(u), recv_displs(u);
  for (int d = 0; d < ranks; ++d) {
    const auto [c0, c1] = column_range(grid, ranks, d);
    send_displs[static_cast<std::size_t>(d)] = static_cast<int>(my_k * 2 * c0);
    send_counts[static_cast<std::size_t>(d)] = static_cast<int>(my_k * 2 * (c1 - c0));
  }
  const std::size_t my_cols = host_.local_columns();
  int offset = 0;
  for (int s = 0; s < ranks; ++s) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(host_.members()), ranks, s);
    recv_displs[static_cast<std::size_t>(s)] = offset;
    recv_counts[static_cast<std::size_t>(s)] = static_cast<int>((m1 - m0) * 2 * my_cols);
    offset += recv_counts[static_cast<std::size_t>(s)];
  }
  host_recv_.resize(static_cast<std::size_t>(offset));
  alltoall(host_send_, send_counts, send_displs, host_recv_, recv_counts, recv_displs,
           "DeviceEnsemble::to_columns");
  columns_.upload(host_recv_.data());
  return columns_.get();
}

void DeviceEnsemble::from_columns(const double* cols) {
  const int ranks = host_.ranks();
  if (ranks == 1) {
    if (cols != states_.get())
      hip::detail::copy_on_device(states_.get(), cols, states_.size() * sizeof(double));
    device_written();
    return;
  }
  const int grid = host_.grid_n();
  const std::size_t my_k = static_cast<std::size_t>(host_.local_members());
  const std::size_t my_cols = host_.local_columns();
  host_send_.resize(columns_.size());
  hip::detail::copy_to_host(host_send_.data(), cols, columns_.size() * sizeof(double));
  const std::size_t u = static_cast<std::size_t>(ranks);
  std::vector<int> send_counts(u), send_displs(u), recv_counts(u), recv_displs(u);
  // To rank d the block of d's members (contiguous in the column layout).
  for (int d = 0; d < ranks; ++d) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(host_.members()), ranks, d);
    send_displs[static_cast<std::size_t>(d)] = static_cast<int>(m0 * 2 * my_cols);
    send_counts[static_cast<std::size_t>(d)] = static_cast<int>((m1 - m0) * 2 * my_cols);
  }
  for (int s = 0; s < ranks; ++s) {
    const auto [c0, c1] = column_range(grid, ranks, s);
    recv_displs[static_cast<std::size_t>(s)] = static_cast<int>(my_k * 2 * c0);
    recv_counts[static_cast<std::size_t>(s)] = static_cast<int>(my_k * 2 * (c1 - c0));
  }
  host_recv_.resize(staging_.size());
  alltoall(host_send_, send_counts, send_displs, host_recv_, recv_counts, recv_displs,
           "DeviceEnsemble::from_columns");
  staging_.upload(host_recv_.data());
  hip::cycle::unpack_columns(staging_.get(), my_k, grid, ranks, states_.get());
  device_written();
}

hip::detail::DeviceArray<double> DeviceEnsemble::observe_all(const obs::ObservationSpace& space) {
  using hip::detail::DeviceArray;
  if (current_ == Current::kHost)
    throw std::logic_error(
        "DeviceEnsemble::observe_all: the device copy is stale (to_device first)");
  const std::size_t p = space.size();
  const int my_k = host_.local_members();
  const std::size_t k = static_cast<std::size_t>(host_.members());
  DeviceArray<double> mine(static_cast<std::size_t>(my_k) * p, "h(x) of this rank's members");
  hip::observe_on_device(space, states_.get(), host_.state_size(), my_k, mine.get());
  const int ranks = host_.ranks();
  if (ranks == 1) return mine;
  // Every rank needs every member's h(x) (the LETKF's Y_b): exchanged through the host.
  const std::vector<double> local = mine.download();
  const std::size_t u = static_cast<std::size_t>(ranks);
  std::vector<int> counts(u), displs(u);
  for (int s = 0; s < ranks; ++s) {
    const auto [m0, m1] = block_range(k, ranks, s);
    counts[static_cast<std::size_t>(s)] = static_cast<int>((m1 - m0) * p);
    displs[static_cast<std::size_t>(s)] = static_cast<int>(m0 * p);
  }
  std::vector<double> all(k * p);
  check(MPI_Allgatherv(local.data(), static_cast<int>(local.size()), MPI_DOUBLE, all.data(),
                       counts.data(), displs.data(), MPI_DOUBLE, comm_),
        "DeviceEnsemble::observe_all");
  return DeviceArray<double>(all, "h(x) of every member");
}

}  // namespace rtda::worker
