// Parameters of the SQG turbulence model (docs/science.md §1, eq. 1–6).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/grid.hpp"
#include "core/names.hpp"

namespace rtda::sqg {

// Which advection normalisation the model integrates (docs/science.md §1, eq. 6 note).
enum class Dynamics {
  kSqgturb,  // the community benchmark's conventions: Jacobian 2.25x, float32 derivative factors
  kExact,    // physically normalised Jacobian, double-precision wavenumbers everywhere
};

inline constexpr core::NameTable<Dynamics, 2> kDynamicsNames{{{
    {Dynamics::kSqgturb, "sqgturb"},
    {Dynamics::kExact, "exact"},
}}};
inline std::string_view to_string(Dynamics d) {
  return kDynamicsNames.name(d);
}
// Throws std::invalid_argument naming model.dynamics, the value and the accepted spellings.
inline Dynamics dynamics_from_string(std::string_view s) {
  return kDynamicsNames.parse(s, "model.dynamics");
}

// Physical and numerical parameters. Defaults are the N = 64 reference configuration of
// docs/science.md §1; `reference_preset(N)` gives the other published resolutions.
struct SqgParams {
  int N = 64;                       // grid points per direction (even)
  double L_m = 20.0e6;              // domain side
  double H_m = 10.0e3;              // lid height
  double U_ms = 30.0;               // jet speed
  double f_per_s = 1.0e-4;          // Coriolis parameter
  double nsq_per_s2 = 1.0e-4;       // Brunt–Väisälä frequency squared
  double g_ms2 = 9.8;               // gravity (only for the kelvin scale)
  double theta0_K = 300.0;          // reference potential temperature (only for the kelvin scale)
  double tdiab_s = 10.0 * 86400.0;  // thermal relaxation time; +inf turns relaxation off
  double ekman_r_ms = 0.0;          // Ekman damping rate (eq. 4); 0 = off
  int diff_order = 8;               // hyperdiffusion order (eq. 5)
  double diff_efold_s = 86400.0;    // hyperdiffusion e-folding time at K_c; +inf = off
  double dt_s = 1200.0;             // time step
  bool symmetric = true;            // symmetric jet (eq. 3)
  bool dealias = true;              // 3/2-rule dealiasing (eq. 6)
  bool advection = true;            // false drops J(psi, q) (tests of the linear terms)
  Dynamics dynamics = Dynamics::kSqgturb;

  // Multiplying q (m/s) by this gives potential temperature in kelvin: f*theta0/g.
  double kelvin_per_pv() const { return f_per_s * theta0_K / g_ms2; }
  double dx_m() const { return L_m / N; }
  int state_size() const { return 2 * N * N; }
  // The doubly periodic plane the state lives on: the surface and the lid, N x N points each.
  core::Grid grid() const { return {2, N, N, L_m, L_m}; }

  // Throws std::invalid_argument naming the field and value when a parameter is unusable.
  void validate() const;
};

// The nature run of docs/science.md §1 (sqg/nature_run.hpp): its recipe's settings.
struct NatureSettings {
  std::uint64_t seed = 42;          // keys the initial noise (RandomPurpose::kNatureInitialNoise)
  double noise_sd_ms = 100.0;       // N(0, sd^2) noise on both levels
  double bump_amplitude_ms = 2000;  // lid bump 2000 sin(x/2)^40 sin(y)^20
  double spinup_days = 300.0;       // integrate this long before keeping states
  int states = 600;                 // states kept (the first at the end of the spin-up)
  double interval_hours = 12.0;     // between kept states; a multiple of model.dt

  // Throws std::invalid_argument naming the key when unusable with `params`.
  void validate(const SqgParams& params) const;
  long steps_per_interval(const SqgParams& params) const;
  long spinup_steps(const SqgParams& params) const;
};

// How hard FFTW looks for fast transforms. `kEstimate` picks the same algorithm in every
// process, so results are bitwise reproducible across runs and ranks; `kMeasure` times
// candidates and may pick differently from one process to the next.
enum class FftPlanning { kEstimate, kMeasure };
inline constexpr core::NameTable<FftPlanning, 2> kFftPlanningNames{{{
    {FftPlanning::kEstimate, "estimate"},
    {FftPlanning::kMeasure, "measure"},
}}};

// The published reference configurations (docs/science.md §1): N in {32, 64, 128, 256, 512, 1024}
// with their time step and hyperdiffusion time. Throws for other N.
SqgParams reference_preset(int N);
std::vector<int> reference_preset_resolutions();

}  // namespace rtda::sqg
