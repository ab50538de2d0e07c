// Host side of the HIP EnSF (ensf_hip.hpp): the device implementation of the EnSF stages
// (filters/ensf_stages.hpp). The loop over the stages, the plan and the spread target are the
// CPU filter's (filters::ensf_run, ensf_plan_slab, ensf_target_spread); the arithmetic runs in
// ensf_hip.hip.
#include "hip/ensf_hip.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/normal_batch.hpp"
#include "core/random.hpp"
#include "filters/ensf_stages.hpp"
#include "hip/device.hpp"
#include "hip/ensf_hip_kernels.hpp"

namespace rtda::hip {

namespace {

using filters::AnalysisDiagnostics;
using filters::EnsfMode;

[[maybe_unused]] void require_device(const char* what) {
  std::string why;
  if (device::gpu_device_count(&why) == 0)
    throw std::runtime_error(std::string(what) + ": no HIP device is usable: " + why);
}

}  // namespace

EnsfAnalysisHip::EnsfAnalysisHip(filters::EnsfSettings settings) : settings_(settings) {
  settings_.validate();
}

AnalysisDiagnostics EnsfAnalysisHip::analyse(filters::ConstEnsembleView prior,
                                             const obs::ObservationSpace& obs,
                                             const filters::AnalysisContext& ctx,
                                             filters::EnsembleView posterior) {
  return analyse_slab(0, obs.grid().columns(), prior, obs, ctx, posterior, filters::EnsfReducer{});
}

#if RTDA_HAVE_GPU

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab(std::size_t col_begin, std::size_t col_end,
                                                  filters::ConstEnsembleView prior,
                                                  const obs::ObservationSpace& obs,
                                                  const filters::AnalysisContext& ctx,
                                                  filters::EnsembleView posterior,
                                                  const filters::EnsfReducer& reducer) {
  // The shape checks first, so that nothing is copied for a refused call.
  filters::ensf_plan_slab(settings_, obs, col_begin, col_end,
                          {prior.members, prior.state_size, prior.data.size()},
                          {posterior.members, posterior.state_size, posterior.data.size()});
  require_device("ensf (hip)");
  detail::DeviceArray<double> ensemble(prior.data.size(), "the EnSF ensemble");
  ensemble.upload(prior.data.data());
  AnalysisDiagnostics diag = analyse_slab_device(col_begin, col_end, prior.members, ensemble.get(),
                                                 obs, ctx, ensemble.get(), reducer);
  detail::copy_to_host(posterior.data.data(), ensemble.get(),
                       posterior.data.size() * sizeof(double));
  return diag;
}

AnalysisDiagnostics EnsfAnalysisHip::analyse_device(int members, const double* prior_device,
                                                    const obs::ObservationSpace& obs,
                                                    const filters::AnalysisContext& ctx,
                                                    double* posterior_device) {
  return analyse_slab_device(0, obs.grid().columns(), members, prior_device, obs, ctx,
                             posterior_device, {});
}

namespace {

using detail::DeviceArray;

// The HIP implementation of the EnSF stages (filters/ensf_stages.hpp): device ensembles, one
// kernel sequence per stage (ensf_hip.hip). The observation structures go to the device once,
// at construction; vectors a reducer must see are staged through the host.
class DeviceEnsfStages final : public filters::EnsfStages {
 public:
  DeviceEnsfStages(const filters::EnsfSettings& cfg, const filters::EnsfSlabPlan& plan,
                   const obs::ObservationSpace& obs, const filters::AnalysisContext& ctx,
                   const double* prior_device, double* posterior_device)
      : cfg_(cfg), plan_(plan), n_obs_(obs.size()) {
    const bool paper = cfg.mode == EnsfMode::kPaper;
    const std::size_t dim = plan.dim, k = plan.members;
    // The noise keys of member 0; every member's stream shares them (NormalBatchStream).
    const NormalBatchStream keys(ctx.seed, RandomPurpose::kEnsfNoise, ctx.cycle, 0);

    // ---- observations on the device: values, errors, operators, who reads what ----
    std::vector<std::int8_t> obs_kind(n_obs_);
    for (std::size_t o = 0; o < n_obs_; ++o)
      obs_kind[o] = static_cast<std::int8_t>(obs.op()[o]);
    // Grid-point observations per element, in observation order (CSR).
    std::vector<std::uint32_t> elem_obs_start(dim + 1, 0), elem_obs(plan.grid_obs.size());
    for (std::size_t e : plan.grid_elem)
      ++elem_obs_start[e + 1];
    for (std::size_t e = 0; e < dim; ++e)
      elem_obs_start[e + 1] += elem_obs_start[e];
    {
      std::vector<std::uint32_t> fill(elem_obs_start.begin(), elem_obs_start.end() - 1);
      for (std::size_t g = 0; g < plan.grid_obs.size(); ++g)
        elem_obs[fill[plan.grid_elem[g]]++] = static_cast<std::uint32_t>(plan.grid_obs[g]);
    }
    // Off-grid observations (standard mode): stencils, and per element its (kk, weight)
    // entries in (kk, stencil point) order, the order the CPU adds them in.
    const std::size_t n_off = plan.off_obs.size();
    std::vector<double> off_weight(4 * n_off, 0.0);
    std::vector<std::int64_t> off_elem(4 * n_off, -1);
    std::vector<std::int32_t> off_points(n_off), off_owner(n_off);
    std::vector<std::uint32_t> off_obs(n_off), elem_off_start(dim + 1, 0);
    for (std::size_t kk = 0; kk < n_off; ++kk) {
      const auto& st = obs.stencil(plan.off_obs[kk]);
      off_obs[kk] = static_cast<std::uint32_t>(plan.off_obs[kk]);
      off_points[kk] = st.count;
      for (int p = 0; p < st.count; ++p) {
        off_weight[kk * 4 + p] = st.weight[p];
        std::size_t e;
        if (plan.local(st.index[p], e)) {
          off_elem[kk * 4 + p] = static_cast<std::int64_t>(e);
          ++elem_off_start[e + 1];
        }
      }
      std::size_t e0;
      off_owner[kk] = plan.local(st.index[0], e0) ? 1 : 0;
    }
    for (std::size_t e = 0; e < dim; ++e)
      elem_off_start[e + 1] += elem_off_start[e];
    std::vector<std::uint32_t> elem_off_kk(elem_off_start[dim]);
    std::vector<double> elem_off_weight(elem_off_start[dim]);
    {
      std::vector<std::uint32_t> fill(elem_off_start.begin(), elem_off_start.end() - 1);
      for (std::size_t kk = 0; kk < n_off; ++kk)
        for (int p = 0; p < 4; ++p)
          if (off_elem[kk * 4 + p] >= 0) {
            const auto e = static_cast<std::size_t>(off_elem[kk * 4 + p]);
            elem_off_kk[fill[e]] = static_cast<std::uint32_t>(kk);
            elem_off_weight[fill[e]++] = off_weight[kk * 4 + p];
          }
    }
    obs_value_ = DeviceArray<double>(std::vector<double>(obs.value().begin(), obs.value().end()),
                                     "observation values");
    obs_sd_ = DeviceArray<double>(std::vector<double>(obs.error_sd().begin(), obs.error_sd().end()),
                                  "observation errors");
    obs_kind_ = DeviceArray<std::int8_t>(obs_kind, "observation operators");
    elem_obs_start_ = DeviceArray<std::uint32_t>(elem_obs_start, "observations per element");
    elem_obs_ = DeviceArray<std::uint32_t>(elem_obs, "observations per element");
    off_weight_ = DeviceArray<double>(off_weight, "off-grid stencil weights");
    off_elem_ = DeviceArray<std::int64_t>(off_elem, "off-grid stencil elements");
    off_points_ = DeviceArray<std::int32_t>(off_points, "off-grid stencil sizes");
    off_owner_ = DeviceArray<std::int32_t>(off_owner, "off-grid owners");
    off_obs_ = DeviceArray<std::uint32_t>(off_obs, "off-grid observations");
    elem_off_start_ = DeviceArray<std::uint32_t>(elem_off_start, "off-grid entries per element");
    elem_off_kk_ = DeviceArray<std::uint32_t>(elem_off_kk, "off-grid entries per element");
    elem_off_weight_ = DeviceArray<double>(elem_off_weight, "off-grid entries per element");

    // ---- the slab's work arrays ----
    mu_ = DeviceArray<double>(dim, "prior mean");
    sd_ = DeviceArray<double>(dim, "prior spread");
    inv_sd_ = DeviceArray<double>(dim, "1/spread");
    x_ = DeviceArray<double>(k * dim, "working prior");
    z_ = DeviceArray<double>(k * dim, "particles");
    if (paper) {
      lin_a_ = DeviceArray<double>(dim, "likelihood coefficients");
      lin_b_ = DeviceArray<double>(dim, "likelihood coefficients");
      if (plan.has_arctan) {
        atan_a_ = DeviceArray<double>(dim, "likelihood coefficients");
        atan_b_ = DeviceArray<double>(dim, "likelihood coefficients");
      }
    }
    off_values_ = DeviceArray<double>(k * n_off * 4, "off-grid stencil values");
    if (cfg.early_stopping) {
      window_ = static_cast<std::size_t>(cfg.stop_window);
      history_ = DeviceArray<double>((window_ + 1) * dim, "stopping-rule history");
      drift_bits_ = DeviceArray<unsigned long long>(1, "stopping-rule drift");
    }
    if (!paper) {
      weighted_ = DeviceArray<double>(k * dim, "Monte-Carlo weighted prior");
      grad_ = DeviceArray<double>(k * dim, "likelihood gradient");
      row_d2_ = DeviceArray<double>(plan.ny * k * k, "member distances");
      weights_ = DeviceArray<double>(k * k, "softmax weights");
      ess_min_ = DeviceArray<double>(std::vector<double>(k, static_cast<double>(k)), "ess");
      ess_last_ = DeviceArray<double>(std::vector<double>(k, static_cast<double>(k)), "ess");
      off_dlogp_ = DeviceArray<double>(k * n_off, "off-grid slopes");
    }

    detail::EnsfDeviceSlab& s = s_;
    s.n2 = plan.n2;
    s.c0 = plan.c0;
    s.nc = plan.nc;
    s.dim = dim;
    s.members = k;
    s.paper = paper;
    s.normalize = cfg.normalize;
    s.has_arctan = plan.has_arctan;
    s.s_k = obs.kelvin_per_pv();
    s.inv_members = 1.0 / static_cast<double>(k);
    s.arctan_sigma_factor = cfg.arctan_sigma_factor;
    s.arctan_clip_sigmas = cfg.arctan_clip_sigmas;
    s.rtps = cfg.rtps;
    s.key0 = keys.key_word(0);
    s.key1 = keys.key_word(1);
    s.cycle = static_cast<std::uint32_t>(ctx.cycle);
    s.prior = prior_device;
    s.post = posterior_device;
    s.mu = mu_.get();
    s.sd = sd_.get();
    s.inv_sd = inv_sd_.get();
    s.x = x_.get();
    s.z = z_.get();
    s.obs_value = obs_value_.get();
    s.obs_sd = obs_sd_.get();
    s.obs_kind = obs_kind_.get();
    s.elem_obs_start = elem_obs_start_.get();
    s.elem_obs = elem_obs_.get();
    s.off_count = n_off;
    s.off_weight = off_weight_.get();
    s.off_elem = off_elem_.get();
    s.off_points = off_points_.get();
    s.off_obs = off_obs_.get();
    s.off_owner = off_owner_.get();
    s.elem_off_start = elem_off_start_.get();
    s.elem_off_kk = elem_off_kk_.get();
    s.elem_off_weight = elem_off_weight_.get();
    s.lin_a = lin_a_.get();
    s.lin_b = lin_b_.get();
    s.atan_a = atan_a_.get();
    s.atan_b = atan_b_.get();
  }

