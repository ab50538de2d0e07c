// Host side of the HIP LETKF (letkf_hip.hpp): the device implementation of the column path.
// Checks, the observation cells and the whole-domain analysis are the CPU filter's
// (filters::letkf_check_columns, LetkfObservationCells, letkf_whole_domain); the arithmetic
// runs in letkf_hip.hip.
#include "hip/letkf_hip.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "filters/localization.hpp"
#include "hip/device.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/letkf_hip_kernels.hpp"
#include "hip/observe_hip.hpp"

namespace rtda::hip {

namespace {

using filters::AnalysisDiagnostics;

[[maybe_unused]] void require_device(const char* what) {
  std::string why;
  if (device::gpu_device_count(&why) == 0)
    throw std::runtime_error(std::string(what) + ": no HIP device is usable: " + why);
}

}  // namespace

LetkfAnalysisHip::LetkfAnalysisHip(filters::LetkfSettings settings) : settings_(settings) {
  settings_.validate();
}

AnalysisDiagnostics LetkfAnalysisHip::analyse(filters::ConstEnsembleView prior,
                                              const obs::ObservationSpace& space,
                                              const filters::AnalysisContext& /*ctx*/,
                                              filters::EnsembleView posterior) {
  filters::check_letkf_ensembles(prior, posterior, space);
#if RTDA_HAVE_GPU
  require_device("letkf (hip)");
  detail::DeviceArray<double> ensemble(prior.data.size(), "the LETKF ensemble");
  ensemble.upload(prior.data.data());
  const AnalysisDiagnostics diag =
      analyse_device(prior.members, ensemble.get(), space, ensemble.get());
  detail::copy_to_host(posterior.data.data(), ensemble.get(),
                       posterior.data.size() * sizeof(double));
  return diag;
#else
  throw std::runtime_error(std::string("letkf (gpu): ") + hip::detail::kNoGpuBackend);
#endif
}

void LetkfAnalysisHip::analyse_columns(std::span<const double> prior_cols,
                                       std::span<const double> hx, int members,
                                       const obs::ObservationSpace& space, std::size_t col_begin,
                                       std::size_t col_end, std::span<double> posterior_cols,
                                       filters::LetkfColumnStats* stats) const {
  filters::letkf_check_columns(prior_cols.size(), hx.size(), members, space, col_begin, col_end,
                               posterior_cols.size());
#if RTDA_HAVE_GPU
  require_device("letkf (hip)");
  detail::DeviceArray<double> cols(prior_cols.size(), "the LETKF columns");
  cols.upload(prior_cols.data());
  detail::DeviceArray<double> d_hx(hx.size(), "h(x_b)");
  d_hx.upload(hx.data());
  analyse_columns_device(cols.get(), d_hx.get(), members, space, col_begin, col_end, cols.get(),
                         stats);
  detail::copy_to_host(posterior_cols.data(), cols.get(), posterior_cols.size() * sizeof(double));
#else
  (void)stats;
  throw std::runtime_error(std::string("letkf (gpu): ") + hip::detail::kNoGpuBackend);
#endif
}

void LetkfAnalysisHip::analyse_columns_device(const double* prior_cols_device,
                                              const double* hx_device, int members,
                                              const obs::ObservationSpace& space,
                                              std::size_t col_begin, std::size_t col_end,
                                              double* posterior_cols_device,
                                              filters::LetkfColumnStats* stats) const {
  const std::size_t p = space.size();
  const std::size_t k = static_cast<std::size_t>(members > 0 ? members : 0);
  const std::size_t nc = col_end > col_begin ? col_end - col_begin : 0;
  filters::letkf_check_columns(2 * nc * k, p * k, members, space, col_begin, col_end, 2 * nc * k);
#if RTDA_HAVE_GPU
  using detail::DeviceArray;
  require_device("letkf (hip)");
  const int n = device::sqg_plane_n(space.grid(), "letkf (hip)");
  const bool localize = settings_.localize;
  const double radius_m = settings_.localization_radius_km * 1e3;

  // Y_b, y − ȳ_b, 1/σ per observation (eq. 8–9).
  DeviceArray<double> value(std::vector<double>(space.value().begin(), space.value().end()),
                            "observation values");
  DeviceArray<double> error_sd(
      std::vector<double>(space.error_sd().begin(), space.error_sd().end()), "observation errors");
  DeviceArray<double> dev(p * k, "Y_b"), innov(p, "innovations"), inv_sd(p, "1/sigma");
  detail::letkf_observation_rows(hx_device, p, members, value.get(), error_sd.get(), dev.get(),
                                 innov.get(), inv_sd.get());
  DeviceArray<double> obs_x(std::vector<double>(space.x_m().begin(), space.x_m().end()),
                            "observation x");
  DeviceArray<double> obs_y(std::vector<double>(space.y_m().begin(), space.y_m().end()),
                            "observation y");
  DeviceArray<std::int32_t> obs_level(
      std::vector<std::int32_t>(space.level().begin(), space.level().end()), "observation levels");

  // The candidate search structure, as on the CPU.
  DeviceArray<std::uint32_t> start0, start1, list0, list1;
  DeviceArray<std::int32_t> offsets;
  std::size_t max_candidates = p;
  int n_offsets = 0;
  if (localize) {
    const filters::LetkfObservationCells cells(space, radius_m);
    start0 = DeviceArray<std::uint32_t>(cells.start[0], "observation cells");
    start1 = DeviceArray<std::uint32_t>(cells.start[1], "observation cells");
    list0 = DeviceArray<std::uint32_t>(cells.obs[0], "observation cells");
    list1 = DeviceArray<std::uint32_t>(cells.obs[1], "observation cells");
    std::vector<std::int32_t> flat;
    flat.reserve(2 * cells.offsets.size());
    for (const auto& [a, b] : cells.offsets) {
      flat.push_back(a);
      flat.push_back(b);
    }
    offsets = DeviceArray<std::int32_t>(flat, "cell offsets");
    n_offsets = static_cast<int>(cells.offsets.size());
    max_candidates = 0;
    for (std::size_t c = col_begin; c < col_end; ++c)
      max_candidates = std::max(max_candidates, cells.candidates(c));
  }
  DeviceArray<unsigned long long> counters(2, "LETKF counters");
  counters.zero();

  detail::LetkfDeviceColumns batch;
  batch.n = n;
  batch.k = members;
  batch.c0 = col_begin;
  batch.c1 = col_end;
  batch.p = p;
  batch.domain_m = space.grid().length_x_m;
  batch.dx = space.grid().length_x_m / n;
  batch.radius_m = radius_m;
  batch.v = localize ? filters::vertical_localization_factor(settings_.localization_radius_km,
                                                             settings_.vertical_distance_km)
                     : 1.0;
  batch.cut = settings_.weight_cutoff;
  batch.rtps = settings_.rtps;
  batch.localize = localize;
  batch.prior_cols = prior_cols_device;
  batch.post_cols = posterior_cols_device;
  batch.dev = dev.get();
  batch.innov = innov.get();
  batch.inv_sd = inv_sd.get();
  batch.obs_x = obs_x.get();
  batch.obs_y = obs_y.get();
  batch.obs_level = obs_level.get();
  batch.cell_start0 = start0.get();
  batch.cell_start1 = start1.get();
  batch.cell_obs0 = list0.get();
  batch.cell_obs1 = list1.get();
  batch.offsets = offsets.get();
  batch.n_offsets = n_offsets;
  batch.max_candidates = max_candidates;
  batch.counters = counters.get();
  detail::letkf_columns(batch);

  const std::vector<unsigned long long> counts = counters.download();
  if (counts[1] > 0) {
    throw std::runtime_error(
        "LETKF (hip): the Jacobi eigendecomposition (eq. 8) did not converge for " +
        std::to_string(counts[1]) + " element(s) in columns [" + std::to_string(col_begin) + ", " +
        std::to_string(col_end) + ")");
  }
  if (stats) {
    stats->elements += 2 * nc;
    stats->local_observations += counts[0];
  }
#else
  (void)prior_cols_device;
  (void)hx_device;
  (void)posterior_cols_device;
  (void)stats;
  throw std::runtime_error(std::string("letkf (gpu): ") + hip::detail::kNoGpuBackend);
#endif
}

AnalysisDiagnostics LetkfAnalysisHip::analyse_device(int members, const double* prior_device,
                                                     const obs::ObservationSpace& space,
                                                     double* posterior_device) const {
#if RTDA_HAVE_GPU
  using detail::DeviceArray;
  if (members < 2)
    throw std::invalid_argument("LETKF needs at least 2 members, got " + std::to_string(members));
  require_device("letkf (hip)");
  const int n = device::sqg_plane_n(space.grid(), "letkf (hip)");
  const std::size_t state = 2 * static_cast<std::size_t>(n) * n;
  const std::size_t p = space.size();
  DeviceArray<double> hx(static_cast<std::size_t>(members) * p, "h(x_b)");
  // The whole-domain analysis every backend shares; h(x) and the columns on the device.
  return filters::letkf_whole_domain(
      settings_, space, members,
      [&](std::span<double> hx_host) {
        observe_on_device(space, prior_device, state, members, hx.get());
        if (!hx_host.empty()) detail::copy_to_host(hx_host.data(), hx.get(), hx_host.size_bytes());
      },
      [&](std::span<const double>, filters::LetkfColumnStats& stats) {
        // The state layout [member][level][y][x] is the column layout for the whole domain.
        analyse_columns_device(prior_device, hx.get(), members, space, 0,
                               static_cast<std::size_t>(n) * n, posterior_device, &stats);
      });
#else
  (void)members;
  (void)prior_device;
  (void)space;
  (void)posterior_device;
  throw std::runtime_error(std::string("letkf (gpu): ") + hip::detail::kNoGpuBackend);
#endif
}

}  // namespace rtda::hip
