#include "slab_analysis.hpp"

#include "filters/ensf.hpp"
#include "filters/letkf.hpp"
#include "hip/ensf_hip.hpp"
#include "hip/letkf_hip.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rtda::worker {
namespace {

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
    // Integer counts: the sum over ranks is exact in any order.
    unsigned long long counts[2] = {stats.elements, stats.local_observations};
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
    extra["letkf_mean_local_obs"] =
        counts[0] ? static_cast<double>(counts[1]) / static_cast<double>(counts[0]) : 0.0;
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
    filters::EnsfReducer reducer;
    int size = 1;
    MPI_Comm_size(comm, &size);
    if (size > 1) {
      reducer.max = [comm](std::span<double> v) {
        MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX,
                      comm);
      };
      reducer.sum = [comm](std::span<double> v) {
        MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM,
                      comm);
      };
    }
    const auto d = ensf_.analyse_slab(c0, c1, {members, slab, prior_cols}, obs, ctx,
                                      {members, slab, post_cols}, reducer);
    for (const auto& [key, value] : d.extra)
      extra[key] = value;
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
