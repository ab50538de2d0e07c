// The CPU column path of the LETKF (LetkfAnalysis::analyse_columns; docs/science.md §3,
// eq. 7–10), the one the HIP kernel is tested against.
//
// Per grid column (every level of one horizontal position; at most two, kLetkfMaxLevels):
//   1. candidates: the observations in the cells around the column (LetkfObservationCells'
//      order), ρ(d) of each (eq. 7), sorted into four groups by observation level and by
//      whether ρ v passes the cut-off ("both": counts for both levels) or only ρ ("own");
//   2. per group the lower triangle of Σ_o ρ_o s_o s_oᵀ and Σ_o ρ_o s_o d_o over the rows
//      s_o = Y_b row / σ_o and d_o = (y − ȳ_b)_o / σ_o, every entry summed over the group's
//      observations in candidate order; then C_l = A_own + v A_other and b alike (eq. 8–9:
//      w = ρ on the own level, ρ v on the other);
//   3. C = V Λ Vᵀ by Householder tridiagonalisation and the implicit symmetric QR iteration
//      (Eigen's algorithm), the four elements of two columns at once, one per vector lane
//      (TridiagonalQr4), without forming V: only Vᵀ x, Vᵀ b and V t are needed;
//   4. the transform with the symmetric square root (eq. 9) and RTPS (eq. 10), the formulas
//      of letkf_math.hpp.
// Each lane's arithmetic is exactly what it would be alone, so no result depends on the
// pairing of columns, the thread or the column range.
//
// The vector code uses GCC vector types in loops whose lanes are independent entries, each
// summed in a fixed order, compiled for x86-64-v4 (AVX-512: 32 vector registers, mask
// blends), AVX2 and baseline x86-64 (target_clones): every clone gives the same bits (no
// contraction into FMA; +, −, ×, ÷, √ only).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "filters/letkf.hpp"
#include "filters/letkf_math.hpp"
#include "filters/localization.hpp"

namespace rtda::filters {

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RTDA_LETKF_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define RTDA_LETKF_CLONES
#endif

// Four doubles; loads and stores through unaligned pointers. The helpers are always inlined
// (no vector crosses a call boundary, so the ABI note of -Wpsabi does not apply).
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double v4d __attribute__((vector_size(32)));
typedef double v4du __attribute__((vector_size(32), aligned(8)));

[[gnu::always_inline]] inline v4d load4(const double* p) {
  return *reinterpret_cast<const v4du*>(p);
}
[[gnu::always_inline]] inline void store4(double* p, v4d v) {
  *reinterpret_cast<v4du*>(p) = v;
}
[[gnu::always_inline]] inline v4d splat4(double x) {
  return v4d{x, x, x, x};
}

std::size_t round_up4(std::size_t n) {
  return (n + 3) / 4 * 4;
}

// ---------------------------------------------------------------- observations (eq. 7–9)

// Per observation the row s_o = Y_b row / σ_o (k members, zero-padded to kp = k rounded up
// to 4) followed by (y − ȳ_b) / σ_o and three zeros; row i is observation order[i] (the
// localized path passes the observations in cell order, so that a run of cells is one
// contiguous block of rows), or observation i without an order.
struct ObservationRows {
  int k = 0;
  std::size_t kp = 0;
  std::vector<double> rows;  // p × (kp + 4)

  ObservationRows(std::span<const double> hx, int members, const obs::ObservationSpace& space,
                  std::span<const std::uint32_t> order = {})
      : k(members), kp(round_up4(static_cast<std::size_t>(members))) {
    const std::size_t p = space.size();
    const std::size_t n = order.empty() ? p : order.size();
    rows.assign(n * (kp + 4), 0.0);
    std::vector<double> dev(static_cast<std::size_t>(k));
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t o = order.empty() ? i : order[i];
      double innov, inv_sd;
      letkf_observation_row(hx.data(), p, k, o, space.value()[o], space.error_sd()[o], dev.data(),
                            innov, inv_sd);
      double* r = rows.data() + i * (kp + 4);
      for (int m = 0; m < k; ++m)
        r[m] = dev[m] * inv_sd;
      r[kp] = innov * inv_sd;
    }
  }
  const double* row(std::size_t i) const { return rows.data() + i * (kp + 4); }
};

// One group of candidates in candidate order: per observation its row s_o (ObservationRows)
// and its weight ρ_o.
struct Group {
  std::size_t count = 0;
  std::vector<const double*> rows;
  std::vector<double> rho;
  void clear() { count = 0; }
  // Room for n entries (rows and rho may be written up to index n − 1).
  void reserve(std::size_t n) {
    if (rows.size() < n) {
      rows.resize(2 * n);
      rho.resize(2 * n);
    }
  }
  void add(const double* s, double w) {
    reserve(count + 1);
    rows[count] = s;
    rho[count] = w;
    ++count;
  }
};

// c[r][j] += Σ_o u_or s_oj over the n entries of a chunk, in order, for two pieces of the
// triangle at once: rows ra .. ra + 3 with column vectors cva .. cva + NA − 1, and rows rb ..
// rb + 3 with cvb .. cvb + NB − 1 (NB = 0: none). u holds u_o = ρ_o s_o (kp per entry), s the
// entries' rows. 4 (NA + NB) ≤ 12 accumulators stay in registers and keep both vector adders
// busy.
template <int NA, int NB>
[[gnu::always_inline]] inline void group_tile(const double* u, const double* const* s,
                                              std::size_t n, std::size_t kp, std::size_t ra,
                                              std::size_t cva, std::size_t rb, std::size_t cvb,
                                              double* c) {
  constexpr int kA = NA > 0 ? NA : 1, kB = NB > 0 ? NB : 1;
  v4d acc_a[4][kA], acc_b[4][kB];
  for (int r = 0; r < 4; ++r) {
    for (int j = 0; j < NA; ++j)
      acc_a[r][j] = load4(c + (ra + r) * kp + 4 * (cva + j));
    for (int j = 0; j < NB; ++j)
      acc_b[r][j] = load4(c + (rb + r) * kp + 4 * (cvb + j));
  }
  const double* e = u;
  for (std::size_t o = 0; o < n; ++o, e += kp) {
    const double* so = s[o];
    v4d sa[kA], sb[kB];
    for (int j = 0; j < NA; ++j)
      sa[j] = load4(so + 4 * (cva + j));
    for (int j = 0; j < NB; ++j)
      sb[j] = load4(so + 4 * (cvb + j));
    for (int r = 0; r < 4; ++r) {
      const v4d ur = splat4(e[ra + r]);
      for (int j = 0; j < NA; ++j)
        acc_a[r][j] += ur * sa[j];
    }
    for (int r = 0; r < 4; ++r) {
      if (NB == 0) break;
      const v4d ur = splat4(e[rb + r]);
      for (int j = 0; j < NB; ++j)
        acc_b[r][j] += ur * sb[j];
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int j = 0; j < NA; ++j)
      store4(c + (ra + r) * kp + 4 * (cva + j), acc_a[r][j]);
    for (int j = 0; j < NB; ++j)
      store4(c + (rb + r) * kp + 4 * (cvb + j), acc_b[r][j]);
  }
}

