#include "distributed_ensemble.hpp"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace rtda::worker {

ThreadChoice resolve_threads(int requested, const std::optional<std::string>& omp_num_threads,
                             int cores, int ranks_on_node, int allowed_cores) {
  ThreadChoice c;
  if (requested > 0) {
    c.threads = requested;
    c.reason = "model.threads = " + std::to_string(requested) + ": " + std::to_string(requested) +
               " thread" + (requested == 1 ? "" : "s") + " per rank";
    return c;
  }
  if (omp_num_threads) {
    // OpenMP's form: a list of positive integers, the first for the outermost level.
    const std::string& v = *omp_num_threads;
    const auto b = v.find_first_not_of(" \t");
    const auto e = b == std::string::npos ? b : v.find_first_of(" \t,", b);
    const std::string head = b == std::string::npos ? std::string() : v.substr(b, e - b);
    char* end = nullptr;
    const long n = head.empty() ? 0 : std::strtol(head.c_str(), &end, 10);
    if (n > 0 && end && *end == '\0') {
      c.threads = static_cast<int>(std::min<long>(n, 1 << 16));
      c.reason = "model.threads = 0: " + std::to_string(c.threads) + " thread" +
                 (c.threads == 1 ? "" : "s") + " per rank (OMP_NUM_THREADS = " + v + ")";
      return c;
    }
  }
  const int k = std::max(1, ranks_on_node), n = std::max(1, cores);
  c.threads = std::max(1, n / k);
  c.reason = "model.threads = 0: " + std::to_string(c.threads) + " thread" +
             (c.threads == 1 ? "" : "s") + " per rank (" + std::to_string(n) + " core" +
             (n == 1 ? "" : "s") + ", " + std::to_string(k) + " rank" + (k == 1 ? "" : "s") +
             " on this node)";
  if (allowed_cores > 0 && allowed_cores < c.threads) {
    c.threads = allowed_cores;
    c.reason = "model.threads = 0: " + std::to_string(c.threads) + " thread" +
               (c.threads == 1 ? "" : "s") + " per rank (" + std::to_string(n) + " core" +
               (n == 1 ? "" : "s") + ", " + std::to_string(k) + " rank" + (k == 1 ? "" : "s") +
               " on this node; this rank is bound to " + std::to_string(allowed_cores) + ")";
  }
  if (omp_num_threads) c.reason += "; OMP_NUM_THREADS = \"" + *omp_num_threads + "\" ignored";
  return c;
}

ThreadChoice resolve_threads(const Comm& comm, int requested) {
  // Collective in every case (the count of node-local ranks), so no rank skips it.
  const int on_node = comm.ranks_on_node();
  int allowed = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) allowed = CPU_COUNT(&set);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores <= 0) cores = allowed;
  const char* env = std::getenv("OMP_NUM_THREADS");
  return resolve_threads(requested, env ? std::optional<std::string>(env) : std::nullopt, cores,
                         on_node, allowed);
}

std::pair<std::size_t, std::size_t> block_range(std::size_t total, int parts, int index) {
  const std::size_t p = static_cast<std::size_t>(parts), i = static_cast<std::size_t>(index);
  const std::size_t base = total / p, extra = total % p;
  const std::size_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

std::pair<std::size_t, std::size_t> column_range(const core::Grid& grid, int parts, int index) {
  const auto [r0, r1] = block_range(static_cast<std::size_t>(grid.ny), parts, index);
  return {r0 * static_cast<std::size_t>(grid.nx), r1 * static_cast<std::size_t>(grid.nx)};
}

namespace {
void check(int err, const char* what) {
  if (err != MPI_SUCCESS) throw std::runtime_error(std::string("MPI error in ") + what);
}
}  // namespace

DistributedEnsemble::DistributedEnsemble(Comm comm, int members, const core::Grid& grid)
    : comm_(comm), rank_(comm.rank()), size_(comm.size()), members_(members), grid_(grid) {
  if (members < size_) {
    throw std::invalid_argument("ensemble.members = " + std::to_string(members) +
                                ": fewer members than MPI ranks (" + std::to_string(size_) + ")");
  }
  members_range_ = block_range(static_cast<std::size_t>(members), size_, rank_);
  columns_range_ = column_range(grid_, size_, rank_);
  states_.assign(static_cast<std::size_t>(local_members()) * state_size(), 0.0);
}

void DistributedEnsemble::to_columns(std::vector<double>& cols) const {
  const std::size_t nn = columns_total();
  const int my_k = local_members();
  // Send to rank d: for each local member and level, d's column range (contiguous).
  std::vector<int> send_counts(size_), send_displs(size_), recv_counts(size_), recv_displs(size_);
  std::vector<double> send;
  send.reserve(states_.size());
  for (int d = 0; d < size_; ++d) {
    const auto [c0, c1] = column_range(grid_, size_, d);
    send_displs[d] = static_cast<int>(send.size());
    for (int m = 0; m < my_k; ++m) {
      for (int lev = 0; lev < grid_.levels; ++lev) {
        const double* src = states_.data() + m * state_size() + lev * nn;
        send.insert(send.end(), src + c0, src + c1);
      }
    }
    send_counts[d] = static_cast<int>(send.size()) - send_displs[d];
  }
  // Receive from rank s: its members (a contiguous block of the member order), my columns.
  const std::size_t my_cols = local_columns();
  int offset = 0;
  for (int s = 0; s < size_; ++s) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(members_), size_, s);
    recv_displs[s] = offset;
    recv_counts[s] = static_cast<int>((m1 - m0) * levels() * my_cols);
    offset += recv_counts[s];
  }
  cols.assign(static_cast<std::size_t>(offset), 0.0);
  check(comm_.alltoallv(send.data(), send_counts.data(), send_displs.data(), MPI_DOUBLE,
                        cols.data(), recv_counts.data(), recv_displs.data()),
        "to_columns");
}

