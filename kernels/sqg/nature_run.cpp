#include "sqg/nature_run.hpp"

#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "core/random.hpp"

namespace rtda::sqg {

std::vector<double> nature_initial_state(const SqgParams& params, const NatureSettings& s) {
  const int n = params.N;
  const std::size_t nn = static_cast<std::size_t>(n) * n;
  std::vector<double> q(2 * nn);
  RandomStream noise(s.seed, RandomPurpose::kNatureInitialNoise);
  noise.fill_normal(q, 0.0, s.noise_sd_ms);
  // Isolated bump on the lid, with x and y scaled to [0, 2 pi).
  for (int j = 0; j < n; ++j) {
    const double y = 2.0 * std::numbers::pi * j / n;
    for (int i = 0; i < n; ++i) {
      const double x = 2.0 * std::numbers::pi * i / n;
      q[nn + static_cast<std::size_t>(j) * n + i] +=
          s.bump_amplitude_ms * std::pow(std::sin(x / 2), 40) * std::pow(std::sin(y), 20);
    }
  }
  for (int lev = 0; lev < 2; ++lev) {
    double mean = 0;
    for (std::size_t p = 0; p < nn; ++p)
      mean += q[lev * nn + p];
    mean /= static_cast<double>(nn);
    for (std::size_t p = 0; p < nn; ++p)
      q[lev * nn + p] -= mean;
  }
  return q;
}

void run_nature(const SqgModel<double>& model, const NatureSettings& s,
                const std::function<void(int, double, std::span<const double>)>& on_state,
                const std::function<void(const NatureProgress&)>& on_progress) {
  const SqgParams& p = model.params();
  s.validate(p);
  const long per = s.steps_per_interval(p);
  const long spin = s.spinup_steps(p);
  const long total = spin + per * (s.states - 1);
  auto ws = model.make_workspace();
  std::vector<double> grid = nature_initial_state(p, s);
  typename SqgModel<double>::SpectralVector spec(model.spectral_size());
  model.to_spectral(grid, spec, ws);

  long done = 0;
  const auto report = [&](int written) {
    if (on_progress) on_progress({done, total, written});
  };
  // Spin-up in interval-sized chunks so progress keeps flowing.
  while (done < spin) {
    const long chunk = std::min(per, spin - done);
    model.advance(spec, static_cast<int>(chunk), ws);
    done += chunk;
    report(0);
  }
  for (int k = 0; k < s.states; ++k) {
    if (k > 0) {
      model.advance(spec, static_cast<int>(per), ws);
      done += per;
    }
    model.to_grid(spec, grid, ws);
    on_state(k, static_cast<double>(done) * p.dt_s, grid);
    report(k + 1);
  }
}

std::array<double, 2> level_std(std::span<const double> q, int N) {
  const std::size_t nn = static_cast<std::size_t>(N) * N;
  std::array<double, 2> out{};
  for (int lev = 0; lev < 2; ++lev) {
    double mean = 0, sq = 0;
    for (std::size_t p = 0; p < nn; ++p)
      mean += q[lev * nn + p];
    mean /= static_cast<double>(nn);
    for (std::size_t p = 0; p < nn; ++p) {
      const double d = q[lev * nn + p] - mean;
      sq += d * d;
    }
    out[lev] = std::sqrt(sq / static_cast<double>(nn));
  }
  return out;
}

}  // namespace rtda::sqg