// b[4 rv0 .. 4 (rv0 + NB)) += Σ_o u_o (scaled innovation)_o over the n entries of a chunk.
template <int NB>
[[gnu::always_inline]] inline void group_b_tile(const double* u, const double* const* s,
                                                std::size_t n, std::size_t kp, std::size_t rv0,
                                                double* b) {
  v4d acc[NB];
  for (int j = 0; j < NB; ++j)
    acc[j] = load4(b + 4 * (rv0 + j));
  const double* e = u;
  for (std::size_t o = 0; o < n; ++o, e += kp) {
    const v4d d = splat4(s[o][kp]);
    for (int j = 0; j < NB; ++j)
      acc[j] += load4(e + 4 * (rv0 + j)) * d;
  }
  for (int j = 0; j < NB; ++j)
    store4(b + 4 * (rv0 + j), acc[j]);
}

// The pieces of the lower triangle (row blocks of 4 rows, the diagonal blocks whole) that one
// group_tile call computes: row block r has r + 1 column vectors, taken three at a time; the
// rest of a row block (one or two vectors) goes with the rest of the next one when both fit
// in one tile.
struct Tile {
  int na, nb;
  std::size_t ra, cva, rb, cvb;
};
std::vector<Tile> triangle_tiles(std::size_t kp) {
  std::vector<Tile> tiles;
  Tile pending{0, 0, 0, 0, 0, 0};  // a rest waiting for a partner
  for (std::size_t r0 = 0; r0 < kp; r0 += 4) {
    const std::size_t vectors = r0 / 4 + 1;
    std::size_t cv = 0;
    for (; cv + 3 <= vectors; cv += 3)
      tiles.push_back({3, 0, r0, cv, 0, 0});
    const int rest = static_cast<int>(vectors - cv);
    if (rest == 0) continue;
    if (pending.na > 0 && pending.na + rest <= 3) {
      tiles.push_back({pending.na, rest, pending.ra, pending.cva, r0, cv});
      pending.na = 0;
    } else {
      if (pending.na > 0) tiles.push_back(pending);
      pending = {rest, 0, r0, cv, 0, 0};
    }
  }
  if (pending.na > 0) tiles.push_back(pending);
  return tiles;
}

// Σ_o u_o s_oᵀ over a group into the lower triangle of c (kp × kp, row-major; the diagonal
// blocks whole) and Σ_o u_o (scaled innovation)_o into b (kp): that group's part of C and of
// b. The observations go in chunks: u_o = ρ_o s_o of a chunk is formed in the scratch u
// (kChunk × kp) and stays in L1, with the chunk's rows, while every tile passes over it (each
// entry is still one sum in observation order).
constexpr std::size_t kChunk = 32;  // 32 entries of u and s: 10 KiB at k = 20

RTDA_LETKF_CLONES
void group_sums(const Group& g, std::size_t kp, const Tile* tiles, std::size_t n_tiles, double* c,
                double* b, double* u) {
  std::fill(c, c + kp * kp, 0.0);
  std::fill(b, b + kp, 0.0);
  for (std::size_t o0 = 0; o0 < g.count; o0 += kChunk) {
    const std::size_t n = std::min(g.count - o0, kChunk);
    const double* const* s = g.rows.data() + o0;
    for (std::size_t o = 0; o < n; ++o) {
      const v4d r = splat4(g.rho[o0 + o]);
      const double* so = s[o];
      double* uo = u + o * kp;
      for (std::size_t cv = 0; cv < kp; cv += 4)
        store4(uo + cv, r * load4(so + cv));
    }
    for (std::size_t t = 0; t < n_tiles; ++t) {
      const Tile& tl = tiles[t];
      const int shape = 4 * tl.na + tl.nb;
      switch (shape) {
        case 12:
          group_tile<3, 0>(u, s, n, kp, tl.ra, tl.cva, tl.rb, tl.cvb, c);
          break;
        case 9:
          group_tile<2, 1>(u, s, n, kp, tl.ra, tl.cva, tl.rb, tl.cvb, c);
          break;
        case 8:
          group_tile<2, 0>(u, s, n, kp, tl.ra, tl.cva, tl.rb, tl.cvb, c);
          break;
        case 6:
          group_tile<1, 2>(u, s, n, kp, tl.ra, tl.cva, tl.rb, tl.cvb, c);
          break;
        case 5:
          group_tile<1, 1>(u, s, n, kp, tl.ra, tl.cva, tl.rb, tl.cvb, c);
          break;
        default:
          group_tile<1, 0>(u, s, n, kp, tl.ra, tl.cva, tl.rb, tl.cvb, c);
          break;
      }
    }
    std::size_t rv = 0;
    for (; rv + 8 <= kp / 4; rv += 8)
      group_b_tile<8>(u, s, n, kp, rv, b);
    switch (kp / 4 - rv) {  // the rest in one pass
      case 7:
        group_b_tile<7>(u, s, n, kp, rv, b);
        break;
      case 6:
        group_b_tile<6>(u, s, n, kp, rv, b);
        break;
      case 5:
        group_b_tile<5>(u, s, n, kp, rv, b);
        break;
      case 4:
        group_b_tile<4>(u, s, n, kp, rv, b);
        break;
      case 3:
        group_b_tile<3>(u, s, n, kp, rv, b);
        break;
      case 2:
        group_b_tile<2>(u, s, n, kp, rv, b);
        break;
      case 1:
        group_b_tile<1>(u, s, n, kp, rv, b);
        break;
      default:
        break;
    }
  }
}

