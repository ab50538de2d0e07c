// The settings of the analysis methods (docs/science.md §3–4, docs/filters.md) and their
// names: what the configuration holds and checks. No algorithm here, and nothing that needs
// Eigen or the observations, so every program (the coordinator too) can hold them; the
// filters are ensemble_filter.hpp, letkf.hpp, ensf.hpp, inflation.hpp.
#pragma once

#include <string_view>

#include "core/names.hpp"

namespace rtda::filters {

enum class FilterKind { kNone, kLetkf, kEnsf };
// "none" (no analysis: a free-running ensemble), "letkf", "ensf": the one spelling of the
// filter names, used by the configuration, the server, the CLI and the factory.
inline constexpr core::NameTable<FilterKind, 3> kFilterNames{{{
    {FilterKind::kEnsf, "ensf"},
    {FilterKind::kLetkf, "letkf"},
    {FilterKind::kNone, "none"},
}}};
inline std::string_view to_string(FilterKind k) {
  return kFilterNames.name(k);
}
// Throws std::invalid_argument naming `field`, the value and the accepted names.
inline FilterKind filter_kind_from_string(std::string_view value,
                                          std::string_view field = "filter") {
  return kFilterNames.parse(value, field);
}

// LETKF (letkf.hpp; docs/science.md §3).
struct LetkfSettings {
  double localization_radius_km = 2200;  // L_h: the taper reaches 0 at this distance (eq. 7)
  double rtps = 0.3;                     // alpha of eq. 10; 0 = off
  double vertical_distance_km = 1000;    // L_r: boundary separation for the vertical factor
  double weight_cutoff = 1e-10;          // observations with weight w <= this are dropped
  bool localize = true;  // false: one global domain, every observation weight 1 (eq. 8–9)

  // Throws std::invalid_argument naming `letkf.<key>` and the offending value.
  void validate() const;
};

// EnSF (ensf.hpp; docs/science.md §4).
enum class EnsfMode { kPaper, kStandard };
enum class EnsfSpreadTarget {
  kInitial,  // per-dimension spread of the first prior this instance analysed (kept across cycles)
  kPrior,    // this cycle's prior spread
  kNone,     // no rescaling
};

inline constexpr core::NameTable<EnsfMode, 2> kEnsfModeNames{{{
    {EnsfMode::kPaper, "paper"},
    {EnsfMode::kStandard, "standard"},
}}};
inline constexpr core::NameTable<EnsfSpreadTarget, 3> kEnsfSpreadTargetNames{{{
    {EnsfSpreadTarget::kInitial, "initial"},
    {EnsfSpreadTarget::kPrior, "prior"},
    {EnsfSpreadTarget::kNone, "none"},
}}};
inline std::string_view to_string(EnsfMode m) {
  return kEnsfModeNames.name(m);
}
inline std::string_view to_string(EnsfSpreadTarget t) {
  return kEnsfSpreadTargetNames.name(t);
}
// Throw std::invalid_argument naming `ensf.mode` / `ensf.spread_target`, the value and the
// accepted spellings.
inline EnsfMode ensf_mode_from_string(std::string_view s) {
  return kEnsfModeNames.parse(s, "ensf.mode");
}
inline EnsfSpreadTarget ensf_spread_target_from_string(std::string_view s) {
  return kEnsfSpreadTargetNames.parse(s, "ensf.spread_target");
}

// Every hyperparameter of docs/science.md §4. The defaults are paper mode; `standard()` gives the
// textbook defaults of [EnSF]'s Lorenz-96 runs.
struct EnsfSettings {
  EnsfMode mode = EnsfMode::kPaper;
  // Nominal number of pseudo-time steps: Δt = 1 / steps (eq. 15). Paper 1000, standard 500.
  int steps = 1000;
  // Hard cap on the steps actually taken; 0 = all `steps` (integrate to t = 0). Paper 502
  // (t ≈ 0.5), standard 0.
  int max_steps = 502;
  // eq. 11: α_t = 1 − (1 − ε_α) t, β_t² = ε_β + (1 − ε_β) t. Paper 0.05 / 0, standard 0.5 / 0.025.
  double eps_alpha = 0.05;
  double eps_beta = 0.0;
  // eq. 14: the likelihood score is damped by h(t) = 1 − t when true, undamped (h = 1) if not.
  bool damping = true;
  // Stopping rule (paper): after step k > W stop once max_d |m_k,d − m_{k−W},d| <
  // stop_tolerance · W, m_k the member mean of z after step k. Paper on, W = 200, 0.005.
  bool early_stopping = true;
  int stop_window = 200;
  double stop_tolerance = 0.005;
  // Paper arctan heuristic: one σ′ = factor · s_K · σ_o for every dimension.
  double arctan_sigma_factor = 5.0;
  // The heuristic's pseudo-observation tan(y)/s_K is unbounded as |y| -> pi/2, and noise can
  // put y past pi/2 (then tan flips sign). y is first clipped to |y| <= pi/2 - c sigma_o with
  // c = arctan_clip_sigmas (3: pseudo-observations stay below ~1.1e4 m/s for sigma_o = 0.01).
  // Not in docs/science.md; without it one saturated observation can wreck a cycle.
  double arctan_clip_sigmas = 3.0;
  // Work in z = (x − μ) / s per dimension (prior mean, n−1 standard deviation). Paper mode
  // requires it; standard default on (the state is O(1e3) m/s, z(1) ~ N(0, I)).
  bool normalize = true;
  // Rescale each dimension's perturbations to this spread after the analysis.
  EnsfSpreadTarget spread_target = EnsfSpreadTarget::kInitial;
  // eq. 10 relaxation to prior spread, applied before the spread target; 0 = off.
  double rtps = 0.0;

  static EnsfSettings paper();
  static EnsfSettings standard();
  // Throws std::invalid_argument naming `ensf.<key>` and the value.
  void validate() const;
  // Steps taken at most: max_steps, or steps when max_steps is 0.
  int step_cap() const { return max_steps == 0 ? steps : max_steps; }
};

// Multiplicative prior inflation before any filter (inflation.hpp).
enum class InflationMode { kNone, kFixed, kAdaptive };

struct InflationSettings {
  InflationMode mode = InflationMode::kNone;
  double factor = 1.0;  // lambda of "fixed"
  double max = 3.0;     // upper bound of the "adaptive" lambda

  // Throws std::invalid_argument naming `inflation.<key>` and the offending value.
  void validate() const;
};

inline constexpr core::NameTable<InflationMode, 3> kInflationModeNames{{{
    {InflationMode::kNone, "none"},
    {InflationMode::kFixed, "fixed"},
    {InflationMode::kAdaptive, "adaptive"},
}}};
inline std::string_view to_string(InflationMode m) {
  return kInflationModeNames.name(m);
}
// Throws std::invalid_argument naming `inflation.mode`, the value and the accepted names.
inline InflationMode inflation_mode_from_string(std::string_view s) {
  return kInflationModeNames.parse(s, "inflation.mode");
}

}  // namespace rtda::filters