  std::vector<double> prior_statistics() override {
    detail::ensf_prior_statistics(s_);
    return sd_.download();
  }

  void set_target_spread(const std::vector<double>& target) override {
    if (!target.empty()) target_ = DeviceArray<double>(target, "target spread");
  }

  // Each slab writes what it owns, the sum reducer completes the values on the host.
  void gather_off_grid(bool from_prior, const filters::EnsfSum& sum) override {
    detail::ensf_gather_off_grid(s_, from_prior, off_values_.get());
    exchange(off_values_, sum);
  }

  std::vector<double> innovations() override {
    DeviceArray<double> innovation(n_obs_, "innovations");
    innovation.zero();
    detail::ensf_innovations(s_, off_values_.get(), innovation.get());
    return innovation.download();
  }

  void paper_terms() override { detail::ensf_paper_terms(s_); }

  void initial_particles() override {
    if (cfg_.early_stopping) history_.zero();
    detail::ensf_initial_particles(s_);
  }

  void member_distances(double alpha, const filters::EnsfSum& sum) override {
    const std::size_t n = plan_.nx;
    detail::ensf_row_distances(s_, alpha, n, plan_.c0 / n, plan_.nc / n, n, row_d2_.get());
    exchange(row_d2_, sum);
  }

  void softmax_weights(double beta2) override {
    detail::ensf_softmax(s_, row_d2_.get(), plan_.ny, beta2, weights_.get(), ess_min_.get(),
                         ess_last_.get());
  }