// ---------------------------------------------------------------- eigensolver (eq. 8)

// The eigensolver's lane vectors: kLanes elements at once (the four columns of a call, both
// levels), one per lane; GCC splits the 8-wide operations into two independent 4-wide
// halves, whose dependency chains the CPU overlaps.
constexpr int kLanes = 4;
typedef double vl __attribute__((vector_size(8 * kLanes)));
typedef double vlu __attribute__((vector_size(8 * kLanes), aligned(8)));
typedef long long vli __attribute__((vector_size(8 * kLanes)));

[[gnu::always_inline]] inline vl loadL(const double* p) {
  return *reinterpret_cast<const vlu*>(p);
}
[[gnu::always_inline]] inline void storeL(double* p, vl v) {
  *reinterpret_cast<vlu*>(p) = v;
}
[[gnu::always_inline]] inline vl splatL(double x) {
  vl v;
  for (int l = 0; l < kLanes; ++l)
    v[l] = x;
  return v;
}
[[gnu::always_inline]] inline vl absL(vl x) {
  vli magnitude;
  for (int l = 0; l < kLanes; ++l)
    magnitude[l] = 0x7FFFFFFFFFFFFFFFLL;
  return reinterpret_cast<vl>(reinterpret_cast<vli>(x) & magnitude);
}
// Lane by lane std::sqrt: vsqrtpd (this file is compiled without errno for math functions,
// see kernels/filters/CMakeLists.txt).
[[gnu::always_inline]] inline vl sqrtL(vl x) {
  vl r;
  for (int l = 0; l < kLanes; ++l)
    r[l] = std::sqrt(x[l]);
  return r;
}
[[gnu::always_inline]] inline bool anyL(vli m) {
  long long any = 0;
  for (int l = 0; l < kLanes; ++l)
    any |= m[l];
  return any != 0;
}

// C = V Λ Vᵀ of kLanes elements at once, one per vector lane, by the algorithm of Eigen's
// SelfAdjointEigenSolver: scale C (here by a power of two, which is exact), Householder
// tridiagonalisation C = Q T Qᵀ, then the implicit symmetric QR iteration with Wilkinson
// shifts on T, T = Z Λ Zᵀ, V = Q Z. Each lane keeps its own deflation, blocks and shifts; a
// pass of the QR iteration walks the positions of all lanes' open sweeps together, and a lane
// takes an exact identity step (its values kept) where its own sweep does not reach. So every
// lane computes what the scalar algorithm computes for its matrix, while every step is one
// vector operation: the chain of dependent square roots and divisions of the bulge chase is
// paid once for all the lanes. V is never formed: Qᵀ and the rotations are applied to two
// vectors (x, w ← Vᵀ x, Vᵀ w), the rotations recorded for t ← V t afterwards.
//
// Storage: lane l of entry (i, j) of the symmetric matrices at a[kLanes (i k + j) + l];
// vectors at x[kLanes i + l].
class TridiagonalQr {
 public:
  explicit TridiagonalQr(int k)
      : k_(k),
        a_(kLanes * static_cast<std::size_t>(k) * static_cast<std::size_t>(k)),
        h_(kLanes * static_cast<std::size_t>(k)),
        d_(kLanes * static_cast<std::size_t>(k) + kLanes),
        e_(kLanes * static_cast<std::size_t>(k) + kLanes),
        p_(kLanes * static_cast<std::size_t>(k)),
        v_(kLanes * static_cast<std::size_t>(k)) {
    rotations_.reserve(static_cast<std::size_t>(2) * k * k);
  }

  // The lower triangle of the lanes' matrices (entries above the diagonal are ignored).
  double* matrix() { return a_.data(); }
  double eigenvalue(int i, int lane) const {
    return d_[kLanes * static_cast<std::size_t>(i) + lane];
  }

  // converged[l]: lane l's QR iteration converged (Eigen's limit: 30 k sweeps).
  void decompose(double* x, double* w, bool* converged) {
    tridiagonalize(k_, a_.data(), h_.data(), d_.data(), e_.data(), p_.data(), v_.data(), unscale_);
    apply_qt(x);
    apply_qt(w);
    iterate(x, w, converged);
  }

  // t ← V t = Q Z t.
  RTDA_LETKF_CLONES
  void expand(double* t) const {
    for (std::size_t i = rotations_.size(); i-- > 0;) {
      const Rotation& r = rotations_[i];
      const vl c = loadL(r.c), s = loadL(r.s);
      const vl t0 = loadL(t + kLanes * r.k), t1 = loadL(t + kLanes * r.k + kLanes);
      storeL(t + kLanes * r.k, c * t0 + s * t1);
      storeL(t + kLanes * r.k + kLanes, -s * t0 + c * t1);
    }
    for (int i = k_ - 2; i >= 0; --i)
      reflect(i, t);
  }

 private:
  struct Rotation {
    int k;
    double c[kLanes],
        s[kLanes];  // Z ← Z G, G = [c s; −s c] on columns k, k + 1 (Eigen's applyOnTheRight)
  };
  // One lane's state of the QR iteration: the open sweep over [start, end], its shift.
  struct Lane {
    int start = 0, end = 0;
    long iter = 0;
    double mu = 0;
    bool open = false, failed = false;
  };

