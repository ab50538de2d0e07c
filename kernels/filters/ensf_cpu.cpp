// The CPU stages of the EnSF loop (ensf_stages.hpp): host ensembles, OpenMP over blocks of
// consecutive elements, the per-element arithmetic of ensf_math.hpp.
//
// Layout: ensembles members × dim, member-major; local element e is [level][c − c0] and its
// global state index level·nx·ny + c0 + (e mod nc) keys the noise. A block is a run of at most
// kBlock elements whose global indices are contiguous (never across the level seam), so one
// block of one member draws one run of its noise row.
#include "filters/ensf_stages.hpp"

// No fused multiply-add contraction: an element must get the same bits in a vector lane and
// in a loop's scalar remainder, so the result cannot depend on where a slab or a thread's
// block starts (bitwise split independence, docs/architecture.md §5).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "filters/ensf_noise.hpp"

namespace rtda::filters {

namespace {

constexpr std::size_t kBlock = 512;  // elements per unit of parallel work (L1-sized noise run)
// The particles and the working prior are stored with a member stride of dim + kPad, so that
// the members' rows of one element do not share their address bits below 4 KiB (the CPU would
// take a store to one member and a load from the next as dependent).
constexpr std::size_t kPad = 8;

struct Block {
  std::size_t e0, g0, len;  // first local element, its global index, length
};

std::vector<Block> make_blocks(const EnsfSlabPlan& plan) {
  std::vector<Block> blocks;
  for (std::size_t level = 0; level < plan.levels; ++level)
    for (std::size_t s = 0; s < plan.nc; s += kBlock)
      blocks.push_back(
          {level * plan.nc + s, level * plan.n2 + plan.c0 + s, std::min(kBlock, plan.nc - s)});
  return blocks;
}

// The Euler–Maruyama update of eq. 15 for one run of elements of one particle
// (ensf_euler_maruyama): the prior score with x̄ the paired member (paper) or Σ_j w_ij x_j
// (standard), the likelihood lik_b − lik_a z (paper, per-dimension coefficients) or a
// precomputed gradient (lik_a = nullptr). Adds the new z to msum (the stopping rule's member
// mean). Compiled per vector ISA; every clone gives the same bits (no contraction, only +,
// −, ×).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void em_update(const EnsfStepCoefficients& coefficients, std::size_t len,
               const double* __restrict xbar, const double* __restrict lik_a,
               const double* __restrict lik_b, const double* __restrict xi, double* __restrict z,
               double* __restrict msum) {
  const EnsfStepCoefficients c = coefficients;  // a local copy: no aliasing with z
  if (lik_a != nullptr) {
    for (std::size_t d = 0; d < len; ++d) {
      const double zn = ensf_euler_maruyama(
          c, z[d], xbar[d], ensf_paper_linear_likelihood(z[d], lik_a[d], lik_b[d]), xi[d]);
      z[d] = zn;
      msum[d] += zn;
    }
  } else {
    for (std::size_t d = 0; d < len; ++d) {
      const double zn = ensf_euler_maruyama(c, z[d], xbar[d], lik_b[d], xi[d]);
      z[d] = zn;
      msum[d] += zn;
    }
  }
}

class CpuEnsfStages final : public EnsfStages {
 public:
  CpuEnsfStages(const EnsfSettings& cfg, const EnsfSlabPlan& plan, const obs::ObservationSpace& obs,
                const AnalysisContext& ctx, std::span<const double> prior,
                std::span<double> posterior)
      : cfg_(cfg),
        plan_(plan),
        obs_(obs),
        prior_(prior),
        post_(posterior),
        dim_(plan.dim),
        k_(plan.members),
        ld_(plan.dim + kPad),
        paper_(cfg.mode == EnsfMode::kPaper),
        s_k_(obs.kelvin_per_pv()),
        inv_members_(1.0 / static_cast<double>(plan.members)),
        blocks_(make_blocks(plan)),
        min_ess_(static_cast<double>(plan.members)),
        last_mean_ess_(min_ess_) {
    noise_.reserve(k_);
    for (std::size_t i = 0; i < k_; ++i)
      noise_.emplace_back(ctx.seed, ctx.cycle, i);
    if (cfg_.early_stopping) window_ = static_cast<std::size_t>(cfg_.stop_window);
  }

