#include "surrogate/training_data.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "surrogate/normalisation_math.hpp"

namespace rtda::surrogate {

void Normalisation::apply(std::span<const double> q, std::span<float> z, int grid_n) const {
  const std::size_t n2 = static_cast<std::size_t>(grid_n) * grid_n;
  for (std::size_t l = 0; l < 2; ++l) {
    const double inv = 1.0 / std[l];
    for (std::size_t e = 0; e < n2; ++e)
      z[l * n2 + e] = normalise_value(q[l * n2 + e], mean[l], inv);
  }
}

void Normalisation::invert(std::span<const float> z, std::span<double> q, int grid_n) const {
  const std::size_t n2 = static_cast<std::size_t>(grid_n) * grid_n;
  for (std::size_t l = 0; l < 2; ++l) {
    for (std::size_t e = 0; e < n2; ++e)
      q[l * n2 + e] = denormalise_value(z[l * n2 + e], std[l], mean[l]);
  }
}

Normalisation normalisation_of(const std::vector<io::NatureRun>& runs) {
  Normalisation out;
  std::array<double, 2> sum{0, 0}, sum2{0, 0};
  double count = 0;
  for (const auto& r : runs) {
    const std::size_t n2 = static_cast<std::size_t>(r.params.N) * r.params.N;
    for (std::size_t k = 0; k < r.size(); ++k) {
      const auto q = r.state(k);
      for (std::size_t l = 0; l < 2; ++l) {
        for (std::size_t e = 0; e < n2; ++e) {
          sum[l] += q[l * n2 + e];
          sum2[l] += q[l * n2 + e] * q[l * n2 + e];
        }
      }
      count += static_cast<double>(n2);
    }
  }
  if (count == 0) throw std::invalid_argument("normalisation: no nature states");
  for (std::size_t l = 0; l < 2; ++l) {
    out.mean[l] = sum[l] / count;
    const double var = sum2[l] / count - out.mean[l] * out.mean[l];
    out.std[l] = var > 0 ? std::sqrt(var) : 1.0;
  }
  return out;
}

void apply_symmetry(std::span<const double> in, std::span<double> out, int grid_n, int shift_x,
                    bool flip) {
  const int n = grid_n;
  const std::size_t n2 = static_cast<std::size_t>(n) * n;
  const int s = ((shift_x % n) + n) % n;
  for (int l = 0; l < 2; ++l) {
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < n; ++i) {
        // out(i, j) = g(i - s, j), g = flip ? -in(-x, y + L/2) : in
        const int gi = (i - s + n) % n;
        double v;
        if (flip) {
          const int si = (n - gi) % n;
          const int sj = (j + n / 2) % n;
          v = -in[l * n2 + static_cast<std::size_t>(sj) * n + si];
        } else {
          v = in[l * n2 + static_cast<std::size_t>(j) * n + gi];
        }
        out[l * n2 + static_cast<std::size_t>(j) * n + i] = v;
      }
    }
  }
}

std::vector<PairIndex> make_pairs(const std::vector<io::NatureRun>& runs, int steps) {
  if (steps < 1) throw std::invalid_argument("pairs: steps = " + std::to_string(steps));
  std::vector<PairIndex> out;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    for (std::size_t k = 0; k + static_cast<std::size_t>(steps) < runs[r].size(); ++k)
      out.push_back({static_cast<std::uint32_t>(r), static_cast<std::uint32_t>(k)});
  }
  return out;
}

}  // namespace rtda::surrogate