  // Scaling (per lane, the power of two that brings max |c_ij| into [1/2, 1)) and Eigen 3.4's
  // tridiagonalization_inplace on the full symmetric matrices: reflector i is kept in row i
  // (a[i][i + 2 ..], its leading 1 implicit) with h[i]; d and e get T's diagonal and
  // subdiagonal. p and v are scratch of k.
  RTDA_LETKF_CLONES
  static void tridiagonalize(int n, double* a, double* h, double* d, double* e, double* p,
                             double* v, double* unscale) {
    const auto at = [a, n](int i, int j) {
      return a + kLanes * (static_cast<std::size_t>(i) * n + j);
    };
    vl largest = splatL(0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j <= i; ++j) {
        const vl m = absL(loadL(at(i, j)));
        largest = m > largest ? m : largest;
      }
    vl scale;
    for (int l = 0; l < kLanes; ++l) {
      int ex = 0;
      if (largest[l] > 0 && std::isfinite(largest[l])) std::frexp(largest[l], &ex);
      scale[l] = std::ldexp(1.0, -ex);  // C = 0 (no ensemble spread) keeps scale 1
      unscale[l] = std::ldexp(1.0, ex);
    }
    for (int i = 0; i < n; ++i)
      for (int j = 0; j <= i; ++j) {
        const vl m = loadL(at(i, j)) * scale;
        storeL(at(i, j), m);
        storeL(at(j, i), m);
      }
    for (int i = 0; i + 1 < n; ++i) {
      const int rem = n - i - 1;
      double* x = at(i, i + 1);  // row i right of the diagonal = column i below it
      // Eigen's makeHouseholderInPlace, lane by lane.
      vl tail = splatL(0.0);
      for (int j = 1; j < rem; ++j) {
        const vl xj = loadL(x + kLanes * j);
        tail += xj * xj;
      }
      const vl c0 = loadL(x);
      const vli trivial = tail <= splatL(std::numeric_limits<double>::min());
      vl beta = sqrtL(c0 * c0 + tail);
      beta = c0 >= 0.0 ? -beta : beta;
      beta = trivial ? c0 : beta;
      const vl denom = c0 - beta;
      for (int j = 1; j < rem; ++j)
        storeL(x + kLanes * j, trivial ? splatL(0.0) : loadL(x + kLanes * j) / denom);
      const vl hh = trivial ? splatL(0.0) : (beta - c0) / beta;
      storeL(h + kLanes * i, hh);
      // v = (1, essential); p = h A v, then w = p − (h/2)(pᵀ v) v; A ← A − v wᵀ − w vᵀ on
      // the trailing block (rows and columns i + 1 ..). A lane with h = 0 is left as it is.
      storeL(v, splatL(1.0));
      for (int j = 1; j < rem; ++j)
        storeL(v + kLanes * j, loadL(x + kLanes * j));
      for (int j = 0; j < rem; ++j)
        storeL(p + kLanes * j, splatL(0.0));
      for (int r = 0; r < rem; ++r) {
        const vl hv = hh * loadL(v + kLanes * r);
        const double* row = at(i + 1 + r, i + 1);
        for (int j = 0; j < rem; ++j)
          storeL(p + kLanes * j, loadL(p + kLanes * j) + hv * loadL(row + kLanes * j));
      }
      vl pv = splatL(0.0);
      for (int j = 0; j < rem; ++j)
        pv += loadL(p + kLanes * j) * loadL(v + kLanes * j);
      const vl f = hh * -0.5 * pv;
      for (int j = 0; j < rem; ++j)
        storeL(p + kLanes * j, loadL(p + kLanes * j) + f * loadL(v + kLanes * j));
      const vli keep = hh == 0.0;
      for (int r = 0; r < rem; ++r) {
        double* row = at(i + 1 + r, i + 1);
        const vl vr = loadL(v + kLanes * r), pr = loadL(p + kLanes * r);
        for (int j = 0; j < rem; ++j) {
          const vl old = loadL(row + kLanes * j);
          const vl updated = old - (vr * loadL(p + kLanes * j) + pr * loadL(v + kLanes * j));
          storeL(row + kLanes * j, keep ? old : updated);
        }
      }
      storeL(x, beta);
    }
    for (int i = 0; i < n; ++i)
      storeL(d + kLanes * i, loadL(at(i, i)));
    for (int i = 0; i + 1 < n; ++i)
      storeL(e + kLanes * i, loadL(at(i, i + 1)));
    storeL(e + kLanes * (n - 1), splatL(0.0));
  }

  // H_i v with H_i = I − h u uᵀ, u = (0..0, 1, reflector i) starting at row i + 1.
  [[gnu::always_inline]] inline void reflect(int i, double* v) const {
    const int len = k_ - i - 2;
    const double* u = a_.data() + kLanes * (static_cast<std::size_t>(i) * k_ + i + 2);
    vl dot = loadL(v + kLanes * (i + 1));
    for (int r = 0; r < len; ++r)
      dot += loadL(u + kLanes * r) * loadL(v + kLanes * (i + 2 + r));
    const vl f = loadL(h_.data() + kLanes * i) * dot;
    storeL(v + kLanes * (i + 1), loadL(v + kLanes * (i + 1)) - f);
    for (int r = 0; r < len; ++r)
      storeL(v + kLanes * (i + 2 + r), loadL(v + kLanes * (i + 2 + r)) - f * loadL(u + kLanes * r));
  }
  RTDA_LETKF_CLONES
  void apply_qt(double* v) const {
    for (int i = 0; i + 1 < k_; ++i)
      reflect(i, v);
  }