  std::vector<double> prior_statistics() override {
    mu_.resize(dim_);
    sd_.resize(dim_);
    inv_sd_.resize(dim_);
    x_.resize(k_ * ld_);
    for (std::size_t e = 0; e < dim_; ++e) {
      ensf_mean_spread(prior_.data() + e, dim_, k_, inv_members_, mu_[e], sd_[e]);
      inv_sd_[e] = sd_[e] > 0 ? 1.0 / sd_[e] : 0.0;  // a dimension without spread stays at μ
    }
    for (std::size_t i = 0; i < k_; ++i)
      for (std::size_t e = 0; e < dim_; ++e)
        x_[i * ld_ + e] = ensf_to_working(prior_[i * dim_ + e], mu_[e], inv_sd_[e], cfg_.normalize);
    return sd_;
  }

  void set_target_spread(const std::vector<double>& target) override { target_ = target; }

  // Each slab writes the points it owns (x + 0.0, so −0 becomes +0 as the sum with other
  // slabs' +0.0 would make it) and the sum reducer completes the rest exactly.
  void gather_off_grid(bool from_prior, const EnsfSum& sum) override {
    const std::size_t n_off = plan_.off_obs.size();
    off_values_.assign(k_ * n_off * 4, 0.0);
    for (std::size_t i = 0; i < k_; ++i)
      for (std::size_t kk = 0; kk < n_off; ++kk) {
        const auto& st = obs_.stencil(plan_.off_obs[kk]);
        for (int p = 0; p < st.count; ++p) {
          std::size_t e;
          if (!plan_.local(st.index[p], e)) continue;
          const double v = from_prior
                               ? prior_[i * dim_ + e]
                               : ensf_to_physical(z_[i * ld_ + e], mu_[e], sd_[e], cfg_.normalize);
          off_values_[(i * n_off + kk) * 4 + p] = v + 0.0;
        }
      }
    if (sum) sum(off_values_);
  }

  std::vector<double> innovations() override {
    std::vector<double> innovation(obs_.size(), 0.0);
    for (std::size_t g = 0; g < plan_.grid_obs.size(); ++g) {
      const std::size_t o = plan_.grid_obs[g];
      double hbar = 0;
      for (std::size_t i = 0; i < k_; ++i)
        hbar += obs::operator_value(obs_.op()[o], prior_[i * dim_ + plan_.grid_elem[g]], s_k_);
      innovation[o] = obs_.value()[o] - hbar * inv_members_;
    }
    for (std::size_t kk = 0; kk < plan_.off_obs.size(); ++kk) {
      const std::size_t o = plan_.off_obs[kk];
      std::size_t e;
      if (!plan_.local(obs_.stencil(o).index[0], e)) continue;  // owner: slab of point 0
      double hbar = 0;
      for (std::size_t i = 0; i < k_; ++i)
        hbar += obs::operator_value(obs_.op()[o], off_grid_q(i, kk), s_k_);
      innovation[o] = obs_.value()[o] - hbar * inv_members_;
    }
    return innovation;
  }