void DistributedEnsemble::from_columns(std::span<const double> cols) {
  const std::size_t nn = columns_total();
  const std::size_t my_cols = local_columns();
  if (cols.size() != static_cast<std::size_t>(members_) * levels() * my_cols) {
    throw std::invalid_argument("DistributedEnsemble::from_columns: size mismatch");
  }
  std::vector<int> send_counts(size_), send_displs(size_), recv_counts(size_), recv_displs(size_);
  // Send to rank d the block of d's members (already contiguous in `cols`).
  for (int d = 0; d < size_; ++d) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(members_), size_, d);
    send_displs[d] = static_cast<int>(m0 * levels() * my_cols);
    send_counts[d] = static_cast<int>((m1 - m0) * levels() * my_cols);
  }
  const int my_k = local_members();
  int offset = 0;
  for (int s = 0; s < size_; ++s) {
    const auto [c0, c1] = column_range(grid_, size_, s);
    recv_displs[s] = offset;
    recv_counts[s] = static_cast<int>(static_cast<std::size_t>(my_k) * levels() * (c1 - c0));
    offset += recv_counts[s];
  }
  std::vector<double> recv(static_cast<std::size_t>(offset));
  check(comm_.alltoallv(cols.data(), send_counts.data(), send_displs.data(), MPI_DOUBLE,
                        recv.data(), recv_counts.data(), recv_displs.data()),
        "from_columns");
  for (int s = 0; s < size_; ++s) {
    const auto [c0, c1] = column_range(grid_, size_, s);
    const double* src = recv.data() + recv_displs[s];
    for (int m = 0; m < my_k; ++m) {
      for (int lev = 0; lev < grid_.levels; ++lev) {
        double* dst = states_.data() + m * state_size() + lev * nn;
        std::copy(src, src + (c1 - c0), dst + c0);
        src += c1 - c0;
      }
    }
  }
}

std::vector<double> DistributedEnsemble::observe_all(const obs::ObservationSpace& space) const {
  const std::size_t p = space.size();
  std::vector<double> mine(static_cast<std::size_t>(local_members()) * p);
  for (int m = 0; m < local_members(); ++m) {
    space.apply(std::span<const double>(states_).subspan(m * state_size(), state_size()),
                std::span<double>(mine).subspan(m * p, p));
  }
  std::vector<int> counts(size_), displs(size_);
  for (int s = 0; s < size_; ++s) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(members_), size_, s);
    counts[s] = static_cast<int>((m1 - m0) * p);
    displs[s] = static_cast<int>(m0 * p);
  }
  std::vector<double> all(static_cast<std::size_t>(members_) * p);
  check(comm_.allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                         counts.data(), displs.data()),
        "observe_all");
  return all;
}

std::vector<double> DistributedEnsemble::gather(int root) const {
  std::vector<int> counts(size_), displs(size_);
  for (int s = 0; s < size_; ++s) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(members_), size_, s);
    counts[s] = static_cast<int>((m1 - m0) * state_size());
    displs[s] = static_cast<int>(m0 * state_size());
  }
  std::vector<double> all(rank_ == root ? static_cast<std::size_t>(members_) * state_size() : 0);
  check(comm_.gatherv(states_.data(), static_cast<int>(states_.size()), MPI_DOUBLE, all.data(),
                      counts.data(), displs.data(), root),
        "gather");
  return all;
}

void DistributedEnsemble::scatter(std::span<const double> all, int root) {
  std::vector<int> counts(size_), displs(size_);
  for (int s = 0; s < size_; ++s) {
    const auto [m0, m1] = block_range(static_cast<std::size_t>(members_), size_, s);
    counts[s] = static_cast<int>((m1 - m0) * state_size());
    displs[s] = static_cast<int>(m0 * state_size());
  }
  if (rank_ == root && all.size() != static_cast<std::size_t>(members_) * state_size()) {
    throw std::invalid_argument("DistributedEnsemble::scatter: expected the whole ensemble");
  }
  check(comm_.scatterv(all.data(), counts.data(), displs.data(), MPI_DOUBLE, states_.data(),
                       static_cast<int>(states_.size()), root),
        "scatter");
}

}  // namespace rtda::worker