  // The deflation search of Eigen 3.4's computeFromTridiagonal_impl and the Wilkinson shift
  // of its tridiagonal_qr_step, for one lane: opens its next sweep or ends it. scanned: the
  // first deflation test over [start, end) is done (pass does it for all lanes at once).
  void open_sweep(int l, Lane& s, bool scanned) {
    double* diag = d_.data() + l;
    double* sub = e_.data() + l;
    const auto dg = [diag](int i) -> double& { return diag[kLanes * i]; };
    const auto sb = [sub](int i) -> double& { return sub[kLanes * i]; };
    s.open = false;
    for (;;) {
      const double considered_zero = std::numeric_limits<double>::min();
      const double precision_inv = 1.0 / std::numeric_limits<double>::epsilon();
      for (int i = scanned ? s.end : s.start; i < s.end; ++i) {
        if (std::abs(sb(i)) < considered_zero) {
          sb(i) = 0;
        } else {
          // |e_i| <= eps sqrt(|d_i| + |d_i+1|), scaled against underflow
          const double scaled = precision_inv * sb(i);
          if (scaled * scaled <= std::abs(dg(i)) + std::abs(dg(i + 1))) sb(i) = 0;
        }
      }
      scanned = false;
      while (s.end > 0 && sb(s.end - 1) == 0)
        --s.end;
      if (s.end <= 0) return;
      if (++s.iter > 30L * k_) {
        s.failed = true;
        return;
      }
      s.start = s.end - 1;
      while (s.start > 0 && sb(s.start - 1) != 0)
        --s.start;
      // Wilkinson shift, written to avoid underflow of e^2 (as in Eigen).
      const double td = (dg(s.end - 1) - dg(s.end)) * 0.5;
      const double e = sb(s.end - 1);
      double mu = dg(s.end);
      if (td == 0) {
        mu -= std::abs(e);
      } else if (e != 0) {
        const double e2 = e * e;
        // hypot(td, e); T is scaled into [-1, 1], so only underflow needs std::hypot.
        const double hh = td * td + e2;
        const double hyp = hh > 1e-300 ? std::sqrt(hh) : std::hypot(td, e);
        if (e2 == 0) {
          mu -= e / ((td + (td > 0 ? hyp : -hyp)) / e);
        } else {
          mu -= e2 / (td + (td > 0 ? hyp : -hyp));
        }
      }
      s.mu = mu;
      if (sb(s.start) != 0) {
        s.open = true;
        return;
      }
    }
  }

  // Passes over the open sweeps of all lanes until every lane has converged (or failed).
  void iterate(double* x, double* w, bool* converged) {
    rotations_.clear();
    std::array<Lane, kLanes> lanes;
    for (int l = 0; l < kLanes; ++l) {
      lanes[l].end = k_ - 1;
      open_sweep(l, lanes[l], false);
    }
    for (;;) {
      int lo = k_, hi = 0;
      double mu[kLanes];
      long long first_start[kLanes], end[kLanes];
      for (int l = 0; l < kLanes; ++l) {
        first_start[l] = lanes[l].open ? lanes[l].start : k_;
        end[l] = lanes[l].open ? lanes[l].end : -1;
        mu[l] = lanes[l].mu;
        if (!lanes[l].open) continue;
        lo = std::min(lo, lanes[l].start);
        hi = std::max(hi, lanes[l].end);
      }
      if (lo >= hi) break;
      pass(lo, hi, first_start, end, mu, x, w);
      for (int l = 0; l < kLanes; ++l)
        if (lanes[l].open) open_sweep(l, lanes[l], true);
    }
    for (int l = 0; l < kLanes; ++l)
      converged[l] = !lanes[l].failed;
    for (int i = 0; i < k_; ++i)
      storeL(d_.data() + kLanes * i, loadL(d_.data() + kLanes * i) * loadL(unscale_));  // Λ of C
  }

  // One pass: rotations at positions k = lo .. hi − 1; lane l rotates where start_l ≤ k <
  // end_l (tridiagonal_qr_step's loop body, the bulge starting at start_l), else keeps its
  // values. An exact zero bulge ends Eigen's sweep early; here the rest of that sweep is
  // identity steps, which is the same.
  RTDA_LETKF_CLONES
  void pass(int lo, int hi, const long long* lane_start, const long long* lane_end,
            const double* lane_mu, double* x, double* w) {
    vli start, end;
    for (int l = 0; l < kLanes; ++l) {
      start[l] = lane_start[l];
      end[l] = lane_end[l];
    }
    const vl mu = loadL(lane_mu);
    double* d = d_.data();
    double* e = e_.data();
    vl bx = splatL(0.0), bz = splatL(0.0);  // the bulge (x, z) of each lane
    const vl one = splatL(1.0), zero = splatL(0.0);
    for (int k = lo; k < hi; ++k) {
      vli kv;
      for (int l = 0; l < kLanes; ++l)
        kv[l] = k;
      const vli active = (start <= kv) & (kv < end);
      const vli first = kv == start;
      const vli inner = active & ~first;         // touches e[k − 1]
      const vli more = active & (kv < end - 1);  // touches e[k + 1]
      const vl dk = loadL(d + kLanes * k), dk1 = loadL(d + kLanes * k + kLanes);
      const vl ek = loadL(e + kLanes * k), ek1 = loadL(e + kLanes * k + kLanes);
      const vl x0 = first ? dk - mu : bx;
      const vl z0 = first ? ek : bz;
      // c = x / r, s = -z / r (Eigen's makeGivens convention); a zero bulge or an idle
      // lane rotates by the identity. T is scaled into [-1, 1], so x² + z² cannot overflow.
      const vl r = sqrtL(x0 * x0 + z0 * z0);
      const vli turn = active & (z0 != 0.0);
      vl c = turn ? x0 / r : one;
      vl s = turn ? -z0 / r : zero;
      const vli tiny = turn & (r <= 1e-150);
      if (anyL(tiny)) {
        for (int l = 0; l < kLanes; ++l) {
          if (!tiny[l]) continue;
          Eigen::JacobiRotation<double> rot;
          rot.makeGivens(x0[l], z0[l]);
          c[l] = rot.c();
          s[l] = rot.s();
        }
      }
      // T <- G^T T G
      const vl sdk = s * dk + c * ek;
      const vl dkp1 = s * ek + c * dk1;
      const vl nd = c * (c * dk - s * ek) - s * (c * ek - s * dk1);
      const vl nd1 = s * sdk + c * dkp1;
      const vl ne = c * sdk - s * dkp1;
      storeL(d + kLanes * k, active ? nd : dk);
      storeL(d + kLanes * k + kLanes, active ? nd1 : dk1);
      storeL(e + kLanes * k, active ? ne : ek);
      if (k > 0) {
        const vl ekm = loadL(e + kLanes * k - kLanes);
        storeL(e + kLanes * k - kLanes, inner ? c * ekm - s * z0 : ekm);
      }
      // chase the bulge
      bx = active ? ne : bx;
      bz = more ? -s * ek1 : bz;
      storeL(e + kLanes * k + kLanes, more ? c * ek1 : ek1);
      for (double* v : {x, w}) {
        const vl v0 = loadL(v + kLanes * k), v1 = loadL(v + kLanes * k + kLanes);
        storeL(v + kLanes * k, active ? c * v0 - s * v1 : v0);
        storeL(v + kLanes * k + kLanes, active ? s * v0 + c * v1 : v1);
      }
      Rotation rec;
      rec.k = k;
      storeL(rec.c, active ? c : one);
      storeL(rec.s, active ? s : zero);
      rotations_.push_back(rec);
    }
    // The first deflation test of each lane's next search (open_sweep) over its sweep
    // [start, end), lane by lane the same comparisons: e_i ← 0 where |e_i| is below the
    // smallest normal or |e_i| ≤ eps √(|d_i| + |d_i+1|).
    const vl considered_zero = splatL(std::numeric_limits<double>::min());
    const vl precision_inv = splatL(1.0 / std::numeric_limits<double>::epsilon());
    for (int i = lo; i < hi; ++i) {
      vli iv;
      for (int l = 0; l < kLanes; ++l)
        iv[l] = i;
      const vl ei = loadL(e + kLanes * i);
      const vl scaled = precision_inv * ei;
      const vli small =
          (absL(ei) < considered_zero) |
          (scaled * scaled <= absL(loadL(d + kLanes * i)) + absL(loadL(d + kLanes * i + kLanes)));
      storeL(e + kLanes * i, ((start <= iv) & (iv < end) & small) ? zero : ei);
    }
  }