  // linear_K (c = s_K) and identity (c = 1): score −(c z − y′)/σ′² · c = lin_b − lin_a · z;
  // arctan: −(atan_a arctan(s_K z) − atan_b) · s_K/(1 + s_K² z²) (summed over observations
  // of a dimension). A dimension without prior spread (s = 0) cannot move and gets no score.
  void paper_terms() override {
    const bool atan = plan_.has_arctan;
    lin_a_.assign(dim_, 0.0);
    lin_b_.assign(dim_, 0.0);
    if (atan) {
      atan_a_.assign(dim_, 0.0);
      atan_b_.assign(dim_, 0.0);
    }
    for (std::size_t g = 0; g < plan_.grid_obs.size(); ++g) {
      const std::size_t o = plan_.grid_obs[g], e = plan_.grid_elem[g];
      if (!(sd_[e] > 0)) continue;
      EnsfPaperTerms terms{lin_a_[e], lin_b_[e], atan ? atan_a_[e] : 0.0, atan ? atan_b_[e] : 0.0};
      ensf_add_paper_observation(obs_.op()[o], obs_.value()[o], obs_.error_sd()[o], mu_[e], sd_[e],
                                 s_k_, cfg_.arctan_sigma_factor, cfg_.arctan_clip_sigmas, terms);
      lin_a_[e] = terms.lin_a;
      lin_b_[e] = terms.lin_b;
      if (atan) {
        atan_a_[e] = terms.atan_a;
        atan_b_[e] = terms.atan_b;
      }
    }
  }

  void initial_particles() override {
    z_.resize(k_ * ld_);
    if (cfg_.early_stopping) history_.assign((window_ + 1) * dim_, 0.0);
    const auto n_blocks = static_cast<std::ptrdiff_t>(blocks_.size());
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t b = 0; b < n_blocks; ++b) {
      const Block& bl = blocks_[b];
      for (std::size_t i = 0; i < k_; ++i)
        noise_[i].fill(0, bl.g0, z_.data() + i * ld_ + bl.e0, bl.len);
    }
    if (!paper_) prepare_standard();
  }

