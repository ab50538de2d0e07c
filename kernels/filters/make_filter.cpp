#include "filters/make_filter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "hip/ensf_hip.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/letkf_hip.hpp"

namespace rtda::filters {
namespace {

std::span<const double> host_span(const double* p, std::size_t n) {
  return {p, n};
}
std::span<double> host_span(double* p, std::size_t n) {
  return {p, n};
}
EnsfReducer ensf_reducer(const Reducer& r) {
  return {r.max, r.sum};
}

// posterior = prior in either memory space.
void copy_block(const ColumnBlock& b) {
  if (b.posterior == b.prior || b.values() == 0) return;
  if (b.memory == MemorySpace::kDevice) {
    hip::detail::copy_on_device(b.posterior, b.prior, b.values() * sizeof(double));
  } else {
    std::copy_n(b.prior, b.values(), b.posterior);
  }
}

// No analysis: the posterior is the prior. A free-running ensemble, the baseline every
// filter is measured against (docs/science.md §6: "SQG free run").
class NoFilter final : public EnsembleFilter {
 public:
  explicit NoFilter(MemorySpace memory) : memory_(memory) {}
  FilterKind kind() const override { return FilterKind::kNone; }
  MemorySpace memory() const override { return memory_; }

 protected:
  void run(const ColumnBlock& b, const double*, const obs::ObservationSpace&,
           const AnalysisContext&, const Reducer&, std::map<std::string, double>&) override {
    copy_block(b);
  }
  void copy_prior(const ColumnBlock& b) override { copy_block(b); }

 private:
  MemorySpace memory_;
};

// Impl: LetkfAnalysis (CPU) or hip::LetkfAnalysisHip (host and device blocks).
template <class Impl>
class LetkfFilter final : public EnsembleFilter {
  static constexpr bool kDeviceImpl = std::is_same_v<Impl, hip::LetkfAnalysisHip>;

 public:
  explicit LetkfFilter(const LetkfSettings& s) : letkf_(s) {}
  FilterKind kind() const override { return FilterKind::kLetkf; }
  MemorySpace memory() const override {
    return kDeviceImpl ? MemorySpace::kDevice : MemorySpace::kHost;
  }

 protected:
  void run(const ColumnBlock& b, const double* hx, const obs::ObservationSpace& obs,
           const AnalysisContext&, const Reducer& reducer,
           std::map<std::string, double>& extra) override {
    LetkfColumnStats stats;
    const std::size_t hx_values = static_cast<std::size_t>(b.members) * obs.size();
    if constexpr (kDeviceImpl) {
      if (b.memory == MemorySpace::kDevice) {
        letkf_.analyse_columns_device(b.prior, hx, b.members, obs, b.c0, b.c1, b.posterior, &stats);
      } else {
        letkf_.analyse_columns(host_span(b.prior, b.values()), host_span(hx, hx_values), b.members,
                               obs, b.c0, b.c1, host_span(b.posterior, b.values()), &stats);
      }
    } else {
      letkf_.analyse_columns(host_span(b.prior, b.values()), host_span(hx, hx_values), b.members,
                             obs, b.c0, b.c1, host_span(b.posterior, b.values()), &stats);
    }
    // Integer counts: exact as doubles, so the sum over blocks has the same bits in any order.
    double counts[2] = {static_cast<double>(stats.elements),
                        static_cast<double>(stats.local_observations)};
    if (reducer.sum) reducer.sum(counts);
    extra["letkf_mean_local_obs"] = counts[0] > 0 ? counts[1] / counts[0] : 0.0;
  }
  void copy_prior(const ColumnBlock& b) override { copy_block(b); }
  void extras_without_observations(const ColumnBlock&,
                                   std::map<std::string, double>& extra) const override {
    extra["letkf_mean_local_obs"] = 0.0;
  }

 private:
  Impl letkf_;
};

// Impl: EnsfAnalysis (CPU) or hip::EnsfAnalysisHip. One instance for the whole run:
// spread_target = "initial" keeps the first cycle's spread across cycles.
template <class Impl>
class EnsfFilter final : public EnsembleFilter {
  static constexpr bool kDeviceImpl = std::is_same_v<Impl, hip::EnsfAnalysisHip>;

 public:
  explicit EnsfFilter(const EnsfSettings& s) : ensf_(s) {}
  FilterKind kind() const override { return FilterKind::kEnsf; }
  MemorySpace memory() const override {
    return kDeviceImpl ? MemorySpace::kDevice : MemorySpace::kHost;
  }

