// The Lorenz-96 model (Lorenz 1996; docs/science.md §7): n variables on a periodic ring,
//   dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F,
// integrated with the classical fourth-order Runge-Kutta scheme. The data-assimilation
// community's standard toy: n = 40, F = 8, dt = 0.05 (one step ~ 6 hours of weather).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "l96/lorenz96_params.hpp"

namespace rtda::l96 {

// dx/dt of one state (x.size() == n) into `out`.
void tendency(const Lorenz96Params& p, std::span<const double> x, std::span<double> out);

class Lorenz96 {
 public:
  explicit Lorenz96(Lorenz96Params p);  // validates
  const Lorenz96Params& params() const { return p_; }

  // `steps` RK4 steps of one state in place.
  void advance(std::span<double> x, int steps) const;
  // The same for `members` states laid out one after the other (members x n); the members
  // are independent, so the OpenMP split over them changes no bit.
  void advance_members(std::span<double> states, int members, int steps) const;

 private:
  Lorenz96Params p_;
};

}  // namespace rtda::l96