  void weighted_prior_and_gradient() override {
    detail::ensf_off_grid_slopes(s_, off_values_.get(), off_dlogp_.get());
    detail::ensf_weighted_prior_and_gradient(s_, weights_.get(), off_dlogp_.get(), weighted_.get(),
                                             grad_.get());
  }

  double steps(std::span<const filters::EnsfStepCoefficients> c, int k_begin, int k_end,
               bool compare) override {
    for (int k = k_begin; k < k_end; ++k) {
      const filters::EnsfStepCoefficients& sc = c[k];
      const detail::EnsfDeviceStep step{sc.alpha,  sc.inv_beta2, sc.beta2, sc.drift,
                                        sc.sigma2, sc.damp,      sc.dt,    sc.noise};
      detail::ensf_step(s_, step, static_cast<std::uint32_t>(k + 1), weighted_.get(), grad_.get());
      if (!cfg_.early_stopping) continue;
      const std::size_t slot = static_cast<std::size_t>(k) % (window_ + 1);
      const std::size_t old_slot = (static_cast<std::size_t>(k) + 1) % (window_ + 1);
      const bool last = compare && k + 1 == k_end;
      if (last) drift_bits_.zero();
      detail::ensf_member_mean(s_, history_.get(), slot, old_slot, last, drift_bits_.get());
    }
    if (!compare) return 0;
    unsigned long long bits = 0;
    detail::copy_to_host(&bits, drift_bits_.get(), sizeof bits);
    double drift;
    std::memcpy(&drift, &bits, sizeof drift);
    return drift;
  }

