#include "device_ensemble.hpp"

#include <stdexcept>
#include <string>

#include "ensemble_buffer.hpp"
#include "hip/cycle_hip.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/letkf_hip.hpp"
#include "hip/observe_hip.hpp"

namespace rtda::worker {

namespace {

void check(int err, const char* what) {
  if (err != MPI_SUCCESS) throw std::runtime_error(std::string("MPI error in ") + what);
}

}  // namespace

DeviceEnsemble::DeviceEnsemble(const Comm& comm, DistributedEnsemble& ensemble)
    : comm_(comm),
      host_(ensemble),
      states_(static_cast<std::size_t>(ensemble.local_members()) * ensemble.state_size(),
              "the device ensemble") {
  // The device kernels (cycle_hip, letkf_hip, ensf_hip) index the SQG plane: 2 levels of
  // N x N points.
  const core::Grid& g = ensemble.grid();
  if (g.levels != 2 || g.nx != g.ny) {
    throw std::invalid_argument(
        "backend = \"hip\": the device path runs on the SQG grid (2 levels of N x N points); "
        "this model's grid has " +
        std::to_string(g.levels) + " level(s) of " + std::to_string(g.nx) + " x " +
        std::to_string(g.ny) + " (use the CPU backend)");
  }
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
  check(comm_.alltoallv(send.data(), send_counts.data(), send_displs.data(), MPI_DOUBLE,
                        recv.data(), recv_counts.data(), recv_displs.data()),
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
  const core::Grid& grid = host_.grid();
  const std::size_t my_k = static_cast<std::size_t>(host_.local_members());
  hip::cycle::pack_columns(states_.get(), my_k, grid.nx, ranks, staging_.get());
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
  const core::Grid& grid = host_.grid();
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
  hip::cycle::unpack_columns(staging_.get(), my_k, grid.nx, ranks, states_.get());
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
  check(comm_.allgatherv(local.data(), static_cast<int>(local.size()), MPI_DOUBLE, all.data(),
                         counts.data(), displs.data()),
        "DeviceEnsemble::observe_all");
  return DeviceArray<double>(all, "h(x) of every member");
}

namespace {

// EnsembleBuffer over the device mirror: every operation of the cycle on the device, with
// the CPU's per-element arithmetic (hip/cycle_hip.hpp).
class DeviceBuffer final : public EnsembleBuffer {
 public:
  DeviceBuffer(const Comm& comm, DistributedEnsemble& ens)
      : EnsembleBuffer(ens), mirror_(comm, ens), mark_(hip::detail::host_device_bytes()) {}
  filters::MemorySpace memory() const override { return filters::MemorySpace::kDevice; }

  std::span<double> host_members() override {
    mirror_.to_host();
    mirror_.host_written();
    return ens_.local_states();
  }
  void sync_host() override { mirror_.to_host(); }
  double* device_members() override {
    mirror_.to_device();
    mirror_.device_written();
    return mirror_.states();
  }

  double* observe_all(const obs::ObservationSpace& space) override {
    mirror_.to_device();
    hx_ = space.size() > 0 ? mirror_.observe_all(space) : hip::detail::DeviceArray<double>();
    return hx_.get();
  }
  std::vector<double> observation_moments(std::size_t p) override {
    if (p == 0) return {};
    hip::detail::DeviceArray<double> moments(2 * p, "h(x) statistics");
    hip::cycle::observation_mean_and_variance(hx_.get(), static_cast<std::size_t>(ens_.members()),
                                              p, moments.get());
    return moments.download();
  }
  double* to_columns() override {
    mirror_.to_device();
    return mirror_.to_columns();
  }
  std::vector<double> column_mean_spread(const double* cols) override {
    const std::size_t dim = 2 * ens_.local_columns();
    if (packed_.size() != 2 * dim)
      packed_ = hip::detail::DeviceArray<double>(2 * dim, "the ensemble's mean and spread");
    hip::cycle::mean_and_spread(cols, static_cast<std::size_t>(ens_.members()), dim, packed_.get());
    return packed_.download();
  }
  void inflate(double* values, int members, std::size_t stride, double factor) override {
    hip::cycle::inflate(values, members, stride, factor);
  }
  void from_columns(const double* cols) override { mirror_.from_columns(cols); }
  std::span<const double> host_columns(const double*) const override { return {}; }
  std::uint64_t take_transfer_bytes() override {
    const std::uint64_t now = hip::detail::host_device_bytes();
    const std::uint64_t moved = now - mark_;
    mark_ = now;
    return moved;
  }

 private:
  DeviceEnsemble mirror_;
  hip::detail::DeviceArray<double> hx_, packed_;
  std::uint64_t mark_;
};

}  // namespace

std::unique_ptr<EnsembleBuffer> make_device_buffer(const Comm& comm,
                                                   DistributedEnsemble& ensemble) {
  return std::make_unique<DeviceBuffer>(comm, ensemble);
}

}  // namespace rtda::worker