  int k_;
  std::vector<double> a_, h_, d_, e_, p_, v_;
  double unscale_[kLanes];
  std::vector<Rotation> rotations_;
};

// ---------------------------------------------------------------- one thread's columns

// The observations of each level in cell order (LetkfObservationCells::obs), with their
// positions, and the cell offsets as runs of consecutive a in one row b: the cells of a run
// hold one contiguous range of that order (two where the row wraps), so a column's candidates
// of one level are a few contiguous copies, in the shared candidate order restricted to the
// level (the order every group sums in).
struct CellRuns {
  struct Run {
    int a, b, count;  // offsets (a, b) .. (a + count − 1, b)
  };
  std::vector<Run> runs;
  std::array<std::vector<double>, 2> x, y;  // per level, in cell order

  CellRuns(const LetkfObservationCells& cells, const obs::ObservationSpace& space) {
    for (const auto& [a, b] : cells.offsets) {
      if (!runs.empty() && runs.back().b == b && runs.back().a + runs.back().count == a)
        ++runs.back().count;
      else
        runs.push_back({a, b, 1});
    }
    for (int lev = 0; lev < 2; ++lev) {
      for (std::uint32_t o : cells.obs[lev]) {
        x[lev].push_back(space.x_m()[o]);
        y[lev].push_back(space.y_m()[o]);
      }
    }
  }
};

// ρ(d) of every candidate (eq. 7): letkf_candidate_rho's arithmetic, written without branches
// (both pieces of Gaspari–Cohn evaluated, one kept) so that it vectorises; the same bits.
RTDA_LETKF_CLONES
void candidate_rho(const double* ox, const double* oy, std::size_t count, double xc, double yc,
                   double lx_m, double ly_m, double radius_m, double* rho) {
  for (std::size_t t = 0; t < count; ++t) {
    double ax = std::abs(xc - ox[t]), ay = std::abs(yc - oy[t]);
    ax = std::min(ax, lx_m - ax);
    ay = std::min(ay, ly_m - ay);
    const double r = std::abs(2.0 * std::sqrt(ax * ax + ay * ay) / radius_m);
    const double r2 = r * r;
    const double inner = 1.0 + r2 * (-5.0 / 3.0 + r * (5.0 / 8.0 + r * (0.5 - 0.25 * r)));
    const double outer = 4.0 +
                         r * (-5.0 + r * (5.0 / 3.0 + r * (5.0 / 8.0 + r * (-0.5 + r / 12.0)))) -
                         2.0 / (3.0 * r);
    rho[t] = r <= 1.0 ? inner : (r < 2.0 ? outer : 0.0);
  }
}

// What the local problems of one call share.
struct ColumnProblem {
  const ObservationRows& rows;
  const obs::ObservationSpace& space;
  const std::optional<LetkfObservationCells>& cells;  // empty without localization
  const std::optional<CellRuns>& runs;
  int nx, ny, levels, k;
  double cut, radius_m, v, lx_m, ly_m, dx, rtps;
  // Without localization: the C (kp × kp) and b every element shares.
  const double* global_c;
  const double* global_b;
  const std::vector<Tile>& tiles;  // triangle_tiles(kp)
};

// Scratch of one thread, sized once. Element slot s = 2 cc + lev of the (up to) two columns
// cc of a call is lane s of the eigensolver's vectors (on a one-level grid the lev = 1 slots
// stay unused).
class ColumnSolver {
 public:
  static constexpr int kColumns = kLanes / 2;  // columns per call

  explicit ColumnSolver(const ColumnProblem& pr)
      : pr_(pr),
        kp_(pr.rows.kp),
        sums_(4 * (kp_ * kp_ + kp_)),
        u_(kChunk * kp_),
        eigen_(pr.k),
        xb_(kLanes * static_cast<std::size_t>(pr.k)),
        xa_(kLanes * static_cast<std::size_t>(pr.k)),
        z_(kLanes * static_cast<std::size_t>(pr.k)),
        zb_(kLanes * static_cast<std::size_t>(pr.k)) {}

