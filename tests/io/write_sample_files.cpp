// Writes one file of each kind into the directory given as argv[1], for
// check_netcdf_compat.py to open with netCDF4, xarray and h5py. The values follow closed-form
// patterns that are exact in binary floating point, so the script can recompute them and
// compare for equality; keep the two files in step.
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <vector>

#include "io/fields.hpp"
#include "io/observations_file.hpp"

namespace {

using rtda::obs::Observation;
using rtda::obs::ObservationSet;
using rtda::obs::ObsOperator;

// Value of state `s` (member or time index) at (level, j, i); multiples of 1/8 are exact.
double pattern(int s, int level, int j, int i, int n) {
  return (s * 10000 + level * 1000 + j * n + i) * 0.125;
}

std::vector<double> states(int count, int n) {
  std::vector<double> q;
  for (int s = 0; s < count; ++s) {
    for (int l = 0; l < 2; ++l) {
      for (int j = 0; j < n; ++j) {
        for (int i = 0; i < n; ++i)
          q.push_back(pattern(s, l, j, i, n));
      }
    }
  }
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " OUTPUT_DIR\n";
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    rtda::sqg::SqgParams p;
    p.N = 8;
    p.dt_s = 600.0;
    p.dynamics = rtda::sqg::Dynamics::kExact;
    const int n = p.N;
    const rtda::io::Provenance prov = {{"created_by", "write_sample_files"},
                                       {"history", "netCDF compatibility test"}};

    rtda::io::write_state(dir / "state.h5", p, 43200.0, states(1, n), prov);
    rtda::io::write_ensemble(dir / "ensemble.h5", p, 86400.0, 3, states(3, n), prov);

    rtda::io::NatureWriter nature(dir / "nature.h5", p, prov);
    const auto q = states(4, n);
    for (int k = 0; k < 4; ++k) {
      nature.append(43200.0 * k, std::span<const double>(q).subspan(k * 2 * n * n, 2 * n * n));
    }
    nature.close();

    ObservationSet obs;
    obs.experiment = "netcdf-compat";
    obs.seed = 0xFEEDFACECAFEBEEFull;
    for (int i = 0; i < 5; ++i) {
      obs.push_back(Observation{
          .time_seconds = 43200.0 * (i % 2),
          .level = i % 2,
          .x_m = 1.0e6 * i,
          .y_m = 2.0e6 * i,
          .value = 0.5 * i - 1.0,
          .error_sd = 0.25 * (i + 1),
          .op = static_cast<ObsOperator>(i % 3),
          .id = (std::uint64_t{1} << 63) + std::uint64_t(i),
      });
    }
    obs.cycle_time_seconds = {0.0, 43200.0, 86400.0};
    obs.shock_sd = {0.0, 2.5, 0.0};
    obs.shock.assign(3 * 2 * n * n, 0.0);
    const auto shock = states(1, n);
    std::copy(shock.begin(), shock.end(), obs.shock.begin() + 2 * n * n);
    rtda::io::write_observations(dir / "observations.h5", obs, p, prov);

    ObservationSet empty;
    empty.experiment = "empty";
    rtda::io::write_observations(dir / "observations_empty.h5", empty, p, prov);
  } catch (const std::exception& e) {
    std::cerr << "write_sample_files: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