  // Paper mode is defined per state dimension: observations between grid points are left
  // out (the cycle counts them as rejected) rather than failing the whole analysis.
  std::vector<std::size_t> usable(const obs::ObservationSpace& obs) const override {
    if (ensf_.settings().mode != EnsfMode::kPaper || obs.all_at_grid_points())
      return EnsembleFilter::usable(obs);
    std::vector<std::size_t> on_grid;
    for (std::size_t o = 0; o < obs.size(); ++o)
      if (obs.stencil(o).count == 1) on_grid.push_back(o);
    return on_grid;
  }

  // The spread target "initial" is the initial ensemble's spread (docs/science.md §4), not
  // an inflated one: the uninflated spread of the first prior seen.
  void see_uninflated_spread(std::size_t c0, std::size_t c1, std::size_t columns_total,
                             std::size_t levels, std::span<const double> spread) override {
    if (ensf_.settings().spread_target != EnsfSpreadTarget::kInitial ||
        !ensf_.initial_spread().empty()) {
      return;
    }
    const std::size_t width = c1 - c0;
    std::vector<double> initial(levels * columns_total, std::numeric_limits<double>::quiet_NaN());
    for (std::size_t lev = 0; lev < levels; ++lev)
      for (std::size_t j = 0; j < width; ++j)
        initial[lev * columns_total + c0 + j] = spread[lev * width + j];
    ensf_.set_initial_spread(std::move(initial));
  }
  std::vector<double> carried_state() const override { return ensf_.initial_spread(); }
  void restore_carried_state(std::vector<double> s) override {
    ensf_.set_initial_spread(std::move(s));
  }

 protected:
  void run(const ColumnBlock& b, const double*, const obs::ObservationSpace& obs,
           const AnalysisContext& ctx, const Reducer& reducer,
           std::map<std::string, double>& extra) override {
    const std::size_t slab = b.levels * b.width();
    AnalysisDiagnostics d;
    if constexpr (kDeviceImpl) {
      if (b.memory == MemorySpace::kDevice) {
        d = ensf_.analyse_slab_device(b.c0, b.c1, b.members, b.prior, obs, ctx, b.posterior,
                                      ensf_reducer(reducer));
      } else {
        d = ensf_.analyse_slab(b.c0, b.c1, {b.members, slab, host_span(b.prior, b.values())}, obs,
                               ctx, {b.members, slab, host_span(b.posterior, b.values())},
                               ensf_reducer(reducer));
      }
    } else {
      d = ensf_.analyse_slab(b.c0, b.c1, {b.members, slab, host_span(b.prior, b.values())}, obs,
                             ctx, {b.members, slab, host_span(b.posterior, b.values())},
                             ensf_reducer(reducer));
    }
    for (const auto& [key, value] : d.extra)
      extra[key] = value;
  }
  void copy_prior(const ColumnBlock& b) override { copy_block(b); }
  // What analyse_slab reports, for no pseudo-time step taken.
  void extras_without_observations(const ColumnBlock& b,
                                   std::map<std::string, double>& extra) const override {
    const EnsfSettings& s = ensf_.settings();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    extra["ensf_steps"] = 0.0;
    extra["ensf_final_t"] = 1.0;
    if (s.early_stopping) extra["ensf_stop_drift"] = nan;
    if (s.mode != EnsfMode::kPaper) {
      extra["ensf_min_effective_members"] = b.members;
      extra["ensf_final_effective_members"] = b.members;
    }
  }

 private:
  Impl ensf_;
};

}  // namespace

std::unique_ptr<EnsembleFilter> make_filter(FilterKind kind, const LetkfSettings& letkf,
                                            const EnsfSettings& ensf, device::Backend backend) {
  const bool gpu = backend == device::Backend::kGpu;
  switch (kind) {
    case FilterKind::kNone:
      return std::make_unique<NoFilter>(gpu ? MemorySpace::kDevice : MemorySpace::kHost);
    case FilterKind::kLetkf:
      if (gpu) return std::make_unique<LetkfFilter<hip::LetkfAnalysisHip>>(letkf);
      return std::make_unique<LetkfFilter<LetkfAnalysis>>(letkf);
    case FilterKind::kEnsf:
      if (gpu) return std::make_unique<EnsfFilter<hip::EnsfAnalysisHip>>(ensf);
      return std::make_unique<EnsfFilter<EnsfAnalysis>>(ensf);
  }
  throw std::invalid_argument("filter: unknown kind");
}

}  // namespace rtda::filters