  // Columns col[0 .. count) (count ≤ kColumns): prior members in xb(cc, lev), the analysis
  // into xa(cc, lev). Returns how many eigendecompositions did not converge; adds the local
  // observation counts to local_total.
  int solve(const std::size_t* col, int count, std::size_t& local_total) {
    const int k = pr_.k;
    const std::size_t ku = static_cast<std::size_t>(k);
    double* a = eigen_.matrix();
    std::fill(a, a + kLanes * ku * ku, 0.0);
    std::fill(z_.begin(), z_.end(), 0.0);
    std::fill(zb_.begin(), zb_.end(), 0.0);
    std::array<bool, kLanes> used{};
    for (int cc = 0; cc < count; ++cc) {
      std::array<std::size_t, 2> p_loc{};
      if (pr_.cells) {
        gather(col[cc]);
        sum_groups();
        for (int lev = 0; lev < 2; ++lev)
          p_loc[lev] = groups_[lev][0].count + groups_[lev][1].count + groups_[1 - lev][0].count;
      } else {
        p_loc = {pr_.space.size(), pr_.space.size()};
      }
      for (int lev = 0; lev < pr_.levels; ++lev) {
        const int s = 2 * cc + lev;
        local_total += p_loc[lev];
        used[s] = p_loc[lev] > 0;
        if (!used[s]) continue;
        if (pr_.cells)
          combine(lev, s);  // C and b into lane s
        else
          set_lane(s, pr_.global_c, pr_.global_b, 1.0, nullptr, nullptr, nullptr, nullptr);
        const double* xb = xb_.data() + s * k;
        means_[s] = letkf_mean(xb, k);
        for (int r = 0; r < k; ++r)
          z_[kLanes * r + s] = xb[r] - means_[s];  // X_b, unscaled
      }
    }
    // C = V Λ Vᵀ (eq. 8); z ← Vᵀ X_b, zb ← Vᵀ Y_bᵀ R⁻¹ (y − ȳ).
    bool converged[kLanes];
    eigen_.decompose(z_.data(), zb_.data(), converged);
    // Eq. 9: the mean increment X_b w̄ = Σ_i z_i g_i zb_i; the perturbations
    // X_b √(k−1) P̃_a^{1/2} = V diag(√((k−1) g)) Vᵀ X_b (P̃_a^{1/2} symmetric), g_i = 1/(λ_i +
    // k − 1) (letkf_math.hpp's formulas, lane by lane).
    std::array<double, kLanes> increment{};
    for (int i = 0; i < k; ++i)
      for (int s = 0; s < kLanes; ++s) {
        const double lambda = eigen_.eigenvalue(i, s);
        double& z = z_[kLanes * i + s];
        increment[s] += letkf_increment_term(z, lambda, k, zb_[kLanes * i + s]);
        z = letkf_scaled_perturbation(z, lambda, k);
      }
    eigen_.expand(z_.data());
    int failures = 0;
    for (int s = 0; s < 2 * count; ++s) {
      const double* xb = xb_.data() + s * k;
      double* xa = xa_.data() + s * k;
      if (!used[s] || !converged[s]) {
        failures += used[s] && !converged[s];
        std::copy(xb, xb + k, xa);  // no local observations: the prior, exactly
        continue;
      }
      for (int r = 0; r < k; ++r)
        xa[r] = means_[s] + increment[s] + z_[kLanes * r + s];
      letkf_rtps(xb, xa, k, pr_.rtps);  // eq. 10
    }
    return failures;
  }

  double* xb(int cc, int lev) { return xb_.data() + (2 * cc + lev) * pr_.k; }
  const double* xa(int cc, int lev) const { return xa_.data() + (2 * cc + lev) * pr_.k; }

 private:
  // Candidates of one column (eq. 7): ρ(d) of the minimum-image distance; the cut-off is
  // tested on w itself, i.e. ρ for the own level and ρ v for the other one.
  void gather(std::size_t column) {
    const LetkfObservationCells& cells = *pr_.cells;
    const CellRuns& runs = *pr_.runs;
    const int n = pr_.nx;
    const int i = static_cast<int>(column % n), j = static_cast<int>(column / n);
    const double xc = i * pr_.dx, yc = j * pr_.dx;
    for (int ol = 0; ol < 2; ++ol) {
      const std::vector<std::uint32_t>& start = cells.start[ol];
      const double* ox = runs.x[ol].data();
      const double* oy = runs.y[ol].data();
      std::size_t count = 0;
      const auto take = [&](std::size_t row, int c0, int c1) {  // cells [c0, c1) of a row
        const std::uint32_t s0 = start[row * n + c0], s1 = start[row * n + c1];
        const std::size_t len = s1 - s0;
        if (cand_.size() < count + len) {
          cand_.resize(2 * (count + len));
          cx_.resize(2 * (count + len));
          cy_.resize(2 * (count + len));
        }
        for (std::size_t t = 0; t < len; ++t)
          cand_[count + t] = s0 + static_cast<std::uint32_t>(t);
        std::copy(ox + s0, ox + s1, cx_.data() + count);
        std::copy(oy + s0, oy + s1, cy_.data() + count);
        count += len;
      };
      for (const CellRuns::Run& r : runs.runs) {
        const std::size_t row = static_cast<std::size_t>((j + r.b) % pr_.ny);
        const int c0 = (i + r.a) % n, c1 = c0 + r.count;
        if (c1 <= n) {
          take(row, c0, c1);
        } else {
          take(row, c0, n);
          take(row, 0, c1 - n);
        }
      }
      if (rho_.size() < count) rho_.resize(2 * count);
      candidate_rho(cx_.data(), cy_.data(), count, xc, yc, pr_.lx_m, pr_.ly_m, pr_.radius_m,
                    rho_.data());
      // Both groups written at every candidate, each count advanced where it belongs (no
      // branch on the weights).
      Group& both = groups_[ol][0];
      Group& own = groups_[ol][1];
      both.reserve(count);
      own.reserve(count);
      const double* rho = rho_.data();
      const double v = pr_.v, cut = pr_.cut;
      const std::size_t level_row0 = ol == 0 ? 0 : cells.obs[0].size();  // rows in cell order
      std::size_t nb = 0, no = 0;
      for (std::size_t t = 0; t < count; ++t) {
        const double w = rho[t];
        const double* row = pr_.rows.row(level_row0 + cand_[t]);
        both.rows[nb] = row;
        both.rho[nb] = w;
        own.rows[no] = row;
        own.rho[no] = w;
        const bool in_both = w * v > cut;
        const bool in_own = !in_both && w > cut;
        nb += in_both;
        no += in_own;
      }
      both.count = nb;
      own.count = no;
    }
  }

  // Σ ρ s sᵀ and Σ ρ s (scaled innovation) of each of the four groups, once per column.
  void sum_groups() {
    for (int ol = 0; ol < 2; ++ol)
      for (int g = 0; g < 2; ++g) {
        double* c = sums_.data() + (2 * ol + g) * (kp_ * kp_ + kp_);
        group_sums(groups_[ol][g], kp_, pr_.tiles.data(), pr_.tiles.size(), c, c + kp_ * kp_,
                   u_.data());
      }
  }

