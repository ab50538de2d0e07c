// The SQG turbulence model (docs/science.md §1, eq. 1–6) on FFTW.
//
// The prognostic state is the spectral boundary PV, kept spectral between steps: two levels
// of the unnormalised forward real FFT, layout [level][l][k] with k = 0..N/2 fastest and l in
// FFT order. Grid fields are [level][y][x], x fastest. `SqgModel` holds everything that is
// fixed for a configuration (wavenumbers, inversion and hyperdiffusion factors, the jet's
// spectrum, FFTW plans); per-thread scratch lives in a `Workspace`, so one model serves any
// number of threads stepping different members at once.
#pragma once

#include <complex>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "sqg/fftw_traits.hpp"
#include "sqg/sqg_params.hpp"

#include "core/names.hpp"

namespace rtda::sqg {

template <typename Real>
class SqgModel {
 public:
  using Complex = std::complex<Real>;
  using SpectralVector = detail::AlignedVector<Complex>;
  using GridVector = detail::AlignedVector<Real>;

  // Scratch buffers for one thread. Make one per thread with `make_workspace()`.
  class Workspace {
   public:
    Workspace(Workspace&&) noexcept = default;
    Workspace& operator=(Workspace&&) noexcept = default;

   private:
    friend class SqgModel;
    Workspace() = default;
    SpectralVector psi, stage, k1, k2, k3, k4;  // N-grid spectra (2 levels each)
    SpectralVector deriv_spec;                  // 8 derivative spectra on the Jacobian grid
    GridVector deriv_grid;                      // the same 8 fields on the grid
    GridVector adv_grid;                        // u q_x + v q_y, 2 levels
    SpectralVector adv_spec;                    // its forward transform
    SpectralVector grid_spec;                   // scratch for to_grid
  };

  explicit SqgModel(const SqgParams& params, FftPlanning planning = FftPlanning::kEstimate);
  ~SqgModel();
  SqgModel(const SqgModel&) = delete;
  SqgModel& operator=(const SqgModel&) = delete;

  const SqgParams& params() const { return params_; }
  int N() const { return n_; }
  // Real values of one grid state (2 N^2) and complex values of one spectral state.
  std::size_t grid_size() const { return 2 * static_cast<std::size_t>(n_) * n_; }
  std::size_t spectral_size() const { return 2 * static_cast<std::size_t>(n_) * nk_; }

  Workspace make_workspace() const;

  // Grid <-> spectral. to_grid symmetrises the k = 0 and Nyquist columns in l first, which is
  // what numpy's inverse transform does implicitly (docs/science.md §1).
  void to_spectral(std::span<const Real> grid, std::span<Complex> spec, Workspace& ws) const;
  void to_grid(std::span<const Complex> spec, std::span<Real> grid, Workspace& ws) const;

  // Eq. 1: streamfunction on both boundaries from boundary PV; psi(K = 0) = 0.
  void invert(std::span<const Complex> q, std::span<Complex> psi) const;
  // Eq. 2 (+4, 6): dq/dt in spectral space.
  void tendency(std::span<const Complex> q, std::span<Complex> dqdt, Workspace& ws) const;
  // The advection term J(psi, q) alone (eq. 6), including the dynamics' normalisation.
  void jacobian(std::span<const Complex> psi, std::span<const Complex> q, std::span<Complex> adv,
                Workspace& ws) const;
  // Eq. 5: one RK4 step followed by the hyperdiffusion integrating factor.
  void step(std::span<Complex> q, Workspace& ws) const;
  void advance(std::span<Complex> q, int steps, Workspace& ws) const;

  // The equilibrium jet's spectrum (eq. 3) and grid field.
  std::span<const Complex> equilibrium_spectrum() const { return q_eq_spec_; }
  std::vector<Real> equilibrium_grid() const;

  // Wavenumbers of spectral index (row j = l index, column i = k index) on the N grid, in
  // rad/m, unrounded; and the hyperdiffusion factor applied per step.
  double wavenumber_k(int i) const;
  double wavenumber_l(int j) const;
  double hyperdiffusion_factor(int j, int i) const { return hyperdiff_[j * nk_ + i]; }

 private:
  void make_plans(FftPlanning planning);
  void differentiate_padded(std::span<const Complex> psi, std::span<const Complex> q,
                            Workspace& ws) const;
  void differentiate_unpadded(std::span<const Complex> psi, std::span<const Complex> q,
                              Workspace& ws) const;

  SqgParams params_;
  int n_;                // N
  int nk_;               // N/2 + 1
  int m_;                // Jacobian grid size: 3N/2 when dealiasing, else N
  int mk_;               // m_/2 + 1
  Real jacobian_scale_;  // 1, or 1/2.25 for exact dynamics with dealiasing

  // Per (l, k) on the N grid (size N * nk_).
  std::vector<Real> h_over_mu_, inv_sinh_mu_, inv_tanh_mu_, ksq_, hyperdiff_;
  std::vector<unsigned char> k_is_zero_;
  // Derivative multipliers (rad/m) on the Jacobian grid: per column and per row.
  std::vector<Real> deriv_k_, deriv_l_;
  SpectralVector q_eq_spec_;

  // FFTW plans (shared, executed concurrently on per-thread buffers).
  typename detail::Fftw<Real>::Plan plan_grid_r2c_{};
  typename detail::Fftw<Real>::Plan plan_grid_c2r_{};
  // Without dealiasing: whole 2-D transforms on the N grid.
  typename detail::Fftw<Real>::Plan plan_deriv_c2r_{};
  typename detail::Fftw<Real>::Plan plan_adv_r2c_{};
  // With dealiasing: the 2-D transforms split into column and row passes, so the column
  // passes skip the padded grid's all-zero columns (inverse) and the columns truncation
  // drops (forward): a third fewer column transforms.
  typename detail::Fftw<Real>::Plan plan_col_inverse_{};
  typename detail::Fftw<Real>::Plan plan_row_c2r_{};
  typename detail::Fftw<Real>::Plan plan_row_r2c_{};
  typename detail::Fftw<Real>::Plan plan_col_forward_{};
};

// Advances many members at once: members are independent, so they are spread over threads,
// each with its own workspace (made once, reused every call).
template <typename Real>
class EnsembleStepper {
 public:
  using Complex = std::complex<Real>;
  // threads <= 0: OpenMP's default.
  explicit EnsembleStepper(const SqgModel<Real>& model, int threads = 0);

  // q holds `members` spectral states back to back.
  void advance(std::span<Complex> q, int members, int steps);
  // Grid in, grid out (one grid round trip per call, not per step).
  void advance_grid(std::span<Real> grid, int members, int steps);
  int threads() const { return static_cast<int>(workspaces_.size()); }

 private:
  const SqgModel<Real>& model_;
  std::vector<typename SqgModel<Real>::Workspace> workspaces_;
  detail::AlignedVector<Complex> spec_;
};

extern template class SqgModel<double>;
extern template class SqgModel<float>;
extern template class EnsembleStepper<double>;
extern template class EnsembleStepper<float>;

}  // namespace rtda::sqg
