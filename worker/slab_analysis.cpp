#include "slab_analysis.hpp"

#include "filters/ensf.hpp"
#include "filters/letkf.hpp"
#include "hip/ensf_hip.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/letkf_hip.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace rtda::worker {

void SlabAnalysis::analyse_columns_device(const double*, const double*, int,
                                          const obs::ObservationSpace&,
                                          const filters::AnalysisContext&, std::size_t, std::size_t,
                                          double*, MPI_Comm, std::map<std::string, double>&) {
  throw std::logic_error("filter " + std::string(name()) +
                         ": made for the CPU, it has no device path (make_slab_analysis with "
                         "Backend::kHip)");
}

namespace {

// The EnSF's collective reductions over the ranks of `comm` (none on one rank).
filters::EnsfReducer mpi_reducer(MPI_Comm comm) {
  filters::EnsfReducer reducer;
  int size = 1;
  MPI_Comm_size(comm, &size);
  if (size > 1) {
    reducer.max = [comm](std::span<double> v) {
      MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX, comm);
    };
    reducer.sum = [comm](std::span<double> v) {
      MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, comm);
    };
  }
  return reducer;
}

// The LETKF's counts over the ranks (integers: the sum is exact in any order).
void letkf_mean_local_obs(const filters::LetkfColumnStats& stats, MPI_Comm comm,
                          std::map<std::string, double>& extra) {
  unsigned long long counts[2] = {stats.elements, stats.local_observations};
  MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
  extra["letkf_mean_local_obs"] =
      counts[0] ? static_cast<double>(counts[1]) / static_cast<double>(counts[0]) : 0.0;
}

// No analysis: the posterior is the prior. A free-running ensemble, the baseline every
// filter is measured against (science.md §6: "SQG free run").
class FreeRun : public SlabAnalysis {
 public:
  std::string_view name() const override { return "none"; }
  void analyse_columns(std::span<const double> prior_cols, std::span<const double>, int,
                       const obs::ObservationSpace&, const filters::AnalysisContext&, std::size_t,
                       std::size_t, std::span<double> post_cols, MPI_Comm,
                       std::map<std::string, double>&) override {
    std::copy(prior_cols.begin(), prior_cols.end(), post_cols.begin());
  }
  void analyse_columns_device(const double* prior_cols, const double*, int members,
                              const obs::ObservationSpace&, const filters::AnalysisContext&,
                              std::size_t c0, std::size_t c1, double* post_cols, MPI_Comm,
                              std::map<std::string, double>&) override {
    if (post_cols == prior_cols) return;
    hip::detail::copy_on_device(post_cols, prior_cols,
                                static_cast<std::size_t>(members) * 2 * (c1 - c0) * sizeof(double));
  }
};

// Letkf: filters::LetkfAnalysis (CPU) or hip::LetkfAnalysisHip (same interface).
template <class Letkf>
class LetkfSlab : public SlabAnalysis {
 public:
  explicit LetkfSlab(const filters::LetkfSettings& s) : letkf_(s) {}
  std::string_view name() const override { return "letkf"; }
  void analyse_columns(std::span<const double> prior_cols, std::span<const double> hx, int members,
                       const obs::ObservationSpace& obs, const filters::AnalysisContext&,
                       std::size_t c0, std::size_t c1, std::span<double> post_cols, MPI_Comm comm,
                       std::map<std::string, double>& extra) override {
    filters::LetkfColumnStats stats;
    letkf_.analyse_columns(prior_cols, hx, members, obs, c0, c1, post_cols, &stats);
    letkf_mean_local_obs(stats, comm, extra);
  }
  void analyse_columns_device(const double* prior_cols, const double* hx, int members,
                              const obs::ObservationSpace& obs, const filters::AnalysisContext& ctx,
                              std::size_t c0, std::size_t c1, double* post_cols, MPI_Comm comm,
                              std::map<std::string, double>& extra) override {
    if constexpr (std::is_same_v<Letkf, hip::LetkfAnalysisHip>) {
      filters::LetkfColumnStats stats;
      letkf_.analyse_columns_device(prior_cols, hx, members, obs, c0, c1, post_cols, &stats);
      letkf_mean_local_obs(stats, comm, extra);
    } else {
      SlabAnalysis::analyse_columns_device(prior_cols, hx, members, obs, ctx, c0, c1, post_cols,
                                           comm, extra);
    }
  }

 private:
  Letkf letkf_;
};

// One EnSF instance for the whole run: spread_target = "initial" keeps the first cycle's
// spread across cycles. Ensf: filters::EnsfAnalysis (CPU) or hip::EnsfAnalysisHip.
template <class Ensf>
class EnsfSlab : public SlabAnalysis {
 public:
  explicit EnsfSlab(const filters::EnsfSettings& s) : ensf_(s) {}
  std::string_view name() const override { return "ensf"; }
  void analyse_columns(std::span<const double> prior_cols, std::span<const double>, int members,
                       const obs::ObservationSpace& obs, const filters::AnalysisContext& ctx,
                       std::size_t c0, std::size_t c1, std::span<double> post_cols, MPI_Comm comm,
                       std::map<std::string, double>& extra) override {
    const std::size_t slab = 2 * (c1 - c0);
    const filters::EnsfReducer reducer = mpi_reducer(comm);
    const auto d = ensf_.analyse_slab(c0, c1, {members, slab, prior_cols}, obs, ctx,
                                      {members, slab, post_cols}, reducer);
    for (const auto& [key, value] : d.extra)
      extra[key] = value;
  }
  void analyse_columns_device(const double* prior_cols, const double* hx, int members,
                              const obs::ObservationSpace& obs, const filters::AnalysisContext& ctx,
                              std::size_t c0, std::size_t c1, double* post_cols, MPI_Comm comm,
                              std::map<std::string, double>& extra) override {
    if constexpr (std::is_same_v<Ensf, hip::EnsfAnalysisHip>) {
      const auto d = ensf_.analyse_slab_device(c0, c1, members, prior_cols, obs, ctx, post_cols,
                                               mpi_reducer(comm));
      for (const auto& [key, value] : d.extra)
        extra[key] = value;
    } else {
      SlabAnalysis::analyse_columns_device(prior_cols, hx, members, obs, ctx, c0, c1, post_cols,
                                           comm, extra);
    }
  }
  std::vector<double> carried_state() const override { return ensf_.initial_spread(); }
  void restore_carried_state(std::vector<double> s) override {
    ensf_.set_initial_spread(std::move(s));
  }

 private:
  Ensf ensf_;
};

}  // namespace

std::unique_ptr<SlabAnalysis> make_slab_analysis(std::string_view filter, const config::Config& cfg,
                                                 device::Backend backend) {
  const bool hip = backend == device::Backend::kHip;
  if (filter == "none") return std::make_unique<FreeRun>();
  if (filter == "letkf") {
    if (hip) return std::make_unique<LetkfSlab<hip::LetkfAnalysisHip>>(cfg.letkf);
    return std::make_unique<LetkfSlab<filters::LetkfAnalysis>>(cfg.letkf);
  }
  if (filter == "ensf") {
    if (hip) return std::make_unique<EnsfSlab<hip::EnsfAnalysisHip>>(cfg.ensf);
    return std::make_unique<EnsfSlab<filters::EnsfAnalysis>>(cfg.ensf);
  }
  throw std::invalid_argument("--filter " + std::string(filter) + ": expected letkf, ensf or none");
}

}  // namespace rtda::worker