  // eq. 13: ‖z_i − α x_j‖² per grid row (every level), rows later summed in ascending order.
  void member_distances(double alpha, const EnsfSum& sum) override {
    const std::size_t n = plan_.nx, rows = plan_.nc / n, row0 = plan_.c0 / n;
    std::fill(row_d2_.begin(), row_d2_.end(), 0.0);
    const auto n_row_work = static_cast<std::ptrdiff_t>(rows * k_);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t w = 0; w < n_row_work; ++w) {
      const std::size_t r = static_cast<std::size_t>(w) / k_;
      const std::size_t i = static_cast<std::size_t>(w) % k_;
      double* acc = row_d2_.data() + ((row0 + r) * k_ + i) * k_;
      for (std::size_t level = 0; level < plan_.levels; ++level)
        for (std::size_t c = 0; c < n; ++c) {
          const std::size_t e = level * plan_.nc + r * n + c;
          const double zi = z_[i * ld_ + e];
          const double* xe = xt_.data() + e * k_;
          for (std::size_t j = 0; j < k_; ++j)
            acc[j] += ensf_squared_residual(zi, alpha, xe[j]);
        }
    }
    if (sum) sum(row_d2_);
  }

  void softmax_weights(double beta2) override {
    const std::size_t rows_total = plan_.ny;
    double ess_sum = 0;
    std::vector<double> d2(k_);
    for (std::size_t i = 0; i < k_; ++i) {
      std::fill(d2.begin(), d2.end(), 0.0);
      for (std::size_t r = 0; r < rows_total; ++r)
        for (std::size_t j = 0; j < k_; ++j)
          d2[j] += row_d2_[(r * k_ + i) * k_ + j];
      const double w2 = ensf_softmax_weights(d2.data(), k_, beta2, weights_.data() + i * k_);
      ess_sum += 1.0 / w2;
      min_ess_ = std::min(min_ess_, 1.0 / w2);
    }
    last_mean_ess_ = ess_sum * inv_members_;
  }

  // Σ_j w_ij x_j, and the likelihood gradient (eq. 14) in working coordinates.
  void weighted_prior_and_gradient() override {
    const std::size_t n_off = plan_.off_obs.size();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t ii = 0; ii < static_cast<std::ptrdiff_t>(k_); ++ii) {
      const std::size_t i = static_cast<std::size_t>(ii);
      double* wx = weighted_.data() + i * dim_;
      std::fill(wx, wx + dim_, 0.0);
      for (std::size_t j = 0; j < k_; ++j) {
        const double wij = weights_[i * k_ + j];
        const double* xj = x_.data() + j * ld_;
        for (std::size_t e = 0; e < dim_; ++e)
          wx[e] += wij * xj[e];
      }
      double* gi = grad_.data() + i * dim_;
      std::fill(gi, gi + dim_, 0.0);
      for (std::size_t g = 0; g < plan_.grid_obs.size(); ++g) {
        const std::size_t o = plan_.grid_obs[g], e = plan_.grid_elem[g];
        const double q = ensf_to_physical(z_[i * ld_ + e], mu_[e], sd_[e], cfg_.normalize);
        const double dlogp =
            obs::log_likelihood_slope(obs_.op()[o], q, obs_.value()[o], obs_.error_sd()[o], s_k_);
        gi[e] += (cfg_.normalize ? sd_[e] : 1.0) * dlogp;  // chain rule through x = μ + s z
      }
      for (std::size_t kk = 0; kk < n_off; ++kk) {
        const std::size_t o = plan_.off_obs[kk];
        const auto& st = obs_.stencil(o);
        const double dlogp = obs::log_likelihood_slope(obs_.op()[o], off_grid_q(i, kk),
                                                       obs_.value()[o], obs_.error_sd()[o], s_k_);
        for (int p = 0; p < st.count; ++p) {
          std::size_t e;
          if (plan_.local(st.index[p], e))
            gi[e] += (cfg_.normalize ? sd_[e] : 1.0) * (st.weight[p] * dlogp);
        }
      }
    }
  }

  // Block by block, and within a block step by step: a block's particles (k × kBlock
  // values) stay in cache over all the steps of one call.
  // Block by block, and within a block step by step: a block's particles (k × kBlock
  // values) stay in cache over all the steps of one call.
  double steps(std::span<const EnsfStepCoefficients> c, int k_begin, int k_end,
               bool compare) override {
    const bool watch = cfg_.early_stopping;
    const bool atan = paper_ && plan_.has_arctan;
    const std::size_t ring = window_ + 1;
    double drift_max = 0;
    const auto n_blocks = static_cast<std::ptrdiff_t>(blocks_.size());
#pragma omp parallel for schedule(dynamic, 1) reduction(max : drift_max)
    for (std::ptrdiff_t b = 0; b < n_blocks; ++b) {
      const Block& bl = blocks_[b];
      alignas(64) double xi[kBlock];
      alignas(64) double msum[kBlock];
      for (int k = k_begin; k < k_end; ++k) {
        const EnsfStepCoefficients& sc = c[k];
        std::fill_n(msum, bl.len, 0.0);
        for (std::size_t i = 0; i < k_; ++i) {
          noise_[i].fill(static_cast<std::uint32_t>(k + 1), bl.g0, xi, bl.len);
          double* zi = z_.data() + i * ld_ + bl.e0;
          if (atan) {
            // Paired score S_i = −(z_i − α_t x_i)/β_t² plus the damped per-dimension
            // likelihood with the arctan heuristic (library atan: not vectorised).
            const double* xp = x_.data() + i * ld_ + bl.e0;
            const double* la = lin_a_.data() + bl.e0;
            const double* lb = lin_b_.data() + bl.e0;
            const double* aa = atan_a_.data() + bl.e0;
            const double* ab = atan_b_.data() + bl.e0;
            for (std::size_t d = 0; d < bl.len; ++d) {
              const double zd = zi[d];
              const double lik = ensf_paper_likelihood(zd, la[d], lb[d], aa[d], ab[d], s_k_);
              const double zn = ensf_euler_maruyama(sc, zd, xp[d], lik, xi[d]);
              zi[d] = zn;
              msum[d] += zn;
            }
          } else if (paper_) {
            em_update(sc, bl.len, x_.data() + i * ld_ + bl.e0, lin_a_.data() + bl.e0,
                      lin_b_.data() + bl.e0, xi, zi, msum);
          } else {
            // Monte-Carlo score S_i = −(z_i − α_t Σ_j w_ij x_j)/β_t² plus the damped gradient.
            em_update(sc, bl.len, weighted_.data() + i * dim_ + bl.e0, nullptr,
                      grad_.data() + i * dim_ + bl.e0, xi, zi, msum);
          }
        }
        if (watch) {
          const std::size_t slot = static_cast<std::size_t>(k) % ring;
          const std::size_t old_slot = (static_cast<std::size_t>(k) + 1) % ring;
          double* now = history_.data() + slot * dim_ + bl.e0;
          const double* then = history_.data() + old_slot * dim_ + bl.e0;
          const bool last = compare && k + 1 == k_end;
          for (std::size_t d = 0; d < bl.len; ++d) {
            const double m = msum[d] * inv_members_;
            if (last) drift_max = std::max(drift_max, std::abs(m - then[d]));
            now[d] = m;
          }
        }
      }
    }
    return drift_max;
  }

  void finish() override {
    const auto n_blocks = static_cast<std::ptrdiff_t>(blocks_.size());
    const bool has_target = !target_.empty();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t b = 0; b < n_blocks; ++b) {
      const Block& bl = blocks_[b];
      for (std::size_t d = 0; d < bl.len; ++d) {
        const std::size_t e = bl.e0 + d;
        for (std::size_t i = 0; i < k_; ++i)
          post_[i * dim_ + e] = ensf_to_physical(z_[i * ld_ + e], mu_[e], sd_[e], cfg_.normalize);
        ensf_rescale_spread(post_.data() + e, dim_, k_, inv_members_, sd_[e], cfg_.rtps, has_target,
                            has_target ? target_[e] : 0.0);
      }
    }
  }

  EffectiveMembers effective_members() const override {
    return {min_ess_, last_mean_ess_};
  }

 private:
  // Stencil value q of off-grid observation kk for member i (ObservationSpace::apply's order).
  double off_grid_q(std::size_t i, std::size_t kk) const {
    const auto& st = obs_.stencil(plan_.off_obs[kk]);
    double q = 0;
    for (int p = 0; p < st.count; ++p)
      q += st.weight[p] * off_values_[(i * plan_.off_obs.size() + kk) * 4 + p];
    return q;
  }

  // Standard mode's work arrays; the prior transposed to [e][j] for the distances.
  void prepare_standard() {
    weighted_.resize(k_ * dim_);
    grad_.resize(k_ * dim_);
    xt_.resize(dim_ * k_);
    for (std::size_t j = 0; j < k_; ++j)
      for (std::size_t e = 0; e < dim_; ++e)
        xt_[e * k_ + j] = x_[j * ld_ + e];
    row_d2_.resize(plan_.ny * k_ * k_);
    weights_.resize(k_ * k_);
  }

  const EnsfSettings& cfg_;
  const EnsfSlabPlan& plan_;
  const obs::ObservationSpace& obs_;
  std::span<const double> prior_;
  std::span<double> post_;
  std::size_t dim_, k_;
  std::size_t ld_;  // member stride of x_ and z_
  bool paper_;
  double s_k_, inv_members_;
  std::vector<Block> blocks_;
  std::vector<EnsfNoiseStream> noise_;
  std::size_t window_ = 0;
  std::vector<double> mu_, sd_, inv_sd_, x_, z_, target_, history_;
  std::vector<double> lin_a_, lin_b_, atan_a_, atan_b_;
  std::vector<double> off_values_;  // [member][kk][4]
  std::vector<double> weighted_, grad_, xt_, row_d2_, weights_;
  double min_ess_, last_mean_ess_;
};

}  // namespace

std::unique_ptr<EnsfStages> make_cpu_ensf_stages(
    const EnsfSettings& settings, const EnsfSlabPlan& plan, const obs::ObservationSpace& obs,
    const AnalysisContext& ctx, std::span<const double> prior, std::span<double> posterior) {
  return std::make_unique<CpuEnsfStages>(settings, plan, obs, ctx, prior, posterior);
}

}  // namespace rtda::filters
