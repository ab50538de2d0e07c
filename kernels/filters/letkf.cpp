// LETKF (docs/science.md §3, eq. 7–10). See letkf.hpp for the decomposition into columns.
//
// Per column (i, j) the candidate observations of each level are gathered once, as rows
// g_o = sqrt(rho_o) / sigma_o * (Y_b row of o), so that sum_o g_o g_o^T = sum_o rho_o / sigma_o^2
// y_o y_o^T. With A_l = those sums over level-l observations, the two elements of the column
// need C_0 = A_0 + v A_1 and C_1 = v A_0 + A_1 (eq. 7: w = rho on the own level, rho v on
// the other), which is exact algebra; observations whose rho passes the cut-off but whose
// rho v does not are kept in a separate partial sum used only for their own level.
// Each element then needs one k x k symmetric eigendecomposition (eq. 8) and O(k^2) work.
#define EIGEN_DONT_PARALLELIZE  // parallelism is over columns, never inside Eigen
#include "filters/letkf.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "filters/letkf_math.hpp"
#include "filters/localization.hpp"

namespace rtda::filters {

namespace {

[[noreturn]] void invalid_setting(const char* key, double value, const char* expected) {
  std::ostringstream m;
  m.precision(17);
  m << "letkf." << key << " = " << value << ": expected " << expected;
  throw std::invalid_argument(m.str());
}

}  // namespace

void LetkfSettings::validate() const {
  if (!std::isfinite(localization_radius_km) || !(localization_radius_km > 0)) {
    invalid_setting("localization_radius_km", localization_radius_km, "a positive finite radius");
  }
  if (!std::isfinite(rtps) || rtps < 0 || rtps > 1) {
    invalid_setting("rtps", rtps, "a relaxation factor in [0, 1]");
  }
  if (!std::isfinite(vertical_distance_km) || vertical_distance_km < 0) {
    invalid_setting("vertical_distance_km", vertical_distance_km, "a non-negative finite distance");
  }
  if (!std::isfinite(weight_cutoff) || weight_cutoff < 0 || weight_cutoff >= 1) {
    invalid_setting("weight_cutoff", weight_cutoff, "a weight in [0, 1)");
  }
}

LetkfObservationCells::LetkfObservationCells(const obs::ObservationSpace& space, double radius_m)
    : n(space.grid_n()) {
  const double dx = space.domain_m() / n;
  const std::size_t cells = static_cast<std::size_t>(n) * n;
  std::vector<std::uint32_t> cell_of(space.size());
  for (int lev = 0; lev < 2; ++lev)
    start[lev].assign(cells + 1, 0);
  const auto cell_index = [&](double pos) {
    return std::clamp(static_cast<int>(std::floor(pos / dx)), 0, n - 1);
  };
  for (std::size_t o = 0; o < space.size(); ++o) {
    cell_of[o] =
        static_cast<std::uint32_t>(cell_index(space.y_m()[o]) * n + cell_index(space.x_m()[o]));
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
  // cell 0 and cell N-1 touch the point; otherwise min(a, N-1-a) cell widths.
  const auto gap = [&](int a) {
    return (a == 0 || a == n - 1) ? 0.0 : std::min(a, n - 1 - a) * dx;
  };
  // Slack of 1e-6 dx keeps cells whose nearest corner is within round-off of L_h.
  const double reach = radius_m + 1e-6 * dx;
  for (int b = 0; b < n; ++b) {
    for (int a = 0; a < n; ++a) {
      if (gap(a) * gap(a) + gap(b) * gap(b) < reach * reach) offsets.push_back({a, b});
    }
  }
}

std::size_t LetkfObservationCells::candidates(std::size_t column) const {
  const int i = static_cast<int>(column % n), j = static_cast<int>(column / n);
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

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Per-call observation-space quantities shared by all columns (eq. 7–9).
struct EnsembleObservations {
  int k = 0;
  std::size_t p = 0;
  std::vector<double> dev;    // [obs][member]: Y_b, y_b^(i) - mean_i y_b^(i) (unscaled)
  std::vector<double> innov;  // y - mean_i y_b^(i)
  std::vector<double> inv_sd;

  EnsembleObservations(std::span<const double> hx, int members, const obs::ObservationSpace& space)
      : k(members), p(space.size()), dev(p * members), innov(p), inv_sd(p) {
    for (std::size_t o = 0; o < p; ++o) {
      double mean = 0;
      for (int m = 0; m < k; ++m)
        mean += hx[m * p + o];
      mean /= k;
      for (int m = 0; m < k; ++m)
        dev[o * k + m] = hx[m * p + o] - mean;
      innov[o] = space.value()[o] - mean;
      inv_sd[o] = 1.0 / space.error_sd()[o];
    }
  }
  const double* row(std::size_t o) const { return dev.data() + o * k; }
};

// The ensemble-space part of eq. 8–9 for one element, without ever forming V.
//
// C = V Lambda V^T is computed as Eigen's SelfAdjointEigenSolver does it: scale C into
// [-1, 1], Householder tridiagonalization C = Q T Q^T, then the implicit symmetric QR
// algorithm with Wilkinson shifts on T, T = Z Lambda Z^T, V = Q Z. The element update only
// needs V^T x, V^T b and V t for three vectors, so the k - 1 reflectors of Q and the Givens
// rotations of Z are applied to those vectors (O(k^2) each) instead of accumulating V
// (O(k^3) inside the QR sweeps). The eigenvalues are not sorted (each is used only with its
// own eigenvector).
//
// The QR sweep is a chain of dependent square roots and divisions (latency-bound, ~500
// rotations at k = 20), so the two elements of a column are decomposed in lockstep, one
// rotation of each in turn (decompose_pair): the chains are independent and the CPU
// overlaps them. The arithmetic of each is exactly that of decompose() alone.
class EnsembleTransform {
 public:
  explicit EnsembleTransform(int k)
      : k_(k), mat_(k, k), hcoeffs_(k > 1 ? k - 1 : 1), diag_(k), sub_(k > 1 ? k - 1 : 1) {
    rotations_.reserve(static_cast<std::size_t>(8) * k * k);
  }

  // Decomposes the symmetric C (lower triangle read). False if the QR iteration did not
  // converge (Eigen's limit: 30 k sweeps), which the caller reports.
  bool decompose(const Eigen::MatrixXd& c) {
    prepare(c);
    while (advance()) {
    }
    return finish();
  }
  static void decompose_pair(EnsembleTransform& a, const Eigen::MatrixXd& ca, EnsembleTransform& b,
                             const Eigen::MatrixXd& cb, bool& ok_a, bool& ok_b) {
    a.prepare(ca);
    b.prepare(cb);
    bool more_a = true, more_b = true;
    while (more_a || more_b) {
      more_a = more_a && a.advance();
      more_b = more_b && b.advance();
    }
    ok_a = a.finish();
    ok_b = b.finish();
  }

  const Eigen::VectorXd& eigenvalues() const { return diag_; }

  // v <- V^T v = Z^T Q^T v and the same for w (two independent chains in one pass).
  void to_eigenbasis(Eigen::VectorXd& v, Eigen::VectorXd& w) const {
    for (int i = 0; i + 1 < k_; ++i) {
      reflect(i, v);
      reflect(i, w);
    }
    for (const Rotation& r : rotations_) {
      const double a = v(r.k), b = v(r.k + 1);
      const double aw = w(r.k), bw = w(r.k + 1);
      v(r.k) = r.c * a - r.s * b;
      v(r.k + 1) = r.s * a + r.c * b;
      w(r.k) = r.c * aw - r.s * bw;
      w(r.k + 1) = r.s * aw + r.c * bw;
    }
  }
  // v <- V v = Q Z v.
  void from_eigenbasis(Eigen::VectorXd& v) const {
    for (auto r = rotations_.rbegin(); r != rotations_.rend(); ++r) {
      const double a = v(r->k), b = v(r->k + 1);
      v(r->k) = r->c * a + r->s * b;
      v(r->k + 1) = -r->s * a + r->c * b;
    }
    for (int i = k_ - 2; i >= 0; --i)
      reflect(i, v);
  }

 private:
  struct Rotation {
    int k;
    double c, s;  // Z <- Z G, G = [c s; -s c] on columns k, k+1 (Eigen's applyOnTheRight)
  };
  enum class Phase { kSearch, kSweep, kDone, kFailed };

  // Scaling and tridiagonalization; the QR iteration starts at the bottom of T.
  void prepare(const Eigen::MatrixXd& c) {
    mat_.triangularView<Eigen::Lower>() = c;
    scale_ = mat_.triangularView<Eigen::Lower>().toDenseMatrix().cwiseAbs().maxCoeff();
    if (scale_ == 0) scale_ = 1;  // C = 0 (observations without ensemble spread)
    mat_.triangularView<Eigen::Lower>() /= scale_;
    Eigen::internal::tridiagonalization_inplace(mat_, hcoeffs_);
    for (int i = 0; i < k_; ++i)
      diag_(i) = mat_(i, i);
    for (int i = 0; i + 1 < k_; ++i)
      sub_(i) = mat_(i + 1, i);
    rotations_.clear();
    phase_ = k_ > 1 ? Phase::kSearch : Phase::kDone;
    start_ = 0;
    end_ = k_ - 1;
    iter_ = 0;
  }

  bool finish() {
    if (phase_ == Phase::kFailed) return false;
    diag_ *= scale_;  // the eigenvalues Lambda of C
    return true;
  }

  // One unit of Eigen 3.4's computeFromTridiagonal_impl / tridiagonal_qr_step: either the
  // deflation search that opens a QR sweep, or one Givens rotation of the sweep (recorded).
  // False once the iteration has finished (or failed).
  [[gnu::always_inline]] inline bool advance() {
    double* diag = diag_.data();
    double* sub = sub_.data();
    if (phase_ == Phase::kSearch) {
      const double considered_zero = std::numeric_limits<double>::min();
      const double precision_inv = 1.0 / std::numeric_limits<double>::epsilon();
      for (int i = start_; i < end_; ++i) {
        if (std::abs(sub[i]) < considered_zero) {
          sub[i] = 0;
        } else {
          // |e_i| <= eps sqrt(|d_i| + |d_i+1|), scaled against underflow
          const double scaled = precision_inv * sub[i];
          if (scaled * scaled <= std::abs(diag[i]) + std::abs(diag[i + 1])) sub[i] = 0;
        }
      }
      while (end_ > 0 && sub[end_ - 1] == 0)
        --end_;
      if (end_ <= 0) {
        phase_ = Phase::kDone;
        return false;
      }
      if (++iter_ > 30L * k_) {
        phase_ = Phase::kFailed;
        return false;
      }
      start_ = end_ - 1;
      while (start_ > 0 && sub[start_ - 1] != 0)
        --start_;
      // Wilkinson shift, written to avoid underflow of e^2 (as in Eigen).
      const double td = (diag[end_ - 1] - diag[end_]) * 0.5;
      const double e = sub[end_ - 1];
      double mu = diag[end_];
      if (td == 0) {
        mu -= std::abs(e);
      } else if (e != 0) {
        const double e2 = e * e;
        // hypot(td, e); T is scaled into [-1, 1], so only underflow needs std::hypot.
        const double h2 = td * td + e2;
        const double h = h2 > 1e-300 ? std::sqrt(h2) : std::hypot(td, e);
        if (e2 == 0) {
          mu -= e / ((td + (td > 0 ? h : -h)) / e);
        } else {
          mu -= e2 / (td + (td > 0 ? h : -h));
        }
      }
      x_ = diag[start_] - mu;
      z_ = sub[start_];
      pos_ = start_;
      phase_ = z_ != 0 ? Phase::kSweep : Phase::kSearch;
      return true;
    }
    if (phase_ != Phase::kSweep) return false;
    const int k = pos_;
    const double z = z_;
    // Givens rotation with c = x / r, s = -z / r (Eigen's makeGivens convention): one
    // square root and two independent divisions. T is scaled into [-1, 1], so x^2 + z^2
    // cannot overflow; near underflow, Eigen's makeGivens.
    double c, s;
    const double r = std::sqrt(x_ * x_ + z * z);
    if (r > 1e-150) {
      c = x_ / r;
      s = -z / r;
    } else {
      Eigen::JacobiRotation<double> rot;
      rot.makeGivens(x_, z);
      c = rot.c();
      s = rot.s();
    }
    // T <- G^T T G
    const double sdk = s * diag[k] + c * sub[k];
    const double dkp1 = s * sub[k] + c * diag[k + 1];
    diag[k] = c * (c * diag[k] - s * sub[k]) - s * (c * sub[k] - s * diag[k + 1]);
    diag[k + 1] = s * sdk + c * dkp1;
    sub[k] = c * sdk - s * dkp1;
    if (k > start_) sub[k - 1] = c * sub[k - 1] - s * z;
    // chase the bulge
    x_ = sub[k];
    if (k < end_ - 1) {
      z_ = -s * sub[k + 1];
      sub[k + 1] = c * sub[k + 1];
    }
    rotations_.push_back({k, c, s});
    pos_ = k + 1;
    if (pos_ >= end_ || z_ == 0) phase_ = Phase::kSearch;
    return true;
  }

  // H_i v with H_i = I - h u u^T, u = (0..0, 1, mat(i+2.., i)) starting at row i + 1.
  void reflect(int i, Eigen::VectorXd& v) const {
    const int len = k_ - i - 2;
    double dot = v(i + 1);
    for (int r = 0; r < len; ++r)
      dot += mat_(i + 2 + r, i) * v(i + 2 + r);
    const double f = hcoeffs_(i) * dot;
    v(i + 1) -= f;
    for (int r = 0; r < len; ++r)
      v(i + 2 + r) -= f * mat_(i + 2 + r, i);
  }

  int k_;
  Eigen::MatrixXd mat_;  // reflectors below the subdiagonal after tridiagonalization
  Eigen::VectorXd hcoeffs_, diag_, sub_;
  double scale_ = 1;
  std::vector<Rotation> rotations_;
  // State of the resumable QR iteration.
  Phase phase_ = Phase::kDone;
  int start_ = 0, end_ = 0, pos_ = 0;
  long iter_ = 0;
  double x_ = 0, z_ = 0;
};

// Scratch of one thread, sized once (no allocation per column after the first few).
struct Workspace {
  int k;
  // Per observation level: candidates with rho v > cut-off ("both" levels use them) first,
  // then those with only rho > cut-off (own level only).
  std::array<std::vector<std::uint32_t>, 2> both_idx, own_idx;
  std::array<std::vector<double>, 2> both_rho, own_rho;
  RowMatrix g;                                   // weighted rows of one group
  Eigen::VectorXd gd;                            // weighted innovations of one group
  std::array<Eigen::MatrixXd, 2> a_both, a_own;  // lower triangles of sum g g^T
  std::array<Eigen::VectorXd, 2> b_both, b_own;  // sum g * weighted innovation
  std::array<Eigen::MatrixXd, 2> c;              // C of the column's two elements (eq. 8)
  std::array<Eigen::VectorXd, 2> b;              // Y_b^T R^-1 (y - ybar) of both elements (eq. 9)
  Eigen::VectorXd z, zb;
  std::array<EnsembleTransform, 2> transform;
  std::vector<double> prior, post;  // [level][member] of the current column

  explicit Workspace(int members)
      : k(members),
        g(64, members),
        gd(64),
        c{Eigen::MatrixXd(members, members), Eigen::MatrixXd(members, members)},
        b{Eigen::VectorXd(members), Eigen::VectorXd(members)},
        z(members),
        zb(members),
        transform{EnsembleTransform(members), EnsembleTransform(members)},
        prior(2 * members),
        post(2 * members) {
    for (int l = 0; l < 2; ++l) {
      a_both[l].resize(k, k);
      a_own[l].resize(k, k);
      b_both[l].resize(k);
      b_own[l].resize(k);
    }
  }

  // a += sum over the group of g g^T (lower triangle), bv += sum g * gd.
  void accumulate(const EnsembleObservations& eo, std::span<const std::uint32_t> idx,
                  std::span<const double> rho, Eigen::MatrixXd& a, Eigen::VectorXd& bv) {
    a.setZero();
    bv.setZero();
    const auto rows = static_cast<Eigen::Index>(idx.size());
    if (rows == 0) return;
    if (g.rows() < rows) {
      g.resize(2 * rows, k);
      gd.resize(2 * rows);
    }
    for (Eigen::Index r = 0; r < rows; ++r) {
      const std::uint32_t o = idx[r];
      // sqrt(w) / sigma, so that g^T g carries R_loc^-1 = diag(w / sigma^2) (eq. 7).
      const double s = std::sqrt(rho[r]) * eo.inv_sd[o];
      const double* y = eo.row(o);
      for (int m = 0; m < k; ++m)
        g(r, m) = s * y[m];
      gd(r) = s * eo.innov[o];
    }
    a.selfadjointView<Eigen::Lower>().rankUpdate(g.topRows(rows).transpose());
    bv.noalias() = g.topRows(rows).transpose() * gd.head(rows);
  }

  // Eq. 8–9 for the elements of the column with local observations (used[lev]), from c[lev]
  // (lower triangle) and b[lev]; prior members in prior[lev*k ..], analysis members written
  // to post[lev*k ..]. Returns how many eigendecompositions did not converge.
  int solve_column(std::array<bool, 2> used) {
    std::array<bool, 2> ok = {true, true};
    if (used[0] && used[1]) {
      EnsembleTransform::decompose_pair(transform[0], c[0], transform[1], c[1], ok[0], ok[1]);
    } else {
      for (int lev = 0; lev < 2; ++lev)
        if (used[lev]) ok[lev] = transform[lev].decompose(c[lev]);  // C = V Lambda V^T (eq. 8)
    }
    for (int lev = 0; lev < 2; ++lev)
      if (used[lev] && ok[lev]) update_element(lev);
    return !ok[0] + !ok[1];
  }

  // Eq. 9 for one element, given the decomposition of its C.
  void update_element(int lev) {
    const EnsembleTransform& tr = transform[lev];
    const double* xb = prior.data() + lev * k;
    double* xa = post.data() + lev * k;
    double mean = 0;
    for (int m = 0; m < k; ++m)
      mean += xb[m];
    mean /= k;
    for (int m = 0; m < k; ++m)
      z(m) = xb[m] - mean;  // X_b, unscaled
    const Eigen::VectorXd& lambda = tr.eigenvalues();
    zb = b[lev];
    tr.to_eigenbasis(z, zb);  // V^T X_b and V^T Y_b^T R^-1 (y - ybar)
    // With G = (Lambda + (k-1) I)^-1, P~a = V G V^T. The mean increment X_b w-bar (eq. 9) is
    // X_b^T V G V^T b = sum_i z_i g_i zb_i; the perturbations X_b sqrt(k-1) P~a^(1/2) are,
    // because P~a^(1/2) is symmetric, V diag(sqrt((k-1) g)) V^T X_b.
    double increment = 0;
    for (int i = 0; i < k; ++i) {
      const double gi = 1.0 / (lambda(i) + (k - 1));
      increment += z(i) * gi * zb(i);
      z(i) *= std::sqrt((k - 1) * gi);
    }
    tr.from_eigenbasis(z);
    for (int m = 0; m < k; ++m)
      xa[m] = mean + increment + z(m);
  }
};

}  // namespace

void letkf_check_columns(std::size_t prior_values, std::size_t hx_values, int members,
                         const obs::ObservationSpace& space, std::size_t col_begin,
                         std::size_t col_end, std::size_t posterior_values) {
  const int n = space.grid_n();
  const std::size_t columns = static_cast<std::size_t>(n) * n;
  const int k = members;
  if (k < 2)
    throw std::invalid_argument("LETKF needs at least 2 members, got " + std::to_string(k));
  if (col_begin > col_end || col_end > columns) {
    throw std::invalid_argument("LETKF columns [" + std::to_string(col_begin) + ", " +
                                std::to_string(col_end) + ") outside [0, " +
                                std::to_string(columns) + ")");
  }
  const std::size_t nc = col_end - col_begin;
  if (prior_values != 2 * nc * k || posterior_values != 2 * nc * k) {
    throw std::invalid_argument("LETKF: prior/posterior columns must hold members x 2 x " +
                                std::to_string(nc) + " values");
  }
  if (hx_values != space.size() * k) {
    throw std::invalid_argument("LETKF: hx must hold members x " + std::to_string(space.size()) +
                                " values, got " + std::to_string(hx_values));
  }
}

void LetkfAnalysis::analyse_columns(std::span<const double> prior_cols, std::span<const double> hx,
                                    int members, const obs::ObservationSpace& space,
                                    std::size_t col_begin, std::size_t col_end,
                                    std::span<double> posterior_cols,
                                    LetkfColumnStats* stats) const {
  const int n = space.grid_n();
  const std::size_t nc = col_end - col_begin;
  const int k = members;
  letkf_check_columns(prior_cols.size(), hx.size(), members, space, col_begin, col_end,
                      posterior_cols.size());

  const EnsembleObservations eo(hx, k, space);
  const double cut = settings_.weight_cutoff;
  const double radius_m = settings_.localization_radius_km * 1e3;
  const double v = vertical_localization_factor(settings_.localization_radius_km,
                                                settings_.vertical_distance_km);
  const double l_m = space.domain_m();
  const double dx = l_m / n;
  const double alpha = settings_.rtps;
  const bool localize = settings_.localize;

  // One global domain: every element shares C and b (all weights 1), so one solve's inputs.
  Eigen::MatrixXd c_global;
  Eigen::VectorXd b_global;
  std::vector<std::uint32_t> all_idx;
  std::vector<double> ones;
  if (!localize) {
    Workspace ws(k);
    all_idx.resize(space.size());
    for (std::size_t o = 0; o < space.size(); ++o)
      all_idx[o] = static_cast<std::uint32_t>(o);
    ones.assign(space.size(), 1.0);
    c_global.resize(k, k);
    b_global.resize(k);
    ws.accumulate(eo, all_idx, ones, c_global, b_global);
  }
  std::optional<LetkfObservationCells> cells;
  if (localize) cells.emplace(space, radius_m);

  std::size_t local_total = 0, failures = 0;
  const auto first = static_cast<std::ptrdiff_t>(col_begin);
  const auto last = static_cast<std::ptrdiff_t>(col_end);
#pragma omp parallel reduction(+ : local_total, failures)
  {
    Workspace ws(k);
#pragma omp for schedule(dynamic, 4)
    for (std::ptrdiff_t col = first; col < last; ++col) {
      const std::size_t rel = static_cast<std::size_t>(col) - col_begin;
      for (int lev = 0; lev < 2; ++lev) {
        for (int m = 0; m < k; ++m)
          ws.prior[lev * k + m] = prior_cols[(static_cast<std::size_t>(m) * 2 + lev) * nc + rel];
      }
      std::array<std::size_t, 2> p_loc{};
      if (!localize) {
        p_loc = {space.size(), space.size()};
        for (int lev = 0; lev < 2; ++lev) {
          ws.c[lev] = c_global;
          ws.b[lev] = b_global;
        }
        failures += ws.solve_column({p_loc[0] > 0, p_loc[1] > 0});
      } else {
        const int i = static_cast<int>(col % n);
        const int j = static_cast<int>(col / n);
        const double xc = i * dx;
        const double yc = j * dx;
        for (int ol = 0; ol < 2; ++ol) {
          ws.both_idx[ol].clear();
          ws.both_rho[ol].clear();
          ws.own_idx[ol].clear();
          ws.own_rho[ol].clear();
        }
        // Candidates (eq. 7): rho(d) of the minimum-image distance; the cut-off is tested on
        // w itself, i.e. rho for the own level and rho v for the other one.
        for (const auto& [a, bo] : cells->offsets) {
          const std::size_t cell =
              static_cast<std::size_t>((j + bo) % n) * n + static_cast<std::size_t>((i + a) % n);
          for (int ol = 0; ol < 2; ++ol) {
            for (std::uint32_t s = cells->start[ol][cell]; s < cells->start[ol][cell + 1]; ++s) {
              const std::uint32_t o = cells->obs[ol][s];
              const double d = periodic_distance_m(xc - space.x_m()[o], yc - space.y_m()[o], l_m);
              const double rho = horizontal_localization(d, radius_m);
              if (rho * v > cut) {
                ws.both_idx[ol].push_back(o);
                ws.both_rho[ol].push_back(rho);
              } else if (rho > cut) {
                ws.own_idx[ol].push_back(o);
                ws.own_rho[ol].push_back(rho);
              }
            }
          }
        }
        for (int ol = 0; ol < 2; ++ol) {
          ws.accumulate(eo, ws.both_idx[ol], ws.both_rho[ol], ws.a_both[ol], ws.b_both[ol]);
          ws.accumulate(eo, ws.own_idx[ol], ws.own_rho[ol], ws.a_own[ol], ws.b_own[ol]);
        }
        for (int lev = 0; lev < 2; ++lev) {
          const int other = 1 - lev;
          p_loc[lev] = ws.both_idx[lev].size() + ws.own_idx[lev].size() + ws.both_idx[other].size();
          if (p_loc[lev] == 0) continue;
          // C = A_own + v A_other and b likewise (eq. 7–8): w = rho v on the other level.
          ws.c[lev] = ws.a_both[lev] + ws.a_own[lev] + v * ws.a_both[other];
          ws.b[lev] = ws.b_both[lev] + ws.b_own[lev] + v * ws.b_both[other];
        }
        failures += ws.solve_column({p_loc[0] > 0, p_loc[1] > 0});
      }
      for (int lev = 0; lev < 2; ++lev) {
        double* xa = ws.post.data() + lev * k;
        const double* xb = ws.prior.data() + lev * k;
        if (p_loc[lev] == 0) {
          std::copy(xb, xb + k, xa);  // no local observations: the prior, exactly
        } else {
          letkf_rtps(xb, xa, k, alpha);  // eq. 10
        }
        local_total += p_loc[lev];
        for (int m = 0; m < k; ++m)
          posterior_cols[(static_cast<std::size_t>(m) * 2 + lev) * nc + rel] = xa[m];
      }
    }
  }
  if (failures > 0) {
    throw std::runtime_error(
        "LETKF: the ensemble-space eigendecomposition (eq. 8) did not converge for " +
        std::to_string(failures) + " element(s) in columns [" + std::to_string(col_begin) + ", " +
        std::to_string(col_end) + ")");
  }
  if (stats) {
    stats->elements += 2 * nc;
    stats->local_observations += local_total;
  }
}

void LetkfAnalysis::analyse_columns_shared(std::span<const double> prior_cols,
                                           std::span<const double> hx, int members,
                                           const obs::ObservationSpace& space,
                                           std::size_t col_begin, std::size_t col_end,
                                           std::span<double> posterior_cols,
                                           LetkfColumnStats* stats) const {
  letkf_check_columns(prior_cols.size(), hx.size(), members, space, col_begin, col_end,
                      posterior_cols.size());
  const int n = space.grid_n();
  const std::size_t nc = col_end - col_begin;
  const int k = members;
  const int m = jacobi_size(k);
  const std::size_t p = space.size();
  // Y_b, y − ȳ_b and 1/σ per observation (eq. 8–9), as the kernel's first pass.
  std::vector<double> dev(p * k), innov(p), inv_sd(p);
  for (std::size_t o = 0; o < p; ++o)
    letkf_observation_row(hx.data(), p, k, o, space.value()[o], space.error_sd()[o],
                          dev.data() + o * k, innov[o], inv_sd[o]);
  const bool localize = settings_.localize;
  const double cut = settings_.weight_cutoff;
  const double radius_m = settings_.localization_radius_km * 1e3;
  const double v = localize ? vertical_localization_factor(settings_.localization_radius_km,
                                                           settings_.vertical_distance_km)
                            : 1.0;
  const double l_m = space.domain_m();
  const double dx = l_m / n;
  std::optional<LetkfObservationCells> cells;
  if (localize) cells.emplace(space, radius_m);

  std::size_t local_total = 0, failures = 0;
  const auto first = static_cast<std::ptrdiff_t>(col_begin);
  const auto last = static_cast<std::ptrdiff_t>(col_end);
#pragma omp parallel reduction(+ : local_total, failures)
  {
    std::vector<std::uint32_t> cand_obs;
    std::vector<int> cand_level;
    std::vector<double> cand_rho;
    std::vector<double> a(static_cast<std::size_t>(m) * m), vec(static_cast<std::size_t>(m) * m);
    std::vector<JacobiRotation> rot(static_cast<std::size_t>(m / 2));
    std::vector<double> xb(2 * k), xa(2 * k), b(k), xd(k), z(k), zb(k);
#pragma omp for schedule(dynamic, 4)
    for (std::ptrdiff_t col = first; col < last; ++col) {
      const std::size_t rel = static_cast<std::size_t>(col) - col_begin;
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
        cand_rho.push_back(
            letkf_candidate_rho(xc, yc, space.x_m()[o], space.y_m()[o], l_m, radius_m, localize));
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
                        xal);                     // eq. 9
        letkf_rtps(xbl, xal, k, settings_.rtps);  // eq. 10
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

std::size_t LetkfAnalysis::count_used_observations(const obs::ObservationSpace& space) const {
  if (!settings_.localize) return space.size();
  const int n = space.grid_n();
  const double l_m = space.domain_m();
  const double dx = l_m / n;
  const double radius_m = settings_.localization_radius_km * 1e3;
  std::size_t used = 0;
  for (std::size_t o = 0; o < space.size(); ++o) {
    // The largest own-level weight is at one of the four surrounding grid points (rho
    // decreases with distance); computed exactly as in the column loop.
    const int i0 = std::clamp(static_cast<int>(std::floor(space.x_m()[o] / dx)), 0, n - 1);
    const int j0 = std::clamp(static_cast<int>(std::floor(space.y_m()[o] / dx)), 0, n - 1);
    double best = 0;
    for (int dj = 0; dj < 2; ++dj) {
      for (int di = 0; di < 2; ++di) {
        const double xc = ((i0 + di) % n) * dx;
        const double yc = ((j0 + dj) % n) * dx;
        const double d = periodic_distance_m(xc - space.x_m()[o], yc - space.y_m()[o], l_m);
        best = std::max(best, horizontal_localization(d, radius_m));
      }
    }
    if (best > settings_.weight_cutoff) ++used;
  }
  return used;
}

void check_letkf_ensembles(const ConstEnsembleView& prior, const EnsembleView& posterior,
                           const obs::ObservationSpace& space) {
  const int n = space.grid_n();
  const std::size_t state = 2 * static_cast<std::size_t>(n) * n;
  if (prior.state_size != state || posterior.state_size != state) {
    throw std::invalid_argument(
        "LETKF: state size " + std::to_string(prior.state_size) +
        " does not match the observation grid (2 N^2 = " + std::to_string(state) + ")");
  }
  if (prior.members != posterior.members || prior.data.size() != state * prior.members ||
      posterior.data.size() != state * posterior.members) {
    throw std::invalid_argument("LETKF: prior and posterior ensembles differ in shape");
  }
}

AnalysisDiagnostics LetkfAnalysis::analyse(ConstEnsembleView prior,
                                           const obs::ObservationSpace& space,
                                           const AnalysisContext& /*ctx*/, EnsembleView posterior) {
  const auto t0 = std::chrono::steady_clock::now();
  check_letkf_ensembles(prior, posterior, space);
  const int n = space.grid_n();
  const int k = prior.members;
  const std::size_t p = space.size();
  // y_b^(i) = h(x_b^(i)) per member: nonlinear operators enter only here.
  std::vector<double> hx(static_cast<std::size_t>(k) * p);
  for (int m = 0; m < k; ++m)
    space.apply(prior.member(m), std::span<double>(hx).subspan(m * p, p));

  AnalysisDiagnostics diag;
  double sum = 0, sum2 = 0;
  for (std::size_t o = 0; o < p; ++o) {
    double mean = 0;
    for (int m = 0; m < k; ++m)
      mean += hx[m * p + o];
    const double innov = space.value()[o] - mean / k;
    sum += innov;
    sum2 += innov * innov;
  }
  if (p > 0) {
    diag.innovation_mean = sum / p;
    diag.innovation_rms = std::sqrt(sum2 / p);
  }
  diag.observations_used = count_used_observations(space);

  // The state layout [member][level][y][x] is the column layout for the whole domain.
  LetkfColumnStats stats;
  analyse_columns(prior.data, hx, k, space, 0, static_cast<std::size_t>(n) * n, posterior.data,
                  &stats);
  diag.extra["letkf_mean_local_obs"] =
      stats.elements ? static_cast<double>(stats.local_observations) / stats.elements : 0.0;
  diag.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return diag;
}

}  // namespace rtda::filters
