// The HIP LETKF kernel's sequence (hip/letkf_hip.hip) replayed serially on the CPU: the
// header functions of filters/letkf_math.hpp in the kernel's order (candidates in the
// LetkfObservationCells order, every entry of C and b summed over them, the round-robin Jacobi
// eigensolver, the transform, RTPS). The oracle of the kernel's arithmetic on a machine without
// a GPU (letkf_math_test.cpp holds it to the CPU column path, LetkfAnalysis::analyse_columns)
// and the tight reference of the device parity tests (letkf_hip_test.cpp). Same contract as
// analyse_columns.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "filters/letkf.hpp"
#include "filters/letkf_math.hpp"
#include "filters/localization.hpp"

namespace rtda::filters {

inline void letkf_kernel_replay(const LetkfSettings& settings, std::span<const double> prior_cols,
                                std::span<const double> hx, int members,
                                const obs::ObservationSpace& space, std::size_t col_begin,
                                std::size_t col_end, std::span<double> posterior_cols,
                                LetkfColumnStats* stats = nullptr) {
  letkf_check_columns(prior_cols.size(), hx.size(), members, space, col_begin, col_end,
                      posterior_cols.size());
  const int n = space.grid().nx;
  const std::size_t nc = col_end - col_begin;
  const int k = members;
  const int m = jacobi_size(k);
  const std::size_t p = space.size();
  // Y_b, y − ȳ_b and 1/σ per observation (eq. 8–9), as the kernel's first pass.
  std::vector<double> dev(p * k), innov(p), inv_sd(p);
  for (std::size_t o = 0; o < p; ++o)
    letkf_observation_row(hx.data(), p, k, o, space.value()[o], space.error_sd()[o],
                          dev.data() + o * k, innov[o], inv_sd[o]);
  const bool localize = settings.localize;
  const double cut = settings.weight_cutoff;
  const double radius_m = settings.localization_radius_km * 1e3;
  const double v = localize ? vertical_localization_factor(settings.localization_radius_km,
                                                           settings.vertical_distance_km)
                            : 1.0;
  const double l_m = space.grid().length_x_m;
  const double dx = l_m / n;
  std::optional<LetkfObservationCells> cells;
  if (localize) cells.emplace(space, radius_m);

  std::size_t local_total = 0, failures = 0;
  {
    std::vector<std::uint32_t> cand_obs;
    std::vector<int> cand_level;
    std::vector<double> cand_rho;
    std::vector<double> a(static_cast<std::size_t>(m) * m), vec(static_cast<std::size_t>(m) * m);
    std::vector<JacobiRotation> rot(static_cast<std::size_t>(m / 2));
    std::vector<double> xb(2 * k), xa(2 * k), b(k), xd(k), z(k), zb(k);
    for (std::size_t col = col_begin; col < col_end; ++col) {
      const std::size_t rel = col - col_begin;
      for (int lev = 0; lev < 2; ++lev)
        for (int mm = 0; mm < k; ++mm)
          xb[lev * k + mm] = prior_cols[(static_cast<std::size_t>(mm) * 2 + lev) * nc + rel];
      // Candidates in the shared order (LetkfObservationCells), with ρ (eq. 7).
      cand_obs.clear();
      cand_level.clear();
      cand_rho.clear();
      const int i = static_cast<int>(col % n), j = static_cast<int>(col / n);
      const double xc = i * dx, yc = j * dx;
      const auto add = [&](std::uint32_t o) {
        cand_obs.push_back(o);
        cand_level.push_back(space.level()[o]);
        cand_rho.push_back(letkf_candidate_rho(xc, yc, space.x_m()[o], space.y_m()[o], l_m, l_m,
                                               radius_m, localize));
      };
      if (localize) {
        for (std::size_t off = 0; off < cells->offsets.size(); ++off) {
          const std::size_t cell = cells->cell(i, j, off);
          for (int ol = 0; ol < 2; ++ol)
            for (std::uint32_t s = cells->start[ol][cell]; s < cells->start[ol][cell + 1]; ++s)
              add(cells->obs[ol][s]);
        }
      } else {
        for (std::size_t o = 0; o < p; ++o)
          add(static_cast<std::uint32_t>(o));
      }
      for (int lev = 0; lev < 2; ++lev) {
        // C (lower triangle, then mirrored) and b (eq. 8–9).
        std::fill(a.begin(), a.end(), 0.0);
        std::fill(b.begin(), b.end(), 0.0);
        std::size_t used = 0;
        for (std::size_t t = 0; t < cand_obs.size(); ++t) {
          const double w = letkf_level_weight(cand_rho[t], cand_level[t], lev, v);
          if (!(w > cut)) continue;
          ++used;
          const std::uint32_t o = cand_obs[t];
          const double prec = letkf_precision(w, inv_sd[o]);
          const double* y = dev.data() + static_cast<std::size_t>(o) * k;
          for (int r = 0; r < k; ++r) {
            b[r] += letkf_b_term(prec, y[r], innov[o]);
            for (int c = 0; c <= r; ++c)
              a[r * m + c] += letkf_c_term(prec, y[r], y[c]);
          }
        }
        local_total += used;
        const double* xbl = xb.data() + lev * k;
        double* xal = xa.data() + lev * k;
        if (used == 0) {
          std::copy(xbl, xbl + k, xal);  // no local observations: the prior, exactly
          continue;
        }
        for (int r = 0; r < k; ++r)
          for (int c = 0; c < r; ++c)
            a[c * m + r] = a[r * m + c];
        if (jacobi_eigen(a.data(), vec.data(), m, rot.data()) < 0) {  // eq. 8
          ++failures;
          std::copy(xbl, xbl + k, xal);
          continue;
        }
        letkf_transform(a.data(), vec.data(), m, k, xbl, b.data(), xd.data(), z.data(), zb.data(),
                        xal);                    // eq. 9
        letkf_rtps(xbl, xal, k, settings.rtps);  // eq. 10
      }
      for (int lev = 0; lev < 2; ++lev)
        for (int mm = 0; mm < k; ++mm)
          posterior_cols[(static_cast<std::size_t>(mm) * 2 + lev) * nc + rel] = xa[lev * k + mm];
    }
  }
  if (failures > 0) {
    throw std::runtime_error("LETKF: the Jacobi eigendecomposition (eq. 8) did not converge in " +
                             std::to_string(kJacobiMaxSweeps) + " sweeps for " +
                             std::to_string(failures) + " element(s) in columns [" +
                             std::to_string(col_begin) + ", " + std::to_string(col_end) + ")");
  }
  if (stats) {
    stats->elements += 2 * nc;
    stats->local_observations += local_total;
  }
}

}  // namespace rtda::filters
