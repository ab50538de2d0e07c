// The analysis problem both filter benchmarks time: one N x N ensemble prior and a full
// grid-point observation network (docs/science.md §2, experiment 1).
#pragma once

#include <vector>

#include "core/random.hpp"
#include "obs/observation.hpp"
#include "obs/observation_space.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::bench {

struct Problem {
  sqg::SqgParams grid;
  obs::ObservationSpace obs;
  std::vector<double> prior;
};

// Truth and members N(0, 1000^2) m/s per element (~3 K spread), every grid point of both
// levels observed with linear_K, sigma_o = 1 K (docs/science.md §2, experiment 1).
inline Problem make_problem(int n, int members) {
  Problem p;
  p.grid.N = n;
  const std::size_t dim = p.grid.state_size();
  std::vector<double> truth(dim);
  RandomStream(1, RandomPurpose::kTest, 0, 0).fill_normal(truth, 0.0, 1000.0);
  p.prior.resize(members * dim);
  std::vector<double> noise(dim);
  for (int m = 0; m < members; ++m) {
    RandomStream(1, RandomPurpose::kTest, 1, m).fill_normal(noise, 0.0, 1000.0);
    for (std::size_t e = 0; e < dim; ++e)
      p.prior[m * dim + e] = truth[e] + noise[e];
  }
  std::vector<double> obs_noise(dim);
  RandomStream(1, RandomPurpose::kTest, 2, 0).fill_normal(obs_noise);
  obs::ObservationSet set;
  const double s_k = p.grid.kelvin_per_pv();
  for (int level = 0; level < 2; ++level) {
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < n; ++i) {
        const std::size_t e = (static_cast<std::size_t>(level) * n + j) * n + i;
        obs::Observation o;
        o.level = level;
        o.x_m = i * p.grid.dx_m();
        o.y_m = j * p.grid.dx_m();
        o.value = s_k * truth[e] + obs_noise[e];
        o.error_sd = 1.0;
        o.op = obs::ObsOperator::kLinearK;
        o.id = e;
        set.push_back(o);
      }
    }
  }
  p.obs = obs::ObservationSpace(p.grid, set);
  return p;
}

}  // namespace rtda::bench
