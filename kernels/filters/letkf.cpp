// LETKF (docs/science.md §3, eq. 7–10): settings, the observation cells, the shape checks,
// the diagnostics and the whole-domain analysis that every backend shares. The CPU column
// path is letkf_cpu.cpp, the HIP one hip/letkf_hip.{cpp,hip}.
#include "filters/letkf.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "filters/localization.hpp"

namespace rtda::filters {

namespace {}  // namespace

LetkfObservationCells::LetkfObservationCells(const obs::ObservationSpace& space, double radius_m)
    : nx(space.grid().nx), ny(space.grid().ny) {
  const core::Grid& g = space.grid();
  if (g.levels > kLetkfMaxLevels) {
    throw std::invalid_argument("LETKF: a grid of " + std::to_string(g.levels) +
                                " levels; at most " + std::to_string(kLetkfMaxLevels));
  }
  const double dx = g.dx_m();
  const std::size_t cells = g.columns();
  std::vector<std::uint32_t> cell_of(space.size());
  for (int lev = 0; lev < 2; ++lev)
    start[lev].assign(cells + 1, 0);
  const auto cell_index = [&](double pos, int n) {
    return std::clamp(static_cast<int>(std::floor(pos / dx)), 0, n - 1);
  };
  for (std::size_t o = 0; o < space.size(); ++o) {
    cell_of[o] = static_cast<std::uint32_t>(cell_index(space.y_m()[o], ny) * nx +
                                            cell_index(space.x_m()[o], nx));
    ++start[space.level()[o]][cell_of[o] + 1];
  }
  for (int lev = 0; lev < 2; ++lev) {
    for (std::size_t c = 0; c < cells; ++c)
      start[lev][c + 1] += start[lev][c];
    obs[lev].resize(start[lev][cells]);
  }
  std::array<std::vector<std::uint32_t>, 2> fill = {start[0], start[1]};
  for (std::size_t o = 0; o < space.size(); ++o) {
    obs[space.level()[o]][fill[space.level()[o]][cell_of[o]]++] = static_cast<std::uint32_t>(o);
  }
  // Minimum-image distance from a grid point to the cells a steps away along one axis:
  // cell 0 and cell n-1 touch the point; otherwise min(a, n-1-a) cell widths.
  const auto gap = [&](int a, int n) {
    return (a == 0 || a == n - 1) ? 0.0 : std::min(a, n - 1 - a) * dx;
  };
  // Slack of 1e-6 dx keeps cells whose nearest corner is within round-off of L_h.
  const double reach = radius_m + 1e-6 * dx;
  for (int b = 0; b < ny; ++b) {
    for (int a = 0; a < nx; ++a) {
      const double gx = gap(a, nx), gy = gap(b, ny);
      if (gx * gx + gy * gy < reach * reach) offsets.push_back({a, b});
    }
  }
}

std::size_t LetkfObservationCells::candidates(std::size_t column) const {
  const int i = static_cast<int>(column % nx), j = static_cast<int>(column / nx);
  std::size_t count = 0;
  for (std::size_t a = 0; a < offsets.size(); ++a) {
    const std::size_t c = cell(i, j, a);
    for (int ol = 0; ol < 2; ++ol)
      count += start[ol][c + 1] - start[ol][c];
  }
  return count;
}

LetkfAnalysis::LetkfAnalysis(LetkfSettings settings) : settings_(settings) {
  settings_.validate();
}

void letkf_check_columns(std::size_t prior_values, std::size_t hx_values, int members,
                         const obs::ObservationSpace& space, std::size_t col_begin,
                         std::size_t col_end, std::size_t posterior_values) {
  const std::size_t columns = space.grid().columns();
  const std::size_t levels = static_cast<std::size_t>(space.grid().levels);
  const int k = members;
  if (k < 2)
    throw std::invalid_argument("LETKF needs at least 2 members, got " + std::to_string(k));
  if (col_begin > col_end || col_end > columns) {
    throw std::invalid_argument("LETKF columns [" + std::to_string(col_begin) + ", " +
                                std::to_string(col_end) + ") outside [0, " +
                                std::to_string(columns) + ")");
  }
  const std::size_t nc = col_end - col_begin;
  if (prior_values != levels * nc * k || posterior_values != levels * nc * k) {
    throw std::invalid_argument("LETKF: prior/posterior columns must hold members x " +
                                std::to_string(levels) + " x " + std::to_string(nc) + " values");
  }
  if (hx_values != space.size() * k) {
    throw std::invalid_argument("LETKF: hx must hold members x " + std::to_string(space.size()) +
                                " values, got " + std::to_string(hx_values));
  }
}

std::size_t LetkfAnalysis::count_used_observations(const obs::ObservationSpace& space) const {
  if (!settings_.localize) return space.size();
  const core::Grid& g = space.grid();
  const double dx = g.dx_m();
  const double radius_m = settings_.localization_radius_km * 1e3;
  std::size_t used = 0;
  for (std::size_t o = 0; o < space.size(); ++o) {
    // The largest own-level weight is at one of the four surrounding grid points (rho
    // decreases with distance); computed exactly as in the column loop.
    const int i0 = std::clamp(static_cast<int>(std::floor(space.x_m()[o] / dx)), 0, g.nx - 1);
    const int j0 = std::clamp(static_cast<int>(std::floor(space.y_m()[o] / dx)), 0, g.ny - 1);
    double best = 0;
    for (int dj = 0; dj < 2; ++dj) {
      for (int di = 0; di < 2; ++di) {
        const double xc = ((i0 + di) % g.nx) * dx;
        const double yc = ((j0 + dj) % g.ny) * dx;
        const double d = periodic_distance_m(xc - space.x_m()[o], yc - space.y_m()[o], g.length_x_m,
                                             g.length_y_m);
        best = std::max(best, horizontal_localization(d, radius_m));
      }
    }
    if (best > settings_.weight_cutoff) ++used;
  }
  return used;
}

void check_letkf_ensembles(const ConstEnsembleView& prior, const EnsembleView& posterior,
                           const obs::ObservationSpace& space) {
  const std::size_t state = space.grid().state_size();
  if (prior.state_size != state || posterior.state_size != state) {
    throw std::invalid_argument("LETKF: state size " + std::to_string(prior.state_size) +
                                " does not match the observation grid (" + std::to_string(state) +
                                " values)");
  }
  if (prior.members != posterior.members || prior.data.size() != state * prior.members ||
      posterior.data.size() != state * posterior.members) {
    throw std::invalid_argument("LETKF: prior and posterior ensembles differ in shape");
  }
}

AnalysisDiagnostics letkf_whole_domain(
    const LetkfSettings& settings, const obs::ObservationSpace& space, int members,
    const std::function<void(std::span<double>)>& observe,
    const std::function<void(std::span<const double> hx, LetkfColumnStats& stats)>& columns) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t p = space.size();
  const std::size_t k = static_cast<std::size_t>(members > 0 ? members : 0);
  // y_b^(i) = h(x_b^(i)) per member: nonlinear operators enter only here.
  std::vector<double> hx(k * p);
  observe(hx);