  // C and b of the element on level lev into lane s: the own level's groups plus v times the
  // other level's "both" group (eq. 7–8: w = ρ on the own level, ρ v on the other), in that
  // order.
  void combine(int lev, int s) {
    const std::size_t block = kp_ * kp_ + kp_;
    const double* own_both = sums_.data() + (2 * lev) * block;
    const double* own_only = own_both + block;
    const double* other_both = sums_.data() + (2 * (1 - lev)) * block;
    set_lane(s, own_both, own_both + kp_ * kp_, pr_.v, own_only, own_only + kp_ * kp_, other_both,
             other_both + kp_ * kp_);
  }

  // Lane s of the eigensolver's matrix and of zb: c0 + c1 + v c2 and b0 + b1 + v b2 (c1, c2 and b1,
  // b2 may be absent), from kp × kp lower triangles and kp vectors.
  void set_lane(int s, const double* c0, const double* b0, double v, const double* c1,
                const double* b1, const double* c2, const double* b2) {
    const std::size_t k = static_cast<std::size_t>(pr_.k);
    double* a = eigen_.matrix();
    for (std::size_t r = 0; r < k; ++r)
      for (std::size_t j = 0; j <= r; ++j) {
        const std::size_t e = r * kp_ + j;
        a[kLanes * (r * k + j) + s] = c1 ? c0[e] + c1[e] + v * c2[e] : c0[e];
      }
    for (std::size_t r = 0; r < k; ++r)
      zb_[kLanes * r + s] = b1 ? b0[r] + b1[r] + v * b2[r] : b0[r];
  }

  const ColumnProblem& pr_;
  std::size_t kp_;
  std::array<std::array<Group, 2>, 2> groups_;  // [observation level][both, own]
  std::vector<std::uint32_t> cand_;             // one level's candidates (cell order)
  std::vector<double> cx_, cy_, rho_;
  std::vector<double> sums_;  // per group: C part, then b part
  std::vector<double> u_;     // group_sums' scratch: kChunk × kp
  TridiagonalQr eigen_;
  std::vector<double> xb_, xa_;  // per slot: k members
  std::vector<double> z_, zb_;   // lanes: [i][slot]
  std::array<double, kLanes> means_{};
};

}  // namespace

void LetkfAnalysis::analyse_columns(std::span<const double> prior_cols, std::span<const double> hx,
                                    int members, const obs::ObservationSpace& space,
                                    std::size_t col_begin, std::size_t col_end,
                                    std::span<double> posterior_cols,
                                    LetkfColumnStats* stats) const {
  letkf_check_columns(prior_cols.size(), hx.size(), members, space, col_begin, col_end,
                      posterior_cols.size());
  const int k = members;
  const std::size_t nc = col_end - col_begin;
  const bool localize = settings_.localize;
  const double radius_m = settings_.localization_radius_km * 1e3;
  std::optional<LetkfObservationCells> cells;
  std::optional<CellRuns> runs;
  std::vector<std::uint32_t> cell_order;  // level 0's observations by cell, then level 1's
  if (localize) {
    cells.emplace(space, radius_m);
    runs.emplace(*cells, space);
    cell_order = cells->obs[0];
    cell_order.insert(cell_order.end(), cells->obs[1].begin(), cells->obs[1].end());
  }
  const ObservationRows rows(hx, k, space, cell_order);

  const std::vector<Tile> tiles = triangle_tiles(rows.kp);
  // One global domain: every element shares C and b (all weights 1).
  std::vector<double> global_c, global_b;
  if (!localize) {
    Group all;
    for (std::size_t o = 0; o < space.size(); ++o)
      all.add(rows.row(o), 1.0);
    global_c.resize(rows.kp * rows.kp);
    global_b.resize(rows.kp);
    std::vector<double> u(kChunk * rows.kp);
    group_sums(all, rows.kp, tiles.data(), tiles.size(), global_c.data(), global_b.data(),
               u.data());
  }
  const ColumnProblem problem{rows,
                              space,
                              cells,
                              runs,
                              space.grid().nx,
                              space.grid().ny,
                              space.grid().levels,
                              k,
                              settings_.weight_cutoff,
                              radius_m,
                              localize
                                  ? vertical_localization_factor(settings_.localization_radius_km,
                                                                 settings_.vertical_distance_km)
                                  : 1.0,
                              space.grid().length_x_m,
                              space.grid().length_y_m,
                              space.grid().dx_m(),
                              settings_.rtps,
                              global_c.data(),
                              global_b.data(),
                              tiles};

  const int levels = space.grid().levels;
  const std::size_t lu = static_cast<std::size_t>(levels);
  std::size_t local_total = 0, failures = 0;
  constexpr std::size_t kColumns = ColumnSolver::kColumns;
  const auto calls = static_cast<std::ptrdiff_t>((nc + kColumns - 1) / kColumns);
#pragma omp parallel reduction(+ : local_total, failures)
  {
    ColumnSolver solver(problem);
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t call = 0; call < calls; ++call) {
      const std::size_t rel0 = kColumns * static_cast<std::size_t>(call);
      const int count = static_cast<int>(std::min(kColumns, nc - rel0));
      std::size_t col[kColumns];
      for (int cc = 0; cc < count; ++cc) {
        col[cc] = col_begin + rel0 + cc;
        for (int lev = 0; lev < levels; ++lev) {
          double* xb = solver.xb(cc, lev);
          for (int m = 0; m < k; ++m)
            xb[m] = prior_cols[(static_cast<std::size_t>(m) * lu + lev) * nc + rel0 + cc];
        }
      }
      failures += solver.solve(col, count, local_total);
      for (int cc = 0; cc < count; ++cc)
        for (int lev = 0; lev < levels; ++lev) {
          const double* xa = solver.xa(cc, lev);
          for (int m = 0; m < k; ++m)
            posterior_cols[(static_cast<std::size_t>(m) * lu + lev) * nc + rel0 + cc] = xa[m];
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
    stats->elements += lu * nc;
    stats->local_observations += local_total;
  }
}

}  // namespace rtda::filters
