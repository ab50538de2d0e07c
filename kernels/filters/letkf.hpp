// Local ensemble transform Kalman filter (Hunt et al. 2007; docs/science.md §3, eq. 7–10).
//
// One local analysis per state element (level, x_i, y_j), each using every observation of
// every level (the SQG grid's two, a ring's one) within the localization radius, weighted by the
// Gaspari–Cohn taper (eq. 7); the ensemble-space solve (eq. 8–9) with a symmetric square root; then
// relaxation to prior spread (RTPS, eq. 10) per element.
//
// The unit of parallel work is a grid column c = j nx + i (every level of one horizontal
// position, core::Grid): the levels share the candidate observations, and a column's result depends
// on nothing but its own prior values and h(x_b) of all members, so any split of the
// columns (threads, MPI ranks) gives bitwise the same analysis.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "filters/filter.hpp"
#include "filters/settings.hpp"

namespace rtda::filters {

// Throws std::invalid_argument unless prior and posterior both hold members × state values
// for the observations' grid (the check of every whole-domain LETKF, CPU and HIP).
void check_letkf_ensembles(const ConstEnsembleView& prior, const EnsembleView& posterior,
                           const obs::ObservationSpace& space);

// Optional counters of analyse_columns (summable over column ranges).
struct LetkfColumnStats {
  std::size_t elements = 0;            // state elements analysed (levels per column)
  std::size_t local_observations = 0;  // sum over elements of the local observation count
};

// Observations sorted into the grid cells [a dx, (a+1) dx) x [b dx, (b+1) dx) of their
// level, and the cell offsets (relative to a grid point's cell) that can hold an observation
// closer than L_h to that grid point. The offsets are the same for every grid point, so the
// candidate search costs O(candidates) per column for any observation positions. Host-side
// bookkeeping that every backend shares (letkf_cpu.cpp, hip/letkf_hip.cpp).
//
// Candidate order of a column (i, j), the order every backend sums in: offsets in order,
// within an offset level 0 then level 1, within a cell the observations in their order.
// At most two levels (kMaxLevels); a one-level grid leaves level 1 empty.
inline constexpr int kLetkfMaxLevels = 2;
struct LetkfObservationCells {
  int nx = 0, ny = 0;
  std::array<std::vector<std::uint32_t>, 2> start;  // per level, nx ny + 1 (CSR)
  std::array<std::vector<std::uint32_t>, 2> obs;    // observation indices by cell
  std::vector<std::array<int, 2>> offsets;          // (a, b) in [0, nx) x [0, ny)

  LetkfObservationCells(const obs::ObservationSpace& space, double radius_m);
  // The cell of offset `a` from grid column (i, j).
  std::size_t cell(int i, int j, std::size_t a) const {
    return static_cast<std::size_t>((j + offsets[a][1]) % ny) * nx +
           static_cast<std::size_t>((i + offsets[a][0]) % nx);
  }
  // Candidates of column c = j nx + i over every level (before any weight test).
  std::size_t candidates(std::size_t column) const;
};

// The shape checks of analyse_columns (std::invalid_argument naming what does not fit),
// shared by the backends.
void letkf_check_columns(std::size_t prior_values, std::size_t hx_values, int members,
                         const obs::ObservationSpace& obs, std::size_t col_begin,
                         std::size_t col_end, std::size_t posterior_values);

// The whole-domain analysis of every backend (LetkfAnalysis::analyse and
// hip::LetkfAnalysisHip's): `observe` fills hx ([member][obs], host) with h(x_b^(i)), then
// the diagnostics are taken from it (innovation statistics of y − mean_i h(x_b^(i)) over all
// observations, observations_used = count_used_observations) and `columns` runs the column
// path over all the grid's columns, adding to the stats (extra["letkf_mean_local_obs"] is the mean
// local count per element); `seconds` covers the whole call.
AnalysisDiagnostics letkf_whole_domain(
    const LetkfSettings& settings, const obs::ObservationSpace& obs, int members,
    const std::function<void(std::span<double> hx)>& observe,
    const std::function<void(std::span<const double> hx, LetkfColumnStats& stats)>& columns);

class LetkfAnalysis final {
 public:
  explicit LetkfAnalysis(LetkfSettings settings = {});  // validates

  std::string_view name() const { return "letkf"; }
  const LetkfSettings& settings() const { return settings_; }

  // The whole-domain analysis: h(x_b^(i)) per member, then exactly analyse_columns over all
  // columns. Diagnostics: observations_used counts observations with a weight above the
  // cut-off in at least one local analysis; innovation statistics are of y - mean_i h(x_b^(i))
  // over all observations; extra["letkf_mean_local_obs"] is the mean local count per element.
  // ctx is unused (LETKF draws no random numbers).
  AnalysisDiagnostics analyse(ConstEnsembleView prior, const obs::ObservationSpace& obs,
                              const AnalysisContext& ctx, EnsembleView posterior);

  // The parallel unit, for callers that distribute columns (the MPI worker). The one CPU
  // column path (letkf_cpu.cpp), and the oracle of the HIP kernel's parity tests.
  //   prior_cols, posterior_cols: [member][level][c - col_begin], levels (col_end -
  //     col_begin) values per member; columns c = j nx + i in [col_begin, col_end); they may
  //     alias.
  //   hx: [member][obs], h(x_b^(i)) for ALL observations of `obs` (from full member states).
  // Includes RTPS (eq. 10). The result of a column does not depend on the range it is in.
  void analyse_columns(std::span<const double> prior_cols, std::span<const double> hx, int members,
                       const obs::ObservationSpace& obs, std::size_t col_begin, std::size_t col_end,
                       std::span<double> posterior_cols, LetkfColumnStats* stats = nullptr) const;

  // Observations whose weight exceeds the cut-off for at least one grid element (all of them
  // without localization): the nearest grid point on the observation's own level decides.
  std::size_t count_used_observations(const obs::ObservationSpace& obs) const;

 private:
  LetkfSettings settings_;
};

}  // namespace rtda::filters