  AnalysisDiagnostics diag;
  double sum = 0, sum2 = 0;
  for (std::size_t o = 0; o < p; ++o) {
    double mean = 0;
    for (std::size_t m = 0; m < k; ++m)
      mean += hx[m * p + o];
    const double innov = space.value()[o] - mean / static_cast<double>(k);
    sum += innov;
    sum2 += innov * innov;
  }
  if (p > 0) {
    diag.innovation_mean = sum / static_cast<double>(p);
    diag.innovation_rms = std::sqrt(sum2 / static_cast<double>(p));
  }
  diag.observations_used = LetkfAnalysis(settings).count_used_observations(space);

  LetkfColumnStats stats;
  columns(hx, stats);
  diag.extra["letkf_mean_local_obs"] =
      stats.elements ? static_cast<double>(stats.local_observations) / stats.elements : 0.0;
  diag.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return diag;
}

AnalysisDiagnostics LetkfAnalysis::analyse(ConstEnsembleView prior,
                                           const obs::ObservationSpace& space,
                                           const AnalysisContext& /*ctx*/, EnsembleView posterior) {
  check_letkf_ensembles(prior, posterior, space);
  const int k = prior.members;
  const std::size_t p = space.size();
  const std::size_t n2 = space.grid().columns();
  return letkf_whole_domain(
      settings_, space, k,
      [&](std::span<double> hx) {
        for (int m = 0; m < k; ++m)
          space.apply(prior.member(m), hx.subspan(m * p, p));
      },
      [&](std::span<const double> hx, LetkfColumnStats& stats) {
        // The state layout [member][level][y][x] is the column layout for the whole domain.
        analyse_columns(prior.data, hx, k, space, 0, n2, posterior.data, &stats);
      });
}

}  // namespace rtda::filters