  void finish() override {
    detail::ensf_finish(s_, target_.size() > 0 ? target_.get() : nullptr);
    detail::synchronize("the EnSF analysis");
  }

  EffectiveMembers effective_members() const override {
    const std::vector<double> mins = ess_min_.download(), lasts = ess_last_.download();
    EffectiveMembers ess{static_cast<double>(plan_.members), 0};
    for (std::size_t i = 0; i < plan_.members; ++i) {
      ess.min = std::min(ess.min, mins[i]);
      ess.last_mean += lasts[i];
    }
    ess.last_mean *= s_.inv_members;
    return ess;
  }

 private:
  // A device vector every slab must sum: down, the reducer, up (nothing without one).
  static void exchange(DeviceArray<double>& v, const filters::EnsfSum& sum) {
    if (!sum || v.size() == 0) return;
    std::vector<double> host = v.download();
    sum(host);
    v.upload(host);
  }

  const filters::EnsfSettings& cfg_;
  const filters::EnsfSlabPlan& plan_;
  std::size_t n_obs_;
  std::size_t window_ = 0;
  detail::EnsfDeviceSlab s_;
  DeviceArray<double> obs_value_, obs_sd_;
  DeviceArray<std::int8_t> obs_kind_;
  DeviceArray<std::uint32_t> elem_obs_start_, elem_obs_;
  DeviceArray<double> off_weight_;
  DeviceArray<std::int64_t> off_elem_;
  DeviceArray<std::int32_t> off_points_, off_owner_;
  DeviceArray<std::uint32_t> off_obs_, elem_off_start_, elem_off_kk_;
  DeviceArray<double> elem_off_weight_;
  DeviceArray<double> mu_, sd_, inv_sd_, x_, z_, lin_a_, lin_b_, atan_a_, atan_b_, target_;
  DeviceArray<double> off_values_, history_;
  DeviceArray<unsigned long long> drift_bits_;
  DeviceArray<double> weighted_, grad_, row_d2_, weights_, ess_min_, ess_last_, off_dlogp_;
};

}  // namespace

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab_device(std::size_t col_begin, std::size_t col_end,
                                                         int members, const double* prior_device,
                                                         const obs::ObservationSpace& obs,
                                                         const filters::AnalysisContext& ctx,
                                                         double* posterior_device,
                                                         const filters::EnsfReducer& reducer) {
  const auto wall_start = std::chrono::steady_clock::now();
  device::sqg_plane_n(obs.grid(), "ensf (hip)");
  const std::size_t slab_dim = 2 * (col_end > col_begin ? col_end - col_begin : 0);
  const std::size_t values = static_cast<std::size_t>(members > 0 ? members : 0) * slab_dim;
  const filters::EnsfSlabPlan plan = filters::ensf_plan_slab(
      settings_, obs, col_begin, col_end, {members, slab_dim, values}, {members, slab_dim, values});
  require_device("ensf (hip)");
  if (2 * plan.n2 > (std::uint64_t{1} << 34))
    throw std::out_of_range("ensf (hip): a state of " + std::to_string(2 * plan.n2) +
                            " values is past the noise generator's 2^34 columns");
  DeviceEnsfStages stages(settings_, plan, obs, ctx, prior_device, posterior_device);
  AnalysisDiagnostics diag =
      filters::ensf_run(settings_, plan, obs, stages, reducer, initial_spread_);
  diag.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return diag;
}

#else  // no HIP backend in this build

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab(
    std::size_t, std::size_t, filters::ConstEnsembleView, const obs::ObservationSpace&,
    const filters::AnalysisContext&, filters::EnsembleView, const filters::EnsfReducer&) {
  throw std::runtime_error(std::string("ensf (gpu): ") + hip::detail::kNoGpuBackend);
}

AnalysisDiagnostics EnsfAnalysisHip::analyse_device(int, const double*,
                                                    const obs::ObservationSpace&,
                                                    const filters::AnalysisContext&, double*) {
  throw std::runtime_error(std::string("ensf (gpu): ") + hip::detail::kNoGpuBackend);
}

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab_device(std::size_t, std::size_t, int,
                                                         const double*,
                                                         const obs::ObservationSpace&,
                                                         const filters::AnalysisContext&, double*,
                                                         const filters::EnsfReducer&) {
  throw std::runtime_error(std::string("ensf (gpu): ") + hip::detail::kNoGpuBackend);
}

#endif

}  // namespace rtda::hip
