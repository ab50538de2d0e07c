#include "filters/ensemble_filter.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "filters/inflation.hpp"

namespace rtda::filters {

InnovationStats innovation_stats(std::span<const double> moments,
                                 const obs::ObservationSpace& obs) {
  const std::size_t p = obs.size();
  InnovationStats s;
  if (p == 0) {
    s.consistency = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
  double dsum = 0, d2 = 0, hvar = 0, r = 0;
  for (std::size_t o = 0; o < p; ++o) {
    const double d = obs.value()[o] - moments[o];
    dsum += d;
    d2 += d * d;
    hvar += moments[p + o];
    r += obs.error_sd()[o] * obs.error_sd()[o];
  }
  const double np = static_cast<double>(p);
  s.mean = dsum / np;
  s.rms = std::sqrt(d2 / np);
  s.consistency = (d2 / np) / ((hvar + r) / np);
  return s;
}

void EnsembleFilter::copy_prior(const ColumnBlock& b) {
  if (b.memory == MemorySpace::kDevice) {
    throw std::logic_error("filter " + std::string(name()) + ": no device copy of a block");
  }
  std::copy_n(b.prior, b.values(), b.posterior);
}

std::vector<std::size_t> EnsembleFilter::usable(const obs::ObservationSpace& obs) const {
  std::vector<std::size_t> all(obs.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  return all;
}

AnalysisDiagnostics EnsembleFilter::analyse(const ColumnBlock& block, const ObservedPrior& observed,
                                            const obs::ObservationSpace& obs,
                                            const AnalysisContext& ctx, const Reducer& reducer) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string who = "filter " + std::string(name());
  const std::size_t columns = obs.grid().columns();
  const std::size_t levels = static_cast<std::size_t>(obs.grid().levels);
  const std::size_t p = obs.size();
  if (block.members < 2) {
    throw std::invalid_argument(who + ": " + std::to_string(block.members) +
                                " members; an analysis needs at least 2");
  }
  if (block.levels != levels) {
    throw std::invalid_argument(who + ": " + std::to_string(block.levels) +
                                " levels per column; the observations' grid has " +
                                std::to_string(levels));
  }
  if (block.c0 > block.c1 || block.c1 > columns) {
    throw std::invalid_argument(who + ": columns [" + std::to_string(block.c0) + ", " +
                                std::to_string(block.c1) + ") outside the grid's " +
                                std::to_string(columns));
  }
  if (block.values() > 0 && (block.prior == nullptr || block.posterior == nullptr)) {
    throw std::invalid_argument(who + ": no prior or posterior for " +
                                std::to_string(block.values()) + " values");
  }
  if (observed.moments.size() != 2 * p) {
    throw std::invalid_argument(who + ": " + std::to_string(observed.moments.size()) +
                                " h(x) moments for " + std::to_string(p) +
                                " observations (expected 2 per observation)");
  }
  if (p > 0 && observed.hx == nullptr) {
    throw std::invalid_argument(who + ": no h(x) for " + std::to_string(p) + " observations");
  }
  if (block.memory == MemorySpace::kDevice && memory() == MemorySpace::kHost) {
    throw std::invalid_argument(who + " runs on the CPU: it was given a block in device memory");
  }
  AnalysisDiagnostics d;
  d.observations_used = p;
  const InnovationStats s = innovation_stats(observed.moments, obs);
  d.innovation_mean = s.mean;
  d.innovation_rms = s.rms;
  if (p == 0) {
    if (block.posterior != block.prior && block.values() > 0) copy_prior(block);
    extras_without_observations(block, d.extra);
  } else {
    run(block, observed.hx, obs, ctx, reducer, d.extra);
  }
  d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

AnalysisDiagnostics analyse_whole_domain(EnsembleFilter& filter, ConstEnsembleView prior,
                                         const obs::ObservationSpace& obs,
                                         const AnalysisContext& ctx, EnsembleView posterior) {
  const std::size_t n2 = obs.grid().columns();
  const std::size_t levels = static_cast<std::size_t>(obs.grid().levels);
  const std::size_t state = obs.grid().state_size();
  const std::size_t k = static_cast<std::size_t>(prior.members);
  if (prior.state_size != state || prior.data.size() != k * state ||
      posterior.members != prior.members || posterior.state_size != prior.state_size ||
      posterior.data.size() != prior.data.size()) {
    throw std::invalid_argument(
        "filter " + std::string(filter.name()) + ": prior " + std::to_string(prior.members) +
        " x " + std::to_string(prior.state_size) + " (" + std::to_string(prior.data.size()) +
        " values), posterior " + std::to_string(posterior.members) + " x " +
        std::to_string(posterior.state_size) + " (" + std::to_string(posterior.data.size()) +
        " values); the observations' grid needs members x " + std::to_string(state));
  }
  const std::size_t p = obs.size();
  std::vector<double> hx(k * p);
  for (std::size_t m = 0; m < k; ++m)
    obs.apply(prior.member(static_cast<int>(m)), std::span<double>(hx).subspan(m * p, p));
  const std::vector<double> moments = observation_moments(hx, prior.members);
  const ColumnBlock block{MemorySpace::kHost, prior.members,        0, n2, levels,
                          prior.data.data(),  posterior.data.data()};
  return filter.analyse(block, {hx.data(), moments}, obs, ctx);
}

}  // namespace rtda::filters
