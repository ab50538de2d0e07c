#include "sqg/sqg_model.hpp"

#include <omp.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

namespace rtda::sqg {
namespace {

// Signed FFT-order index of row j (l) on a grid of size n (numpy's fftfreq order): 0, 1, ...,
// then the negative half. For even n, row n/2 is -n/2.
int row_index(int j, int n) {
  return j <= (n - 1) / 2 ? j : j - n;
}
// Signed index of column i (k = 0..n/2) of a real FFT. For even n the last (Nyquist) column
// is -n/2 (docs/science.md); for odd n (the padded grid of N = 2 mod 4) every column is positive.
int col_index(int i, int n) {
  return (n % 2 == 0 && i == n / 2) ? -n / 2 : i;
}

double round_to_float(double x) {
  return static_cast<double>(static_cast<float>(x));
}

// Z[l] <- (Z[l] + conj(Z[-l])) / 2 down column `col` of one n-row block of width nk.
template <typename Complex>
void make_column_hermitian(Complex* block, int n, int nk, int col) {
  block[col] = Complex(block[col].real(), 0);
  for (int j = 1; j <= (n - 1) / 2; ++j) {
    Complex& a = block[j * nk + col];
    Complex& b = block[(n - j) * nk + col];
    const Complex avg = (a + std::conj(b)) * typename Complex::value_type(0.5);
    a = avg;
    b = std::conj(avg);
  }
  if (n % 2 == 0) {
    // Row n/2 is its own mirror (l = -n/2): keep only its real part.
    Complex& mid = block[(n / 2) * nk + col];
    mid = Complex(mid.real(), 0);
  }
}

}  // namespace

template <typename Real>
SqgModel<Real>::SqgModel(const SqgParams& params, FftPlanning planning) : params_(params) {
  params_.validate();
  n_ = params_.N;
  nk_ = n_ / 2 + 1;
  m_ = params_.dealias ? 3 * n_ / 2 : n_;
  mk_ = m_ / 2 + 1;
  const bool exact = params_.dynamics == Dynamics::kExact;
  jacobian_scale_ = (exact && params_.dealias) ? Real(1.0 / 2.25) : Real(1);

  const double two_pi_over_l = 2.0 * std::numbers::pi / params_.L_m;
  const double sqrt_nsq = std::sqrt(params_.nsq_per_s2);
  const double k_cut = std::numbers::pi * n_ / params_.L_m;
  const std::size_t nspec = static_cast<std::size_t>(n_) * nk_;
  h_over_mu_.resize(nspec);
  inv_sinh_mu_.resize(nspec);
  inv_tanh_mu_.resize(nspec);
  ksq_.resize(nspec);
  hyperdiff_.resize(nspec);
  k_is_zero_.resize(nspec);
  for (int j = 0; j < n_; ++j) {
    const double l = two_pi_over_l * row_index(j, n_);
    for (int i = 0; i < nk_; ++i) {
      const double k = two_pi_over_l * col_index(i, n_);
      const double ksq = k * k + l * l;
      const double ktot = std::sqrt(ksq);
      // Eq. 1, with mu clipped away from zero; K = 0 is zeroed explicitly in invert().
      double mu = ktot * sqrt_nsq * params_.H_m / params_.f_per_s;
      mu = std::max(mu, std::numeric_limits<double>::epsilon());
      const std::size_t s = static_cast<std::size_t>(j) * nk_ + i;
      h_over_mu_[s] = static_cast<Real>(params_.H_m / mu);
      inv_sinh_mu_[s] = static_cast<Real>(1.0 / std::sinh(mu));  // 0 once sinh overflows
      inv_tanh_mu_[s] = static_cast<Real>(1.0 / std::tanh(mu));
      ksq_[s] = static_cast<Real>(ksq);
      k_is_zero_[s] = (j == 0 && i == 0);
      // Eq. 5 integrating factor; an infinite e-folding time gives exactly 1.
      hyperdiff_[s] = static_cast<Real>(std::exp((-params_.dt_s / params_.diff_efold_s) *
                                                 std::pow(ktot / k_cut, params_.diff_order)));
    }
  }

  // Derivative multipliers on the grid where the Jacobian is formed. The benchmark rounds
  // them to float32 once (docs/science.md, "Benchmark spectral conventions").
  const auto deriv = [&](int idx) {
    const double v = two_pi_over_l * idx;
    return static_cast<Real>(exact ? v : round_to_float(v));
  };
  deriv_k_.resize(mk_);
  deriv_l_.resize(m_);
  for (int i = 0; i < mk_; ++i)
    deriv_k_[i] = deriv(col_index(i, m_));
  for (int j = 0; j < m_; ++j)
    deriv_l_[j] = deriv(row_index(j, m_));

  make_plans(planning);

  // Eq. 3: the equilibrium jet, a function of y only, transformed like any grid field.
  std::vector<Real> eq = equilibrium_grid();
  q_eq_spec_.resize(spectral_size());
  Workspace ws = make_workspace();
  to_spectral(eq, q_eq_spec_, ws);
}

template <typename Real>
std::vector<Real> SqgModel<Real>::equilibrium_grid() const {
  const double l = 2.0 * std::numbers::pi / params_.L_m;
  const double mu_l = l * std::sqrt(params_.nsq_per_s2) * params_.H_m / params_.f_per_s;
  const double u = params_.U_ms;
  const double h = params_.H_m;
  std::vector<Real> eq(grid_size());
  for (int j = 0; j < n_; ++j) {
    const double y = j * params_.L_m / n_;
    double q0, q1;
    if (params_.symmetric) {
      q0 = -(mu_l * 0.5 * u / (l * h)) * std::cosh(0.5 * mu_l) * std::cos(l * y) /
           std::sinh(0.5 * mu_l);
      q1 = q0;
    } else {
      q0 = -(mu_l * u / (l * h)) * std::cos(l * y) / std::sinh(mu_l);
      q1 = q0 * std::cosh(mu_l);
    }
    for (int i = 0; i < n_; ++i) {
      eq[static_cast<std::size_t>(j) * n_ + i] = static_cast<Real>(q0);
      eq[static_cast<std::size_t>(n_ + j) * n_ + i] = static_cast<Real>(q1);
    }
  }
  return eq;
}

template <typename Real>
void SqgModel<Real>::make_plans(FftPlanning planning) {
  using F = detail::Fftw<Real>;
  const unsigned flags = planning == FftPlanning::kMeasure ? FFTW_MEASURE : FFTW_ESTIMATE;
  // Plan on scratch buffers: FFTW_MEASURE overwrites them while it times candidates.
  Workspace ws = make_workspace();
  std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
  const int n2[2] = {n_, n_};
  const int m2[2] = {m_, m_};
  GridVector grid(grid_size());
  plan_grid_r2c_ =
      F::many_r2c(2, n2, 2, grid.data(), n_ * n_, ws.grid_spec.data(), n_ * nk_, flags);
  plan_grid_c2r_ =
      F::many_c2r(2, n2, 2, ws.grid_spec.data(), n_ * nk_, grid.data(), n_ * n_, flags);
  const int ms = m_ * mk_;
  if (!params_.dealias) {
    plan_deriv_c2r_ =
        F::many_c2r(2, m2, 8, ws.deriv_spec.data(), ms, ws.deriv_grid.data(), m_ * m_, flags);
    plan_adv_r2c_ =
        F::many_r2c(2, m2, 2, ws.adv_grid.data(), m_ * m_, ws.adv_spec.data(), ms, flags);
  } else {
    const int m1[1] = {m_};
    // Columns 0..N/2 of the 8 padded derivative spectra, inverse along l, in place.
    const fftw_iodim col{m_, mk_, mk_};
    const fftw_iodim inv_many[2] = {{nk_, 1, 1}, {8, ms, ms}};
    plan_col_inverse_ = F::guru_dft(1, &col, 2, inv_many, ws.deriv_spec.data(),
                                    ws.deriv_spec.data(), FFTW_BACKWARD, flags);
    plan_row_c2r_ =
        F::many_c2r(1, m1, 8 * m_, ws.deriv_spec.data(), mk_, ws.deriv_grid.data(), m_, flags);
    plan_row_r2c_ =
        F::many_r2c(1, m1, 2 * m_, ws.adv_grid.data(), m_, ws.adv_spec.data(), mk_, flags);
    // Only the columns kept by the truncation (0..N/2-1), forward along l, in place.
    const fftw_iodim fwd_many[2] = {{n_ / 2, 1, 1}, {2, ms, ms}};
    plan_col_forward_ = F::guru_dft(1, &col, 2, fwd_many, ws.adv_spec.data(), ws.adv_spec.data(),
                                    FFTW_FORWARD, flags);
  }
  const bool split_ok = plan_col_inverse_ && plan_row_c2r_ && plan_row_r2c_ && plan_col_forward_;
  const bool whole_ok = plan_deriv_c2r_ && plan_adv_r2c_;
  if (!plan_grid_r2c_ || !plan_grid_c2r_ || !(params_.dealias ? split_ok : whole_ok)) {
    throw std::runtime_error("FFTW could not create plans for N = " + std::to_string(n_));
  }
}

template <typename Real>
SqgModel<Real>::~SqgModel() {
  using F = detail::Fftw<Real>;
  std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
  for (auto p : {plan_grid_r2c_, plan_grid_c2r_, plan_deriv_c2r_, plan_adv_r2c_, plan_col_inverse_,
                 plan_row_c2r_, plan_row_r2c_, plan_col_forward_}) {
    if (p) F::destroy(p);
  }
}

template <typename Real>
typename SqgModel<Real>::Workspace SqgModel<Real>::make_workspace() const {
  Workspace ws;
  const std::size_t ns = spectral_size();
  for (auto* v : {&ws.psi, &ws.stage, &ws.k1, &ws.k2, &ws.k3, &ws.k4, &ws.grid_spec}) {
    v->assign(ns, Complex(0));
  }
  const std::size_t mspec = static_cast<std::size_t>(m_) * mk_;
  const std::size_t mgrid = static_cast<std::size_t>(m_) * m_;
  ws.deriv_spec.assign(8 * mspec, Complex(0));
  ws.deriv_grid.assign(8 * mgrid, Real(0));
  ws.adv_grid.assign(2 * mgrid, Real(0));
  ws.adv_spec.assign(2 * mspec, Complex(0));
  return ws;
}

template <typename Real>
double SqgModel<Real>::wavenumber_k(int i) const {
  return 2.0 * std::numbers::pi / params_.L_m * col_index(i, n_);
}
template <typename Real>
double SqgModel<Real>::wavenumber_l(int j) const {
  return 2.0 * std::numbers::pi / params_.L_m * row_index(j, n_);
}

template <typename Real>
void SqgModel<Real>::to_spectral(std::span<const Real> grid, std::span<Complex> spec,
                                 Workspace& ws) const {
  (void)ws;
  if (grid.size() != grid_size() || spec.size() != spectral_size()) {
    throw std::invalid_argument("SqgModel::to_spectral: size mismatch");
  }
  // r2c does not modify its input, but FFTW's signature is non-const.
  detail::Fftw<Real>::exec_r2c(plan_grid_r2c_, const_cast<Real*>(grid.data()), spec.data());
}

template <typename Real>
void SqgModel<Real>::to_grid(std::span<const Complex> spec, std::span<Real> grid,
                             Workspace& ws) const {
  if (grid.size() != grid_size() || spec.size() != spectral_size()) {
    throw std::invalid_argument("SqgModel::to_grid: size mismatch");
  }
  std::copy(spec.begin(), spec.end(), ws.grid_spec.begin());
  for (int lev = 0; lev < 2; ++lev) {
    Complex* block = ws.grid_spec.data() + static_cast<std::size_t>(lev) * n_ * nk_;
    make_column_hermitian(block, n_, nk_, 0);
    make_column_hermitian(block, n_, nk_, n_ / 2);
  }
  detail::Fftw<Real>::exec_c2r(plan_grid_c2r_, ws.grid_spec.data(), grid.data());
  const Real norm = Real(1) / (Real(n_) * Real(n_));
  for (auto& v : grid)
    v *= norm;
}

template <typename Real>
void SqgModel<Real>::invert(std::span<const Complex> q, std::span<Complex> psi) const {
  const std::size_t ns = static_cast<std::size_t>(n_) * nk_;
  const Complex* q0 = q.data();
  const Complex* q1 = q.data() + ns;
  Complex* p0 = psi.data();
  Complex* p1 = psi.data() + ns;
  for (std::size_t s = 0; s < ns; ++s) {
    // Same operation order as the benchmark (division by a real = multiply by its inverse).
    p0[s] = h_over_mu_[s] * (q1[s] * inv_sinh_mu_[s] - q0[s] * inv_tanh_mu_[s]);
    p1[s] = h_over_mu_[s] * (q1[s] * inv_tanh_mu_[s] - q0[s] * inv_sinh_mu_[s]);
  }
  p0[0] = Complex(0);
  p1[0] = Complex(0);
}

// Fills ws.deriv_spec with the 8 padded spectra  -i l psi, i k psi, i k q, i l q  (levels 0, 1
// each), following the benchmark's padding conventions (docs/science.md §1).
template <typename Real>
void SqgModel<Real>::differentiate_padded(std::span<const Complex> psi, std::span<const Complex> q,
                                          Workspace& ws) const {
  const std::size_t ns = static_cast<std::size_t>(n_) * nk_;
  const std::size_t ms = static_cast<std::size_t>(m_) * mk_;
  const int half = n_ / 2;
  const Real pad_scale = Real(2.25);  // (M/N)^2: keeps grid values under the larger inverse
  for (int f = 0; f < 8; ++f) {
    Complex* d = ws.deriv_spec.data() + f * ms;
    // Rows N/2..M-N/2-1 are zero; so are columns N/2+1.. of every row. The row pass (c2r)
    // may overwrite its input, so these are re-zeroed on every call.
    std::fill(d + static_cast<std::size_t>(half) * mk_,
              d + static_cast<std::size_t>(m_ - half) * mk_, Complex(0));
    for (int jp = 0; jp < m_; ++jp) {
      std::fill(d + static_cast<std::size_t>(jp) * mk_ + half + 1,
                d + static_cast<std::size_t>(jp + 1) * mk_, Complex(0));
    }
  }
  for (int lev = 0; lev < 2; ++lev) {
    const Complex* ps = psi.data() + lev * ns;
    const Complex* qs = q.data() + lev * ns;
    Complex* u = ws.deriv_spec.data() + (0 * 2 + lev) * ms;
    Complex* v = ws.deriv_spec.data() + (1 * 2 + lev) * ms;
    Complex* qx = ws.deriv_spec.data() + (2 * 2 + lev) * ms;
    Complex* qy = ws.deriv_spec.data() + (3 * 2 + lev) * ms;
    for (int j = 0; j < n_; ++j) {
      const int jp = j < half ? j : j + (m_ - n_);  // padded row
      const Real kl = deriv_l_[jp];
      for (int i = 0; i <= half; ++i) {
        Complex a = ps[static_cast<std::size_t>(j) * nk_ + i];
        Complex b = qs[static_cast<std::size_t>(j) * nk_ + i];
        if (i == half) {  // the N-grid Nyquist column goes conjugated to padded column N/2
          a = std::conj(a);
          b = std::conj(b);
        }
        a *= pad_scale;
        b *= pad_scale;
        const Real kk = deriv_k_[i];
        const std::size_t d = static_cast<std::size_t>(jp) * mk_ + i;
        // (i c) * (x + i y) = -c y + i c x, exactly as complex multiplication rounds it.
        u[d] = Complex(kl * a.imag(), -kl * a.real());
        v[d] = Complex(-kk * a.imag(), kk * a.real());
        qx[d] = Complex(-kk * b.imag(), kk * b.real());
        qy[d] = Complex(-kl * b.imag(), kl * b.real());
      }
    }
  }
}

template <typename Real>
void SqgModel<Real>::differentiate_unpadded(std::span<const Complex> psi,
                                            std::span<const Complex> q, Workspace& ws) const {
  const std::size_t ns = static_cast<std::size_t>(n_) * nk_;
  for (int lev = 0; lev < 2; ++lev) {
    const Complex* ps = psi.data() + lev * ns;
    const Complex* qs = q.data() + lev * ns;
    Complex* u = ws.deriv_spec.data() + (0 * 2 + lev) * ns;
    Complex* v = ws.deriv_spec.data() + (1 * 2 + lev) * ns;
    Complex* qx = ws.deriv_spec.data() + (2 * 2 + lev) * ns;
    Complex* qy = ws.deriv_spec.data() + (3 * 2 + lev) * ns;
    for (int j = 0; j < n_; ++j) {
      const Real kl = deriv_l_[j];
      for (int i = 0; i < nk_; ++i) {
        const std::size_t s = static_cast<std::size_t>(j) * nk_ + i;
        const Complex a = ps[s];
        const Complex b = qs[s];
        const Real kk = deriv_k_[i];
        u[s] = Complex(kl * a.imag(), -kl * a.real());
        v[s] = Complex(-kk * a.imag(), kk * a.real());
        qx[s] = Complex(-kk * b.imag(), kk * b.real());
        qy[s] = Complex(-kl * b.imag(), kl * b.real());
      }
    }
  }
  for (int f = 0; f < 8; ++f) {
    make_column_hermitian(ws.deriv_spec.data() + f * ns, n_, nk_, 0);
    make_column_hermitian(ws.deriv_spec.data() + f * ns, n_, nk_, n_ / 2);
  }
}

template <typename Real>
void SqgModel<Real>::jacobian(std::span<const Complex> psi, std::span<const Complex> q,
                              std::span<Complex> adv, Workspace& ws) const {
  using F = detail::Fftw<Real>;
  const std::size_t ms = static_cast<std::size_t>(m_) * mk_;
  if (params_.dealias) {
    differentiate_padded(psi, q, ws);
    F::exec_dft(plan_col_inverse_, ws.deriv_spec.data(), ws.deriv_spec.data());
    // The k = 0 column's real part is the inverse of its Hermitian-symmetrised version
    // (docs/science.md §1: what numpy does implicitly); drop the imaginary part explicitly.
    for (int f = 0; f < 8; ++f) {
      Complex* d = ws.deriv_spec.data() + f * ms;
      for (int jp = 0; jp < m_; ++jp)
        d[jp * mk_] = Complex(d[jp * mk_].real(), 0);
    }
    F::exec_c2r(plan_row_c2r_, ws.deriv_spec.data(), ws.deriv_grid.data());
  } else {
    differentiate_unpadded(psi, q, ws);
    F::exec_c2r(plan_deriv_c2r_, ws.deriv_spec.data(), ws.deriv_grid.data());
  }
  const std::size_t mg = static_cast<std::size_t>(m_) * m_;
  // FFTW's inverse is unnormalised; numpy's divides by M^2 (each field, before the product).
  const Real norm = Real(1) / (Real(m_) * Real(m_));
  for (int lev = 0; lev < 2; ++lev) {
    const Real* u = ws.deriv_grid.data() + (0 * 2 + lev) * mg;
    const Real* v = ws.deriv_grid.data() + (1 * 2 + lev) * mg;
    const Real* qx = ws.deriv_grid.data() + (2 * 2 + lev) * mg;
    const Real* qy = ws.deriv_grid.data() + (3 * 2 + lev) * mg;
    Real* a = ws.adv_grid.data() + lev * mg;
    for (std::size_t p = 0; p < mg; ++p) {
      a[p] = (u[p] * norm) * (qx[p] * norm) + (v[p] * norm) * (qy[p] * norm);
    }
  }
  if (params_.dealias) {
    F::exec_r2c(plan_row_r2c_, ws.adv_grid.data(), ws.adv_spec.data());
    F::exec_dft(plan_col_forward_, ws.adv_spec.data(), ws.adv_spec.data());
  } else {
    F::exec_r2c(plan_adv_r2c_, ws.adv_grid.data(), ws.adv_spec.data());
  }

  const std::size_t ns = static_cast<std::size_t>(n_) * nk_;
  const int half = n_ / 2;
  for (int lev = 0; lev < 2; ++lev) {
    const Complex* src = ws.adv_spec.data() + lev * ms;
    Complex* dst = adv.data() + lev * ns;
    if (!params_.dealias) {
      for (std::size_t s = 0; s < ns; ++s)
        dst[s] = src[s] * jacobian_scale_;
      continue;
    }
    // Truncate back to the N grid; the Nyquist column of the Jacobian is zero.
    for (int j = 0; j < n_; ++j) {
      const int jp = j < half ? j : j + (m_ - n_);
      for (int i = 0; i < half; ++i) {
        dst[static_cast<std::size_t>(j) * nk_ + i] =
            src[static_cast<std::size_t>(jp) * mk_ + i] * jacobian_scale_;
      }
      dst[static_cast<std::size_t>(j) * nk_ + half] = Complex(0);
    }
  }
}

template <typename Real>
void SqgModel<Real>::tendency(std::span<const Complex> q, std::span<Complex> dqdt,
                              Workspace& ws) const {
  const std::size_t total = spectral_size();
  const std::size_t ns = total / 2;
  invert(q, ws.psi);
  if (params_.advection) {
    jacobian(ws.psi, q, dqdt, ws);
  } else {
    std::fill(dqdt.begin(), dqdt.end(), Complex(0));
  }
  const Real inv_tdiab = static_cast<Real>(1.0 / params_.tdiab_s);
  for (std::size_t s = 0; s < total; ++s) {
    dqdt[s] = inv_tdiab * (q_eq_spec_[s] - q[s]) - dqdt[s];
  }
  if (params_.ekman_r_ms > 0) {  // eq. 4
    const Real r = static_cast<Real>(params_.ekman_r_ms);
    for (std::size_t s = 0; s < ns; ++s)
      dqdt[s] += r * ksq_[s] * ws.psi[s];
    if (params_.symmetric) {
      for (std::size_t s = 0; s < ns; ++s)
        dqdt[ns + s] -= r * ksq_[s] * ws.psi[ns + s];
    }
  }
}

template <typename Real>
void SqgModel<Real>::step(std::span<Complex> q, Workspace& ws) const {
  const std::size_t total = spectral_size();
  const Real dt = static_cast<Real>(params_.dt_s);
  const Real half = Real(0.5);
  const Real two = Real(2);
  const Real sixth = Real(1) / Real(6);  // numpy divides by a real as x * (1/6)
  Complex* k[4] = {ws.k1.data(), ws.k2.data(), ws.k3.data(), ws.k4.data()};
  std::span<Complex> stage(ws.stage);

  tendency(q, ws.k1, ws);
  for (std::size_t s = 0; s < total; ++s) {
    k[0][s] *= dt;
    stage[s] = q[s] + half * k[0][s];
  }
  tendency(stage, ws.k2, ws);
  for (std::size_t s = 0; s < total; ++s) {
    k[1][s] *= dt;
    stage[s] = q[s] + half * k[1][s];
  }
  tendency(stage, ws.k3, ws);
  for (std::size_t s = 0; s < total; ++s) {
    k[2][s] *= dt;
    stage[s] = q[s] + k[2][s];
  }
  tendency(stage, ws.k4, ws);
  const std::size_t ns = total / 2;
  for (std::size_t s = 0; s < total; ++s) {
    k[3][s] *= dt;
    const Complex incr = (k[0][s] + two * k[1][s] + two * k[2][s] + k[3][s]) * sixth;
    q[s] = hyperdiff_[s % ns] * (q[s] + incr);
  }
}

template <typename Real>
void SqgModel<Real>::advance(std::span<Complex> q, int steps, Workspace& ws) const {
  for (int n = 0; n < steps; ++n)
    step(q, ws);
}

template <typename Real>
EnsembleStepper<Real>::EnsembleStepper(const SqgModel<Real>& model, int threads) : model_(model) {
  const int t = threads > 0 ? threads : omp_get_max_threads();
  for (int i = 0; i < t; ++i)
    workspaces_.push_back(model_.make_workspace());
}

template <typename Real>
void EnsembleStepper<Real>::advance(std::span<Complex> q, int members, int steps) {
  const std::size_t ns = model_.spectral_size();
  if (q.size() != ns * static_cast<std::size_t>(members)) {
    throw std::invalid_argument("EnsembleStepper::advance: expected " + std::to_string(members) +
                                " spectral states");
  }
  const int nthreads = threads();
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int m = 0; m < members; ++m) {
    auto& ws = workspaces_[omp_get_thread_num()];
    model_.advance(q.subspan(static_cast<std::size_t>(m) * ns, ns), steps, ws);
  }
}

template <typename Real>
void EnsembleStepper<Real>::advance_grid(std::span<Real> grid, int members, int steps) {
  const std::size_t ng = model_.grid_size();
  const std::size_t ns = model_.spectral_size();
  if (grid.size() != ng * static_cast<std::size_t>(members)) {
    throw std::invalid_argument("EnsembleStepper::advance_grid: expected " +
                                std::to_string(members) + " grid states");
  }
  if (steps == 0) return;  // no grid round trip: zero steps leave the fields bit for bit
  spec_.resize(ns * members);
  const int nthreads = threads();
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int m = 0; m < members; ++m) {
    auto& ws = workspaces_[omp_get_thread_num()];
    auto g = grid.subspan(static_cast<std::size_t>(m) * ng, ng);
    auto s = std::span<Complex>(spec_).subspan(static_cast<std::size_t>(m) * ns, ns);
    model_.to_spectral(g, s, ws);
    model_.advance(s, steps, ws);
    model_.to_grid(s, g, ws);
  }
}

template class SqgModel<double>;
template class SqgModel<float>;
template class EnsembleStepper<double>;
template class EnsembleStepper<float>;

}  // namespace rtda::sqg
