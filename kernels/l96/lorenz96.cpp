#include "l96/lorenz96.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace rtda::l96 {

void tendency(const Lorenz96Params& p, std::span<const double> x, std::span<double> out) {
  const int n = p.n;
  for (int i = 0; i < n; ++i) {
    const double xp1 = x[static_cast<std::size_t>((i + 1) % n)];
    const double xm1 = x[static_cast<std::size_t>((i + n - 1) % n)];
    const double xm2 = x[static_cast<std::size_t>((i + n - 2) % n)];
    out[static_cast<std::size_t>(i)] =
        (xp1 - xm2) * xm1 - x[static_cast<std::size_t>(i)] + p.forcing;
  }
}

Lorenz96::Lorenz96(Lorenz96Params p) : p_(p) {
  p_.validate();
}

void Lorenz96::advance(std::span<double> x, int steps) const {
  const std::size_t n = static_cast<std::size_t>(p_.n);
  if (x.size() != n) {
    throw std::invalid_argument("Lorenz96::advance: " + std::to_string(x.size()) +
                                " values, the model has n = " + std::to_string(n));
  }
  std::vector<double> k1(n), k2(n), k3(n), k4(n), y(n);
  const double h = p_.dt;
  for (int s = 0; s < steps; ++s) {
    tendency(p_, x, k1);
    for (std::size_t i = 0; i < n; ++i)
      y[i] = x[i] + 0.5 * h * k1[i];
    tendency(p_, y, k2);
    for (std::size_t i = 0; i < n; ++i)
      y[i] = x[i] + 0.5 * h * k2[i];
    tendency(p_, y, k3);
    for (std::size_t i = 0; i < n; ++i)
      y[i] = x[i] + h * k3[i];
    tendency(p_, y, k4);
    for (std::size_t i = 0; i < n; ++i)
      x[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
  }
}

void Lorenz96::advance_members(std::span<double> states, int members, int steps) const {
  const std::size_t n = static_cast<std::size_t>(p_.n);
  if (states.size() != n * static_cast<std::size_t>(members)) {
    throw std::invalid_argument("Lorenz96::advance_members: " + std::to_string(states.size()) +
                                " values for " + std::to_string(members) +
                                " members of n = " + std::to_string(n));
  }
#pragma omp parallel for schedule(static)
  for (int m = 0; m < members; ++m)
    advance(states.subspan(static_cast<std::size_t>(m) * n, n), steps);
}

}  // namespace rtda::l96
