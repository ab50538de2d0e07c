// Host side of the HIP EnSF (ensf_hip.hpp): the bookkeeping is the CPU filter's
// (filters::ensf_plan_slab, ensf_target_spread); the arithmetic runs in ensf_hip.hip.
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
#include "hip/device.hpp"
#include "hip/ensf_hip_kernels.hpp"

namespace rtda::hip {

namespace {

using filters::AnalysisDiagnostics;
using filters::EnsfMode;

[[maybe_unused]] void require_device(const char* what) {
  std::string why;
  if (device::hip_device_count(&why) == 0)
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
  const std::size_t n2 = static_cast<std::size_t>(obs.grid_n()) * obs.grid_n();
  return analyse_slab(0, n2, prior, obs, ctx, posterior, filters::EnsfReducer{});
}

#if RTDA_HAVE_HIP

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
  const std::size_t n2 = static_cast<std::size_t>(obs.grid_n()) * obs.grid_n();
  return analyse_slab_device(0, n2, members, prior_device, obs, ctx, posterior_device, {});
}

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab_device(std::size_t col_begin, std::size_t col_end,
                                                         int members, const double* prior_device,
                                                         const obs::ObservationSpace& obs,
                                                         const filters::AnalysisContext& ctx,
                                                         double* posterior_device,
                                                         const filters::EnsfReducer& reducer) {
  using detail::DeviceArray;
  const auto wall_start = std::chrono::steady_clock::now();
  const filters::EnsfSettings& cfg = settings_;
  const bool paper = cfg.mode == EnsfMode::kPaper;
  const std::size_t slab_dim = 2 * (col_end > col_begin ? col_end - col_begin : 0);
  const std::size_t values = static_cast<std::size_t>(members > 0 ? members : 0) * slab_dim;
  const filters::EnsfSlabPlan plan = filters::ensf_plan_slab(
      cfg, obs, col_begin, col_end, {members, slab_dim, values}, {members, slab_dim, values});
  require_device("ensf (hip)");
  const std::size_t n = plan.n, dim = plan.dim, k = plan.members, n_obs = obs.size();
  if (2 * plan.n2 > (std::uint64_t{1} << 34))
    throw std::out_of_range("ensf (hip): a state of " + std::to_string(2 * plan.n2) +
                            " values is past the noise generator's 2^34 columns");
  // The noise keys of member 0; every member's stream shares them (NormalBatchStream).
  const NormalBatchStream keys(ctx.seed, RandomPurpose::kEnsfNoise, ctx.cycle, 0);

  // ---- observations on the device: values, errors, operators, who reads what ----
  std::vector<double> obs_value(obs.value().begin(), obs.value().end());
  std::vector<double> obs_sd(obs.error_sd().begin(), obs.error_sd().end());
  std::vector<std::int8_t> obs_kind(n_obs);
  for (std::size_t o = 0; o < n_obs; ++o)
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
  // Off-grid observations (standard mode): stencils, and per element its (kk, weight) entries
  // in (kk, stencil point) order, the order the CPU adds them in.
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

  DeviceArray<double> d_obs_value(obs_value, "observation values");
  DeviceArray<double> d_obs_sd(obs_sd, "observation errors");
  DeviceArray<std::int8_t> d_obs_kind(obs_kind, "observation operators");
  DeviceArray<std::uint32_t> d_elem_obs_start(elem_obs_start, "observations per element");
  DeviceArray<std::uint32_t> d_elem_obs(elem_obs, "observations per element");
  DeviceArray<double> d_off_weight(off_weight, "off-grid stencil weights");
  DeviceArray<std::int64_t> d_off_elem(off_elem, "off-grid stencil elements");
  DeviceArray<std::int32_t> d_off_points(off_points, "off-grid stencil sizes");
  DeviceArray<std::int32_t> d_off_owner(off_owner, "off-grid owners");
  DeviceArray<std::uint32_t> d_off_obs(off_obs, "off-grid observations");
  DeviceArray<std::uint32_t> d_elem_off_start(elem_off_start, "off-grid entries per element");
  DeviceArray<std::uint32_t> d_elem_off_kk(elem_off_kk, "off-grid entries per element");
  DeviceArray<double> d_elem_off_weight(elem_off_weight, "off-grid entries per element");

  // ---- the slab's work arrays ----
  DeviceArray<double> mu(dim, "prior mean"), sd(dim, "prior spread"), inv_sd(dim, "1/spread");
  DeviceArray<double> x(k * dim, "working prior"), z(k * dim, "particles");
  DeviceArray<double> lin_a, lin_b, atan_a, atan_b;
  if (paper) {
    lin_a = DeviceArray<double>(dim, "likelihood coefficients");
    lin_b = DeviceArray<double>(dim, "likelihood coefficients");
    if (plan.has_arctan) {
      atan_a = DeviceArray<double>(dim, "likelihood coefficients");
      atan_b = DeviceArray<double>(dim, "likelihood coefficients");
    }
  }

  detail::EnsfDeviceSlab s;
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
  s.mu = mu.get();
  s.sd = sd.get();
  s.inv_sd = inv_sd.get();
  s.x = x.get();
  s.z = z.get();
  s.obs_value = d_obs_value.get();
  s.obs_sd = d_obs_sd.get();
  s.obs_kind = d_obs_kind.get();
  s.elem_obs_start = d_elem_obs_start.get();
  s.elem_obs = d_elem_obs.get();
  s.off_count = n_off;
  s.off_weight = d_off_weight.get();
  s.off_elem = d_off_elem.get();
  s.off_points = d_off_points.get();
  s.off_obs = d_off_obs.get();
  s.off_owner = d_off_owner.get();
  s.elem_off_start = d_elem_off_start.get();
  s.elem_off_kk = d_elem_off_kk.get();
  s.elem_off_weight = d_elem_off_weight.get();
  s.lin_a = lin_a.get();
  s.lin_b = lin_b.get();
  s.atan_a = atan_a.get();
  s.atan_b = atan_b.get();

  // ---- prior statistics; the spread target is host state (kept across cycles) ----
  detail::ensf_prior_statistics(s);
  const std::vector<double> sd_host = sd.download();
  const std::vector<double> target =
      filters::ensf_target_spread(cfg.spread_target, plan, sd_host, initial_spread_);
  DeviceArray<double> d_target;
  if (!target.empty()) d_target = DeviceArray<double>(target, "target spread");

  // Off-grid stencil values: each slab writes what it owns, the sum reducer completes them.
  DeviceArray<double> off_values(k * n_off * 4, "off-grid stencil values");
  const auto gather_off_grid = [&](bool from_prior) {
    if (n_off == 0) return;
    detail::ensf_gather_off_grid(s, from_prior, off_values.get());
    if (reducer.sum) {
      std::vector<double> v = off_values.download();
      reducer.sum(v);
      off_values.upload(v);
    }
  };

  // ---- innovation diagnostics: y − mean_i h(x_b^(i)), one owner per observation ----
  AnalysisDiagnostics diag;
  diag.observations_used = n_obs;
  {
    DeviceArray<double> innovation(n_obs, "innovations");
    innovation.zero();
    gather_off_grid(true);
    detail::ensf_innovations(s, off_values.get(), innovation.get());
    std::vector<double> innov = innovation.download();
    if (n_obs > 0 && reducer.sum) reducer.sum(innov);
    double sum = 0, sum2 = 0;
    for (double v : innov) {
      sum += v;
      sum2 += v * v;
    }
    if (n_obs > 0) {
      diag.innovation_mean = sum / static_cast<double>(n_obs);
      diag.innovation_rms = std::sqrt(sum2 / static_cast<double>(n_obs));
    }
  }

  if (paper) detail::ensf_paper_terms(s);

  // ---- the reverse SDE (eq. 15) ----
  detail::ensf_initial_particles(s);
  const double dt = 1.0 / cfg.steps;
  const int cap = cfg.step_cap();
  const bool watch = cfg.early_stopping;
  const std::size_t window = static_cast<std::size_t>(cfg.stop_window);
  DeviceArray<double> history;
  DeviceArray<unsigned long long> drift_bits;
  if (watch) {
    history = DeviceArray<double>((window + 1) * dim, "stopping-rule history");
    history.zero();
    drift_bits = DeviceArray<unsigned long long>(1, "stopping-rule drift");
  }
  const std::size_t rows_total = n, row0 = plan.c0 / n, rows = plan.nc / n;
  DeviceArray<double> weighted, grad, row_d2, weights, ess_min, ess_last, off_dlogp;
  if (!paper) {
    weighted = DeviceArray<double>(k * dim, "Monte-Carlo weighted prior");
    grad = DeviceArray<double>(k * dim, "likelihood gradient");
    row_d2 = DeviceArray<double>(rows_total * k * k, "member distances");
    weights = DeviceArray<double>(k * k, "softmax weights");
    ess_min = DeviceArray<double>(std::vector<double>(k, static_cast<double>(k)), "ess");
    ess_last = DeviceArray<double>(std::vector<double>(k, static_cast<double>(k)), "ess");
    off_dlogp = DeviceArray<double>(k * n_off, "off-grid slopes");
  }
  double last_drift = 0;
  int steps_taken = 0;
  for (int step = 0; step < cap; ++step) {
    const filters::EnsfStepCoefficients sc =
        filters::ensf_step_coefficients(step, dt, cfg.eps_alpha, cfg.eps_beta, cfg.damping);
    const detail::EnsfDeviceStep c{sc.alpha,  sc.inv_beta2, sc.beta2, sc.drift,
                                   sc.sigma2, sc.damp,      sc.dt,    sc.noise};
    if (!paper) {
      detail::ensf_row_distances(s, sc.alpha, n, row0, rows, rows_total, row_d2.get());
      if (reducer.sum) {
        std::vector<double> v = row_d2.download();
        reducer.sum(v);
        row_d2.upload(v);
      }
      detail::ensf_softmax(s, row_d2.get(), rows_total, sc.beta2, weights.get(), ess_min.get(),
                           ess_last.get());
      gather_off_grid(false);
      detail::ensf_off_grid_slopes(s, off_values.get(), off_dlogp.get());
      detail::ensf_weighted_prior_and_gradient(s, weights.get(), off_dlogp.get(), weighted.get(),
                                               grad.get());
    }
    detail::ensf_step(s, c, static_cast<std::uint32_t>(step + 1), weighted.get(), grad.get());
    steps_taken = step + 1;
    if (watch) {
      const std::size_t slot = static_cast<std::size_t>(step) % (window + 1);
      const std::size_t old_slot = (static_cast<std::size_t>(step) + 1) % (window + 1);
      const bool decide = static_cast<std::size_t>(step) > window;
      if (decide) drift_bits.zero();
      detail::ensf_member_mean(s, history.get(), slot, old_slot, decide, drift_bits.get());
      // Stopping rule: after step k > W, max_d |m_k − m_{k−W}| < tolerance · W.
      if (decide) {
        unsigned long long bits = 0;
        detail::copy_to_host(&bits, drift_bits.get(), sizeof bits);
        double drift;
        std::memcpy(&drift, &bits, sizeof drift);
        if (reducer.max) reducer.max(std::span<double>(&drift, 1));
        last_drift = drift;
        if (drift < cfg.stop_tolerance * static_cast<double>(window)) break;
      }
    }
  }

  // ---- output: x_i = μ + s ⊙ z_i, then RTPS and the spread target ----
  detail::ensf_finish(s, target.empty() ? nullptr : d_target.get());
  detail::synchronize("the EnSF analysis");

  diag.extra["ensf_steps"] = steps_taken;
  diag.extra["ensf_final_t"] = 1.0 - steps_taken * dt;
  if (watch) diag.extra["ensf_stop_drift"] = last_drift;
  if (!paper) {
    const std::vector<double> mins = ess_min.download(), lasts = ess_last.download();
    double min_ess = static_cast<double>(k), ess_sum = 0;
    for (std::size_t i = 0; i < k; ++i) {
      min_ess = std::min(min_ess, mins[i]);
      ess_sum += lasts[i];
    }
    diag.extra["ensf_min_effective_members"] = min_ess;
    diag.extra["ensf_final_effective_members"] =
        steps_taken > 0 ? ess_sum * s.inv_members : static_cast<double>(k);
  }
  diag.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return diag;
}

#else  // no HIP backend in this build

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab(
    std::size_t, std::size_t, filters::ConstEnsembleView, const obs::ObservationSpace&,
    const filters::AnalysisContext&, filters::EnsembleView, const filters::EnsfReducer&) {
  throw std::runtime_error("ensf (hip): this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}

AnalysisDiagnostics EnsfAnalysisHip::analyse_device(int, const double*,
                                                    const obs::ObservationSpace&,
                                                    const filters::AnalysisContext&, double*) {
  throw std::runtime_error("ensf (hip): this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}

AnalysisDiagnostics EnsfAnalysisHip::analyse_slab_device(std::size_t, std::size_t, int,
                                                         const double*,
                                                         const obs::ObservationSpace&,
                                                         const filters::AnalysisContext&, double*,
                                                         const filters::EnsfReducer&) {
  throw std::runtime_error("ensf (hip): this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}

// The device-memory helpers of ensf_hip_kernels.hpp (defined in ensf_hip.hip with the
// backend): without it they refuse, so code that names them (the parity tests) still links.
namespace detail {
void* device_malloc(std::size_t, const char* what) {
  throw std::runtime_error(std::string("hip: cannot allocate ") + what +
                           ": this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void device_free(void*) noexcept {}
void copy_to_device(void*, const void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void copy_to_host(void*, const void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void copy_on_device(void*, const void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void fill_zero(void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void synchronize(const char*) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
std::uint64_t host_device_bytes() {
  return 0;
}
void count_host_device_bytes(std::size_t) {}
}  // namespace detail

#endif

}  // namespace rtda::hip
